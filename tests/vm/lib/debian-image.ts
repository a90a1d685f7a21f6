/**
 * The tier-2 Debian disk image: building it (scripts/vm/build-debian-image.sh, cached), working
 * copies for a test, and reading files back out of it with debugfs — no loop mount, no guest.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { SCRIPTS, VM_CACHE } from "./paths";
import { progress } from "./progress";

/** What build-debian-image.sh recorded in .cache/vm/debian.json. */
export interface DebianImage {
  release: string;
  image: string;
  kernel: string;
  initrd: string;
}

/** Builds (or finds cached) the Debian image; returns its paths or why it cannot. */
export function checkDebianImage():
  | { ok: true; image: DebianImage }
  | { ok: false; reason: string } {
  progress("the tier-2 Debian image: cached, or built now (debootstrap, about a minute)");
  const r = spawnSync("bash", [path.join(SCRIPTS, "build-debian-image.sh")], {
    encoding: "utf8",
    env: { ...process.env, VM_CACHE_DIR: VM_CACHE },
  });
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ""}${r.error?.message ?? ""}`.trim().split("\n").slice(-8);
    return { ok: false, reason: `scripts/vm/build-debian-image.sh failed:\n${tail.join("\n")}` };
  }
  const image = JSON.parse(readFileSync(path.join(VM_CACHE, "debian.json"), "utf8")) as DebianImage;
  return { ok: true, image };
}

/** A sparse copy of the image the test may let the guest write to. */
export function copyImage(image: DebianImage, to: string): string {
  execFileSync("cp", ["--sparse=always", image.image, to]);
  return to;
}

/** A file's bytes from an ext4 image, read with debugfs (fails when the file is absent). */
export function readImageFile(image: string, file: string): Buffer {
  const dir = mkdtempSync(path.join(VM_CACHE, "debugfs-"));
  const out = path.join(dir, "out");
  try {
    // -R "dump" writes the file out byte for byte; "cat" would go through a text pipe.
    const r = spawnSync("debugfs", ["-R", `dump -p "${file}" "${out}"`, image], {
      encoding: "utf8",
    });
    if (r.status !== 0 || !existsSync(out)) {
      throw new Error(`debugfs could not read ${file} from ${image}: ${r.stderr}`);
    }
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Copies a file out of an ext4 image to a host path. */
export function extractImageFile(image: string, file: string, to: string): string {
  writeFileSync(to, readImageFile(image, file));
  return to;
}

/** What a machine's grub would boot next from this disk: its default entry, kernel and initrd. */
export interface NextBoot {
  entry: GrubEntry;
  /** The entry's kernel and initrd, copied out of the image to host paths. */
  kernel: string;
  initrd: string;
}

/**
 * Reads the default entry of the image's /boot/grub/grub.cfg and copies its kernel and initrd to
 * `dir` (named after `label`), so QEMU can boot what grub would. The guest must have powered off
 * cleanly: debugfs does not replay a journal, so the check refuses an unclean filesystem.
 */
export function nextBoot(disk: string, dir: string, label: string): NextBoot {
  const fsck = spawnSync("e2fsck", ["-fn", disk], { encoding: "utf8" });
  if (fsck.status !== 0) {
    throw new Error(`e2fsck -fn ${disk} found the disk unclean:\n${fsck.stdout}${fsck.stderr}`);
  }
  const entry = defaultGrubEntry(readImageFile(disk, "/boot/grub/grub.cfg").toString("utf8"));
  return {
    entry,
    kernel: extractImageFile(disk, entry.kernel, path.join(dir, `${label}.vmlinuz`)),
    initrd: extractImageFile(disk, entry.initrd, path.join(dir, `${label}.initrd`)),
  };
}

/** The default entry of a grub.cfg: kernel path, kernel arguments and initrd path. */
export interface GrubEntry {
  title: string;
  kernel: string;
  args: string;
  initrd: string;
}

/**
 * Parses the first menuentry of a grub.cfg as grub-mkconfig's 10_linux writes it
 * (`linux <path> <args>` and `initrd <path>` lines). Throws when there is none.
 */
export function defaultGrubEntry(grubCfg: string): GrubEntry {
  const start = grubCfg.search(/^menuentry /m);
  if (start < 0) throw new Error("grub.cfg has no menuentry");
  const body = grubCfg.slice(start);
  const title = /^menuentry '([^']*)'/.exec(body)?.[1] ?? "";
  const linux = /^\s*linux\s+(\S+)\s*(.*)$/m.exec(body);
  const initrd = /^\s*initrd\s+(\S+)/m.exec(body);
  if (!linux || !initrd) throw new Error(`grub.cfg entry "${title}" lacks a linux or initrd line`);
  return { title, kernel: linux[1]!, args: linux[2]!.trim(), initrd: initrd[1]! };
}
