// A stoppable action (MainOptions.stoppableActions) notices SIGTERM between its steps through
// stopSignal() and ends cleanly; the same action not listed as stoppable dies at the signal.
// Through the process-level simulator, with the charm bundled as one file like a real one.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUnitSimulator } from "../../src/testing/simulator";
import { bundleCharm } from "../fixtures/bundle-charm";

const METADATA = "name: counter\n";
const ACTIONS = "count:\n  description: Counts slowly, stopping when asked.\n";

/** A charm whose count action takes a step every 20 ms, looking at stopSignal() before each. */
const CHARM = (stoppable: boolean) => `
import { CharmBase, main, stopSignal } from "../../src/index";
class Counter extends CharmBase {
  constructor(framework) {
    super(framework);
    framework.observe("count-action", (event) => {
      event.log("counting");
      for (let step = 0; step < 500; step++) {
        const signal = stopSignal();
        if (signal) return event.setResults({ stopped: signal, steps: String(step) });
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
      event.setResults({ steps: "500" });
    });
  }
}
process.exitCode = main(Counter, ${stoppable ? '{ stoppableActions: ["count"] }' : "{}"});
`;

describe("stoppable actions", { timeout: 60_000 }, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "shim-stop-"));
    bundleCharm(join(dir, "stoppable.cjs"), CHARM(true));
    bundleCharm(join(dir, "plain.cjs"), CHARM(false));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the count action, sends SIGTERM once it has started counting. */
  async function countThenTerm(bundle: string) {
    const simDir = join(dir, `unit-${bundle}`);
    const charmDir = join(simDir, "charm");
    mkdirSync(charmDir, { recursive: true });
    writeFileSync(join(charmDir, "metadata.yaml"), METADATA);
    writeFileSync(join(charmDir, "actions.yaml"), ACTIONS);
    const sim = createUnitSimulator({ dir: simDir, unitName: "counter/0", charmDir });
    const child = spawn(process.execPath, [join(dir, bundle)], {
      env: sim.env("count-action"),
      cwd: charmDir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<[number | null, string | null]>((resolve) =>
      child.on("exit", (code, signal) => resolve([code, signal])),
    );
    while (!sim.readState().lastAction?.logs.includes("counting")) {
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGTERM");
    const [code, signal] = await exited;
    sim.finish(code);
    return { code, signal, stderr, action: sim.readState().lastAction! };
  }

  it("listed as stoppable: sees SIGTERM between steps, reports it and exits 0", async () => {
    const { code, signal, stderr, action } = await countThenTerm("stoppable.cjs");
    expect([code, signal]).toEqual([0, null]);
    expect(stderr).toMatch(/^actions\/count: SIGTERM received: finishing or undoing/m);
    expect(action.results).toMatchObject({ stopped: "SIGTERM" });
    expect(Number(action.results.steps)).toBeLessThan(500);
  });

  it("not listed: the signal kills it mid-step (what stoppableActions exists to prevent)", async () => {
    const { signal, action } = await countThenTerm("plain.cjs");
    expect(signal).toBe("SIGTERM");
    expect(action.results).toEqual({});
  });
});
