// The host/ readers' file primitives: list a directory, read a small file or a sysfs attribute,
// under the root, turning every failure but "absent" into a HostReadProblem that names the path.
// The readers of host/ share them, so a hostile host is met the same way wherever it is read.

import type { HostReadProblem } from "./facts";
import { readdirSync, readFileSync, readHead } from "./fs";
import { under } from "./root";

/** The errno code of a failed fs call (`ENOENT`, `EISDIR`…), or `error` when there is none. */
export function errnoCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : "error";
}

/** Directory entries of a host path, or null when it does not exist; other errors are problems. */
export function listDir(
  root: string,
  hostPath: string,
  problems: HostReadProblem[],
  address: string | null = null,
): string[] | null {
  return absentOrProblem(
    () => readdirSync(under(root, hostPath)),
    (code) => ({
      kind: "unreadable",
      path: hostPath,
      address,
      message: `cannot list ${hostPath} (${code}); its entries are left out — check the path by hand`,
    }),
    problems,
  );
}

/** Text of a small host file, trimmed; null when absent; other errors become a problem. */
export function readSmallFile(
  root: string,
  hostPath: string,
  problems: HostReadProblem[],
  what: string,
): string | null {
  return absentOrProblem(
    () => readFileSync(under(root, hostPath), "latin1").trim(),
    (code) => ({
      kind: "unreadable",
      path: hostPath,
      address: null,
      message: `cannot read ${hostPath} (${code}); ${what}`,
    }),
    problems,
  );
}

/** `read()`, or null: silently when the path does not exist (ENOENT), with the problem `problem`
 * makes of the errno otherwise. */
function absentOrProblem<T>(
  read: () => T,
  problem: (code: string) => HostReadProblem,
  problems: HostReadProblem[],
): T | null {
  try {
    return read();
  } catch (error) {
    const code = errnoCode(error);
    if (code !== "ENOENT") problems.push(problem(code));
    return null;
  }
}

// One buffer for every attribute read: sysfs attributes are at most a page. open/read/close is
// about twice as fast as readFileSync (no fstat, no allocation), which matters at 10,000 functions.
const attrBuffer = Buffer.alloc(4096);

/** A sysfs attribute's text (untrimmed); throws the fs error. Synchronous and allocation-light. */
export function readAttrFile(file: string): string {
  return attrBuffer.toString("latin1", 0, readHead(file, attrBuffer));
}
