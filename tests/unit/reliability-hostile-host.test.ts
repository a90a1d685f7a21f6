// Hostile host facts through the charm (Scenario harness: real main() and charm class, in-memory
// Juju, real host trees): unreadable sysfs attributes, a `driver` link into nowhere, a device that
// vanishes between the read and the bind, a foreign file at one of our paths, an operator's edit
// to a file we manage. Each must end in a clear status or action result, never a crash, and never
// a write over something that is not ours.
import * as fs from "node:fs";
import * as path from "node:path";
import type { OutputState } from "ops-ts-shim/testing";
import { afterEach, describe, expect, it, vi } from "vitest";
import { rebindAction } from "../../src/actions/rebind";
import { OWNED } from "../../src/host/root";
import { useCleanups } from "../support/cleanups";
import { FakeKernel, writeSysfsTree } from "../support/fake-kernel";
import { seedHost as seedFacts } from "../support/host-facts";
import { hostTempDir, makeTempHost } from "../support/hosts/build-host";
import {
  driverLinkToNowhere,
  foreignFile,
  operatorEdit,
  unplug,
  unreadableAttribute,
} from "../support/hosts/damage";
import { amdHost, seedHost } from "../support/hosts/presets";
import { rebindParams } from "../support/rebind-params";
import { charmContext, useRoot } from "../support/scenario";
import { diffTrees, snapshotTree } from "../support/tree";

const cleanups = useCleanups();
afterEach(() => {
  vi.unstubAllEnvs();
});

function host(): string {
  const h = makeTempHost(seedHost(), "pci-hostile-");
  cleanups.push(h.cleanup);
  useRoot(h.root);
  return h.root;
}

function amd(): string {
  const h = makeTempHost(amdHost(), "pci-hostile-");
  cleanups.push(h.cleanup);
  useRoot(h.root);
  return h.root;
}

const ONE_GPU = { devices: "0000:83:00.0" };
const ALL_GPUS = { devices: "10de:1bb0" };
const read = (root: string, p: string) => fs.readFileSync(path.join(root, p), "utf8");
const warnings = (out: OutputState) =>
  out.logs.filter((l) => l.level === "WARNING").map((l) => l.message);

describe("unreadable sysfs attributes", () => {
  it("an unreadable attribute of a device the charm leaves alone: prepared, with a warning naming it", () => {
    const root = host();
    const bootVga = unreadableAttribute(root, "0000:84:00.0", "boot_vga");
    const ids = [
      unreadableAttribute(root, "0000:18:00.1", "uevent"),
      unreadableAttribute(root, "0000:18:00.1", "modalias"),
      unreadableAttribute(root, "0000:18:00.1", "vendor", "loop"),
    ];
    const out = charmContext().run("install", { config: ONE_GPU });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toMatch(/^reboot required: /);
    expect(read(root, OWNED.udevRule)).toContain('KERNEL=="0000:83:00.0"');
    for (const p of [bootVga, ...ids]) expect(warnings(out).join("\n")).toContain(p);
  });

  it("what only the actions show (numa_node, driver_override) a hook does not read; list-devices names it", () => {
    const root = host();
    const numa = unreadableAttribute(root, "0000:84:00.1", "numa_node");
    const override = unreadableAttribute(root, "0000:84:00.1", "driver_override");
    const out = charmContext().run("install", { config: ONE_GPU });
    expect(out.unitStatus.message).toMatch(/^reboot required: /);
    expect(warnings(out).join("\n")).not.toContain(numa);
    expect(warnings(out).join("\n")).not.toContain(override);
    const listed = charmContext().run("list-devices-action", {
      config: ONE_GPU,
      actionParams: {},
    });
    expect(JSON.stringify(listed.actionResults)).toContain(numa);
    expect(JSON.stringify(listed.actionResults)).toContain(override);
  });

  it("says a warning when it changes, not at every hook: a no-op update-status makes 2 hook-tool calls", () => {
    const root = host();
    const bootVga = unreadableAttribute(root, "0000:84:00.0", "boot_vga");
    const first = charmContext().run("install", { config: ONE_GPU });
    expect(warnings(first).join("\n")).toContain(bootVga);
    const settled = charmContext().run("update-status", first);
    const again = charmContext().run("update-status", settled);
    expect(warnings(settled)).toEqual([]);
    expect(warnings(again)).toEqual([]);
    // config-get and state-get; status-set and state-set only when something changed.
    expect(again.hookToolCalls.map((argv) => argv[0])).toEqual(["config-get", "state-get"]);
    const uevent = unreadableAttribute(root, "0000:84:00.1", "uevent");
    const changed = charmContext().run("update-status", again);
    expect(warnings(changed).join("\n")).toContain(uevent);
    expect(warnings(changed).join("\n")).toContain(bootVga);
  });

  // Regression guard (was a bug, fixed in 93da54d): the function whose identity cannot be read
  // was dropped from the results with only a WARNING in the unit log; the operator reading the
  // action's output must see the unreadable path there.
  it("list-devices still answers, and says which device it could not read", () => {
    const root = host();
    const vendor = unreadableAttribute(root, "0000:18:00.1", "vendor");
    unreadableAttribute(root, "0000:18:00.1", "uevent");
    unreadableAttribute(root, "0000:18:00.1", "modalias");
    const out = charmContext().run("list-devices-action", { config: ONE_GPU, actionParams: {} });
    expect(out.actionFailure).toBeNull();
    const devices = out.actionResults!.devices as Record<string, unknown>;
    expect(Object.keys(devices).length).toBeGreaterThan(10);
    // The operator reads the action's output, not the unit log: the gap must be visible there.
    expect(JSON.stringify(out.actionResults)).toContain(vendor);
  });

  // Regression guard (was a bug, fixed in 93da54d): the reader left the function out, the
  // selection matched nothing, and the hook removed the udev rule, bind helper, initramfs hook and
  // blacklist and ran update-initramfs — a read error unconfigured the device at the next reboot.
  it("the selected GPU's identity becomes unreadable after it was set up: the charm does not silently drop it", () => {
    const root = host();
    const first = charmContext().run("install", { config: ONE_GPU });
    const rule = read(root, OWNED.udevRule);
    unreadableAttribute(root, "0000:83:00.0", "uevent");
    unreadableAttribute(root, "0000:83:00.0", "modalias");
    const vendor = unreadableAttribute(root, "0000:83:00.0", "vendor");
    const before = snapshotTree(root);
    const out = charmContext().run("update-status", { config: ONE_GPU, stored: first.stored });
    // A read error is not a removed card: keep the files as they are and say why.
    expect(read(root, OWNED.udevRule)).toBe(rule);
    expect(diffTrees(before, snapshotTree(root))).toEqual([]);
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toContain(vendor);
  });
});

describe("a driver link pointing nowhere", () => {
  it("install treats the function as unbound and names the link in the log", () => {
    const root = host();
    driverLinkToNowhere(root, "0000:83:00.0", "nvidia");
    const out = charmContext().run("install", { config: ONE_GPU });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toMatch(/^reboot required: .*0000:83:00\.0/);
    expect(warnings(out).join("\n")).toContain("/sys/bus/pci/devices/0000:83:00.0/driver");
    expect(read(root, OWNED.udevRule)).toContain('KERNEL=="0000:83:00.0"');
  });

  // Regression guard (was a bug, fixed in 93da54d): the reader treated a dangling `driver` link
  // as unbound but the sysfs writer's readDriver returned the link's basename, so rebind always
  // failed with "its driver changed since the plan was made ...; run the action again".
  it("rebind of that function does not tell the operator to retry something that cannot change", () => {
    const root = host();
    driverLinkToNowhere(root, "0000:83:00.0", "nvidia");
    const out = charmContext().run("rebind-action", {
      config: ONE_GPU,
      actionParams: { devices: "0000:83:00.0" },
    });
    // Either it binds (the function has no driver) or it refuses naming the dangling link; a
    // "driver changed since the plan was made, run the action again" loop helps nobody.
    const text = `${out.actionFailure ?? ""} ${JSON.stringify(out.actionResults)}`;
    expect(text).not.toMatch(/changed since the plan was made/);
  });
});

describe("a device that vanishes between the read and the bind", () => {
  it("rebind stops, names the device, and puts back the function it had already moved", () => {
    const facts = seedFacts();
    const root = fs.mkdtempSync(path.join(hostTempDir(), "pci-vanish-"));
    cleanups.push(() => fs.rmSync(root, { recursive: true, force: true }));
    writeSysfsTree(root, facts, ["vfio-pci"]);
    const kernel = new FakeKernel(root, new Map(facts.functions.map((f) => [f.address, f.driver])));
    // Hot-unplug of the HDMI audio the moment the action first writes to it.
    let unplugged = false;
    const vanishing = {
      root,
      readDriver: (a: string) => kernel.readDriver(a),
      driverRegistered: (n: string) => kernel.driverRegistered(n),
      writeAttr(hostPath: string, value: string) {
        if (!unplugged && (hostPath.includes("0000:83:00.1") || value.includes("0000:83:00.1"))) {
          unplugged = true;
          unplug(root, "0000:83:00.1");
        }
        kernel.writeAttr(hostPath, value);
      },
    };
    const reply = rebindAction({
      params: rebindParams({ devices: "0000:83:00.0" }),
      facts,
      usage: new Map(),
      selection: [],
      sysfs: vanishing,
      run: null,
    });
    expect(unplugged).toBe(true);
    expect(reply.ok).toBe(false);
    expect(reply.message).toContain("0000:83:00.1");
    expect(reply.message).toMatch(/vanished|ENOENT/);
    // The GPU moved first; with its companion gone it must be back on its host driver.
    expect(kernel.readDriver("0000:83:00.0")).toBe("nouveau");
    const devices = reply.results.devices as Record<string, Record<string, string>>;
    const gpu = Object.values(devices).find((d) => d.address === "0000:83:00.0")!;
    expect(gpu.status).toBe("rolled-back");
  });
});

describe("a foreign file at one of our paths", () => {
  // The SR-IOV pair is planned only for an entry with vfs: on amdHost's X710 port 41:00.1.
  const SRIOV_PATHS = new Set<string>([
    OWNED.sriovRule,
    OWNED.sriovHelper,
    OWNED.sriovBootUnit,
    OWNED.sriovBootWants,
    OWNED.sriovBootWait,
  ]);
  it.each(Object.entries(OWNED))(
    "%s: blocked naming the path, the file untouched, nothing written",
    (_, hostPath) => {
      const sriov = SRIOV_PATHS.has(hostPath);
      const root = sriov ? amd() : host();
      foreignFile(root, hostPath, "# the operator's own file\noptions something\n");
      const before = snapshotTree(root);
      const out = charmContext().run("install", {
        config: sriov ? { devices: '- {address: "0000:41:00.1", vfs: 2}' } : ALL_GPUS,
      });
      expect(out.unitStatus.name).toBe("blocked");
      expect(out.unitStatus.message).toContain(hostPath);
      expect(read(root, hostPath)).toBe("# the operator's own file\noptions something\n");
      expect(diffTrees(before, snapshotTree(root))).toEqual([]);
    },
  );

  it("a foreign file at a path the plan does not need is not removed either", () => {
    const root = host();
    // One GPU by address needs no blacklist: modprobe.d/pci-passthrough.conf is not planned.
    foreignFile(root, OWNED.modprobeConf, "blacklist pcspkr\n");
    const out = charmContext().run("install", { config: ONE_GPU });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toContain(OWNED.modprobeConf);
    expect(read(root, OWNED.modprobeConf)).toBe("blacklist pcspkr\n");
  });
});

describe("an operator's edit to a file the charm manages", () => {
  /** Installs with every GPU, then the operator edits `file` and `event` runs with `config`: the
   * charm must keep the edit, write nothing at all and block naming the file. Returns the message. */
  function afterOperatorEdit(
    file: string,
    text: string,
    event: string,
    config: Record<string, string>,
  ): string {
    const root = host();
    const first = charmContext().run("install", { config: ALL_GPUS });
    const edited = operatorEdit(root, file, text);
    const before = snapshotTree(root);
    const out = charmContext().run(event, { config, stored: first.stored });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toContain(file);
    expect(read(root, file)).toBe(edited);
    expect(diffTrees(before, snapshotTree(root))).toEqual([]);
    return out.unitStatus.message;
  }

  it("a no-op hook keeps the edit, writes nothing and blocks naming the file", () => {
    const message = afterOperatorEdit(
      OWNED.grubDropIn,
      'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT quiet"',
      "update-status",
      ALL_GPUS,
    );
    expect(message).toMatch(/edited/);
  });

  it("a config change that would rewrite the file keeps the edit and writes nothing at all", () => {
    // Checked before any write: the grub drop-in does not get the new parameter either.
    afterOperatorEdit(OWNED.udevRule, "# keep 84:00.0 too, says ops", "config-changed", {
      ...ONE_GPU,
      "extra-kernel-params": "pcie_aspm=off",
    });
  });

  it("removal keeps the edited file, removes the rest, and logs the kept one", () => {
    const root = host();
    const first = charmContext().run("install", { config: ALL_GPUS });
    const edited = operatorEdit(root, OWNED.modprobeConf, "options nouveau modeset=0");
    const out = charmContext().run("stop", { config: ALL_GPUS, stored: first.stored });
    expect(read(root, OWNED.modprobeConf)).toBe(edited);
    for (const p of Object.values(OWNED).filter((p) => p !== OWNED.modprobeConf)) {
      expect(fs.existsSync(path.join(root, p)), p).toBe(false);
    }
    expect(out.logs.map((l) => l.message).join("\n")).toMatch(
      /kept \/etc\/modprobe\.d\/pci-passthrough\.conf/,
    );
  });
});
