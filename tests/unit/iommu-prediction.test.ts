// What the reboot will bring, said before it (issue 24 part 4): while the IOMMU is off the kernel
// has no groups, so the charm predicts them from config space the way pci_device_group does, and
// refuses before the reboot what the predicted group makes unsafe. The X550 workstation of the
// issue: two functions of one device, no ACS, the host's network on function 0.
import { describe, expect, it } from "vitest";
import { parseIsolation } from "../../src/host/pci-config";
import { OWNED } from "../../src/host/root";
import { predictIommuGroups } from "../../src/plan/iommu-groups";
import type { HostSpec } from "../support/hosts/build-host";
import { useTempHosts } from "../support/hosts/use-temp-hosts";
import { rootPortConfig, x550Config, x550WorkstationHost } from "../support/hosts/x550-workstation";
import { acsCapability, configSpace, PCIE_TYPE, pcieCapability } from "../support/pci-config-space";
import { planOnTree } from "../support/plan-on-tree";

const tempHost = useTempHosts();
const planOn = (spec: HostSpec, devices: string) => planOnTree(tempHost(spec).root, { devices });

describe("config space: the three facts the kernel groups by", () => {
  it("the X550: multi-function endpoint, no ACS; with ACS at [1d0] it is found", () => {
    expect(parseIsolation(x550Config(false))).toEqual({
      multifunction: true,
      pcieType: PCIE_TYPE.endpoint,
      acsCapability: null,
    });
    expect(parseIsolation(x550Config(true))?.acsCapability).toBe(0x001f);
  });

  it("a root port with ACS: its type and its capability register", () => {
    expect(parseIsolation(rootPortConfig(true))).toEqual({
      multifunction: false,
      pcieType: PCIE_TYPE.rootPort,
      acsCapability: 0x005f,
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

describe("the X550 workstation, IOMMU still off: refused before any reboot", () => {
  it("port 1 is withheld: after the reboot its group holds port 0, the host's network", () => {
    const { plan, status, file, facts } = planOn(x550WorkstationHost(), "0000:18:00.1");
    expect(facts.iommuGroups.size).toBe(0);
    const groups = predictIommuGroups(facts)!;
    expect(groups.get("0000:18:00.1")!.members).toEqual(["0000:18:00.0", "0000:18:00.1"]);
    expect(groups.get("0000:17:00.0")!.members).toEqual(["0000:17:00.0"]);

    expect(plan.bind).toEqual([]);
    expect(plan.withheld).toHaveLength(1);
    const kept = plan.withheld[0]!;
    expect(kept).toMatchObject({ address: "0000:18:00.1", forceable: true });
    const why = kept.reasons.join("; ");
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
