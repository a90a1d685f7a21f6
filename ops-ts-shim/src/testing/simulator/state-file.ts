// The simulated unit's state lives in one JSON file that every fake tool reads, changes and writes
// back. Tools run at the same time (dispatch's prefetch beside the charm, a charm's own parallel
// calls), so each read-modify-write holds an exclusive lock for its whole length: without it, two
// tools that read the same state each write back their own change and one of them is lost (a
// recorded call, a status, an action result). Juju's controller serialises these in its API.
import {
  closeSync,
  fstatSync,
  linkSync,
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

/** The lock file's holder pid (0 while it is still empty) and its inode, or null once it is gone. */
function readHolder(path: string): { pid: number; ino: number; age: number } | null {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return null; // released between our create and our read
  }
  try {
    const st = fstatSync(fd);
    return { pid: Number(readFileSync(fd, "utf8")), ino: st.ino, age: Date.now() - st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

/** Removes a dead holder's lock file, and only that one. Unlinking by name after judging the pid
 * would race: between our read and our unlink the dead tool's file may be gone and a live tool's
 * new one in its place (seen under load: four calls lost out of 24). So the file is first moved
 * aside in one rename, and only removed if it is the very file judged (same inode); a live
 * holder's file taken by mistake is put back with link, which never replaces a newer lock. */
function removeDeadLock(path: string, judged: number): void {
  const aside = `${path}.${process.pid}.stale`;
  try {
    renameSync(path, aside);
  } catch {
    return; // another waiter removed it first
  }
  if (statSync(aside).ino !== judged) {
    try {
      linkSync(aside, path);
    } catch {
      // a newer lock is already in place: its holder and the one we moved both believe they
      // hold it; this needs a holder to have died in the very microseconds we looked
    }
  }
  unlinkSync(aside);
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
    const holder = readHolder(path);
    if (holder === null) continue;
    // An empty file is a holder between its open and its write (wait), unless it stayed empty
    // long enough that its holder must have died right there.
    const dead = holder.pid > 0 ? !alive(holder.pid) : holder.age > STALE_EMPTY_MS;
    if (dead) {
      removeDeadLock(path, holder.ino);
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`${path} held by pid ${holder.pid} for over ${LOCK_TIMEOUT_MS / 1000} s`);
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
