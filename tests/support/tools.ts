// The programs and files that tests judge the charm's output with. scripts/setup.sh installs every
// one of them, so a missing one is a broken machine, never a reason to skip: the test that needs it
// fails, naming what is missing and the Debian package that brings it.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** Why the test cannot run, in words that say what to install. */
function missing(what: string, pkg: string): Error {
  return new Error(
    `${what} is missing: scripts/setup.sh installs it (Debian package ${pkg}); run it, then the tests again`,
  );
}

/** Fails the calling test unless `tool` is on PATH. */
export function requireTool(tool: string, pkg: string): void {
  if (spawnSync("sh", ["-c", `command -v '${tool}'`], { stdio: "ignore" }).status !== 0)
    throw missing(tool, pkg);
}

/** Fails the calling test unless `file` exists. */
export function requireFile(file: string, pkg: string): void {
  if (!existsSync(file)) throw missing(file, pkg);
}

/**
 * Fails the calling test unless it may bind-mount in a private mount namespace (`unshare -m`):
 * how grub-mkconfig and udevadm are shown our files without touching the machine's own. Needs
 * root, as CI and scripts/setup.sh run.
 */
export function requireMountNamespace(): void {
  requireTool("unshare", "util-linux");
  if (process.getuid?.() !== 0)
    throw new Error(
      "this test bind-mounts in a private mount namespace (unshare -m) and needs root: run the tests as root, as CI does",
    );
  const r = spawnSync("unshare", ["-m", "true"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`unshare -m fails here: ${r.stderr.trim()}`);
}
