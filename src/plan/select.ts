// Which PCI functions the `devices` selection hands to vfio-pci on this host, what follows them
// (companions, group members), what the host keeps for its own safety and what is refused. Pure:
// the selectors, the host facts and what the host uses in, never reads. The one module that asks
// "does this entry select this function": selectorMatches (sriov.ts asks it for the entries with
// `vfs`), selectedByIds (plan-host.ts: is the card in a slot still the one asked for) and
// mayMatchUnread (host-preparation.ts: may a function whose ids could not be read be selected).
// selectFunctions is called only by selectForHost (sriov.ts: this selection plus the VFs), and that
// only by the plan (plan-host.ts decideHost): hooks and actions read the selection from it, so
// they all agree.
import type { DeviceSelector } from "../config";
import type { HostFacts, HostUsage, PciFunction } from "../host/facts";
import { byAddress, compareAddresses, deriveAlias, idsOf, slotOf } from "../pci-vocabulary";
import { clip, listOf } from "../text";
import {
  chipsetRole,
  describeHazards,
  type HostSafety,
  hostSafety,
  NO_GROUP_WITH_IOMMU_ON,
} from "./host-safety";
import { functionIndex, predictedGroupOf, slotIndex } from "./iommu-groups";
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
  return `devices entry #${sel.index + 1} ${JSON.stringify(clip(sel.source, 80))}`;
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

/** Whether some entry matches some of these functions: the plan binds only what an entry
 * matches (a match withheld for the host still counts), so with none it names no module. */
export function selectsAny(
  selectors: readonly DeviceSelector[],
  functions: readonly Pick<PciFunction, "address" | "vendorId" | "deviceId">[],
): boolean {
  return functions.some((fn) => selectors.some((sel) => selectorMatches(sel, fn)));
}

/** Whether some entry selects by exactly these ids (an entry by address alone does not count):
 * what confirms that a card found in a slot is still the one the operator asked for. */
export function selectedByIds(
  selectors: readonly DeviceSelector[],
  fn: Pick<PciFunction, "vendorId" | "deviceId">,
): boolean {
  return selectors.some(
    (s) => s.vendorId !== null && s.vendorId === fn.vendorId && s.productId === fn.deviceId,
  );
}

/** Whether `sel` could select the function at `address` whose ids could not be read: an entry by
 * ids could (its ids are unknown), an entry by address only if the address matches. */
export function mayMatchUnread(sel: DeviceSelector, address: string): boolean {
  return sel.vendorId !== null || sel.address === null || sel.address.pattern.test(address);
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

/** The host's functions, looked up by address and by slot, each built on first use: a host of VFs
 * each alone in its group needs neither. */
interface HostIndex {
  atAddress: () => Map<string, PciFunction>;
  bySlot: () => Map<string, PciFunction[]>;
}

/** What the selectors matched, each function once with the entry that took it first. */
interface Matches {
  /** In bus order. */
  selected: Chosen[];
  /** Addresses some entry with `force: true` selects: the override is per entry, never global. */
  forced: Set<string>;
  unmatched: DeviceSelector[];
}

/** Selected functions the host keeps, by address, each with every reason (merged). */
type Withheld = Map<string, WithheldFunction>;

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
  const host = indexHost(facts);
  const problems: PlanProblem[] = [];
  const notes: string[] = [];
  const withheld: Withheld = new Map();

  const matches = matchSelectors(selectors, facts, host, problems);
  const { bound, entangled } = bindSelected(matches, facts, safety, withheld, notes);
  const companions = addCompanions(entangled, bound, withheld, safety, host, facts);
  withholdUnsafeGroups(matches, entangled, bound, withheld, safety, facts);
  const shared = sharedGroupsNote(
    bound,
    [...entangled.map((c) => c.fn), ...companions],
    facts,
    host,
  );
  if (shared !== null) notes.push(shared);

  return {
    // `bound` holds the selection in bus order, then the companions: only they need a sort.
    bind: companions.length === 0 ? [...bound.values()] : [...bound.values()].sort(byAddress),
    withheld: [...withheld.values()].sort(byAddress),
    problems,
    unmatched: matches.unmatched,
    notes,
  };
}

function indexHost(facts: HostFacts): HostIndex {
  return { atAddress: () => functionIndex(facts), bySlot: () => slotIndex(facts) };
}

/** Each entry against the host, in the order the operator wrote them: what it selects, and what
 * it must not (a bridge, another card at its address, a function two entries disagree on). */
function matchSelectors(
  selectors: DeviceSelector[],
  facts: HostFacts,
  host: HostIndex,
  problems: PlanProblem[],
): Matches {
  // The entry that took each function first, by the function's place in facts.functions: no
  // map by address for 10,000 matches, and the selection comes out in facts (bus) order.
  const functions = facts.functions;
  const takenBy: (DeviceSelector | undefined)[] = new Array(functions.length);
  const forced = new Set<string>();
  const unmatched: DeviceSelector[] = [];
  const problem = (message: string) => problems.push({ option: "devices", message });

  for (const sel of [...selectors].sort((a, b) => a.index - b.index)) {
    const wrongCard = wrongCardAt(sel, host);
    if (wrongCard !== null) {
      problem(wrongCard);
      continue;
    }
    let matched = false;
    for (let i = 0; i < functions.length; i++) {
      const fn = functions[i]!;
      if (!selectorMatches(sel, fn)) continue;
      matched = true;
      if (fn.isBridge) {
        problem(
          `${describeSelector(sel)} selects ${fn.address} (${idsOf(fn)}), a PCI bridge or port: ` +
            "bridges stay with the host and vfio-pci refuses them. Narrow the entry (add an " +
            "address or ids) so it selects only the devices behind the bridge.",
        );
        continue;
      }
      const earlier = takenBy[i];
      if (sel.force) forced.add(fn.address);
      if (earlier) {
        const clash = clashBetween(earlier, sel, fn);
        if (clash) problem(clash);
        continue;
      }
      takenBy[i] = sel;
    }
    if (!matched) unmatched.push(sel);
  }
  const selected: Chosen[] = [];
  for (let i = 0; i < functions.length; i++) {
    const sel = takenBy[i];
    if (sel !== undefined) selected.push({ fn: functions[i]!, sel });
  }
  return { selected: inBusOrder(selected), forced, unmatched };
}

/** A literal address with ids that the host holds as another device: the operator meant a
 * different card (or the card was swapped). Binding by address alone would take the wrong one. */
function wrongCardAt(sel: DeviceSelector, host: HostIndex): string | null {
  const spec = sel.address;
  if (!spec || spec.isGlob || (sel.vendorId === null && sel.productId === null)) return null;
  const there = host.atAddress().get(spec.text);
  if (!there || selectorMatches(sel, there)) return null;
  return (
    `${describeSelector(sel)}: ${spec.text} holds ${idsOf(there)}, not ` +
    `${sel.vendorId ?? "*"}:${sel.productId ?? "*"}. Check the address with the ` +
    "list-devices action and fix the entry's address or ids."
  );
}

/** Two entries that select one function must agree on its alias and NUMA policy. */
function clashBetween(
  earlier: DeviceSelector,
  sel: DeviceSelector,
  fn: PciFunction,
): string | null {
  const clash =
    earlier.alias !== sel.alias
      ? `alias ${JSON.stringify(earlier.alias ?? deriveAlias(fn))} and ${JSON.stringify(sel.alias ?? deriveAlias(fn))}`
      : earlier.numaPolicy !== sel.numaPolicy
        ? `numa-policy ${earlier.numaPolicy ?? "(unset)"} and ${sel.numaPolicy ?? "(unset)"}`
        : null;
  if (clash === null) return null;
  return (
    `${describeSelector(earlier)} and ${describeSelector(sel)} both select ` +
    `${fn.address} (${idsOf(fn)}) with ${clash}. Give both entries the same values ` +
    "or narrow one so each function is selected once."
  );
}

/** A function for vfio-pci: selected by `sel`, or (with `follows`) a card companion of one. */
function boundDevice(
  fn: PciFunction,
  alias: string,
  sel: DeviceSelector,
  follows: string | null,
): BoundDevice {
  const device: BoundDevice = {
    address: fn.address,
    vendorId: fn.vendorId,
    deviceId: fn.deviceId,
    classCode: fn.classCode,
    alias,
    deviceType: novaDeviceType(fn),
    numaPolicy: sel.numaPolicy,
    reason: follows === null ? "selected" : "companion",
    follows,
  };
  // Set, not spread in: made once per selected function (10,000 VFs), and an object spread is
  // slow in code that has not warmed up. Same keys in the same order.
  if (follows === null && sel.resourceClass) device.resourceClass = sel.resourceClass;
  if (follows === null && sel.traits?.length) device.traits = sel.traits;
  return device;
}

/** Records a selected function the host keeps; a second reason for it is added to the first. */
function withhold(
  withheld: Withheld,
  fn: PciFunction,
  sel: DeviceSelector,
  reasons: readonly string[],
  forceable: boolean,
): void {
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
    alias: sel.alias ?? deriveAlias(fn),
    reasons: [...reasons],
    forceable,
    driver: fn.driver,
  });
}

/** The selected functions vfio-pci may take (`bound`, by address in bus order): not the chipset's,
 * not one the IOMMU left without a group, and not what the host uses (however it was selected, by
 * address too) unless an entry that selects it says `force: true`. `entangled`: those of them that
 * do not stand alone, the only ones the passes after this one need to look at. */
function bindSelected(
  matches: Matches,
  facts: HostFacts,
  safety: HostSafety,
  withheld: Withheld,
  notes: string[],
): { bound: Map<string, BoundDevice>; entangled: Chosen[] } {
  const bound = new Map<string, BoundDevice>();
  const entangled: Chosen[] = [];
  for (const chosen of matches.selected) {
    const { fn, sel } = chosen;
    const address = fn.address;
    const role = chipsetRole(fn);
    if (role !== null) {
      withhold(
        withheld,
        fn,
        sel,
        [`it is the chipset's ${role}: it serves the whole machine`],
        false,
      );
      continue;
    }
    // With the IOMMU on, a function the kernel put in no group is one vfio-pci cannot take: bound
    // at boot it would be left with no driver at all, lost to the host and useless to VMs. Seen
    // under SMMUv3 with Linux 6.1, on the second function behind a PCIe-to-PCI bridge. No reboot
    // and no override changes that; while the IOMMU is still off, every function lacks a group
    // and the reboot the plan asks for makes them.
    if (fn.iommuGroup === null && facts.iommuGroups.size > 0) {
      withhold(withheld, fn, sel, [NO_GROUP_WITH_IOMMU_ON], false);
      continue;
    }
    const uses = safety.uses(fn);
    if (uses.length > 0 && !matches.forced.has(address)) {
      withhold(withheld, fn, sel, uses, true);
      continue;
    }
    bound.set(address, boundDevice(fn, sel.alias ?? deriveAlias(fn), sel, null));
    if (!standsAlone(fn, facts)) entangled.push(chosen);
    if (fn.sriov !== null && fn.sriov.numVfs > 0) {
      notes.push(
        `${address} has ${fn.sriov.numVfs} SR-IOV VFs enabled: vfio-pci takes it only without VFs`,
      );
    }
  }
  return { bound, entangled };
}

/** A function alone in its IOMMU group and linked to no other (a VF behind ACS: all 10,000 of a
 * big SR-IOV host): it has no card companion, no group hazard and no group mate left to the
 * host, so the passes after bindSelected skip it. */
function standsAlone(fn: PciFunction, facts: HostFacts): boolean {
  if (fn.iommuGroup === null || fn.consumers.length > 0) return false;
  const members = facts.iommuGroups.get(fn.iommuGroup);
  return members?.length === 1 && members[0] === fn.address;
}

/** These selected functions (in bus order) that are still bound, checked as the walk reaches each. */
function stillBound(
  selected: Chosen[],
  bound: Map<string, BoundDevice>,
  each: (address: string, chosen: Chosen) => void,
): void {
  for (const chosen of selected) {
    if (bound.has(chosen.fn.address)) each(chosen.fn.address, chosen);
  }
}

/** Companions, decided after every selection so a function both selected and a companion counts
 * as selected (its own entry's alias wins). Companions get their own alias (`gpu-audio`) but are
 * not offered to nova on their own (plan/nova.ts): they sit on vfio-pci because the group needs
 * them there, and go to the VM with the function they follow. Returns the companions added. */
function addCompanions(
  entangled: Chosen[],
  bound: Map<string, BoundDevice>,
  withheld: Withheld,
  safety: HostSafety,
  host: HostIndex,
  facts: HostFacts,
): PciFunction[] {
  const companions: PciFunction[] = [];
  stillBound(entangled, bound, (address, { fn, sel }) => {
    if (!sel.companions) return;
    const parent = bound.get(address)!;
    for (const other of cardCompanionsOf(fn, host, facts)) {
      if (bound.has(other.address) || withheld.has(other.address)) continue;
      // A companion the host uses is no companion: the group check keeps its card.
      if (safety.uses(other).length > 0) continue;
      bound.set(
        other.address,
        boundDevice(other, companionAlias(parent.alias, other), sel, address),
      );
      companions.push(other);
    }
  });
  return companions;
}

/** A VM takes a whole IOMMU group. A group that holds a chipset function can never be given away
 * (no override); one that holds a function the host uses is kept unless the entry forces it.
 * Either way the selected function stays with the host, and so do its companions. */
function withholdUnsafeGroups(
  matches: Matches,
  entangled: Chosen[],
  bound: Map<string, BoundDevice>,
  withheld: Withheld,
  safety: HostSafety,
  facts: HostFacts,
): void {
  stillBound(entangled, bound, (address, { fn, sel }) => {
    const all = safety.groupHazards(fn);
    if (all.length === 0) return;
    const hazards = all.filter((h) => h.kind === "chipset" || !matches.forced.has(address));
    if (hazards.length === 0) return;
    const chipset = hazards.some((h) => h.kind === "chipset");
    const predicted = fn.iommuGroup === null ? predictedGroupOf(facts, fn) : null;
    const where =
      fn.iommuGroup !== null
        ? `its IOMMU group ${fn.iommuGroup} also holds`
        : predicted !== null
          ? "once the IOMMU is on (after the reboot) its IOMMU group will also hold"
          : `its slot ${slotOf(address)} (one IOMMU group once the IOMMU is on) also holds`;
    const tail =
      (chipset
        ? "chipset functions stay with the host, so this group can never go to a VM"
        : "a VM takes the whole group") +
      (predicted !== null
        ? ` (predicted before the reboot from config space: ${listOf(predicted.why, 2, "; ")})`
        : "");
    withhold(withheld, fn, sel, [`${where} ${describeHazards(hazards)}: ${tail}`], !chipset);
    bound.delete(address);
    for (const [other, b] of bound) if (b.follows === address) bound.delete(other);
  });
}

/** The selection sorted by address; most often it already is (facts list functions in bus order,
 * and the selection keeps it), which one pass finds. */
function inBusOrder(selected: Chosen[]): Chosen[] {
  for (let i = 1; i < selected.length; i++) {
    const a = selected[i - 1]!.fn.address;
    const b = selected[i]!.fn.address;
    // Full addresses (all that facts hold) of one length have domains of one width, so plain
    // string order is bus order: no compareAddresses call for each of 10,000 VFs, a cost in
    // code not yet warmed up.
    if (a.length === b.length ? a > b : compareAddresses(a, b) > 0) {
      return selected.sort((x, y) => compareAddresses(x.fn.address, y.fn.address));
    }
  }
  return selected;
}

/** Group members that stay with the host make the group unusable for VFIO; that is verify-iommu's
 * verdict to give (the IOMMU may not even be on yet), so here it is only a note: one for all such
 * groups, as notes end up in the unit's status line. Null when there is none. `candidates`: the
 * bound functions that may share a group (entangled or companions); one standing alone cannot. */
function sharedGroupsNote(
  bound: Map<string, BoundDevice>,
  candidates: PciFunction[],
  facts: HostFacts,
  host: HostIndex,
): string | null {
  const seenGroups = new Set<number>();
  const shared: string[] = [];
  const keptOf = (members: string[]) =>
    members.filter((member) => {
      const m = host.atAddress().get(member);
      return !bound.has(member) && !(m?.isBridge ?? false);
    });
  // While the IOMMU is off: the groups the reboot will bring (predicted), said the same way.
  const seenPredicted = new Set<string>();
  const afterReboot: string[] = [];
  const boundNow = candidates.filter((fn) => bound.has(fn.address));
  for (const fn of boundNow.sort(byAddress)) {
    const address = fn.address;
    const group = fn.iommuGroup;
    if (group === null) {
      const predicted = predictedGroupOf(facts, fn);
      if (predicted === null || seenPredicted.has(predicted.members[0]!)) continue;
      seenPredicted.add(predicted.members[0]!);
      const kept = keptOf(predicted.members);
      if (kept.length > 0) afterReboot.push(`${address}'s will also hold ${kept.join(", ")}`);
      continue;
    }
    if (seenGroups.has(group)) continue;
    seenGroups.add(group);
    const kept = keptOf(facts.iommuGroups.get(group) ?? []);
    if (kept.length > 0) shared.push(`group ${group} also holds ${kept.join(", ")}`);
  }
  if (afterReboot.length > 0) {
    return `after the reboot (IOMMU on, groups predicted from config space) ${listOf(afterReboot)}, kept by the host: not usable by VMs until selected too`;
  }
  if (shared.length === 0) return null;
  return `IOMMU ${listOf(shared)}, kept by the host: not usable by VMs until selected too (see verify-iommu)`;
}

/**
 * A selected function's card companions (the `companions` option): the functions that follow it.
 * The card's other functions in the same slot and the
 * same IOMMU group (or every one in the slot while the IOMMU is not on yet, as on first install
 * before the reboot), plus its `consumer:pci:` device links. Only functions of another class
 * qualify: a second port of the same NIC or a second GPU is a peer the operator selects (or not)
 * on its own — taking it silently could take the host's management NIC. Chipset functions (host
 * and ISA bridges, SMBus) are never a card's: they serve the machine.
 */
function cardCompanionsOf(fn: PciFunction, host: HostIndex, facts: HostFacts): PciFunction[] {
  const cls = fn.classCode.slice(0, 4);
  const slotMates = host.bySlot().get(slotOf(fn.address)) ?? [];
  if (
    fn.consumers.length === 0 &&
    !slotMates.some((o) => o.address !== fn.address && o.iommuGroup === fn.iommuGroup)
  ) {
    return [];
  }
  const found = new Map<string, PciFunction>();
  // While the IOMMU is off, the predicted group stands for the real one: a slot mate the kernel
  // will put in a group of its own (it has ACS) does not follow.
  const predicted = fn.iommuGroup === null ? predictedGroupOf(facts, fn) : null;
  for (const other of slotMates) {
    if (other.address === fn.address || other.iommuGroup !== fn.iommuGroup) continue;
    if (predicted !== null && !predicted.members.includes(other.address)) continue;
    found.set(other.address, other);
  }
  for (const consumer of fn.consumers) {
    const other = host.atAddress().get(consumer);
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
