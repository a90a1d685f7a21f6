// Instant hook tools for the latency benchmark. The simulator's tools are Node processes (~50 ms
// each), which would swamp the charm's own cost; Juju's real tools are small Go clients of the
// unit agent (a few ms). So: run the event once under the real simulator, replay each call it
// made against the unit state as it was before the event to get the exact bytes the tool printed,
// and write POSIX-sh stand-ins that print those bytes and append one line per call to a count file.
import * as fs from "node:fs";
import * as path from "node:path";
import { FAKE_TOOL_NAMES, type FakeUnitState, runFakeHookTool } from "ops-ts-shim/testing";

/** One hook-tool call of a real run and what the tool answered. */
export interface CannedCall {
  argv: string[];
  stdin?: string;
  stdout: string;
  exitCode: number;
}

/** Replays `calls` (argv in order, as the simulator recorded them) on a copy of `before`. */
export function cannedCalls(
  before: FakeUnitState,
  calls: ReadonlyArray<{ argv: string[]; stdin?: string }>,
  env: NodeJS.ProcessEnv,
): CannedCall[] {
  const state = structuredClone(before);
  return calls.map((c) => {
    const r = runFakeHookTool(state, c.argv, { stdin: c.stdin ?? "", env, cwd: process.cwd() });
    return { argv: c.argv, stdin: c.stdin, stdout: r.stdout, exitCode: r.exitCode };
  });
}

const shQuote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;

export interface InstantTools {
  binDir: string;
  /** Calls made since the last reset, as `tool args...` lines. */
  calls(): string[];
  reset(): void;
}

/** Writes one sh stand-in per Juju hook tool into `dir`/bin. A call whose arguments match a
 * canned call prints its output; any other call prints nothing and succeeds (writes). */
export function writeInstantTools(dir: string, canned: readonly CannedCall[]): InstantTools {
  const binDir = path.join(dir, "bin");
  const countFile = path.join(dir, "calls.log");
  fs.mkdirSync(binDir, { recursive: true });
  for (const tool of FAKE_TOOL_NAMES) {
    const answers = new Map<string, CannedCall>();
    for (const c of canned) {
      if (c.argv[0] === tool && c.stdout !== "") answers.set(c.argv.slice(1).join(" "), c);
    }
    const cases = [...answers]
      .map(
        ([args, c]) =>
          `  ${shQuote(args)}) printf '%s' ${shQuote(c.stdout)}; exit ${c.exitCode} ;;`,
      )
      .join("\n");
    // `echo` and `printf` are sh builtins: a call costs one fork+exec of sh and nothing more. A
    // call with many arguments (action-set with 30,000 results) is logged by its count: joining
    // them would be the stand-in's own cost (~20 ms per call), not the charm's.
    const script = [
      "#!/bin/sh",
      `if [ $# -le 16 ]; then echo "${tool} $*"; else echo "${tool} ($# arguments)"; fi >> ${shQuote(countFile)}`,
      ...(cases ? ['case "$*" in', cases, "esac"] : []),
      "exit 0",
      "",
    ].join("\n");
    fs.writeFileSync(path.join(binDir, tool), script, { mode: 0o755 });
  }
  return {
    binDir,
    calls: () =>
      fs.existsSync(countFile)
        ? fs.readFileSync(countFile, "utf8").split("\n").filter(Boolean)
        : [],
    reset: () => fs.rmSync(countFile, { force: true }),
  };
}
