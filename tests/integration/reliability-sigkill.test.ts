// Fault injection with SIGKILL: the hook process dies at each call the apply step makes that
// writes, renames, removes or syncs (the FsOps seam), at each regeneration command, and just after
// its work (before Juju could commit stored state). A child process runs the hook (a harness
// bundled with esbuild here, as the shim's simulator bundles its tools) and kills itself there.
// After each kill: every managed file holds its old or its new bytes (a killed process may leave
// only its own dot-named temp file beside a managed file), nothing else changed, and the next hook
// (stored state as before the killed one) converges to exactly what a clean run leaves.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { buildSync } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";
import {
  afterFailureProblems,
  buildScenarios,
  convergeProblems,
  copyTree,
  type FaultScenario,
} from "../support/fault-injection/host-trees";
import { hostTempDir } from "../support/hosts/build-host";

const work = fs.mkdtempSync(path.join(hostTempDir(), "pci-sigkill-"));
const harness = path.join(work, "kill-harness.cjs");
buildSync({
  entryPoints: [path.join(__dirname, "..", "support", "fault-injection", "kill-harness.ts")],
  outfile: harness,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  logLevel: "silent",
});
const scenarios = buildScenarios(work);
let runs = 0;
let passed = 0;

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
  // One line per scenario: a single line listing them all ran to well over a thousand characters.
  console.log(
    `fault injection (SIGKILL): ${runs} kill points; ${passed} passed (${runs === 0 ? 0 : Math.round((100 * passed) / runs)}%)\n${scenarios
      .map(
        (s) =>
          `  ${s.name}: ${s.clean.calls.length} fs calls + ${s.clean.ran.length} commands + end`,
      )
      .join("\n")}`,
  );
});

interface Kill {
  killAt: number | null;
  killAtCommand: number | null;
  killAtEnd: boolean;
}

let count = 0;
/** Runs the harness on a fresh copy of the scenario's tree; resolves with how it ended. */
function killedRun(
  s: FaultScenario,
  kill: Kill,
): Promise<{ root: string; signal: string | null; code: number | null; stdout: string }> {
  const root = path.join(work, `run-${count++}`);
  copyTree(s.template, root);
  const input = path.join(work, `input-${count}.json`);
  fs.writeFileSync(input, JSON.stringify({ root, hook: s.hook, ...kill }));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [harness, input], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ root, signal, code, stdout }));
  });
}

async function check(s: FaultScenario, kill: Kill): Promise<void> {
  runs++;
  const r = await killedRun(s, kill);
  // The hook did not finish: Juju sees a killed hook and keeps the old stored state.
  expect(r.signal, `exit ${r.code}, stdout ${r.stdout}`).toBe("SIGKILL");
  expect(r.stdout).toBe("");
  expect(afterFailureProblems(s, r.root, true)).toEqual([]);
  expect(convergeProblems(s, r.root)).toEqual([]);
  fs.rmSync(r.root, { recursive: true, force: true });
  passed++;
}

describe.each(scenarios)("$name", (s) => {
  const none = { killAt: null, killAtCommand: null, killAtEnd: false };
  it("the harness runs the hook like a clean run when nothing kills it", async () => {
    const r = await killedRun(s, none);
    expect(r.signal).toBeNull();
    const out = JSON.parse(r.stdout) as { calls: number; ran: string[][] };
    expect(out.calls).toBe(s.clean.calls.length);
    expect(out.ran).toEqual(s.clean.ran);
    expect(convergeProblems(s, r.root)).toEqual([]);
  });

  it.concurrent.each(
    s.clean.calls.map((call, at) => ({
      at,
      name: `SIGKILL at #${at} ${call.op}(${call.path}${call.flags ? `, ${call.flags}` : ""})`,
    })),
  )("$name", async ({ at }) => check(s, { ...none, killAt: at }));

  it.concurrent.each(
    s.clean.ran.map((argv, at) => ({ at, name: `SIGKILL at \`${argv.join(" ")}\`` })),
  )("$name", async ({ at }) => check(s, { ...none, killAtCommand: at }));

  it("SIGKILL after the work, before Juju commits stored state", async () =>
    check(s, { ...none, killAtEnd: true }));
});
