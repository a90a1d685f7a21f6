// What the reboot will bring, said before it (issue 24 part 4): while the IOMMU is off the kernel
// has no groups, so the charm predicts them from config space the way pci_device_group does, and
// refuses before the reboot what the predicted group makes unsafe. The X550 workstation of the
// issue: two functions of one device, no ACS, the host's network on function 0.
import { describe, expect, it } from "vitest";
import { listDevices } from "../../src/actions/list-devices";
import type { ResultTree } from "../../src/actions/results";
import { verifyIommu } from "../../src/actions/verify-iommu";
import { parseIsolation } from "../../src/host/pci-config";
import { OWNED } from "../../src/host/root";
import { predictIommuGroups } from "../../src/plan/iommu-groups";
import { fn, host } from "../support/host-facts";
import type { HostSpec } from "../support/hosts/build-host";
import { useTempHosts } from "../support/hosts/use-temp-hosts";
import { rootPortConfig, x550Config, x550WorkstationHost } from "../support/hosts/x550-workstation";
import { acsCapability, configSpace, PCIE_TYPE, pcieCapability } from "../support/pci-config-space";
import { planOnTree } from "../support/plan-on-tree";
import { onlyWithheld } from "../support/withheld";

const tempHost = useTempHosts();
const planOn = (spec: HostSpec, devices: string) => planOnTree(tempHost(spec).root, { devices });

/** list-devices on a planned tree, as the action runs it (the plan's selection and withheld). */
function listOn(p: ReturnType<typeof planOn>): Record<string, ResultTree> {
  const { results } = listDevices({
    params: { classPrefixes: null, vendor: null, selectedOnly: false, eachVf: false },
    facts: p.facts,
    usage: p.usage,
    modules: null,
    names: null,
    selection: p.plan.bind,
    withheld: p.plan.withheld,
  });
  return results.devices as Record<string, ResultTree>;
}

describe("config space: the three facts the kernel groups by", () => {
  it("the X550: multi-function endpoint, no ACS; with ACS at [1d0] it is found", () => {
    expect(parseIsolation(x550Config(false))).toEqual({
      multifunction: true,
      pcieType: PCIE_TYPE.endpoint,
      acsCapability: null,
      acsControl: null,
    });
    expect(parseIsolation(x550Config(true))?.acsCapability).toBe(0x001f);
  });

  it("a root port with ACS: its type and its capability register", () => {
    expect(parseIsolation(rootPortConfig(true))).toEqual({
      multifunction: false,
      pcieType: PCIE_TYPE.rootPort,
      acsCapability: 0x005f,
      acsControl: 0,
    });
  });

  it("64 bytes (what a reader that is not root gets) say nothing; 256 bytes of PCIe: no ACS", () => {
    expect(parseIsolation(x550Config(true).slice(0, 64))).toBeNull();
    const noExtended = configSpace({
      vendor: 0x8086,
      device: 0x1563,
      classCode: 0x020000,
      capabilities: [pcieCapability(0x40, PCIE_TYPE.endpoint)],
      extended: [],
      size: 256,
    });
    expect(parseIsolation(noExtended)).toMatchObject({ pcieType: 0, acsCapability: null });
  });

  it("a capability loop or a bad pointer ends the walk (no hang)", () => {
    const looping = configSpace({
      vendor: 0x8086,
      device: 0x1563,
      classCode: 0x020000,
      capabilities: [{ at: 0x40, id: 0x01 }],
      extended: [{ at: 0x100, id: 0x0001 }],
    });
    looping[0x41] = 0x40; // next → itself
    looping[0x102] = 0x00;
    looping[0x103] = 0x10; // next extended → 0x100 itself
    expect(parseIsolation(looping)).toEqual({
      multifunction: false,
      pcieType: null,
      acsCapability: null,
      acsControl: null,
    });
    const acsAfterLoop = configSpace({
      vendor: 1,
      device: 2,
      classCode: 0x020000,
      capabilities: [pcieCapability(0x40, 0)],
      extended: [acsCapability(0x100)],
    });
    expect(parseIsolation(acsAfterLoop)?.acsCapability).toBe(0x1f);
  });
});

describe("where the kernel enables ACS late, only what is enabled now isolates", () => {
  // x86 asks for ACS before the bus scan; an arm64 device-tree host asks after it, so a port's ACS
  // stays as firmware left it (seen in the arm64 VM tier: QEMU's root port joins its card's group).
  const port = (acsControl: number) =>
    fn("0000:00:01.0", "1b36:000c", "060400", {
      upstream: null,
      isolation: { multifunction: false, pcieType: 4, acsCapability: 0x1f, acsControl },
    });
  const card = fn("0000:01:00.0", "8086:10d3", "020000", {
    upstream: "0000:00:01.0",
    isolation: { multifunction: false, pcieType: 0, acsCapability: null, acsControl: null },
  });
  const membersOf = (arch: "x86" | "arm64", control: number) =>
    predictIommuGroups(host([port(control), card], { arch }))!.get("0000:01:00.0")!.members;

  it("x86: the capability is enough (the kernel enables it at boot)", () => {
    expect(membersOf("x86", 0)).toEqual(["0000:01:00.0"]);
  });

  it("arm64: a port whose ACS controls are off merges its card; enabled ones isolate it", () => {
    expect(membersOf("arm64", 0)).toEqual(["0000:00:01.0", "0000:01:00.0"]);
    expect(membersOf("arm64", 0x1d)).toEqual(["0000:01:00.0"]);
  });
});

describe("a function other than 0 is multi-function whatever its header says", () => {
  // Seen in the VM tier: QEMU sets the header's multi-function bit on function 0 only, and the
  // kernel (pci_scan_slot) marks every function after 0 multi-function anyway: both share a group.
  it("function 1 without the header bit still shares function 0's group when neither has ACS", () => {
    const card = (address: string, multifunction: boolean) =>
      fn(address, "8086:10d3", "020000", {
        upstream: null,
        isolation: { multifunction, pcieType: 0, acsCapability: null, acsControl: null },
      });
    const groups = predictIommuGroups(
      host([card("0000:02:00.0", true), card("0000:02:00.1", false)], { arch: "x86" }),
    )!;
    expect(groups.get("0000:02:00.1")!.members).toEqual(["0000:02:00.0", "0000:02:00.1"]);
  });
});

describe("the one ACS quirk modelled: Intel's root-complex integrated endpoints", () => {
  const rc = (address: string, vendor: string) =>
    fn(address, `${vendor}:10d3`, "020000", {
      upstream: null,
      isolation: { multifunction: true, pcieType: 9, acsCapability: null, acsControl: null },
    });
  const membersOf = (vendor: string) =>
    predictIommuGroups(host([rc("0000:00:0d.0", vendor), rc("0000:00:0d.1", vendor)]))!.get(
      "0000:00:0d.0",
    )!.members;

  it("Intel: each function isolated (pci_quirk_rciep_acs), as QEMU's root-bus e1000e shows", () => {
    expect(membersOf("8086")).toEqual(["0000:00:0d.0"]);
  });

  it("another vendor's two-function RCiEP without ACS: one group", () => {
    expect(membersOf("1af4")).toEqual(["0000:00:0d.0", "0000:00:0d.1"]);
  });
});

describe("the X550 workstation, IOMMU still off: refused before any reboot", () => {
  it("port 1 is withheld: after the reboot its group holds port 0, the host's network", () => {
    const { plan, status, file, facts } = planOn(x550WorkstationHost(), "0000:18:00.1");
    expect(facts.iommuGroups.size).toBe(0);
    const groups = predictIommuGroups(facts)!;
    expect(groups.get("0000:18:00.1")!.members).toEqual(["0000:18:00.0", "0000:18:00.1"]);
    expect(groups.get("0000:17:00.0")!.members).toEqual(["0000:17:00.0"]);

    expect(plan.bind).toEqual([]);
    const why = onlyWithheld(plan, "0000:18:00.1", true);
    expect(why).toContain("once the IOMMU is on (after the reboot) its IOMMU group will also hold");
    expect(why).toContain("0000:18:00.0 (network interface eno1 is up");
    expect(why).toContain("predicted before the reboot from config space");
    expect(why).toContain(
      "0000:18:00.0, 0000:18:00.1 are functions of one device (0000:18:00) without ACS",
    );
    // Nothing binds it at boot: no udev rule, no early-binding id, no blacklisted ixgbe.
    expect(file(OWNED.udevRule)).not.toContain("0000:18:00.1");
    expect(plan.blacklist).not.toContain("ixgbe");
    // The status says it now, before the reboot, with the reason and the way to override.
    expect(status.name).toBe("blocked");
    expect(status.message).toContain("0000:18:00.1");
    expect(status.message).toContain("without ACS");
    expect(status.message).toContain("after the reboot");
  });

  it("port 0 free: port 1 is bound, and the note says its group after the reboot holds port 0", () => {
    const { plan } = planOn(x550WorkstationHost({ port0Free: true }), "0000:18:00.1");
    expect(plan.bind.map((d) => d.address)).toEqual(["0000:18:00.1"]);
    const note =
      "after the reboot (IOMMU on, groups predicted from config space) 0000:18:00.1's will also hold 0000:18:00.0, kept by the host: not usable by VMs until selected too";
    expect(plan.notes).toContain(note);
  });

  it("the same NIC with ACS on its functions: port 1 gets a group of its own and is bound", () => {
    const { plan, facts } = planOn(x550WorkstationHost({ nicAcs: true }), "0000:18:00.1");
    expect(predictIommuGroups(facts)!.get("0000:18:00.1")!.members).toEqual(["0000:18:00.1"]);
    expect(plan.bind.map((d) => d.address)).toEqual(["0000:18:00.1"]);
    expect(plan.withheld).toEqual([]);
  });

  it("ACS on the NIC does not help below a root port without it: the port names the reason", () => {
    const { plan, facts } = planOn(
      x550WorkstationHost({ nicAcs: true, rootPortWithoutAcs: true }),
      "0000:18:00.1",
    );
    expect(predictIommuGroups(facts)!.get("0000:18:00.1")!.members).toEqual([
      "0000:17:00.0",
      "0000:18:00.0",
      "0000:18:00.1",
    ]);
    expect(plan.bind).toEqual([]);
    expect(plan.withheld[0]!.reasons.join("; ")).toContain(
      "below 0000:17:00.0 everything shares its group: 0000:17:00.0 has no ACS",
    );
  });

  it("the prediction matches the groups the kernel makes after the reboot (the same host, IOMMU on)", () => {
    for (const options of [{}, { nicAcs: true }, { nicAcs: true, rootPortWithoutAcs: true }]) {
      const before = planOn(x550WorkstationHost(options), "0000:18:00.1").facts;
      const after = planOn(
        x550WorkstationHost({ ...options, iommuOn: true }),
        "0000:18:00.1",
      ).facts;
      const predicted = predictIommuGroups(before)!;
      const real = [...after.iommuGroups.values()].map((m) => m.join(" ")).sort();
      const fromPrediction = [...new Set([...predicted.values()].map((g) => g.members.join(" ")))];
      expect(fromPrediction.sort()).toEqual(real);
    }
  });

  it("with the IOMMU on the kernel's groups are the truth: no prediction is made", () => {
    const { facts } = planOn(x550WorkstationHost({ iommuOn: true }), "0000:18:00.1");
    expect(predictIommuGroups(facts)).toBeNull();
    expect(facts.functions.every((f) => f.isolation === undefined)).toBe(true);
  });
});

describe("after the reboot: the truth about each function", () => {
  // The bug: an older plan bound port 1 at boot; after the reboot its group holds port 0,
  // the plan withholds port 1 and removes its rule, and the status said "not bound, its drivers
  // not blacklisted" while it sat on vfio-pci, with no word of what returns it.
  const afterReboot = () =>
    planOn(x550WorkstationHost({ iommuOn: true, port1Driver: "vfio-pci" }), "0000:18:00.1");

  it("the status says it is on vfio-pci, that the plan keeps it, and what returns it", () => {
    const { plan, status, file } = afterReboot();
    expect(plan.bind).toEqual([]);
    expect(plan.withheld[0]).toMatchObject({ address: "0000:18:00.1", driver: "vfio-pci" });
    expect(plan.withheld[0]!.reasons.join("; ")).toContain(
      "its IOMMU group 3 also holds 0000:18:00.0",
    );
    expect(file(OWNED.udevRule)).not.toContain("0000:18:00.1");
    expect(status.name).toBe("blocked");
    expect(status.message).not.toContain("not bound");
    expect(status.message).toContain(
      "kept for the host but still on vfio-pci (bound at an earlier boot): 0000:18:00.1",
    );
    expect(status.message).toContain("the next reboot returns it to the host driver");
    expect(status.message).toContain('run the rebind action with devices="0000:18:00.1" to=host');
  });

  it("verify-iommu says the same", () => {
    const p = afterReboot();
    const result = verifyIommu({
      facts: p.facts,
      plannedCmdline: p.plan.kernelParams,
      selection: p.plan.bind,
      withheld: p.plan.withheld,
      usage: p.usage,
      interruptRemapping: { state: "enabled", evidence: "test" },
    });
    const said = JSON.stringify(result.results);
    expect(said).not.toContain("not bound");
    expect(said).toContain("still on vfio-pci");
    expect(said).toContain("to=host");
  });

  it("list-devices says where it is, where the plan wants it and what moves it", () => {
    const rows = listOn(afterReboot());
    const port1 = rows["0000-18-00-1"]!;
    expect(port1.driver).toBe("vfio-pci");
    expect(port1.selected).toBe("no");
    expect(port1["kept-for-host"]).toContain("its IOMMU group 3 also holds 0000:18:00.0");
    expect(port1.next).toContain("on vfio-pci now (bound at an earlier boot)");
    expect(port1.next).toContain("the next reboot returns it to the host driver");
    expect(port1.next).toContain("devices=0000:18:00.1 to=host");
    expect(JSON.stringify(rows)).not.toContain("not bound");
  });

  it("a function on vfio-pci that nothing selects is said as such, with what returns it", () => {
    const rows = listOn(
      planOn(x550WorkstationHost({ iommuOn: true, port1Driver: "vfio-pci" }), "0000:00:17.0"),
    );
    expect(rows["0000-18-00-1"]!.next).toBe(
      "on vfio-pci now but the devices option does not select it: the charm does not bind it at boot; to return it to the host now run the rebind action with devices=0000:18:00.1 to=host",
    );
  });

  it("before the reboot list-devices shows the group each function will have", () => {
    const rows = listOn(planOn(x550WorkstationHost(), "0000:18:00.1"));
    expect(rows["0000-18-00-1"]!["iommu-group-after-reboot"]).toMatch(
      /^shared with 0000:18:00\.0 \(predicted from config space: .*without ACS\)$/,
    );
    expect(rows["0000-17-00-0"]!["iommu-group-after-reboot"]).toBe(
      "its own (predicted from config space)",
    );
    const bound = listOn(planOn(x550WorkstationHost({ nicAcs: true }), "0000:18:00.1"));
    expect(bound["0000-18-00-1"]!.next).toContain("the charm binds it at the next boot");
  });
});
