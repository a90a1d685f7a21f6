// Temp directories that go away after each test, and files written into them with a mode: what
// the tests that run our scripts against a sysfs-shaped tree (sh, dash, busybox) all need.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach } from "vitest";

/** Registers the cleanup in the calling test file; returns `temp(prefix)`, which makes a fresh
 * directory removed after the test that made it. */
export function useTempDirs(): (prefix: string) => string {
  const made: string[] = [];
  afterEach(() => {
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return (prefix) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}

/** Writes `content` to `file` (its parent directories made) with `mode`; returns the path. */
export function writeFileWithMode(file: string, content: string, mode = 0o644): string {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
  chmodSync(file, mode);
  return file;
}
