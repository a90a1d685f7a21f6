// Entry point of the fake hook-tool executables (bundled to one .cjs by the simulator).
// argv: <state.json> <tool> <tool args...>. Loads the unit state, runs the tool as Juju would,
// saves the state atomically, and exits with the tool's code.
import { readFileSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import { runFakeHookTool } from "../fake-juju";

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

const state = JSON.parse(readFileSync(stateFile, "utf8"));
const result = runFakeHookTool(state, [tool, ...args], {
  stdin,
  env: process.env,
  cwd: process.cwd(),
  caller: { pid: process.pid, ppid: process.ppid, parentExe },
});
const tmp = `${stateFile}.${process.pid}.tmp`;
writeFileSync(tmp, JSON.stringify(state, null, 1));
renameSync(tmp, stateFile);
if (result.stdout) writeFileSync(1, result.stdout);
if (result.stderr) writeFileSync(2, result.stderr);
process.exitCode = result.exitCode;
