// Hostile host facts through the packed charm's dispatch (bundled runtime, unit simulator): a GPU
// hot-unplugged while `juju run rebind` is between reading the host and writing to sysfs, and a
// foreign file at our grub drop-in path. (The other hostile shapes run in-process through the
// same charm code: tests/unit/reliability-hostile-host.test.ts.)
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { OWNED } from "../../src/host/root";
import { type CharmUnderTest, deployPackedCharm } from "../support/charm-process";
import { makeTempHost } from "../support/hosts/build-host";
import { foreignFile, unplugCommand } from "../support/hosts/damage";
import { seedHost } from "../support/hosts/presets";
import { diffTrees, snapshotTree } from "../support/tree";

const ONE_GPU = { devices: "0000:83:00.0" };

describe("hostile host, packed charm", () => {
  let host: ReturnType<typeof makeTempHost>;
  let unit: CharmUnderTest;
  afterEach(() => {
    unit?.cleanup();
    host?.cleanup();
  });

  it("rebind: the GPU vanishes after the charm read the host and before it writes", () => {
    host = makeTempHost(seedHost(), "pci-hostile-e2e-");
    unit = deployPackedCharm(host.root, { config: ONE_GPU });
    // The glue reads the host facts, then asks config-get for the selection, then writes. A
    // config-get that hot-unplugs the GPU first (once) puts the unplug exactly in that window.
    // dispatch's own early config-get (its parent is sh, not the charm's node) is made to fail, so
    // the charm falls back to calling the tool itself, as it does whenever that prefetch fails.
    const tool = path.join(unit.sim.binDir, "config-get");
    const marker = path.join(path.dirname(unit.sim.stateFile), "unplugged");
    fs.renameSync(tool, `${tool}.real`);
    fs.writeFileSync(
      tool,
      [
        "#!/bin/sh",
        'case "$(cat /proc/"$PPID"/cmdline)" in *dist/charm.js* | *dist/actions.js*) ;; *) exit 1 ;; esac',
        `if [ ! -e '${marker}' ]; then : > '${marker}'; ${unplugCommand(host.root, "0000:83:00.0")}; fi`,
        `exec '${tool}.real' "$@"`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    const before = snapshotTree(host.root);
    const r = unit.dispatch({ name: "rebind-action", params: { devices: "0000:83:00.0" } });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(fs.existsSync(marker)).toBe(true);
    const action = unit.sim.readState().lastAction!;
    expect(action.failed).toBe(true);
    expect(action.failureMessage).toContain("0000:83:00.0");
    expect(action.failureMessage).toMatch(/vanished/);
    // Only the unplug changed the tree: the charm wrote no sysfs attribute and ran nothing.
    const changes = diffTrees(before, snapshotTree(host.root));
    expect(changes.length).toBeGreaterThan(0);
    expect(changes.filter((l) => !l.startsWith("- "))).toEqual([]);
    expect(unit.commands()).toEqual([]);
  });

  it("a foreign file at the grub drop-in path: blocked naming it, nothing written", () => {
    host = makeTempHost(seedHost(), "pci-hostile-e2e-");
    foreignFile(host.root, OWNED.grubDropIn, 'GRUB_CMDLINE_LINUX_DEFAULT="mine"\n');
    unit = deployPackedCharm(host.root, { config: ONE_GPU });
    const before = snapshotTree(host.root);
    const r = unit.dispatch("install");
    expect(r.exitCode).toBe(0);
    const status = unit.sim.readState().unitStatus;
    expect(status.status).toBe("blocked");
    expect(status.message).toContain(OWNED.grubDropIn);
    expect(diffTrees(before, snapshotTree(host.root))).toEqual([]);
    expect(unit.commands()).toEqual([]);
  });
});
