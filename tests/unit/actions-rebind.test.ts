// The rebind action: params, the pure plan (targets, groups, refusals, writes), and its execution
// against a temp sysfs tree whose "kernel" (FakeKernel) reacts to the writes as Linux does.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { executeRebind, rebindAction } from "../../src/actions/rebind";
import {
  type DeviceToken,
  parseRebindParams,
  planRebind,
  type RebindParams,
  type RebindPlan,
  type RebindRefusal,
} from "../../src/actions/rebind-plan";
import { invalidResultKeys } from "../../src/actions/results";
import type { SysfsWriter } from "../../src/apply/sysfs";
import type { HostFacts, HostUsage } from "../../src/host/facts";
import type { BoundDevice, WithheldFunction } from "../../src/plan/types";
import { bound as boundDevice } from "../support/bound-devices";
import { FakeKernel, failingWriter, writeSysfsTree } from "../support/fake-kernel";
import { fn, host, moveToGroup, netPf, netVf, seedHost } from "../support/host-facts";
import { rebindParams } from "../support/rebind-params";
import { diffTrees, snapshotTree } from "../support/tree";

const params = (p: Partial<RebindParams> = {}): RebindParams => ({
  devices: null,
  to: "vfio-pci",
  dryRun: false,
  force: false,
  ...p,
});
const addr = (...addresses: string[]): DeviceToken[] =>
  addresses.map((a) => ({ kind: "address", address: a, source: a }));

/** A selected function of the seed host's GPU model (10de:1bb0; its audio keeps the same ids here:
 * the rebind plan reads drivers and groups, not ids). */
const bound = (address: string, extra: Partial<BoundDevice> = {}): BoundDevice =>
  boundDevice(address, "10de:1bb0", "gpu", extra);

/** The seed host (two P5000 with HDMI audio, i40e ports, ahci, ASPEED console) plus an ice PF with
 * VFs, a bonded NIC, and an NVMe. */
function richHost(extra: Partial<HostFacts> = {}): HostFacts {
  const base = seedHost();
  return host(
    [
      ...base.functions,
      netPf(
        "0000:3b:00.0",
        "8086:1592",
        "ice",
        25,
        { numVfs: 4, totalVfs: 64 },
        {
          netInterfaces: ["ens1f0"],
        },
      ),
      netVf("0000:3b:01.0", "8086:1889", "iavf", 26, "0000:3b:00.0"),
      fn("0000:5e:00.0", "144d:a808", "010802", { driver: "nvme", iommuGroup: 40 }),
    ],
    extra,
  );
}

/** richHost behind an ACS-less slot: the first P5000 shares IOMMU group 60 with the first i40e
 * port, eno1, which is up. */
function gpuBesideEno1(): { facts: HostFacts; usage: HostUsage } {
  const facts = richHost();
  moveToGroup(facts, "0000:3d:00.0", 60);
  return { facts, usage: new Map([["0000:3d:00.0", ["network interface eno1 is up"]]]) };
}

const plan = (
  p: Partial<RebindParams>,
  facts = richHost(),
  usage: HostUsage = new Map(),
  selection: BoundDevice[] = [],
) => planRebind({ params: params(p), facts, usage, selection });

function asPlan(result: RebindPlan | RebindRefusal): RebindPlan {
  if (result.kind !== "plan") throw new Error(`expected a plan, got: ${result.message}`);
  return result;
}
function asRefusal(result: RebindPlan | RebindRefusal): RebindRefusal {
  if (result.kind !== "refusal") throw new Error("expected a refusal, got a plan");
  return result;
}

describe("parseRebindParams", () => {
  it("fills the defaults from actions.yaml", () => {
    expect(parseRebindParams({})).toEqual({
      ok: true,
      params: { devices: null, to: "vfio-pci", dryRun: false, force: false },
    });
  });

  it("reads addresses (full and short) and ids, comma or space separated", () => {
    const r = parseRebindParams({ devices: "0000:83:00.0, 84:00.1  10DE:1BB0", to: "host" });
    expect(r.ok && r.params.devices).toEqual([
      { kind: "address", address: "0000:83:00.0", source: "0000:83:00.0" },
      { kind: "address", address: "0000:84:00.1", source: "84:00.1" },
      { kind: "ids", vendorId: "10de", deviceId: "1bb0", source: "10DE:1BB0" },
    ]);
    expect(r.ok && r.params.to).toBe("host");
  });
});

describe("planRebind: which functions and which writes", () => {
  it("moves a GPU and the HDMI audio of its group, in the documented order", () => {
    const p = asPlan(plan({ devices: addr("0000:83:00.0") }));
    expect(p.ensureVfioPci).toBe(true);
    expect(p.moves.map((m) => [m.address, m.reason, m.follows])).toEqual([
      ["0000:83:00.0", "requested", null],
      ["0000:83:00.1", "group-member", "0000:83:00.0"],
    ]);
    expect(p.moves[0]!.writes).toEqual([
      { path: "/sys/bus/pci/devices/0000:83:00.0/driver_override", value: "vfio-pci" },
      { path: "/sys/bus/pci/drivers/nouveau/unbind", value: "0000:83:00.0" },
      { path: "/sys/bus/pci/drivers_probe", value: "0000:83:00.0" },
    ]);
    expect(p.moves[1]!.writes[1]).toEqual({
      path: "/sys/bus/pci/drivers/snd_hda_intel/unbind",
      value: "0000:83:00.1",
    });
  });

  it("skips the unbind for an unbound function and never writes new_id", () => {
    const facts = richHost();
    facts.functions.find((f) => f.address === "0000:83:00.1")!.driver = null;
    const p = asPlan(plan({ devices: addr("0000:83:00.0", "0000:83:00.1") }, facts));
    expect(p.moves[1]!.writes.map((w) => w.path)).toEqual([
      "/sys/bus/pci/devices/0000:83:00.1/driver_override",
      "/sys/bus/pci/drivers_probe",
    ]);
    expect(p.moves.flatMap((m) => m.writes).some((w) => w.path.includes("new_id"))).toBe(false);
  });

  it("defaults to the configured selection, keeping each function's reason", () => {
    const selection = [
      bound("0000:84:00.0"),
      bound("0000:84:00.1", { reason: "companion", follows: "0000:84:00.0" }),
    ];
    const p = asPlan(plan({}, richHost(), new Map(), selection));
    expect(p.moves.map((m) => `${m.address} ${m.reason}`)).toEqual([
      "0000:84:00.0 selected",
      "0000:84:00.1 companion",
    ]);
  });

  it("refuses when nothing is given and nothing is configured", () => {
    expect(asRefusal(plan({})).message).toContain("the `devices` option selects none");
  });

  it("moves every function with the given ids, and each one's group mate", () => {
    const p = asPlan(
      plan({ devices: [{ kind: "ids", vendorId: "10de", deviceId: "1bb0", source: "10de:1bb0" }] }),
    );
    expect(p.moves.map((m) => [m.address, m.reason, m.follows])).toEqual([
      ["0000:83:00.0", "requested", null],
      ["0000:83:00.1", "group-member", "0000:83:00.0"],
      ["0000:84:00.0", "requested", null],
      ["0000:84:00.1", "group-member", "0000:84:00.0"],
    ]);
  });

  it("names an unknown address and ids that match nothing, and changes nothing", () => {
    const r = asRefusal(
      plan({
        devices: [
          ...addr("0000:99:00.0"),
          { kind: "ids", vendorId: "1234", deviceId: "5678", source: "1234:5678" },
        ],
      }),
    );
    expect(r.refusals.map((x) => x.device)).toEqual(["0000:99:00.0", "1234:5678"]);
    expect(r.message).toContain("0000:99:00.0: no PCI function at this address");
    expect(r.message).toContain("no PCI function has ids 1234:5678");
    expect(r.refusals.every((x) => !x.forceable)).toBe(true);
  });

  it("treats a function already on vfio-pci as a no-op with a clear result", () => {
    const facts = richHost();
    for (const f of facts.functions) if (f.iommuGroup === 60) f.driver = "vfio-pci";
    const p = asPlan(plan({ devices: addr("0000:83:00.0") }, facts));
    expect(p.moves).toEqual([]);
    expect(p.ensureVfioPci).toBe(false);
    expect(p.unchanged).toEqual([
      {
        address: "0000:83:00.0",
        driver: "vfio-pci",
        message: "already bound to vfio-pci; nothing to do",
      },
    ]);
  });

  it("to host: clears the override, unbinds vfio-pci, re-probes, and brings the group along", () => {
    const facts = richHost();
    for (const f of facts.functions) {
      if (f.iommuGroup === 60) {
        f.driver = "vfio-pci";
        f.driverOverride = "vfio-pci";
      }
    }
    const p = asPlan(plan({ to: "host", devices: addr("0000:83:00.1") }, facts));
    expect(p.ensureVfioPci).toBe(false);
    expect(p.moves.map((m) => [m.address, m.reason])).toEqual([
      ["0000:83:00.0", "group-member"],
      ["0000:83:00.1", "requested"],
    ]);
    expect(p.moves[1]!.writes).toEqual([
      { path: "/sys/bus/pci/devices/0000:83:00.1/driver_override", value: "\n" },
      { path: "/sys/bus/pci/drivers/vfio-pci/unbind", value: "0000:83:00.1" },
      { path: "/sys/bus/pci/drivers_probe", value: "0000:83:00.1" },
    ]);
  });

  it("completes a half-moved group: the function on vfio-pci is a no-op, its mate moves", () => {
    const facts = richHost();
    facts.functions.find((f) => f.address === "0000:83:00.0")!.driver = "vfio-pci";
    const p = asPlan(plan({ devices: addr("0000:83:00.0") }, facts));
    expect(p.unchanged.map((u) => u.address)).toEqual(["0000:83:00.0"]);
    expect(p.moves.map((m) => [m.address, m.reason, m.follows])).toEqual([
      ["0000:83:00.1", "group-member", "0000:83:00.0"],
    ]);
  });

  it("warns that unbinding the proprietary nvidia driver can block", () => {
    const facts = richHost();
    facts.functions.find((f) => f.address === "0000:84:00.0")!.driver = "nvidia";
    const p = asPlan(plan({ devices: addr("0000:84:00.0") }, facts));
    expect(p.warnings).toEqual([
      "0000:84:00.0: unbinding nvidia blocks while nvidia-persistenced or a GPU process holds it; stop them first (systemctl stop nvidia-persistenced)",
    ]);
  });

  it("to host: a function already with its host driver is a no-op", () => {
    const p = asPlan(plan({ to: "host", devices: addr("0000:00:17.0") }));
    expect(p.moves).toEqual([]);
    expect(p.unchanged[0]!.message).toBe("already with the host on ahci; nothing to do");
  });
});

describe("planRebind: refusals (each names the device and the reason)", () => {
  const nic = "0000:3d:00.0";
  const cases: [string, string, string][] = [
    ["admin-up interface", nic, "network interface eno1 is up"],
    ["addresses", nic, "network interface eno1 has addresses 10.0.0.5"],
    ["routes", nic, "network interface eno1 carries 2 routes"],
    ["enslaved", nic, "network interface eno1 is enslaved to bond0"],
    ["mounted filesystem", "0000:5e:00.0", "disk controller for / (/dev/nvme0n1p2 mounted)"],
    ["active swap", "0000:00:17.0", "disk controller for swap on /dev/sda3"],
    ["console framebuffer", "0000:02:00.0", "console framebuffer fb0"],
  ];
  for (const [name, device, reason] of cases) {
    it(`refuses: ${name}; force takes it with a warning`, () => {
      const usage: HostUsage = new Map([[device, [reason]]]);
      const r = asRefusal(plan({ devices: addr(device) }, richHost(), usage));
      expect(r.refusals).toContainEqual({ device, reason, forceable: true });
      expect(r.message).toContain(`${device}: ${reason}`);
      expect(r.message).toContain("Rerun with force=true");
      const forced = asPlan(plan({ devices: addr(device), force: true }, richHost(), usage));
      expect(forced.moves.map((m) => m.address)).toContain(device);
      expect(forced.warnings).toContain(`${device}: forced past: ${reason}`);
    });
  }

  it("refuses the boot VGA from boot_vga alone, once even when usage says it too", () => {
    const r = asRefusal(plan({ devices: addr("0000:02:00.0") }));
    expect(r.refusals).toEqual([
      {
        device: "0000:02:00.0",
        reason: "it is the boot VGA device (the host's console)",
        forceable: true,
      },
    ]);
    const usage: HostUsage = new Map([["0000:02:00.0", ["boot VGA (boot_vga=1)"]]]);
    const r2 = asRefusal(plan({ devices: addr("0000:02:00.0") }, richHost(), usage));
    expect(r2.refusals.map((x) => x.reason)).toEqual(["boot VGA (boot_vga=1)"]);
  });

  it("refuses a PF with VFs enabled even with force, and says vfio-pci would refuse it", () => {
    const usage: HostUsage = new Map([["0000:3b:00.0", ["SR-IOV PF with 4 VFs enabled"]]]);
    for (const force of [false, true]) {
      const r = asRefusal(plan({ devices: addr("0000:3b:00.0"), force }, richHost(), usage));
      expect(r.refusals).toHaveLength(1);
      expect(r.refusals[0]!.forceable).toBe(false);
      expect(r.refusals[0]!.reason).toMatch(
        /SR-IOV PF with 4 VFs enabled: vfio-pci refuses such a PF \(EBUSY\)/,
      );
      expect(r.refusals[0]!.reason).toContain("force does not override this");
    }
  });

  it("refuses a function whose group holds a device the host uses, naming both", () => {
    const { facts, usage } = gpuBesideEno1();
    const r = asRefusal(plan({ devices: addr("0000:83:00.0") }, facts, usage));
    expect(r.refusals).toContainEqual({
      device: "0000:83:00.0",
      reason:
        "its IOMMU group 60 also holds 0000:3d:00.0, which the host uses (network interface eno1 is up); the whole group goes to the VM",
      forceable: true,
    });
    // The NIC itself would move with the group, so it is refused for its own reason too.
    expect(r.refusals).toContainEqual({
      device: "0000:3d:00.0",
      reason: "network interface eno1 is up",
      forceable: true,
    });
  });

  it("judges what the hooks withheld again when no devices are given, naming the reason", () => {
    // The configured selection is the GPU, but the hooks withheld it (its group holds the NIC the
    // host uses): the default rebind must say why, not "the devices option selects none".
    const { facts, usage } = gpuBesideEno1();
    const withheld: WithheldFunction[] = [
      {
        address: "0000:83:00.0",
        vendorId: "10de",
        deviceId: "1bb0",
        entry: 'devices entry #1 "0000:83:00.0"',
        reasons: ["its IOMMU group 60 also holds 0000:3d:00.0, which the host uses"],
        forceable: true,
      },
    ];
    const r = asRefusal(planRebind({ params: params({}), facts, usage, selection: [], withheld }));
    expect(r.message).toContain("0000:3d:00.0");
    expect(r.message).not.toContain("selects none");
    expect(r.refusals.map((x) => x.device)).toContain("0000:83:00.0");
  });

  it("refuses bridges, functions without an IOMMU group, and a kernel without vfio-pci", () => {
    expect(asRefusal(plan({ devices: addr("0000:80:02.0") })).message).toContain("PCI bridge/port");
    const noIommu = richHost();
    for (const f of noIommu.functions) f.iommuGroup = null;
    noIommu.iommuGroups.clear();
    expect(
      asRefusal(plan({ devices: addr("0000:84:00.0"), force: true }, noIommu)).message,
    ).toContain("no IOMMU group (the IOMMU is off in the running kernel)");
    const noVfio = richHost({ vfioPci: "missing" });
    expect(asRefusal(plan({ devices: addr("0000:84:00.0") }, noVfio)).message).toContain(
      "has no vfio-pci driver",
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Execution on a temp tree

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "rebind-"));
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** The default drivers the kernel would pick (the ones bound at boot). */
function defaultsOf(facts: HostFacts): Map<string, string | null> {
  return new Map(facts.functions.map((f) => [f.address, f.driver]));
}

function kernelFor(facts: HostFacts, extraDrivers = ["vfio-pci"]): FakeKernel {
  writeSysfsTree(root, facts, extraDrivers);
  return new FakeKernel(root, defaultsOf(facts));
}

const GPU_PAIRS = ["0000:83:00.0", "0000:83:00.1", "0000:84:00.0", "0000:84:00.1"];

describe("executeRebind on a temp tree", () => {
  it("binds the GPU and its audio to vfio-pci, reads back, and /dev/vfio/<group> appears", async () => {
    const facts = richHost();
    const k = kernelFor(facts);
    const p = asPlan(plan({ devices: addr("0000:83:00.0") }, facts));
    const out = await executeRebind(p, k);
    expect(out.ok).toBe(true);
    expect(out.devices.map((d) => [d.address, d.before, d.after, d.status])).toEqual([
      ["0000:83:00.0", "nouveau", "vfio-pci", "moved"],
      ["0000:83:00.1", "snd_hda_intel", "vfio-pci", "moved"],
    ]);
    expect(k.override("0000:83:00.0")).toBe("vfio-pci");
    expect(k.vfioNode(60)).toBe(true);
    expect(k.writes).toEqual(p.moves.flatMap((m) => m.writes));
  });

  it("returns them to the host: the kernel's default drivers come back and are reported", async () => {
    const facts = richHost();
    const k = kernelFor(facts);
    await executeRebind(asPlan(plan({ devices: addr("0000:83:00.0") }, facts)), k);
    const now = richHost();
    for (const f of now.functions) {
      if (f.iommuGroup === 60) {
        f.driver = "vfio-pci";
        f.driverOverride = "vfio-pci";
      }
    }
    const out = await executeRebind(
      asPlan(plan({ to: "host", devices: addr("0000:83:00.0") }, now)),
      k,
    );
    expect(out.ok).toBe(true);
    expect(out.devices.map((d) => [d.address, d.after, d.message])).toEqual([
      ["0000:83:00.0", "nouveau", "vfio-pci → nouveau (the kernel's default driver)"],
      ["0000:83:00.1", "snd_hda_intel", "vfio-pci → snd_hda_intel (the kernel's default driver)"],
    ]);
    expect(k.override("0000:83:00.0")).toBe("(null)");
    expect(k.vfioNode(60)).toBe(false);
  });

  it("mid-way failure: the failing function and the ones already moved end as they were", async () => {
    const facts = richHost();
    const k = kernelFor(facts);
    const before = snapshotTree(path.join(root, "sys"));
    const w = failingWriter(
      k,
      (p, v) => p.endsWith("drivers_probe") && v === "0000:84:00.0",
      "EINVAL",
      {
        once: true,
      },
    );
    const p = asPlan(plan({ devices: addr(...GPU_PAIRS) }, facts));
    const out = await executeRebind(p, w);
    expect(out.ok).toBe(false);
    expect(out.devices.map((d) => [d.address, d.status, d.after])).toEqual([
      ["0000:83:00.0", "rolled-back", "nouveau"],
      ["0000:83:00.1", "rolled-back", "snd_hda_intel"],
      ["0000:84:00.0", "failed-restored", "nouveau"],
      ["0000:84:00.1", "not-attempted", "snd_hda_intel"],
    ]);
    expect(out.message).toContain("rebind failed at 0000:84:00.0");
    expect(out.message).toContain("EINVAL");
    expect(out.message).toContain("rolled back 0000:83:00.0, 0000:83:00.1");
    expect(out.message).toContain("every device is as it was before the action");
    // Drivers, overrides, links: the tree is exactly as before (the /dev/vfio node came and went).
    expect(diffTrees(before, snapshotTree(path.join(root, "sys")))).toEqual([]);
    expect(k.vfioNode(60)).toBe(false);
  });

  // Issue 13 item 3: a stop (SIGTERM) can come before any write. Whichever write it precedes,
  // every function ends as it was (the run is undone) and the outcome says the action was stopped.
  it("a stop before any one of the writes undoes the run; no function is left half moved", () => {
    const facts = richHost();
    const all = asPlan(plan({ devices: addr(...GPU_PAIRS) }, facts)).moves.flatMap((m) => m.writes);
    expect(all).toHaveLength(12);
    for (let n = 0; n < all.length; n++) {
      const k = kernelFor(facts);
      const before = snapshotTree(path.join(root, "sys"));
      const p = asPlan(plan({ devices: addr(...GPU_PAIRS) }, facts));
      const stop = () => (k.writes.length >= n ? "SIGTERM" : null);
      const out = executeRebind(p, k, null, stop);
      expect(out.ok, `stop before write ${n}`).toBe(false);
      expect(out.message).toMatch(/^rebind stopped by SIGTERM/);
      expect(out.message).toMatch(
        /every device is as it was before the action|nothing was changed/,
      );
      // The writes the run made: the first n of the plan, then only putting-back writes.
      expect(k.writes.slice(0, n)).toEqual(all.slice(0, n));
      for (const d of out.devices) {
        expect(d.after, `${d.address} after a stop before write ${n}`).toBe(d.before);
        expect(["rolled-back", "not-attempted"]).toContain(d.status);
      }
      expect(
        diffTrees(before, snapshotTree(path.join(root, "sys"))),
        `tree after a stop before write ${n}`,
      ).toEqual([]);
      fs.rmSync(root, { recursive: true, force: true });
      fs.mkdirSync(root);
    }
  }, 60_000); // twelve trees built and run on a shared 2-core machine

  // juju cancel-task kills with SIGKILL, which nothing catches: a function can be left with its
  // override set and no driver. The README tells the operator to run the same rebind again.
  it("after a SIGKILL between unbind and drivers_probe, the same rebind again completes the move", () => {
    const facts = richHost();
    const k = kernelFor(facts);
    const first = asPlan(plan({ devices: addr("0000:83:00.0") }, facts)).moves[0]!;
    for (const w of first.writes.slice(0, 2)) k.writeAttr(w.path, w.value); // killed here
    const now = richHost();
    const gpu = now.functions.find((f) => f.address === "0000:83:00.0")!;
    gpu.driver = null;
    gpu.driverOverride = "vfio-pci";
    const out = executeRebind(asPlan(plan({ devices: addr("0000:83:00.0") }, now)), k);
    expect(out.ok, out.message).toBe(true);
    expect(out.devices.map((d) => [d.address, d.after, d.status])).toEqual([
      ["0000:83:00.0", "vfio-pci", "moved"],
      ["0000:83:00.1", "vfio-pci", "moved"],
    ]);
  });

  it("a stop that comes after the last write keeps the finished move and says so", () => {
    const facts = richHost();
    const k = kernelFor(facts);
    const p = asPlan(plan({ devices: addr("0000:83:00.0") }, facts));
    const last = p.moves.flatMap((m) => m.writes).length;
    const out = executeRebind(p, k, null, () => (k.writes.length >= last ? "SIGTERM" : null));
    expect(out.ok).toBe(true);
    expect(out.devices.map((d) => d.status)).toEqual(["moved", "moved"]);
    expect(out.warnings).toContainEqual(expect.stringMatching(/^SIGTERM arrived after the last/));
  });

  it("a failed read-back (vfio-pci refuses a PF whose VFs appeared since) restores its driver", async () => {
    const facts = richHost();
    const pf = facts.functions.find((f) => f.address === "0000:3b:00.0")!;
    pf.sriov = { totalVfs: 64, numVfs: 0 };
    const k = kernelFor(facts);
    // The VFs were enabled after the facts were read.
    fs.writeFileSync(path.join(root, "sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs"), "4\n");
    const out = await executeRebind(asPlan(plan({ devices: addr("0000:3b:00.0") }, facts)), k);
    expect(out.ok).toBe(false);
    expect(out.devices[0]).toMatchObject({ status: "failed-restored", after: "ice" });
    expect(out.devices[0]!.message).toContain("EBUSY");
    expect(k.override("0000:3b:00.0")).toBe("(null)");
  });

  it("stops before writing when a function changed driver since the plan", async () => {
    const facts = richHost();
    const k = kernelFor(facts, ["vfio-pci", "nvidia"]);
    const p = asPlan(plan({ devices: addr("0000:84:00.0") }, facts));
    k.writeAttr("/sys/bus/pci/drivers/nouveau/unbind", "0000:84:00.0");
    const writesBefore = k.writes.length;
    const out = await executeRebind(p, k);
    expect(out.ok).toBe(false);
    expect(out.devices[0]!.message).toContain(
      "its driver changed since the plan was made (nouveau → no driver)",
    );
    expect(k.writes.length).toBe(writesBefore);
  });

  it("reports a function stranded when its rollback fails too, and says to check it", async () => {
    const facts = richHost();
    const k = kernelFor(facts);
    let probes83 = 0;
    const w = failingWriter(k, (p, v) => {
      if (!p.endsWith("drivers_probe")) return false;
      if (v === "0000:84:00.0") return true;
      // 83:00.0's first probe (the move) succeeds; its rollback probe fails.
      return v === "0000:83:00.0" && ++probes83 === 2;
    });
    const out = await executeRebind(asPlan(plan({ devices: addr(...GPU_PAIRS) }, facts)), w);
    expect(out.ok).toBe(false);
    const gpu = out.devices.find((d) => d.address === "0000:83:00.0")!;
    expect(gpu.status).toBe("stranded");
    expect(gpu.after).toBeNull();
    expect(out.message).toContain("COULD NOT RESTORE 0000:83:00.0");
  });

  it("refuses to modprobe under a test root and changes nothing", async () => {
    const facts = richHost();
    const k = kernelFor(facts, []);
    const out = await executeRebind(asPlan(plan({ devices: addr("0000:84:00.0") }, facts)), k);
    expect(out.ok).toBe(false);
    expect(out.message).toContain("/sys/bus/pci/drivers/vfio-pci is missing under the root");
    expect(out.message).toContain("nothing was changed");
    expect(k.writes).toEqual([]);
  });

  it("on the real root, loads vfio-pci with modprobe through the runner, then binds", async () => {
    const facts = richHost();
    const k = kernelFor(facts, []);
    // The same tree presented as the host's `/`: the runner is the only thing that may load modules.
    const asHost: SysfsWriter = {
      root: "/",
      writeAttr: (p, v) => k.writeAttr(p, v),
      readDriver: (a) => k.readDriver(a),
      driverRegistered: (n) => k.driverRegistered(n),
    };
    const calls: string[][] = [];
    const run = (argv: string[]) => {
      calls.push(argv);
      fs.mkdirSync(path.join(root, "sys/bus/pci/drivers/vfio-pci"));
      for (const f of ["bind", "unbind"])
        fs.writeFileSync(path.join(root, "sys/bus/pci/drivers/vfio-pci", f), "");
      return { exitCode: 0, stdout: "", stderr: "" };
    };
    const out = await executeRebind(
      asPlan(plan({ devices: addr("0000:84:00.0") }, facts)),
      asHost,
      run,
    );
    expect(calls).toEqual([["modprobe", "vfio-pci"]]);
    expect(out.ok).toBe(true);
    expect(k.readDriver("0000:84:00.0")).toBe("vfio-pci");
  });

  it("on the real root, a failing modprobe is reported and nothing is written", async () => {
    const facts = richHost();
    const k = kernelFor(facts, []);
    const asHost: SysfsWriter = {
      ...k,
      root: "/",
      writeAttr: (p, v) => k.writeAttr(p, v),
      readDriver: (a) => k.readDriver(a),
      driverRegistered: (n) => k.driverRegistered(n),
    };
    const run = () => ({
      exitCode: 1,
      stdout: "",
      stderr: "modprobe: FATAL: Module vfio-pci not found",
    });
    const out = await executeRebind(
      asPlan(plan({ devices: addr("0000:84:00.0") }, facts)),
      asHost,
      run,
    );
    expect(out.ok).toBe(false);
    expect(out.message).toContain("modprobe vfio-pci failed (exit 1): modprobe: FATAL");
    expect(k.writes).toEqual([]);
  });
});

describe("rebindAction (what the handler calls)", () => {
  const input = (
    rawParams: unknown,
    facts: HostFacts,
    sysfs: SysfsWriter,
    usage: HostUsage = new Map(),
  ) => ({
    params: rebindParams(rawParams),
    facts,
    usage,
    selection: [
      bound("0000:84:00.0"),
      bound("0000:84:00.1", { reason: "companion" as const, follows: "0000:84:00.0" }),
    ],
    sysfs,
    run: null,
  });

  it("dry-run lists the exact writes in order and changes nothing", async () => {
    const facts = richHost();
    const k = kernelFor(facts);
    const before = snapshotTree(root);
    const reply = await rebindAction(input({ "dry-run": true }, facts, k));
    expect(reply.ok).toBe(true);
    expect(diffTrees(before, snapshotTree(root))).toEqual([]);
    expect(k.writes).toEqual([]);
    const writes = reply.results.writes as Record<string, Record<string, string>>;
    expect(Object.values(writes).map((w) => `${w.path} ${w.value}`)).toEqual([
      '/sys/bus/pci/devices/0000:84:00.0/driver_override "vfio-pci"',
      '/sys/bus/pci/drivers/nouveau/unbind "0000:84:00.0"',
      '/sys/bus/pci/drivers_probe "0000:84:00.0"',
      '/sys/bus/pci/devices/0000:84:00.1/driver_override "vfio-pci"',
      '/sys/bus/pci/drivers/snd_hda_intel/unbind "0000:84:00.1"',
      '/sys/bus/pci/drivers_probe "0000:84:00.1"',
    ]);
    expect(Object.keys(writes)).toEqual(["1", "2", "3", "4", "5", "6"]);
    expect(reply.message).toBe("would make 6 sysfs writes for 2 functions; nothing was changed");
    const one = await rebindAction(input({ "dry-run": true, devices: "0000:5e:00.0" }, facts, k));
    expect(one.message).toBe("would make 3 sysfs writes for 1 function; nothing was changed");
    expect(invalidResultKeys(reply.results)).toEqual([]);
  });

  it("performs the configured selection and reports per-device results with valid keys", async () => {
    const facts = richHost();
    const k = kernelFor(facts);
    const reply = await rebindAction(input({}, facts, k));
    expect(reply.ok).toBe(true);
    const devices = reply.results.devices as Record<string, Record<string, string>>;
    expect(devices["0000-84-00-0"]).toMatchObject({
      address: "0000:84:00.0",
      before: "nouveau",
      after: "vfio-pci",
      status: "moved",
      ok: "yes",
    });
    expect(invalidResultKeys(reply.results)).toEqual([]);
  });

  it("a second run is a no-op that says so", async () => {
    const facts = richHost();
    for (const f of facts.functions) if (f.iommuGroup === 61) f.driver = "vfio-pci";
    const k = kernelFor(facts);
    const reply = await rebindAction(input({}, facts, k));
    expect(reply.ok).toBe(true);
    expect(reply.message).toBe("every device is already where asked; nothing was changed");
    expect(k.writes).toEqual([]);
  });

  it("a refusal fails the action, changes nothing, and lists the refusals in the results", async () => {
    const facts = richHost();
    const k = kernelFor(facts);
    const usage: HostUsage = new Map([["0000:84:00.0", ["console framebuffer fb0"]]]);
    const reply = await rebindAction(input({}, facts, k, usage));
    expect(reply.ok).toBe(false);
    expect(reply.message).toContain("0000:84:00.0: console framebuffer fb0");
    expect(k.writes).toEqual([]);
    expect(invalidResultKeys(reply.results)).toEqual([]);
  });
});
