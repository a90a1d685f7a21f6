// Writes files so a crash, a full disk or a kill at any instant leaves either the old bytes or the
// new bytes, never half a file: temp file beside the target, write, fsync, chmod, rename, fsync the
// directory. A file whose bytes and mode already match is not touched (hooks stay quiet).
import {
  chmodSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmdirSync,
  type Stats,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { countChange, readdirSync, readFileSync, statSync } from "../host/fs";
import { under } from "../host/root";
import type { FileSpec } from "../plan/types";

/** The filesystem calls apply makes, as a seam: fault-injection tests fail or kill at each one. */
export interface FsOps {
  readFileSync(p: string): Buffer;
  statSync(p: string): Stats;
  mkdirSync(p: string, opts: { recursive: true; mode?: number }): unknown;
  openSync(p: string, flags: string, mode?: number): number;
  writeSync(fd: number, data: Buffer): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  chmodSync(p: string, mode: number): void;
  renameSync(from: string, to: string): void;
  unlinkSync(p: string): void;
  rmdirSync(p: string): void;
  readdirSync(p: string): string[];
}

/** A change to the host, counted (host/fs.ts): a dispatch that made none may be replayed. */
function counted<A extends unknown[], R>(change: (...args: A) => R): (...args: A) => R {
  return (...args) => {
    countChange();
    return change(...args);
  };
}

// Named, not `import * as fs`: a namespace import makes the bundle copy node:fs's whole export
// table at load, on every hook. The reads go through host/fs.ts, which records them.
export const realFs: FsOps = {
  readFileSync,
  statSync,
  mkdirSync: counted(mkdirSync),
  // Opened for writing (a temp file) or reading (a directory to fsync): both only while writing.
  openSync: counted(openSync),
  writeSync,
  fsyncSync,
  closeSync,
  chmodSync: counted(chmodSync),
  renameSync: counted(renameSync),
  unlinkSync: counted(unlinkSync),
  rmdirSync: counted(rmdirSync),
  readdirSync,
};

/** What happened to one file. */
export type FileAction = "created" | "updated" | "removed" | "unchanged" | "absent";

/** A write the charm refused or could not make, with the host path and what to do. */
export class FileApplyError extends Error {
  constructor(
    readonly hostPath: string,
    readonly underlying: unknown,
  ) {
    const cause = underlying;
    const code = (cause as NodeJS.ErrnoException)?.code;
    const why =
      code === "ENOSPC"
        ? "the filesystem is full"
        : code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : code === "EROFS"
            ? "the filesystem is read-only"
            : code === "EIO"
              ? "an I/O error from the disk"
              : ((cause as Error)?.message ?? String(cause));
    super(
      `could not write ${hostPath}: ${why}${code ? ` (${code})` : ""}. The old file is untouched; ` +
        "free the space or fix the filesystem, and the next hook (or `juju resolve`) finishes the job.",
    );
    this.name = "FileApplyError";
  }
}

/** Reads a host file under the root; null when it does not exist. */
export function readHostFile(root: string, hostPath: string, fs: FsOps = realFs): Buffer | null {
  try {
    return fs.readFileSync(under(root, hostPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Makes `spec.path` hold exactly `spec.content` with `spec.mode`; writes only when they differ.
 * `current` is the file's bytes when the caller has just read them (null: not there), so a hook
 * reads each owned file once; left out, the file is read here. */
export function ensureFile(
  root: string,
  spec: FileSpec,
  fs: FsOps = realFs,
  current?: Buffer | null,
): FileAction {
  const target = under(root, spec.path);
  const wanted = Buffer.from(spec.content, "utf8");
  let existing: { bytes: Buffer; mode: number } | null = null;
  try {
    if (current !== null) {
      const bytes = current ?? fs.readFileSync(target);
      existing = { bytes, mode: fs.statSync(target).mode & 0o7777 };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new FileApplyError(spec.path, err);
  }
  if (existing && existing.mode === spec.mode && existing.bytes.equals(wanted)) return "unchanged";
  try {
    writeAtomically(target, wanted, spec.mode, fs);
  } catch (err) {
    throw new FileApplyError(spec.path, err);
  }
  return existing ? "updated" : "created";
}

/** Removes a directory of ours when it is there and empty (others' files in it keep it). */
export function removeEmptyDir(root: string, hostPath: string, fs: FsOps = realFs): FileAction {
  const dir = under(root, hostPath);
  try {
    if (fs.readdirSync(dir).length > 0) return "unchanged";
    fs.rmdirSync(dir);
    return "removed";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "absent";
    throw new FileApplyError(hostPath, err);
  }
}

/** Removes a host file if present. */
export function removeFile(root: string, hostPath: string, fs: FsOps = realFs): FileAction {
  const target = under(root, hostPath);
  try {
    removeStaleTemps(dirname(target), `.${basename(target)}.pci-passthrough-`, fs);
  } catch {
    // the directory may be gone already; nothing of ours can be in it then
  }
  try {
    fs.unlinkSync(target);
    return "removed";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "absent";
    throw new FileApplyError(hostPath, err);
  }
}

function writeAtomically(target: string, bytes: Buffer, mode: number, fs: FsOps): void {
  const dir = dirname(target);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  // A dot-name never matches the globs the readers use (*.cfg, *.conf, *.rules, hooks/[a-z]*).
  const prefix = `.${basename(target)}.pci-passthrough-`;
  removeStaleTemps(dir, prefix, fs);
  const temp = join(dir, `${prefix}${process.pid}-${Date.now().toString(36)}.tmp`);
  let fd: number | null = fs.openSync(temp, "wx", 0o600);
  try {
    let offset = 0;
    while (offset < bytes.length) offset += fs.writeSync(fd, bytes.subarray(offset));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.chmodSync(temp, mode);
    fs.renameSync(temp, target);
  } catch (err) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {}
    }
    try {
      fs.unlinkSync(temp);
    } catch {}
    throw err;
  }
  syncDir(dir, fs);
}

/** A hook killed between open and rename leaves its temp file; the next write sweeps it away so
 * nothing outside the managed set lingers. */
function removeStaleTemps(dir: string, prefix: string, fs: FsOps): void {
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith(prefix) && name.endsWith(".tmp")) fs.unlinkSync(join(dir, name));
  }
}

/** fsync the directory so the rename itself survives a power cut. Best effort: some filesystems
 * refuse to open or sync directories, and the file's own data is already synced. */
function syncDir(dir: string, fs: FsOps): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // ignored on purpose (see above)
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}
