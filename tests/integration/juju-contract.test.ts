// Issue 13: the packed charm keeps Juju's contract, run through its dispatch as Juju runs it.
import * as fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTempHost } from "../fixtures/hosts/build-host";
import { seedHost } from "../fixtures/hosts/presets";
import { type CharmUnderTest, deployPackedCharm } from "./charm-process";

const ONE_GPU = { devices: "0000:83:00.0" };
const PREFETCHED = new Set([
  "config-get --format=json --all",
  "state-get --format=json",
  "action-get --format=json",
]);

describe("issue 13: Juju's contract through the packed dispatch", () => {
  let host: ReturnType<typeof makeTempHost>;
  let unit: CharmUnderTest;
  beforeEach(() => {
    host = makeTempHost(seedHost());
  });
  afterEach(() => {
    unit?.cleanup();
    host.cleanup();
  });

  // Juju kills only the process it started: the runtime must BE that process (exec), so every
  // tool the charm calls has dispatch's pid as its parent. Only dispatch's own prefetch of the
  // fixed reads runs beside it, from a subshell.
  it("item 2: the runtime is the process Juju started; every tool it calls has dispatch's pid as parent", () => {
    unit = deployPackedCharm(host.root, { config: ONE_GPU });
    const runs = [
      unit.dispatch("install"),
      unit.dispatch({ name: "list-devices-action", params: {} }),
    ];
    const calls = unit.sim.readState().calls;
    expect(calls.every((c) => c.caller !== undefined)).toBe(true);
    const pids = new Set(runs.map((r) => r.pid));
    for (const r of runs) expect(r.exitCode).toBe(0);
    const fromRuntime = calls.filter((c) => pids.has(c.caller!.ppid));
    const others = calls.filter((c) => !pids.has(c.caller!.ppid));
    // The charm itself reported: status-set in the hook, action-set in the action.
    expect(fromRuntime.map((c) => c.argv[0])).toEqual(
      expect.arrayContaining(["status-set", "action-set", "juju-log"]),
    );
    for (const c of fromRuntime)
      expect(c.caller!.parentExe).toBe(`${unit.charmDir}/runtime/bin/node`);
    // Anything else is the sh prefetch, and only its fixed reads.
    for (const c of others) expect(PREFETCHED.has(c.argv.join(" ")), c.argv.join(" ")).toBe(true);
    expect(others.length).toBeGreaterThan(0); // the prefetch still runs, in parallel
    // The fifo it came through is gone.
    expect(fs.readdirSync(unit.charmDir).filter((n) => n.startsWith(".prefetch"))).toEqual([]);
  });
});
