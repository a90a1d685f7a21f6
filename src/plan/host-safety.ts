// The one safety judgement: what the host would lose if a function left its driver, and what an
// IOMMU group would drag along. Written once, used by the boot plan (select.ts), the rebind action
// and verify-iommu alike, so a hook never binds at boot what an action would refuse to move.
// Pure: host facts and host usage (host/usage.ts) in, reasons in operator words out.
import type { HostFacts, HostUsage, PciFunction } from "../host/facts";
import { compareAddresses, slotOf } from "../pci-vocabulary";
import {
  groupMates,
  predictedGroupMates,
  predictIommuGroups,
  slotIndex,
  vfIndex,
} from "./iommu-groups";

/** Chipset functions by class: they serve the whole machine, never belong to a card, and a group
 * holding one can never go to a VM (the host would lose its LPC bus, flash or SMBus). RAM memory
 * (0500) is the PCH's shared SRAM (Intel 8086:51ef beside the xHCI at 00:14.2): it shares the USB
 * controller's slot and group on real laptops, but it is the chipset's (its power-management
 * controller keeps telemetry there), not a function of any card. */
const CHIPSET_CLASSES: Record<string, string> = {
  "0500": "RAM memory (the chipset's shared SRAM)",
  "0600": "host bridge",
  "0601": "ISA/LPC bridge",
  "0c05": "SMBus controller",
};

/** "ISA/LPC bridge" for a chipset function, null for anything a card can carry. */
export function chipsetRole(fn: Pick<PciFunction, "classCode">): string | null {
  return CHIPSET_CLASSES[fn.classCode.slice(0, 4)] ?? null;
}

/** Why a function with no IOMMU group is refused while the IOMMU is on (hooks and rebind). */
export const NO_GROUP_WITH_IOMMU_ON =
  "it has no IOMMU group although the IOMMU is on: vfio-pci cannot take a function without one " +
  "(at boot it would be left with no driver at all), and no reboot or override changes that; " +
  "a kernel or firmware limit (seen behind a PCIe-to-PCI bridge under SMMUv3): try a newer " +
  "kernel or another slot";

/** A group (or slot) member that keeps a function from being given to VMs. */
export interface GroupHazard {
  fn: PciFunction;
  /** `chipset`: no override can make the group viable; `host-use`: `force` can take it. */
  kind: "chipset" | "host-use";
  /** Operator words: "ISA/LPC bridge", or the host's uses of it. */
  why: readonly string[];
}

/** The safety judgement on one host, built once per hook or action. */
export interface HostSafety {
  /** Why the host would lose something if this function left its driver (empty: nothing). */
  uses(fn: PciFunction): readonly string[];
  /** What the host does through this PF's VFs (empty: nothing): a change of the PF's number of
   * VFs destroys them all, so such a PF is in use for SR-IOV planning (plan/sriov.ts). */
  vfUses(fn: PciFunction): string[];
  /** The other members of `fn`'s IOMMU group that the host keeps: chipset functions and functions
   * it uses. While the IOMMU is off (no groups yet) the group the kernel will make is predicted
   * from config space (plan/iommu-groups.ts); facts read without config space fall back to a
   * chipset slot taken as one group (chipset slots have no ACS). */
  groupHazards(fn: PciFunction): GroupHazard[];
  /** The other members of `fn`'s IOMMU group (none without a group) that the host uses, each
   * with its uses: what a VM taking the group would take from the host. */
  groupMatesInUse(fn: PciFunction): Array<{ mate: PciFunction; uses: readonly string[] }>;
}

/** The answer for a function the host does not use, nearly every one of them: one shared list,
 * frozen so that no caller can add to it, instead of a new empty one per function. */
const UNUSED: readonly string[] = Object.freeze([]);

/** Builds the judgement for these facts and this usage. */
export function hostSafety(facts: HostFacts, usage: HostUsage): HostSafety {
  // Built per hook or action and asked about every selected function (10,000 VFs): the indexes
  // are the facts' own (memoised), and a function the host does not use costs no allocation.
  // Built on first use: only a function that is not itself a VF can have VFs.
  let vfsOf: Map<string, PciFunction[]> | null = null;

  const direct = (fn: PciFunction): readonly string[] => {
    const used = usage.get(fn.address);
    if (used === undefined && !fn.bootVga) return UNUSED;
    const reasons = used === undefined ? [] : [...used];
    if (fn.bootVga && !reasons.some((r) => /boot vga|console|framebuffer/i.test(r))) {
      reasons.push("it is the boot VGA device (the host's console)");
    }
    return reasons;
  };

  const vfUses = (fn: PciFunction): string[] => {
    const reasons: string[] = [];
    if (fn.physfn !== null) return reasons;
    vfsOf ??= vfIndex(facts);
    const vfs = vfsOf.get(fn.address);
    if (vfs === undefined) return reasons;
    for (const vf of vfs) {
      const used = direct(vf);
      if (used.length > 0) reasons.push(`its VF ${vf.address} is in use (${used.join("; ")})`);
    }
    return reasons;
  };

  // A PF's VFs die with its driver: whatever the host does through a VF, it does through the PF.
  const uses = (fn: PciFunction): readonly string[] => {
    const own = direct(fn);
    if (fn.physfn !== null) return own;
    const through = vfUses(fn);
    return through.length === 0 ? own : [...own, ...through];
  };

  const groupHazards = (fn: PciFunction): GroupHazard[] => {
    const hazards: GroupHazard[] = [];
    let mates: PciFunction[];
    let chipsetOnly = false;
    if (fn.iommuGroup !== null) {
      mates = groupMates(facts, fn);
      if (mates.length === 0) return hazards;
    } else if (predictIommuGroups(facts) !== null) {
      // IOMMU off: the group the kernel will make at the next boot, predicted from config space.
      mates = predictedGroupMates(facts, fn);
    } else {
      mates = slotIndex(facts).get(slotOf(fn.address)) ?? [];
      chipsetOnly = true;
    }
    for (const mate of mates) {
      if (mate.address === fn.address || mate.isBridge) continue;
      const role = chipsetRole(mate);
      if (role !== null) {
        hazards.push({ fn: mate, kind: "chipset", why: [role] });
        continue;
      }
      if (chipsetOnly) continue;
      const mateUses = uses(mate);
      if (mateUses.length > 0) hazards.push({ fn: mate, kind: "host-use", why: mateUses });
    }
    // A chipset slot's other functions (SPI flash, PMC, thermal) are the chipset's too: named with
    // it, so the operator sees everything the group would take.
    const chipsetSlots = new Set(
      hazards.filter((h) => h.kind === "chipset").map((h) => slotOf(h.fn.address)),
    );
    if (chipsetSlots.size > 0) {
      for (const mate of mates) {
        if (mate.address === fn.address || mate.isBridge) continue;
        if (!chipsetSlots.has(slotOf(mate.address))) continue;
        if (hazards.some((h) => h.fn.address === mate.address)) continue;
        hazards.push({ fn: mate, kind: "chipset", why: ["in the chipset's slot"] });
      }
      hazards.sort((a, b) => compareAddresses(a.fn.address, b.fn.address));
    }
    return hazards;
  };

  const groupMatesInUse = (
    fn: PciFunction,
  ): Array<{ mate: PciFunction; uses: readonly string[] }> => {
    const found: Array<{ mate: PciFunction; uses: readonly string[] }> = [];
    for (const mate of groupMates(facts, fn)) {
      const mateUses = uses(mate);
      if (mateUses.length > 0) found.push({ mate, uses: mateUses });
    }
    return found;
  };

  return { uses, vfUses, groupHazards, groupMatesInUse };
}

/** What a VF's IOMMU group holds besides the VF (bridges aside), sorted by kind. */
export interface VfGroupShare {
  group: number;
  /** The group holds the VF's own PF (which stays with the host: it owns the VFs). */
  withPf: boolean;
  /** Other VFs of the same PF in the group. */
  vfs: string[];
  /** Any other function in the group. */
  others: string[];
}

/**
 * The group judgement for one VF, as for a whole function: a VM takes a whole IOMMU group, so a
 * VF whose group holds anything else (its PF, another VF, any other function: no ACS between
 * them) cannot go to a VM on its own. Null when the VF has a group to itself (or none yet).
 */
export function vfGroupShare(facts: HostFacts, vf: PciFunction): VfGroupShare | null {
  if (vf.iommuGroup === null) return null;
  const mates = groupMates(facts, vf).filter((m) => !m.isBridge);
  if (mates.length === 0) return null;
  return {
    group: vf.iommuGroup,
    withPf: mates.some((m) => m.address === vf.physfn),
    vfs: mates.filter((m) => m.physfn !== null && m.physfn === vf.physfn).map((m) => m.address),
    others: mates
      .filter((m) => m.address !== vf.physfn && (m.physfn === null || m.physfn !== vf.physfn))
      .map((m) => m.address),
  };
}

/** "IOMMU group 12 also holds its PF 0000:3b:00.0, VF 0000:3b:02.1": a VfGroupShare in words. */
export function describeVfGroupShare(share: VfGroupShare, pf: string): string {
  const parts: string[] = [];
  if (share.withPf) parts.push(`its PF ${pf}`);
  if (share.vfs.length > 0)
    parts.push(`VF${share.vfs.length === 1 ? "" : "s"} ${share.vfs.join(", ")}`);
  if (share.others.length > 0) parts.push(share.others.join(", "));
  return `IOMMU group ${share.group} also holds ${parts.join(", ")}`;
}

/** "0000:00:1f.0 (ISA/LPC bridge), 0000:00:1f.4 (SMBus controller)": hazards for a message. */
export function describeHazards(hazards: GroupHazard[]): string {
  return hazards.map((h) => `${h.fn.address} (${h.why.join("; ")})`).join(", ");
}
