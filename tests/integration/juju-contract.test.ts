// Issue 13: the packed charm keeps Juju's contract, run through its dispatch as Juju runs it.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { unpackBindings } from "../../src/bound-memory";
import { type CharmUnderTest, usePackedCharmHost } from "../support/charm-process";
import { makeTempHost } from "../support/hosts/build-host";
import { syntheticHost } from "../support/hosts/presets";

const ONE_GPU = { devices: "0000:83:00.0" };
const PREFETCHED = new Set([
  "config-get --format=json --all",
  "state-get --format=json",
  "action-get --format=json",
]);

describe("issue 13: Juju's contract through the packed dispatch", () => {
  const host = usePackedCharmHost();
  let unit: CharmUnderTest;

  // Juju kills only the process it started: the runtime must BE that process (exec), so every
  // tool the charm calls has dispatch's pid as its parent. Only dispatch's own prefetch of the
  // fixed reads runs beside it, from a subshell.
  it("item 2: the runtime is the process Juju started; every tool it calls has dispatch's pid as parent", () => {
    unit = host.deploy({ config: ONE_GPU });
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

  // The charm unlinks dispatch's fifo itself, first thing (scripts/build.mjs, unlinkPrefetchFifo):
  // one whose charm never got that far (killed while starting) is removed by the next dispatch.
  it("item 2: a fifo left by a dispatch whose charm never started goes with the next dispatch", () => {
    unit = host.deploy({ config: ONE_GPU });
    execFileSync("mkfifo", [path.join(unit.charmDir, ".prefetch.4194000")]);
    // Only fifos: a file of that name is not dispatch's.
    fs.writeFileSync(path.join(unit.charmDir, ".prefetch.notes"), "kept\n");
    expect(unit.dispatch("install").exitCode).toBe(0);
    expect(fs.readdirSync(unit.charmDir).filter((n) => n.startsWith(".prefetch"))).toEqual([
      ".prefetch.notes",
    ]);
  });

  // Juju replaces the message of an action whose process exits non-zero with "exit status 1".
  it("item 4: an action that throws fails with its message, on stderr too, and exits 0", () => {
    unit = host.deploy({ config: ONE_GPU });
    // The controller refuses the results (an API error): the charm's action-set call throws.
    fs.writeFileSync(
      path.join(unit.sim.binDir, "action-set"),
      "#!/bin/sh\necho 'ERROR connection is shut down' >&2\nexit 1\n",
    );
    const r = unit.dispatch({ name: "list-devices-action", params: {} });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/action-set .*failed with exit code 1: ERROR connection is shut down/);
    const action = unit.sim.readState().lastAction!;
    expect(action.failed).toBe(true);
    expect(action.failureMessage).toMatch(/ERROR connection is shut down/);
    const errors = unit.sim.readState().logs.filter((l) => l.level === "ERROR");
    expect(errors[0]!.message).toMatch(/^list-devices-action failed: HookCmdError: /);
  });

  it("item 4: a hook that throws still exits non-zero, so Juju retries it", () => {
    unit = host.deploy({ config: ONE_GPU });
    fs.writeFileSync(
      path.join(unit.sim.binDir, "status-set"),
      "#!/bin/sh\necho 'ERROR connection is shut down' >&2\nexit 1\n",
    );
    const r = unit.dispatch("install");
    expect(r.exitCode).toBe(1);
    expect(unit.sim.readState().logs.some((l) => /^install failed: /.test(l.message))).toBe(true);
  });

  it("item 6: an unknown action is not an error of the unit: exit 0, the action says why", () => {
    // As when Juju's view of actions.yaml is newer than the charm that runs (no check here).
    unit = host.deploy({ config: ONE_GPU, actionsYaml: undefined });
    const r = unit.dispatch({ name: "defragment-action", params: {} });
    expect(r.exitCode).toBe(0);
    expect(unit.sim.readState().lastAction).toMatchObject({
      failed: true,
      failureMessage: expect.stringMatching(/^actions\/defragment ignored: unknown action/),
    });
  });

  // Juju refuses a state-set value over 64 KiB and the whole state over max-charm-state-size;
  // the preparation memory once grew ~27 bytes a selected function (270 KB at 10,000).
  it("item 5: config-changed with 10,000 selected functions passes under the enforced quotas", () => {
    const big = makeTempHost(syntheticHost(10_007), "pci-10k-");
    try {
      unit = host.deploy(
        {
          config: { devices: "15b3:1018" },
          maxCharmStateSize: 64 * 1024,
        },
        big.root,
      );
      for (const event of ["install", "config-changed"]) {
        const r = unit.dispatch(event);
        expect(r.exitCode, r.stderr).toBe(0);
      }
      const state = unit.sim.readState();
      expect(state.flushErrors ?? []).toEqual([]);
      expect(state.logs.filter((l) => l.level === "ERROR")).toEqual([]);
      const sizes = Object.entries(state.stored).map(
        ([k, v]) => [k, Buffer.byteLength(v)] as const,
      );
      for (const [key, size] of sizes) expect(size, key).toBeLessThan(16 * 1024);
      expect(sizes.reduce((n, [k, v]) => n + k.length + v, 0)).toBeLessThan(64 * 1024);
      // It is really remembered: all 10,000 bound VFs (of seven PFs), as address ranges.
      const memory = JSON.parse(state.stored.preparation!);
      expect(memory.bound.dropped).toBeUndefined();
      expect(Object.keys(unpackBindings(memory.bound))).toHaveLength(10_000);
    } finally {
      big.cleanup();
    }
  }, 180_000);

  it("simulator: Juju inserts actions.yaml's defaults before the charm runs", () => {
    unit = host.deploy({ config: ONE_GPU });
    const r = unit.dispatch({ name: "rebind-action", params: { "dry-run": true } });
    expect(r.exitCode).toBe(0);
    const action = unit.sim.readState().lastAction!;
    expect(action.params).toMatchObject({ to: "vfio-pci", "dry-run": true });
    expect(action.failed).toBe(false);
  });

  // HookContext.Flush commits stored state only for a hook that exits 0: a charm that wrote its
  // memory and then died must not find that memory on the next hook, and must redo its work.
  it("simulator: state-set of a hook that did not exit 0 is dropped; the next hook converges", () => {
    unit = host.deploy({ config: ONE_GPU });
    const tool = path.join(unit.sim.binDir, "state-set");
    fs.renameSync(tool, `${tool}.real`);
    // The write reaches Juju, then the charm is killed before it exits.
    fs.writeFileSync(tool, `#!/bin/sh\n'${tool}.real' "$@"\nkill -KILL $PPID\n`, { mode: 0o755 });
    const killed = unit.dispatch("install");
    expect(killed.exitCode).toBe(-1);
    const calls = unit.sim.readState().calls;
    expect(calls.some((c) => c.argv[0] === "state-set" && c.exitCode === 0)).toBe(true);
    expect(unit.sim.readState().stored).toEqual({});
    fs.renameSync(`${tool}.real`, tool);
    expect(unit.dispatch("install").exitCode).toBe(0);
    expect(JSON.parse(unit.sim.readState().stored.preparation!).bound.byIds).toMatchObject({
      "10de:1bb0": "0000:83:00.0",
    });
  });
});
