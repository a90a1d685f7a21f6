// The whole bad-input corpus through the charm itself, in-process (real main(), charm class, host
// preparation and action glue against an in-memory Juju and real host trees): every bad config
// must leave the unit blocked naming the option, every bad action call must fail with the
// message the corpus expects, and neither may change anything on the host or run any command.
// (The packed dispatch runs a representative subset: tests/integration/reliability-bad-input.)
import { afterAll, describe, expect, it } from "vitest";
import { runCharm } from "../support/bad-input/charm-run";
import { actionCases, configCases, corpusSeedHost } from "../support/bad-input/corpus";
import { checkBadAction, checkBadConfig, storedFor } from "../support/bad-input/corpus-checks";
import { makeTempHost } from "../support/hosts/build-host";
import { diffTrees, snapshotTree } from "../support/tree";

const hosts = {
  seed: makeTempHost(corpusSeedHost("seed"), "pci-corpus-"),
  "seed-swapped": makeTempHost(corpusSeedHost("seed-swapped"), "pci-corpus-"),
  "seed-no-vfio": makeTempHost(corpusSeedHost("seed-no-vfio"), "pci-corpus-"),
};
afterAll(() => {
  for (const h of Object.values(hosts)) h.cleanup();
});

describe("bad config corpus through the charm (config-changed)", () => {
  it.each(configCases().map((c) => ({ ...c, name: c.file })))("$name", (c) => {
    const root = hosts[c.host ?? "seed"].root;
    const before = snapshotTree(root);
    const run = runCharm("config-changed", { config: c.config, stored: storedFor(c) }, root);
    expect(run.exitCode).toBe(0);
    checkBadConfig(
      c,
      run.state.unitStatus,
      run.state.logs.filter((l) => l.level === "ERROR").map((l) => l.message),
    );
    expect(run.skippedCommands).toEqual([]);
    expect(diffTrees(before, snapshotTree(root))).toEqual([]);
  });
});

describe("bad action params corpus through the charm (juju run)", () => {
  it.each(actionCases().map((c) => ({ ...c, name: `${c.file} (${c.action})` })))("$name", (c) => {
    const root = hosts.seed.root;
    const before = snapshotTree(root);
    const run = runCharm(
      { name: `${c.action}-action`, params: c.params as Record<string, unknown> },
      { config: {} },
      root,
    );
    expect(run.exitCode).toBe(0);
    checkBadAction(c, run.action);
    expect(run.skippedCommands).toEqual([]);
    expect(diffTrees(before, snapshotTree(root))).toEqual([]);
  });
});
