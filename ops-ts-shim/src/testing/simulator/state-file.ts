// The simulated unit's state lives in one JSON file that every fake tool reads, changes and writes
// back. Tools run at the same time (dispatch's prefetch beside the charm, a charm's own parallel
// calls), so each read-modify-write holds an exclusive lock for its whole length: without it, two
// tools that read the same state each write back their own change and one of them is lost (a
// recorded call, a status, an action result). Juju's controller serialises these in its API.
import {
  closeSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import type { FakeUnitState } from "../fake-juju";

/** How long a tool waits for the lock before it gives up (a holder that never lets go). */
const LOCK_TIMEOUT_MS = 30_000;
const RETRY_MS = 2;
const STALE_EMPTY_MS = 2_000;

const sleep = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** Whether a process is alive (a lock left by a killed tool must not block every later one). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes `<stateFile>.lock` (O_EXCL create, holding our pid); steals it from a dead holder. */
function lock(stateFile: string): () => void {
  const path = `${stateFile}.lock`;
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const fd = openSync(path, "wx");
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let holder = Number.NaN;
    let age = 0;
    try {
      holder = Number(readFileSync(path, "utf8"));
      age = Date.now() - statSync(path).mtimeMs;
    } catch {
      continue; // released between our open and our read: try again at once
    }
    // An empty file is a holder between its open and its write (wait), unless it stayed empty
    // long enough that its holder must have died right there.
    const dead = holder > 0 ? !alive(holder) : age > STALE_EMPTY_MS;
    if (dead) {
      try {
        unlinkSync(path);
      } catch {
        // another waiter stole it first
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`${path} held by pid ${holder} for over ${LOCK_TIMEOUT_MS / 1000} s`);
    }
    sleep(RETRY_MS);
  }
}

/** Reads the state file, lets `change` modify it, writes it back atomically, all under the lock.
 * Returns what `change` returned. */
export function updateStateFile<T>(stateFile: string, change: (state: FakeUnitState) => T): T {
  const release = lock(stateFile);
  try {
    const state = readStateFile(stateFile);
    const result = change(state);
    writeStateFile(stateFile, state);
    return result;
  } finally {
    release();
  }
}

/** The state as last written (a rename makes every write whole, so no lock is needed to read). */
export function readStateFile(stateFile: string): FakeUnitState {
  return JSON.parse(readFileSync(stateFile, "utf8")) as FakeUnitState;
}

/** Replaces the state file in one rename (readers see the old or the new state, never half). */
export function writeStateFile(stateFile: string, state: FakeUnitState): void {
  const tmp = `${stateFile}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 1));
  renameSync(tmp, stateFile);
}
