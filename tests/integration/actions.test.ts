// The actions as `juju run` runs them: the packed charm's dispatch with JUJU_ACTION_* set, on a fake
// host tree. The kernel's reactions to sysfs writes are proven in tests/vm (real vfio-pci) and in
// tests/unit/actions-*.test.ts (FakeKernel); here the glue, params, refusals and results are.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CharmUnderTest, deployPackedCharm } from "../support/charm-process";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import { diffTrees, snapshotTree } from "../support/tree";

describe("actions through dispatch", () => {
  let host: ReturnType<typeof makeTempHost>;
  let unit: CharmUnderTest;
  beforeAll(() => {
    host = makeTempHost(seedHost());
    unit = deployPackedCharm(host.root, { config: { devices: "0000:83:00.0" } });
  });
  afterAll(() => {
    unit.cleanup();
    host.cleanup();
  });

  function run(name: string, params: Record<string, unknown> = {}) {
    const before = snapshotTree(host.root);
    const r = unit.dispatch({ name: `${name}-action`, params });
    expect(r.exitCode).toBe(0);
    const action = unit.sim.readState().lastAction!;
    return { action, changed: diffTrees(before, snapshotTree(host.root)) };
  }

  it("list-devices lists every function with driver, group and selection", () => {
    const { action, changed } = run("list-devices", { class: "gpu" });
    expect(action.failed).toBe(false);
    expect(changed).toEqual([]);
    const text = JSON.stringify(action.results);
    expect(text).toContain("0000:83:00.0");
    expect(text).toContain("0000:84:00.0");
    expect(text).toContain("nouveau");
    expect(text).not.toContain("0000:18:00.0"); // the NIC is not a GPU
  });

  it("verify-iommu fails on a host not booted with the planned parameters, and says why", () => {
    const { action, changed } = run("verify-iommu");
    expect(action.failed).toBe(true);
    expect(action.failureMessage).toMatch(/intel_iommu=on/);
    expect(changed).toEqual([]);
  });

  it("rebind dry-run prints the exact writes in order and changes nothing", () => {
    const { action, changed } = run("rebind", { "dry-run": true });
    expect(action.failed).toBe(false);
    expect(changed).toEqual([]);
    const text = JSON.stringify(action.results);
    const override = text.indexOf("/sys/bus/pci/devices/0000:83:00.0/driver_override");
    const unbind = text.indexOf("/sys/bus/pci/drivers/nouveau/unbind");
    const probe = text.indexOf("/sys/bus/pci/drivers_probe");
    expect(override).toBeGreaterThan(-1);
    expect(unbind).toBeGreaterThan(override);
    expect(probe).toBeGreaterThan(unbind);
  });

  it("rebind refuses the management NIC that is up with an address, naming why", () => {
    const { action, changed } = run("rebind", { devices: "0000:18:00.0" });
    expect(action.failed).toBe(true);
    expect(action.failureMessage).toContain("0000:18:00.0");
    expect(action.failureMessage).toMatch(/eno1/);
    expect(changed).toEqual([]);
  });

  it("rebind refuses the boot VGA", () => {
    const { action } = run("rebind", { devices: "0000:03:00.0" });
    expect(action.failed).toBe(true);
    expect(action.failureMessage).toMatch(/boot VGA|console/i);
  });

  it("bad parameters are refused before anything happens", () => {
    // Juju itself refuses them when the action is enqueued (ValidateParams): the charm never runs.
    const calls = unit.sim.readState().calls.length;
    expect(() => unit.dispatch({ name: "rebind-action", params: { to: "guest" } })).toThrow(
      /^validation failed: to : to must be one of the following: "vfio-pci", "host"$/,
    );
    expect(unit.sim.readState().calls.length).toBe(calls);
    const unknown = run("rebind", { devices: "0000:99:00.0" });
    expect(unknown.action.failed).toBe(true);
    expect(unknown.action.failureMessage).toContain("0000:99:00.0");
  });

  it("nova-config prints the controller lines", () => {
    const { action } = run("nova-config");
    const text = JSON.stringify(action.results);
    expect(text).toContain("PciPassthroughFilter");
    expect(text).toContain("pci_passthrough:alias");
  });

  // Last: it edits modules.alias. A real one is a megabyte; an action asks it about every function.
  it("list-devices answers from what the hooks remembered of modules.alias until the file changes", () => {
    const file = path.join(host.root, "lib/modules/6.8.0-45-generic/modules.alias");
    const gpuModules = () => {
      const { action } = run("list-devices", { class: "gpu" });
      const devices = action.results.devices as Record<string, Record<string, string>>;
      return devices["0000-83-00-0"]!.modules;
    };
    // A round mtime, then a hook, so the remembered stamp is one this test can reproduce.
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
    expect(unit.dispatch("config-changed").exitCode).toBe(0);
    expect(gpuModules()).toBe("nouveau, nvidiafb");
    // The same file (inode, size, mtime) with other text: the remembered answer is used.
    const text = fs.readFileSync(file, "latin1");
    fs.writeFileSync(file, text.replaceAll(" nouveau", " nouvea2"), { flag: "r+" });
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
    expect(gpuModules()).toBe("nouveau, nvidiafb");
    // Replaced the way depmod does it (a new file renamed over): read again.
    fs.writeFileSync(`${file}.new`, fs.readFileSync(file));
    fs.renameSync(`${file}.new`, file);
    expect(gpuModules()).toBe("nouvea2, nvidiafb");
  });
});

describe("actions with an invalid config", () => {
  let host: ReturnType<typeof makeTempHost>;
  let unit: CharmUnderTest;
  beforeAll(() => {
    host = makeTempHost(seedHost());
    unit = deployPackedCharm(host.root, { config: { devices: "0000:83:00.0", iommu: "sideways" } });
  });
  afterAll(() => {
    unit.cleanup();
    host.cleanup();
  });

  function run(name: string) {
    expect(unit.dispatch({ name: `${name}-action`, params: {} }).exitCode).toBe(0);
    return unit.sim.readState().lastAction!;
  }

  it("list-devices still shows the host, selecting nothing, and names the option at fault", () => {
    const action = run("list-devices");
    expect(action.failed).toBe(false);
    const text = JSON.stringify(action.results);
    expect(text).toContain("0000:83:00.0");
    expect(text).toContain("nouveau");
    expect(String(action.results["config-problem"])).toContain("iommu");
  });

  it("the actions that show the plan refuse, naming the option", () => {
    for (const name of ["verify-iommu", "reboot-plan", "nova-config", "sriov-vfs"]) {
      const action = run(name);
      expect(action.failed, name).toBe(true);
      expect(action.failureMessage, name).toMatch(/config is invalid.*iommu/);
    }
  });
});
