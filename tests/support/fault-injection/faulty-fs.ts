// An FsOps for fault injection: forwards every call to the real fs, records each call that changes
// the disk (or is part of making a change durable), and at call number `at` runs the fault
// instead of the call: throw an errno (ENOSPC, EIO, EACCES…) or kill the process.
import * as nodeFs from "node:fs";
import type { FsOps } from "../../../src/apply/files";

/** The FsOps calls that write, rename, remove or sync: the injection points. */
export const MUTATING_OPS = [
  "mkdirSync",
  "openSync",
  "writeSync",
  "fsyncSync",
  "closeSync",
  "chmodSync",
  "renameSync",
  "unlinkSync",
  "rmdirSync",
] as const;
export type MutatingOp = (typeof MUTATING_OPS)[number];

/** One recorded call: the operation and the path it concerns (an fd's path for fd calls). */
export interface FsCall {
  op: MutatingOp;
  path: string;
  /** The open's flags (`wx` for a temp file, `r` for a directory being fsync-ed), for open and
   * the calls on its fd. */
  flags?: string;
}

/** The fault to run instead of call number `at` (0-based among the mutating calls). */
export interface Fault {
  at: number;
  run(call: FsCall): never;
}

/** An errno error shaped like the one node's fs throws. */
export function errnoError(code: string, call: FsCall): NodeJS.ErrnoException {
  const messages: Record<string, string> = {
    ENOSPC: "no space left on device",
    EIO: "i/o error",
    EACCES: "permission denied",
  };
  const err = new Error(
    `${code}: ${messages[code] ?? "injected"}, ${call.op.replace(/Sync$/, "")} '${call.path}'`,
  ) as NodeJS.ErrnoException;
  err.code = code;
  err.syscall = call.op.replace(/Sync$/, "");
  err.path = call.path;
  return err;
}

/** The real fs, counting; with a fault, call `fault.at` runs the fault instead. */
export function faultyFs(fault: Fault | null = null): FsOps & { calls: FsCall[] } {
  const calls: FsCall[] = [];
  const fds = new Map<number, { path: string; flags: string }>();
  const fdCall = (op: MutatingOp, fd: number): FsCall => {
    const open = fds.get(fd);
    return { op, path: open?.path ?? `fd ${fd}`, flags: open?.flags };
  };
  const step = (call: FsCall): void => {
    const index = calls.length;
    calls.push(call);
    if (fault && index === fault.at) fault.run(call);
  };
  return {
    calls,
    readFileSync: (p) => nodeFs.readFileSync(p),
    statSync: (p) => nodeFs.statSync(p),
    readdirSync: (p) => nodeFs.readdirSync(p),
    mkdirSync(p, opts) {
      step({ op: "mkdirSync", path: p });
      return nodeFs.mkdirSync(p, opts);
    },
    openSync(p, flags, mode) {
      step({ op: "openSync", path: p, flags });
      const fd = nodeFs.openSync(p, flags, mode);
      fds.set(fd, { path: p, flags });
      return fd;
    },
    writeSync(fd, data) {
      step(fdCall("writeSync", fd));
      return nodeFs.writeSync(fd, data);
    },
    fsyncSync(fd) {
      step(fdCall("fsyncSync", fd));
      nodeFs.fsyncSync(fd);
    },
    closeSync(fd) {
      step(fdCall("closeSync", fd));
      nodeFs.closeSync(fd);
      fds.delete(fd);
    },
    chmodSync(p, mode) {
      step({ op: "chmodSync", path: p });
      nodeFs.chmodSync(p, mode);
    },
    renameSync(from, to) {
      step({ op: "renameSync", path: `${from} -> ${to}` });
      nodeFs.renameSync(from, to);
    },
    unlinkSync(p) {
      step({ op: "unlinkSync", path: p });
      nodeFs.unlinkSync(p);
    },
    rmdirSync(p) {
      step({ op: "rmdirSync", path: p });
      nodeFs.rmdirSync(p);
    },
  };
}
