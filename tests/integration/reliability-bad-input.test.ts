// The bad-input corpus end to end: the packed charm's dispatch (bundled runtime, no node on PATH)
// under the unit simulator, config-changed for bad configs and `juju run`-like action dispatches
// for bad params, on real host trees. Each dispatch costs ~1 s of hook-tool processes, so this
// runs a representative subset: every host-dependent config case, every 6th parser case, and
// every 3rd action case (each action at least once). The whole corpus goes through the same
// charm code in-process in tests/unit/reliability-bad-input.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ActionCase,
  actionCases,
  type ConfigCase,
  configCases,
  corpusSeedHost,
} from "../support/bad-input/corpus";
import { checkBadAction, checkBadConfig, storedFor } from "../support/bad-input/corpus-checks";
import { type CharmUnderTest, deployPackedCharm } from "../support/charm-process";
import { makeTempHost } from "../support/hosts/build-host";
import { diffTrees, snapshotTree } from "../support/tree";

const configSubset = configCases().filter((c, i) => c.host !== undefined || i % 6 === 0);
const actionSubset = (() => {
  const all = actionCases();
  const picked = all.filter((_, i) => i % 3 === 0);
  for (const a of new Set(all.map((c) => c.action))) {
    if (!picked.some((c) => c.action === a)) picked.push(all.find((c) => c.action === a)!);
  }
  return picked;
})();

type HostName = NonNullable<ConfigCase["host"]>;
const units = new Map<
  HostName,
  { unit: CharmUnderTest; defaults: Record<string, unknown>; cleanup(): void }
>();

beforeAll(() => {
  for (const name of ["seed", "seed-swapped", "seed-no-vfio"] as const) {
    const host = makeTempHost(corpusSeedHost(name), "pci-corpus-e2e-");
    // Juju validates action params before the charm runs; these cases check the charm's own
    // second line of defence, so the simulator lets them through (no actionsYaml).
    const unit = deployPackedCharm(host.root, { actionsYaml: undefined });
    units.set(name, {
      unit,
      defaults: structuredClone(unit.sim.readState().config),
      cleanup: () => {
        unit.cleanup();
        host.cleanup();
      },
    });
  }
});
afterAll(() => {
  for (const u of units.values()) u.cleanup();
  console.log(
    `bad input end to end: ${configSubset.length} of ${configCases().length} configs and ${actionSubset.length} of ${actionCases().length} action calls through the packed dispatch`,
  );
});

describe("bad config through the packed charm's config-changed", () => {
  it.each(configSubset.map((c) => ({ ...c, name: c.file })))("$name", (c) => {
    const { unit, defaults } = units.get(c.host ?? "seed")!;
    unit.sim.updateState((s) => {
      s.config = { ...defaults, ...c.config };
      s.stored = {};
      for (const [k, v] of Object.entries(storedFor(c))) s.stored[k] = JSON.stringify(v);
      s.logs = [];
    });
    unit.clearCommands();
    const before = snapshotTree(unit.root);
    const r = unit.dispatch("config-changed");
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const state = unit.sim.readState();
    checkBadConfig(
      c,
      state.unitStatus,
      state.logs.filter((l) => l.level === "ERROR").map((l) => l.message),
    );
    expect(unit.commands()).toEqual([]);
    expect(diffTrees(before, snapshotTree(unit.root))).toEqual([]);
  });
});

describe("bad action params through the packed charm (juju run)", () => {
  it.each(actionSubset.map((c: ActionCase) => ({ ...c, name: `${c.file} (${c.action})` })))(
    "$name",
    (c) => {
      const { unit, defaults } = units.get("seed")!;
      unit.sim.updateState((s) => {
        s.config = { ...defaults };
        s.stored = {};
      });
      unit.clearCommands();
      const before = snapshotTree(unit.root);
      const r = unit.dispatch({
        name: `${c.action}-action`,
        params: c.params as Record<string, unknown>,
      });
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      checkBadAction(c, unit.sim.readState().lastAction);
      expect(unit.commands()).toEqual([]);
      expect(diffTrees(before, snapshotTree(unit.root))).toEqual([]);
    },
  );
});
