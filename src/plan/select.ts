// Which PCI functions the `devices` selection hands to vfio-pci on this host, and what follows
// them. Pure: takes the selectors and the host facts, never reads. Used by the host planner, the
// rebind/list-devices actions and the nova values, so they all agree on one selection.
import type { DeviceSelector } from "../config";
import type { HostFacts, HostUsage, PciFunction } from "../host/facts";
import { byAddress, compareAddresses, deriveAlias, idsOf, slotOf } from "../pci-vocabulary";
import { chipsetRole, describeHazards, hostSafety, NO_GROUP_WITH_IOMMU_ON } from "./host-safety";
import type { BoundDevice, NovaDeviceType, PlanProblem, WithheldFunction } from "./types";

/** The outcome of matching the selection against one host. */
export interface Selection {
  /** Selected functions and their companions, sorted by address. */
  bind: BoundDevice[];
  /** Selected functions left with the host: it uses them, or their group holds what it keeps. */
  withheld: WithheldFunction[];
  /** Blocking: the selection takes something it must not (bridge, boot VGA, wrong device…). */
  problems: PlanProblem[];
  /** Selectors that matched nothing here (normal on a host without that hardware). */
  unmatched: DeviceSelector[];
  /** Not blocking, worth telling: a group shared with a function the host keeps, a PF with VFs… */
  notes: string[];
}

/** How an entry is named in messages: `devices entry #2 "10de:1bb0"` (1-based, as operators count). */
export function describeSelector(sel: DeviceSelector): string {
  const source = sel.source.length > 80 ? `${sel.source.slice(0, 77)}...` : sel.source;
  return `devices entry #${sel.index + 1} ${JSON.stringify(source)}`;
}

/** True when the selector picks this function (ids and address both, when both are given). */
export function selectorMatches(
  sel: DeviceSelector,
  fn: Pick<PciFunction, "address" | "vendorId" | "deviceId">,
): boolean {
  if (sel.vendorId !== null && sel.vendorId !== fn.vendorId) return false;
  if (sel.productId !== null && sel.productId !== fn.deviceId) return false;
  return sel.address === null || sel.address.pattern.test(fn.address);
}

/** nova's device_type: type-VF for a virtual function, type-PF for an SR-IOV capable physical
 * function, type-PCI for everything else. */
export function novaDeviceType(fn: Pick<PciFunction, "physfn" | "sriov">): NovaDeviceType {
  if (fn.physfn !== null) return "type-VF";
  if (fn.sriov !== null) return "type-PF";
  return "type-PCI";
}

interface Chosen {
  fn: PciFunction;
  sel: DeviceSelector;
}

/** Matches the selection against the host: what vfio-pci should own (selected functions and their
 * companions), what the host keeps for its own safety (host-safety.ts), what is refused, and which
 * selectors found nothing. `usage` is what the host uses (host/usage.ts); without it only the boot
 * VGA and chipset groups are known. */
export function selectFunctions(
  selectors: DeviceSelector[],
  facts: HostFacts,
  usage: HostUsage = new Map(),
): Selection {
  const safety = hostSafety(facts, usage);
  const atAddress = new Map(facts.functions.map((fn) => [fn.address, fn]));
  const bySlot = new Map<string, PciFunction[]>();
  for (const fn of facts.functions) {
    const slot = slotOf(fn.address);
    const list = bySlot.get(slot);
    if (list) list.push(fn);
    else bySlot.set(slot, [fn]);
  }
  const problems: PlanProblem[] = [];
  const notes: string[] = [];
  const unmatched: DeviceSelector[] = [];
  const chosen = new Map<string, Chosen>();
  /** Addresses some entry with `force: true` selects: the override is per entry, never global. */
  const forced = new Set<string>();
  const problem = (message: string) => problems.push({ option: "devices", message });

  for (const sel of [...selectors].sort((a, b) => a.index - b.index)) {
    const spec = sel.address;
    // A literal address with ids that the host holds as another device: the operator meant a
    // different card (or the card was swapped). Binding by address alone would take the wrong one.
    if (spec && !spec.isGlob && (sel.vendorId !== null || sel.productId !== null)) {
      const there = atAddress.get(spec.text);
      if (there && !selectorMatches(sel, there)) {
        problem(
          `${describeSelector(sel)}: ${spec.text} holds ${idsOf(there)}, not ` +
            `${sel.vendorId ?? "*"}:${sel.productId ?? "*"}. Check the address with the ` +
            "list-devices action and fix the entry's address or ids.",
        );
        continue;
      }
    }
    const matches = facts.functions.filter((fn) => selectorMatches(sel, fn));
    if (matches.length === 0) {
      unmatched.push(sel);
      continue;
    }
    for (const fn of matches) {
      if (fn.isBridge) {
        problem(
          `${describeSelector(sel)} selects ${fn.address} (${idsOf(fn)}), a PCI bridge or port: ` +
            "bridges stay with the host and vfio-pci refuses them. Narrow the entry (add an " +
            "address or ids) so it selects only the devices behind the bridge.",
        );
        continue;
      }
      const earlier = chosen.get(fn.address);
      if (sel.force) forced.add(fn.address);
      if (earlier) {
        const clash =
          earlier.sel.alias !== sel.alias
            ? `alias ${JSON.stringify(earlier.sel.alias ?? deriveAlias(fn))} and ${JSON.stringify(sel.alias ?? deriveAlias(fn))}`
            : earlier.sel.numaPolicy !== sel.numaPolicy
              ? `numa-policy ${earlier.sel.numaPolicy ?? "(unset)"} and ${sel.numaPolicy ?? "(unset)"}`
              : null;
        if (clash) {
          problem(
            `${describeSelector(earlier.sel)} and ${describeSelector(sel)} both select ` +
              `${fn.address} (${idsOf(fn)}) with ${clash}. Give both entries the same values ` +
              "or narrow one so each function is selected once.",
          );
        }
        continue;
      }
      chosen.set(fn.address, { fn, sel });
    }
  }

  const withheld = new Map<string, WithheldFunction>();
  const withhold = (
    fn: PciFunction,
    sel: DeviceSelector,
    reasons: string[],
    forceable: boolean,
  ) => {
    const earlier = withheld.get(fn.address);
    if (earlier) {
      earlier.reasons.push(...reasons.filter((r) => !earlier.reasons.includes(r)));
      earlier.forceable &&= forceable;
      return;
    }
    withheld.set(fn.address, {
      address: fn.address,
      vendorId: fn.vendorId,
      deviceId: fn.deviceId,
      entry: describeSelector(sel),
      reasons: [...reasons],
      forceable,
    });
  };

  const bound = new Map<string, BoundDevice>();
  const selectedAddresses = [...chosen.keys()].sort(compareAddresses);
  for (const address of selectedAddresses) {
    const { fn, sel } = chosen.get(address)!;
    const role = chipsetRole(fn);
    if (role !== null) {
      withhold(fn, sel, [`it is the chipset's ${role}: it serves the whole machine`], false);
      continue;
    }
    // With the IOMMU on, a function the kernel put in no group is one vfio-pci cannot take: bound
    // at boot it would be left with no driver at all, lost to the host and useless to VMs. Seen
    // under SMMUv3 with Linux 6.1, on the second function behind a PCIe-to-PCI bridge. No reboot
    // and no override changes that; while the IOMMU is still off, every function lacks a group
    // and the reboot the plan asks for makes them.
    if (fn.iommuGroup === null && facts.iommuGroups.size > 0) {
      withhold(fn, sel, [NO_GROUP_WITH_IOMMU_ON], false);
      continue;
    }
    // What the host uses stays with the host, however it was selected (by address too), unless
    // an entry that selects it says `force: true`.
    const uses = safety.uses(fn);
    if (uses.length > 0 && !forced.has(address)) {
      withhold(fn, sel, uses, true);
      continue;
    }
    bound.set(address, {
      address,
      vendorId: fn.vendorId,
      deviceId: fn.deviceId,
      classCode: fn.classCode,
      alias: sel.alias ?? deriveAlias(fn),
      deviceType: novaDeviceType(fn),
      numaPolicy: sel.numaPolicy,
      reason: "selected",
      follows: null,
    });
    if (fn.sriov !== null && fn.sriov.numVfs > 0) {
      notes.push(
        `${address} has ${fn.sriov.numVfs} SR-IOV VFs enabled: vfio-pci takes it only without VFs`,
      );
    }
  }

  // Companions, decided after every selection so a function both selected and a companion counts
  // as selected (its own entry's alias wins). Companions get their own alias (`gpu-audio`) but are
  // not offered to nova on their own (plan/nova.ts): they sit on vfio-pci because the group needs
  // them there, and go to the VM with the function they follow.
  for (const address of selectedAddresses) {
    if (!bound.has(address)) continue;
    const { fn, sel } = chosen.get(address)!;
    if (!sel.companions) continue;
    const parent = bound.get(address)!;
    for (const other of companionsOf(fn, bySlot, atAddress)) {
      if (bound.has(other.address) || withheld.has(other.address)) continue;
      // A companion the host uses is no companion: the group check below keeps its card.
      if (safety.uses(other).length > 0) continue;
      bound.set(other.address, {
        address: other.address,
        vendorId: other.vendorId,
        deviceId: other.deviceId,
        classCode: other.classCode,
        alias: companionAlias(parent.alias, other),
        deviceType: novaDeviceType(other),
        numaPolicy: sel.numaPolicy,
        reason: "companion",
        follows: address,
      });
    }
  }

  // A VM takes a whole IOMMU group. A group that holds a chipset function can never be given away
  // (no override); one that holds a function the host uses is kept unless the entry forces it.
  // Either way the selected function stays with the host, and so do its companions.
  for (const address of selectedAddresses) {
    if (!bound.has(address)) continue;
    const { fn, sel } = chosen.get(address)!;
    const hazards = safety
      .groupHazards(fn)
      .filter((h) => h.kind === "chipset" || !forced.has(address));
    if (hazards.length === 0) continue;
    const chipset = hazards.some((h) => h.kind === "chipset");
    const where =
      fn.iommuGroup !== null
        ? `its IOMMU group ${fn.iommuGroup} also holds`
        : `its slot ${slotOf(address)} (one IOMMU group once the IOMMU is on) also holds`;
    const tail = chipset
      ? "chipset functions stay with the host, so this group can never go to a VM"
      : "a VM takes the whole group";
    withhold(fn, sel, [`${where} ${describeHazards(hazards)}: ${tail}`], !chipset);
    bound.delete(address);
    for (const [other, b] of bound) if (b.follows === address) bound.delete(other);
  }

  // Group members that stay with the host make the group unusable for VFIO; that is verify-iommu's
  // verdict to give (the IOMMU may not even be on yet), so here it is only a note.
  // One note for all such groups: notes end up in the unit's status line.
  const seenGroups = new Set<number>();
  const shared: string[] = [];
  for (const address of [...bound.keys()].sort(compareAddresses)) {
    const group = atAddress.get(address)?.iommuGroup ?? null;
    if (group === null || seenGroups.has(group)) continue;
    seenGroups.add(group);
    const kept = (facts.iommuGroups.get(group) ?? []).filter((member) => {
      const m = atAddress.get(member);
      return !bound.has(member) && !(m?.isBridge ?? false);
    });
    if (kept.length > 0) shared.push(`group ${group} also holds ${kept.join(", ")}`);
  }
  if (shared.length > 0) {
    notes.push(
      `IOMMU ${listOf(shared)}, kept by the host: not usable by VMs until selected too (see verify-iommu)`,
    );
  }

  const bind = [...bound.values()].sort(byAddress);
  const keptBack = [...withheld.values()].sort(byAddress);
  return { bind, withheld: keptBack, problems, unmatched, notes };
}

/**
 * The functions that follow a selected one: the card's other functions in the same slot and the
 * same IOMMU group (or every one in the slot while the IOMMU is not on yet, as on first install
 * before the reboot), plus its `consumer:pci:` device links. Only functions of another class
 * qualify: a second port of the same NIC or a second GPU is a peer the operator selects (or not)
 * on its own — taking it silently could take the host's management NIC. Chipset functions (host
 * and ISA bridges, SMBus) are never a card's: they serve the machine.
 */
function companionsOf(
  fn: PciFunction,
  bySlot: Map<string, PciFunction[]>,
  atAddress: Map<string, PciFunction>,
): PciFunction[] {
  const cls = fn.classCode.slice(0, 4);
  const found = new Map<string, PciFunction>();
  for (const other of bySlot.get(slotOf(fn.address)) ?? []) {
    if (other.address === fn.address || other.iommuGroup !== fn.iommuGroup) continue;
    found.set(other.address, other);
  }
  for (const consumer of fn.consumers) {
    const other = atAddress.get(consumer);
    if (other && other.address !== fn.address) found.set(other.address, other);
  }
  return [...found.values()]
    .filter(
      (other) =>
        !other.isBridge &&
        chipsetRole(other) === null &&
        other.classCode.slice(0, 4) !== cls &&
        // A device link to a function with no group while fn has one: vfio-pci cannot take it,
        // and fn's group does not need it.
        (fn.iommuGroup === null || other.iommuGroup !== null),
    )
    .sort(byAddress);
}

/** `gpu` + an HDMI audio function → `gpu-audio`; `p5000` + USB controller → `p5000-usb`. */
function companionAlias(parentAlias: string, fn: PciFunction): string {
  return `${parentAlias}-${deriveAlias(fn)}`;
}

/** `a, b, c and 2 more`: keeps lists short enough for a status line. */
export function listOf(items: string[], max = 3): string {
  if (items.length <= max) return items.join("; ");
  return `${items.slice(0, max).join("; ")} and ${items.length - max} more`;
}
