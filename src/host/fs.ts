// The charm's one door to the host's filesystem for reading, and the tally of what a dispatch
// changed. Every read of src/ (host/ readers, apply/ comparing the files it owns, the cos-agent
// files) goes through these functions, which behave exactly as node:fs's own.
//
// Why a door: a hook that changed nothing (a no-op update-status, every five minutes on every
// compute host) can be told apart from one that would change something by its inputs alone. While
// a dispatch records (startRecording), each read leaves its path and a digest of what it returned;
// src/quiet/ keeps that list for a hook that changed nothing and replays it (replayRead) before the
// next one loads the charm. So a read that does not go through here would be an input the replay
// cannot see: tests/unit/import-graph.test.ts keeps node:fs's readers to this file.
//
// Inputs that cannot be replayed (the clock, the kernel's message buffer, a directory handle read
// in pieces) mark the recording `volatile`: such a dispatch is never taken as a memo.
import {
  accessSync,
  closeSync,
  constants,
  type Dir,
  existsSync as fsExists,
  opendirSync as fsOpendir,
  readdirSync as fsReaddir,
  readFileSync as fsReadFile,
  readlinkSync as fsReadlink,
  realpathSync as fsRealpath,
  statSync as fsStat,
  type OpenDirOptions,
  openSync,
  readSync,
  type Stats,
} from "node:fs";

/** One recorded read: operation, absolute path, digest of its outcome (or `!<errno code>`). */
export type ReadRecord = readonly [op: string, path: string, outcome: string];

/** What a recording saw: its reads, in first-seen order, and why it cannot be replayed, if so. */
export interface Footprint {
  reads: ReadRecord[];
  /** Files and sysfs attributes written, directories made or removed, renames. */
  changes: number;
  /** Why this dispatch's reads cannot stand for it (null: they can). */
  volatile: string | null;
}

interface Recording {
  reads: Map<string, ReadRecord>;
  changes: number;
  volatile: string | null;
}

let recording: Recording | null = null;

/** Starts recording this dispatch's reads and changes (the hooks' entry, src/charm.ts). */
export function startRecording(): void {
  recording = { reads: new Map(), changes: 0, volatile: null };
}

/** Stops recording and returns what it saw; null when nothing was recording. */
export function stopRecording(): Footprint | null {
  const r = recording;
  recording = null;
  return r && { reads: [...r.reads.values()], changes: r.changes, volatile: r.volatile };
}

/** This dispatch read something a replay cannot read again the same way (say what). */
export function markVolatile(why: string): void {
  if (recording && recording.volatile === null) recording.volatile = why;
}

/** apply/ calls this for every change it makes to the host (a write, a rename, a removal). */
export function countChange(): void {
  if (recording) recording.changes++;
}

/** The time now: an input no replay can repeat, so a dispatch that asks is not a memo. */
export function now(): Date {
  markVolatile("it read the clock");
  return new Date();
}

/** Beyond this many reads (a host of ~4,000 functions) a replay costs about what the reading part
 * of the run does, and the memo file runs to megabytes: such a hook is not kept as a memo, and
 * stops paying to record (tests/unit/quiet-memo.test.ts; bench/RESULTS.md, SR-IOV at scale). */
export const MAX_RECORDED_READS = 10_000;

function note(op: string, path: string, outcome: string): void {
  if (!recording || recording.volatile !== null) return; // no memo either way: stop paying
  if (recording.reads.size === MAX_RECORDED_READS) {
    markVolatile(`it read more than ${MAX_RECORDED_READS} files`);
    return;
  }
  // A tab or newline would break the memo's line format: such a path is not replayed.
  if (/[\t\n]/.test(path)) {
    markVolatile(`a path with a tab or newline: ${JSON.stringify(path)}`);
    return;
  }
  const key = `${op}\t${path}`;
  const seen = recording.reads.get(key);
  if (!seen) recording.reads.set(key, [op, path, outcome]);
  // The same read answered twice differently within one dispatch: the host moved under it.
  else if (seen[2] !== outcome) markVolatile(`${path} changed while the hook read it`);
}

/** Runs a read, noting its outcome (digest, or the errno code it failed with), and returns it.
 * Each door below calls node:fs straight when nothing records (the exporter, actions): no closure
 * on the path the exporter's scrape of 10,000 functions takes. */
function recorded<T>(op: string, path: string, read: () => T, outcome: (value: T) => string): T {
  let value: T;
  try {
    value = read();
  } catch (error) {
    note(op, path, failure(error));
    throw error;
  }
  note(op, path, outcome(value));
  return value;
}

function failure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return `!${typeof code === "string" ? code : "error"}`;
}

export function readFileSync(path: string): Buffer;
export function readFileSync(path: string, encoding: BufferEncoding): string;
export function readFileSync(path: string, encoding?: BufferEncoding): Buffer | string {
  if (!recording) return encoding === undefined ? fsReadFile(path) : fsReadFile(path, encoding);
  // Read as bytes and decoded here, so the digest is of the bytes, as the replay's is.
  const bytes = recorded("read", path, () => fsReadFile(path), digest);
  return encoding === undefined ? bytes : bytes.toString(encoding);
}

/** The first `buffer.length` bytes of a file into `buffer` (one open, one read, one close: a
 * sysfs attribute, the start of /proc/cpuinfo); returns how many were read. */
export function readHead(path: string, buffer: Buffer): number {
  if (!recording) return readHeadNow(path, buffer);
  return recorded(
    `head${buffer.length}`,
    path,
    () => readHeadNow(path, buffer),
    (length) => digest(buffer.subarray(0, length)),
  );
}

/** One buffer for the replay's reads: a memo's files are sysfs attributes and small configs. */
let replayBuffer = Buffer.allocUnsafe(64 * 1024);

/** A whole file's bytes, as readFileSync reads them, into the shared buffer (no fstat, no
 * allocation per file): the view is valid until the next call. */
function readWhole(path: string): Uint8Array {
  const fd = openSync(path, "r");
  try {
    let length = 0;
    for (;;) {
      if (length === replayBuffer.length) {
        const bigger = Buffer.allocUnsafe(replayBuffer.length * 2);
        replayBuffer.copy(bigger);
        replayBuffer = bigger;
      }
      const n = readSync(fd, replayBuffer, length, replayBuffer.length - length, null);
      if (n === 0) return replayBuffer.subarray(0, length);
      length += n;
    }
  } finally {
    closeSync(fd);
  }
}

function readHeadNow(path: string, buffer: Buffer): number {
  const fd = openSync(path, "r");
  try {
    return readSync(fd, buffer, 0, buffer.length, 0);
  } finally {
    closeSync(fd);
  }
}

export function readlinkSync(path: string): string {
  if (!recording) return fsReadlink(path);
  return recorded("link", path, () => fsReadlink(path), digest);
}

export function readdirSync(path: string): string[] {
  if (!recording) return fsReaddir(path);
  return recorded(
    "list",
    path,
    () => fsReaddir(path),
    (names) => digest(names.join("/")),
  );
}

export function existsSync(path: string): boolean {
  if (!recording) return fsExists(path);
  return recorded("exists", path, () => fsExists(path), String);
}

export function statSync(path: string): Stats {
  if (!recording) return fsStat(path);
  return recorded("stat", path, () => fsStat(path), statDigest);
}

/** realpath(3) itself (node's `.native`), not the JS walk that lstat()s every component. */
export function realpathSync(path: string): string {
  if (!recording) return fsRealpath.native(path);
  return recorded("realpath", path, () => fsRealpath.native(path), digest);
}

/** Whether `path` may be executed (a program on PATH); throws as accessSync does. */
export function accessExecutable(path: string): void {
  if (!recording) {
    accessSync(path, constants.X_OK);
    return;
  }
  recorded(
    "exec",
    path,
    () => accessSync(path, constants.X_OK),
    () => "ok",
  );
}

/** A directory read in pieces (large /proc/<pid>/fd): not replayed. */
export function opendirSync(path: string, options?: OpenDirOptions): Dir {
  markVolatile(`it read ${path} in pieces`);
  return fsOpendir(path, options);
}

/** Opens a file for a reader that reads it in its own way (the kernel's message buffer): not
 * replayed. */
export function openForStream(path: string, flags: number): number {
  markVolatile(`it read the stream ${path}`);
  return openSync(path, flags);
}

export { closeSync, constants, readSync };

/** What of a stat says the file changed: the writers of the files the charm stats (dpkg, depmod)
 * write a new file and rename it, so a change shows in the inode, size or mtime. */
function statDigest(st: Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
}

/** The memo's digest: 53 bits of cyrb53 (a public-domain string hash) as 14 hex digits, over a
 * string's UTF-16 units or a buffer's bytes. Not cryptographic, and need not be: what is hashed is
 * the kernel's and the host's own files, and a hook whose inputs changed runs in full. node:crypto
 * would cost every hook its load. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function digest(value: string | Uint8Array): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  const n = value.length;
  if (typeof value === "string") {
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
  } else {
    // Four bytes a step (little-endian words), then the tail byte by byte: the probe digests
    // every file it replays, and a quarter of the steps is a third of its time. A view when the
    // bytes are aligned (the replay's buffer is), the same words assembled by hand otherwise.
    const words = n >>> 2;
    if ((value.byteOffset & 3) === 0 && LITTLE_ENDIAN) {
      const view = new Uint32Array(value.buffer, value.byteOffset, words);
      for (let k = 0; k < words; k++) {
        const c = view[k]!;
        h1 = Math.imul(h1 ^ c, 2654435761);
        h2 = Math.imul(h2 ^ c, 1597334677);
      }
    } else {
      for (let k = 0, j = 0; k < words; k++, j += 4) {
        const c = value[j]! | (value[j + 1]! << 8) | (value[j + 2]! << 16) | (value[j + 3]! << 24);
        h1 = Math.imul(h1 ^ c, 2654435761);
        h2 = Math.imul(h2 ^ c, 1597334677);
      }
    }
    for (let i = words << 2; i < n; i++) {
      const c = value[i]!;
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
}

/** Whether a recorded read would answer the same now. */
export function replayRead([op, path, outcome]: ReadRecord): boolean {
  try {
    switch (op) {
      case "read":
        return digest(readWhole(path)) === outcome;
      case "link":
        return digest(fsReadlink(path)) === outcome;
      case "list":
        return digest(fsReaddir(path).join("/")) === outcome;
      case "exists":
        return String(fsExists(path)) === outcome;
      case "stat":
        return statDigest(fsStat(path)) === outcome;
      case "realpath":
        return digest(fsRealpath.native(path)) === outcome;
      case "exec":
        accessSync(path, constants.X_OK);
        return outcome === "ok";
      default: {
        const size = op.startsWith("head") ? Number(op.slice(4)) : Number.NaN;
        // An operation this charm does not know: the memo does not stand.
        if (!(size > 0 && size <= replayBuffer.length)) return false;
        const head = replayBuffer.subarray(0, size);
        return digest(head.subarray(0, readHeadNow(path, head))) === outcome;
      }
    }
  } catch (error) {
    return failure(error) === outcome;
  }
}
