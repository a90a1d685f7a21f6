// Entry point of the fake hook-tool executables (bundled to one .cjs by the simulator).
// argv: <state.json> <tool> <tool args...>. Loads the unit state, runs the tool as Juju would,
// saves the state atomically under the state file's lock, and exits with the tool's code.
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { runFakeHookTool } from "../fake-juju";
import { updateStateFile } from "./state-file";

const [stateFile, tool, ...args] = process.argv.slice(2);
if (!stateFile || !tool) {
  process.stderr.write("usage: fake-juju <state.json> <tool> [args...]\n");
  process.exit(2);
}

// Only read stdin when the tool was told to (`--file -`), so a hand-run tool never hangs.
const fileIndex = args.findIndex((a) => a === "--file" || a.startsWith("--file="));
const wantsStdin =
  fileIndex >= 0 && (args[fileIndex] === "--file=-" || args[fileIndex + 1] === "-");
const stdin = wantsStdin ? readFileSync(0, "utf8") : "";

// The wrapper script execs this, so our parent is whoever ran the tool.
let parentExe: string | null = null;
try {
  parentExe = readlinkSync(`/proc/${process.ppid}/exe`);
} catch {
  parentExe = null;
}

// The read-modify-write of the state file holds its lock: dispatch's prefetch runs tools beside
// the charm's own, and without it one of two concurrent tools' changes would be lost.
const result = updateStateFile(stateFile, (state) =>
  runFakeHookTool(state, [tool, ...args], {
    stdin,
    env: process.env,
    cwd: process.cwd(),
    caller: { pid: process.pid, ppid: process.ppid, parentExe },
  }),
);
if (result.stdout) writeFileSync(1, result.stdout);
if (result.stderr) writeFileSync(2, result.stderr);
process.exitCode = result.exitCode;
