// The one safety judgement (src/plan/host-safety.ts) as the boot plan, verify-iommu and rebind use
// it, on sysfs-shaped host trees read by the real readers: what the host uses is withheld (never
// bound, its drivers never blacklisted) whoever selects it, `force: true` is per entry, a chipset
// group is refused with every member named, and companions are the card's own functions only.
import { describe, expect, it } from "vitest";
import { planRebind } from "../../src/actions/rebind-plan";
import { verifyIommu } from "../../src/actions/verify-iommu";
import type { HostUsage } from "../../src/host/facts";
import { OWNED } from "../../src/host/root";
import { hostSafety } from "../../src/plan/host-safety";
import { selectFunctions } from "../../src/plan/select";
import { fn, host, netPf, netVf, sel } from "../support/host-facts";
import type { HostSpec } from "../support/hosts/build-host";
import {
  amdHost,
  laptopHost,
  qemuQ35Host,
  seedHost,
  sharedGroupHost,
} from "../support/hosts/presets";
import { useTempHosts } from "../support/hosts/use-temp-hosts";
import { type PlannedTree, planOnTree } from "../support/plan-on-tree";
import { onlyWithheld } from "../support/withheld";

const tempHost = useTempHosts();

/** Reads a built host the way a hook does and plans `devices` on it. */
function planOn(spec: HostSpec, devices: string) {
  return planOnTree(tempHost(spec).root, { devices });
}

const addresses = (list: Array<{ address: string }>) => list.map((d) => d.address);

/** verify-iommu on what a plan bound and withheld (interrupt remapping on, the command line aside). */
function verifyPlanned(p: PlannedTree) {
  return verifyIommu({
    facts: p.facts,
    plannedCmdline: [],
    selection: p.plan.bind,
    withheld: p.plan.withheld,
    usage: p.usage,
    interruptRemapping: { state: "enabled", evidence: "test" },
  });
}

describe("hooks keep what the host uses", () => {
  it("two identical E810 ports by ids: the management port is kept, its driver not blacklisted", () => {
    const { plan, status, file } = planOn(seedHost(), "8086:1593");
    expect(addresses(plan.bind)).toEqual(["0000:18:00.1"]);
    const why = onlyWithheld(plan, "0000:18:00.0", true);
    expect(why).toContain("network interface eno1 is up");
    expect(why).toContain("has addresses 10.0.0.5");
    expect(why).toMatch(/carries \d+ routes?/);
    expect(plan.blacklist).not.toContain("ice");
    expect(file(OWNED.grubDropIn)).not.toMatch(/blacklist=[^ "]*ice/);
    expect(file(OWNED.udevRule)).toContain('KERNEL=="0000:18:00.1"');
    expect(file(OWNED.udevRule)).not.toContain("0000:18:00.0");
    // The status names the function, why, and the per-entry override.
    expect(status.message).toContain("kept for the host");
    expect(status.message).toContain("0000:18:00.0");
    expect(status.message).toContain("eno1 is up");
    expect(status.message).toContain("{address: 0000:18:00.0, force: true}");
  });

  it("selecting the management port by its address is no exemption", () => {
    const { plan, status } = planOn(seedHost(), "0000:18:00.0");
    expect(plan.bind).toEqual([]);
    expect(addresses(plan.withheld)).toEqual(["0000:18:00.0"]);
    expect(plan.files.map((f) => f.path)).not.toContain(OWNED.udevRule);
    expect(status.name).toBe("blocked");
    expect(status.message).toContain("0000:18:00.0");
  });

  it("force: true on one entry takes that entry's function, and only that one", () => {
    const forced = planOn(
      seedHost(),
      '- "8086:1593"\n- {address: "0000:18:00.0", force: true}\n- "0000:00:1f.2"\n',
    );
    expect(addresses(forced.plan.bind)).toEqual(["0000:18:00.0", "0000:18:00.1"]);
    // The root disk's controller (another entry, no force) stays with the host.
    expect(addresses(forced.plan.withheld)).toEqual(["0000:00:1f.2"]);
    expect(forced.plan.withheld[0]!.reasons.join(" ")).toMatch(/disk controller for \/ /);
  });

  it("an NVMe behind / (through LVM) and swap is kept when selected by ids", () => {
    const { plan } = planOn(amdHost(), "144d:a808");
    expect(plan.bind).toEqual([]);
    const why = plan.withheld[0]!.reasons.join("; ");
    expect(why).toContain("disk controller for / (vg0-root mounted, on nvme0n1p3)");
    expect(why).toContain("swap on nvme0n1p2");
  });

  it("the boot VGA is kept, its identical twins go (by ids)", () => {
    const { plan } = planOn(qemuQ35Host(), "1234:1111");
    expect(addresses(plan.bind)).toEqual(["0000:00:05.0", "0000:00:06.0"]);
    expect(addresses(plan.withheld)).toEqual(["0000:00:01.0"]);
    expect(plan.withheld[0]!.reasons.join("; ")).toMatch(/boot VGA.*console framebuffer fb0/);
    expect(plan.blacklist).not.toContain("bochs");
  });

  it("a member of a group with a function the host uses is kept (the VM would take the group)", () => {
    const { plan, status } = planOn(sharedGroupHost(), "0000:01:01.0");
    expect(plan.bind).toEqual([]);
    expect(plan.withheld[0]).toMatchObject({ address: "0000:01:01.0", forceable: true });
    expect(plan.withheld[0]!.reasons[0]).toMatch(
      /its IOMMU group 5 also holds 0000:01:02\.0 \(network interface eth1 is up; .*10\.10\.0\.2/,
    );
    expect(status.name).toBe("blocked");
  });

  it("a PF whose VF carries the host's network is kept", () => {
    const facts = host([
      netPf("0000:41:00.0", "8086:1572", "i40e", 31, { numVfs: 0, totalVfs: 64 }),
      netVf("0000:41:02.0", "8086:154c", "iavf", 60, "0000:41:00.0"),
    ]);
    const usage: HostUsage = new Map([
      ["0000:41:02.0", ["network interface enp65s0f0v0 has addresses 10.1.0.2"]],
    ]);
    const s = selectFunctions([sel({ address: "0000:41:00.0", source: "x" })], facts, usage);
    expect(s.bind).toEqual([]);
    expect(s.withheld[0]!.reasons).toEqual([
      "its VF 0000:41:02.0 is in use (network interface enp65s0f0v0 has addresses 10.1.0.2)",
    ]);
  });
});

describe("the judgement's answers", () => {
  it("shares one frozen empty answer among the functions the host does not use", () => {
    // Asked for each of 10,000 VFs, so no list is made per function; frozen, so that a caller
    // adding a reason to one function's answer throws instead of giving it to all of them.
    const facts = host([
      fn("0000:3b:00.2", "15b3:1018", "020000", { iommuGroup: 1 }),
      fn("0000:3b:00.3", "15b3:1018", "020000", { iommuGroup: 2 }),
      fn("0000:3b:00.4", "15b3:1018", "020000", { iommuGroup: 3 }),
    ]);
    const usage: HostUsage = new Map([["0000:3b:00.4", ["network interface eno1 is up"]]]);
    const safety = hostSafety(facts, usage);
    const [a, b, used] = facts.functions.map((f) => safety.uses(f));
    expect(a).toEqual([]);
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
    expect(used).toEqual(["network interface eno1 is up"]);
    expect(used).not.toBe(usage.get("0000:3b:00.4"));
  });
});

describe("group safety: chipset functions never follow, their groups are refused", () => {
  const LAPTOP_GROUP = [
    "0000:00:1f.0 (ISA/LPC bridge)",
    "0000:00:1f.4 (SMBus controller)",
    "0000:00:1f.5 (in the chipset's slot)",
  ];

  it("the i7-1270P's HDA audio shares group 13 with the ISA bridge, SMBus and SPI flash: refused", () => {
    const { plan, status, file } = planOn(laptopHost(), "8086:51c8");
    expect(plan.bind).toEqual([]);
    expect(file(OWNED.udevRule)).toBe("");
    expect(plan.blacklist).toEqual([]);
    onlyWithheld(plan, "0000:00:1f.3", false);
    const first = plan.withheld[0]!.reasons[0];
    expect(first).toContain("its IOMMU group 13 also holds");
    for (const member of LAPTOP_GROUP) expect(first).toContain(member);
    expect(status.name).toBe("blocked");
    expect(status.message).toMatch(/^refused: 0000:00:1f\.3/);
    expect(status.message).toContain("no override exists");
    for (const member of LAPTOP_GROUP) expect(status.message).toContain(member);
  });

  it("force: true does not lift it", () => {
    const { plan } = planOn(laptopHost(), '- {address: "0000:00:1f.3", force: true}');
    expect(plan.bind).toEqual([]);
    expect(plan.withheld[0]!.forceable).toBe(false);
  });

  it("with the IOMMU still off (first install) the predicted group (the chipset slot, no ACS) is refused", () => {
    const spec = laptopHost();
    spec.pci = spec.pci!.map((p) => ({ ...p, iommuGroup: null }));
    spec.iommuUnits = [];
    const { plan } = planOn(spec, "0000:00:1f.3");
    expect(plan.bind).toEqual([]);
    expect(plan.withheld[0]!.reasons[0]).toMatch(
      /its IOMMU group will also hold .*0000:00:1f\.0 \(ISA/,
    );
  });

  it("the PCH's shared SRAM (class 0500) is the chipset's: never a companion of the USB controller", () => {
    const { plan } = planOn(laptopHost(), "8086:51ed");
    expect(plan.bind).toEqual([]);
    expect(plan.withheld[0]).toMatchObject({ address: "0000:00:14.0", forceable: false });
    expect(plan.withheld[0]!.reasons[0]).toContain(
      "its IOMMU group 6 also holds 0000:00:14.2 (RAM memory (the chipset's shared SRAM))",
    );
  });

  it("with the IOMMU on, a selected function in no group is refused, and is no companion", () => {
    const card = (f: string, cls: string, group: number | null) =>
      fn(`0000:05:00.${f}`, `10de:1e8${f}`, cls, { iommuGroup: group, driver: "x" });
    const facts = host([card("0", "030000", 7), card("1", "040300", null)]);
    const both = selectFunctions([sel({ address: "0000:05:00.*", source: "a" })], facts);
    expect(both.bind.map((b) => b.address)).toEqual(["0000:05:00.0"]);
    expect(both.withheld).toMatchObject([{ address: "0000:05:00.1", forceable: false }]);
    expect(both.withheld[0]!.reasons[0]).toMatch(/^it has no IOMMU group although the IOMMU is on/);
    // Selecting the GPU alone: the audio with no group does not follow it.
    const gpu = selectFunctions([sel({ address: "0000:05:00.0", source: "g" })], facts);
    expect(gpu.bind.map((b) => [b.address, b.reason])).toEqual([["0000:05:00.0", "selected"]]);
    // force cannot make vfio-pci take it.
    const forced = selectFunctions(
      [sel({ address: "0000:05:00.1", force: true, source: "f" })],
      facts,
    );
    expect(forced.bind).toEqual([]);
    // With the IOMMU still off (no group anywhere) the plan binds for after the reboot.
    const off = host([card("0", "030000", null), card("1", "040300", null)], { iommuUnits: [] });
    const before = selectFunctions([sel({ address: "0000:05:00.*", source: "a" })], off);
    expect(before.bind.map((b) => b.address)).toEqual(["0000:05:00.0", "0000:05:00.1"]);
  });

  it("selecting a chipset function itself is refused", () => {
    const { plan } = planOn(laptopHost(), "0000:00:1f.4");
    expect(plan.bind).toEqual([]);
    expect(plan.withheld[0]).toMatchObject({ address: "0000:00:1f.4", forceable: false });
    expect(plan.withheld[0]!.reasons[0]).toContain("SMBus controller");
  });

  it("companions are the card's own functions: a GPU's audio, USB-C and UCSI, never a chipset one", () => {
    const gpu = (f: string, ids: string, cls: string) =>
      fn(`0000:01:00.${f}`, ids, cls, { iommuGroup: 12, driver: "x" });
    const facts = host([
      gpu("0", "10de:1e87", "030000"),
      gpu("1", "10de:10f8", "040300"),
      gpu("2", "10de:1ad8", "0c0330"),
      gpu("3", "10de:1ad9", "0c8000"),
      // A (made-up) SMBus function in the card's slot and group would still not follow it.
      gpu("4", "10de:0aa2", "0c0500"),
    ]);
    const s = selectFunctions([sel({ vendorId: "10de", productId: "1e87", source: "g" })], facts);
    expect(s.bind.map((b) => [b.address, b.reason])).toEqual([]);
    expect(s.withheld[0]!.reasons[0]).toContain("0000:01:00.4 (SMBus controller)");
    const clean = host(facts.functions.filter((f) => !f.address.endsWith(".4")));
    const ok = selectFunctions([sel({ vendorId: "10de", productId: "1e87", source: "g" })], clean);
    expect(ok.bind.map((b) => [b.address, b.reason])).toEqual([
      ["0000:01:00.0", "selected"],
      ["0000:01:00.1", "companion"],
      ["0000:01:00.2", "companion"],
      ["0000:01:00.3", "companion"],
    ]);
  });
});

describe("actions give the same judgement", () => {
  it("verify-iommu never says 'select them too' for a chipset group, nor for selected functions", () => {
    const { facts, usage } = planOn(laptopHost(), "");
    // As an older charm would have left it: the audio selected (and on vfio-pci) alone.
    const r = verifyIommu({
      facts,
      plannedCmdline: [],
      selection: [
        {
          address: "0000:00:1f.3",
          vendorId: "8086",
          deviceId: "51c8",
          classCode: "040380",
          alias: "audio",
          deviceType: "type-PCI",
          numaPolicy: null,
          reason: "selected",
          follows: null,
        },
      ],
      usage,
      interruptRemapping: { state: "enabled", evidence: "test" },
    });
    const viability = r.problems.find((p) => p.check === "viability")!.message;
    expect(viability).toContain("IOMMU group 13 is not viable");
    expect(viability).toContain(
      "chipset functions the host keeps, so the group can never be viable",
    );
    expect(viability).toContain("0000:00:1f.4 on i801_smbus");
    expect(viability).not.toMatch(/select (them|it) too/);
  });

  it("verify-iommu reports what the plan withheld: a refusal fails, a kept function is a note", () => {
    const laptop = planOn(laptopHost(), "8086:51c8");
    const refused = verifyPlanned(laptop);
    expect(refused.ok).toBe(false);
    expect(refused.message).toContain("refused: 0000:00:1f.3");

    const seed = planOn(seedHost(), "8086:1593");
    const kept = verifyPlanned(seed);
    expect(kept.notes.join("\n")).toContain("kept for the host");
    expect(kept.notes.join("\n")).toContain("0000:18:00.0");
  });

  it("rebind refuses to move a chipset function, force or not", () => {
    const { facts, usage } = planOn(laptopHost(), "");
    const r = planRebind({
      params: {
        devices: [{ kind: "address", address: "0000:00:1f.3", source: "1f.3" }],
        to: "vfio-pci",
        dryRun: true,
        force: true,
      },
      facts,
      usage,
      selection: [],
    });
    expect(r.kind).toBe("refusal");
    if (r.kind !== "refusal") return;
    const chipset = r.refusals.filter((x) => /chipset/.test(x.reason));
    expect(chipset.map((x) => x.device)).toEqual(["0000:00:1f.3", "0000:00:1f.4", "0000:00:1f.5"]);
    expect(chipset.every((x) => !x.forceable)).toBe(true);
  });
});
