// The real grub-mkconfig over a temporary /etc/default, /boot and /etc/grub.d (bind-mounted in a
// private mount namespace, so the machine's own are never touched): how the tests check that the
// grub drop-in the charm writes ends up on the kernel command line, and where.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The `linux` lines of a generated grub.cfg: normal entries and recovery (`single`) entries. */
export interface GrubLinuxLines {
  normal: string[];
  recovery: string[];
}

/**
 * Runs grub-mkconfig with `dir`/default as /etc/default and `dir`/boot as /boot (the caller puts
 * grub, grub.d/*.cfg and the kernels there), and grub-common's own 00_header and 10_linux as
 * /etc/grub.d. Needs root and unshare. `path` goes first on PATH (stand-ins such as uname).
 * Throws with grub-mkconfig's stderr when it fails.
 */
export function grubMkconfigLinuxLines(dir: string, path?: string): GrubLinuxLines {
  mkdirSync(join(dir, "boot/grub"), { recursive: true });
  mkdirSync(join(dir, "grub.d"), { recursive: true });
  for (const s of ["00_header", "10_linux"]) {
    writeFileSync(join(dir, "grub.d", s), readFileSync(join("/etc/grub.d", s), "utf8"));
    chmodSync(join(dir, "grub.d", s), 0o755);
  }
  const script = [
    `mount --bind '${dir}/default' /etc/default`,
    `mount --bind '${dir}/boot' /boot`,
    `mount --bind '${dir}/grub.d' /etc/grub.d`,
    "grub-mkconfig -o /boot/grub/grub.cfg",
  ].join(" && ");
  const env = path ? { ...process.env, PATH: `${path}:${process.env.PATH}` } : process.env;
  const r = spawnSync("unshare", ["-m", "sh", "-c", script], { encoding: "utf8", env });
  if (r.status !== 0) throw new Error(`grub-mkconfig failed (${r.status}): ${r.stderr}`);
  const cfg = readFileSync(join(dir, "boot/grub/grub.cfg"), "utf8");
  const linux = cfg.split("\n").filter((l) => /^\s*linux\s/.test(l));
  return {
    normal: linux.filter((l) => !/ single/.test(l)),
    recovery: linux.filter((l) => / single/.test(l)),
  };
}
