// SR-IOV: which PFs get how many virtual functions at boot, where each VF goes, and what is refused.
// Pure: the `devices` entries that say `vfs: N`, the host facts and the one safety judgement
// (host-safety.ts) in; the planned PFs, their VFs for vfio-pci and the problems out (planSriov).
// Also here: selectForHost, the whole selection on a host (the plain selection of select.ts plus
// the VFs), which the plan (decideHost) takes for every hook and action; vfCountChange, what the
// next boot changes for a PF; sriovReady, whether a PF's VFs are all there on their planned driver now.
// Elsewhere: the udev rule and helper that make the VFs at boot, render-sriov.ts (the initramfs
// copies them, render-files.ts); the unit that holds nova-compute and the SR-IOV agent back until
// they exist, render-sriov-boot.ts; a boot at which the kernel refused, sriov-boot.ts; the other
// owners of a PF's VF count, vf-count-owners.ts; nova's view, nova.ts.
//
// Where VFs sit at boot, and why (README "SR-IOV" says the same to operators):
// - Without `physical-network` the VFs are offered through a flavor alias (`device_type` type-VF),
//   like any device this charm passes through: they go to vfio-pci at boot, by their own address,
//   so no host VF driver (iavf, mlx5_core, nvme…) ever configures them. nova gets one compact spec
//   for the PF, steady while the count changes, or, where that would admit too much (VFs with the
//   PF's own ids, VFs sharing an IOMMU group), each offered VF by its address once all are on
//   vfio-pci (nova.ts publishedPfs). libvirt's managed hostdev leaves a device it found on
//   vfio-pci there when the VM stops (it only returns devices it moved itself).
// - With `physical-network` the VFs back neutron ports (`vnic_type direct`): they stay on the host
//   VF driver. neutron's SR-IOV agent counts a VF without a netdev as assigned to a VM
//   (PciOsWrapper.is_assigned_vf_direct: no virtfnN/net directory), and libvirt's
//   `<interface type='hostdev' managed='yes'>` detaches the VF to vfio-pci itself when the VM
//   starts and gives it back when it stops, as the neutron SR-IOV guide's setup expects.
// Either way the PF stays on its host driver: it owns the VFs (sriov_configure), and vfio-pci
// refuses a PF with VFs enabled.
import type { DeviceSelector } from "../config";
import type { HostFacts, HostUsage, PciFunction } from "../host/facts";
import { byAddress, deriveAlias, vfAddresses } from "../pci-vocabulary";
import { listOf } from "../text";
import { describeVfGroupShare, type HostSafety, hostSafety, vfGroupShare } from "./host-safety";
import { type Selection, selectFunctions, selectorMatches } from "./select";
import type { BoundDevice, PlannedPf, PlanProblem, WithheldFunction } from "./types";

export type { PlannedPf, VfDriverPlan } from "./types";

export interface SriovPlan {
  /** Sorted by address. */
  pfs: PlannedPf[];
  /** VFs for vfio-pci (flavor-alias PFs), sorted by address: they join the plan's `bind`. */
  bind: BoundDevice[];
  /** PFs left alone because the host uses one of their VFs (force on the entry overrides). */
  withheld: WithheldFunction[];
  problems: PlanProblem[];
  notes: string[];
  /** Every address the SR-IOV plan speaks for (planned PFs, their planned and existing VFs):
   * an entry without `vfs` may not also take one of them. */
  managed: Set<string>;
  /** Entries with `vfs` that matched nothing here. */
  unmatched: DeviceSelector[];
}

/** How an entry is named in messages (select.ts names them the same way). */
function describe(sel: DeviceSelector): string {
  const source = sel.source.length > 80 ? `${sel.source.slice(0, 77)}...` : sel.source;
  return `devices entry #${sel.index + 1} ${JSON.stringify(source)}`;
}

/** The VFs of `pf` that exist now, sorted by address (the kernel creates them in routing-id order). */
function existingVfs(pf: string, vfsOf: Map<string, PciFunction[]>): PciFunction[] {
  return vfsOf.get(pf) ?? [];
}

/**
 * Plans the PFs that `devices` entries with `vfs` select. Refuses (a problem naming the entry) a
 * function that is a VF or has no SR-IOV capability, and N above the PF's sriov_totalvfs; leaves a
 * PF alone (withheld, forceable) while the host uses one of its VFs: changing the number of VFs
 * destroys every VF first.
 */
export function planSriov(
  selectors: DeviceSelector[],
  facts: HostFacts,
  safety: HostSafety,
): SriovPlan {
  const pfs: PlannedPf[] = [];
  const bind: BoundDevice[] = [];
  const withheld: WithheldFunction[] = [];
  const problems: PlanProblem[] = [];
  const notes: string[] = [];
  const managed = new Set<string>();
  const vfsOf = new Map<string, PciFunction[]>();
  for (const fn of facts.functions) {
    if (fn.physfn === null) continue;
    const list = vfsOf.get(fn.physfn);
    if (list) list.push(fn);
    else vfsOf.set(fn.physfn, [fn]);
  }
  const problem = (message: string) => problems.push({ option: "devices", message });
  const claimedBy = new Map<string, DeviceSelector>();
  const unmatched: DeviceSelector[] = [];

  for (const sel of [...selectors].sort((a, b) => a.index - b.index)) {
    if (sel.vfs === null) continue;
    const matched = facts.functions.filter((fn) => !fn.isBridge && selectorMatches(sel, fn));
    const matchedSet = new Set(matched.map((fn) => fn.address));
    if (matched.length === 0) unmatched.push(sel);
    for (const fn of matched) {
      // A glob over a PF's slot or bus also matches the VFs it has now: they are this entry's.
      if (fn.physfn !== null && matchedSet.has(fn.physfn)) continue;
      const name = `${fn.address} (${fn.vendorId}:${fn.deviceId})`;
      if (fn.physfn !== null) {
        problem(
          `${describe(sel)} asks for vfs: ${sel.vfs} on ${name}, which is itself a VF of ${fn.physfn}: ` +
            `VFs are created on their PF; give the PF's address (${fn.physfn}) instead.`,
        );
        continue;
      }
      if (fn.sriov === null) {
        problem(
          `${describe(sel)} asks for vfs: ${sel.vfs} on ${name}, which has no SR-IOV capability ` +
            "(no sriov_totalvfs: the device or its firmware does not offer VFs, or SR-IOV is off " +
            "in the firmware setup). Remove vfs from the entry, or narrow its address to the PF.",
        );
        continue;
      }
      if (sel.vfs > fn.sriov.totalVfs) {
        problem(
          `${describe(sel)} asks for vfs: ${sel.vfs} on ${name}, which offers at most ` +
            `${fn.sriov.totalVfs} (sriov_totalvfs). Set vfs to ${fn.sriov.totalVfs} or fewer.`,
        );
        continue;
      }
      const earlier = claimedBy.get(fn.address);
      if (earlier) {
        problem(
          `${describe(earlier)} and ${describe(sel)} both ask for VFs on ${name}. ` +
            "Keep one entry per PF.",
        );
        continue;
      }
      claimedBy.set(fn.address, sel);
      const existing = existingVfs(fn.address, vfsOf);
      // The host uses one of its VFs (a VF netdev up, addressed, enslaved…): a change of the
      // number of VFs destroys them all, so the PF is left as it is unless the entry forces it.
      const vfUses = safety.vfUses(fn);
      if (vfUses.length > 0 && !sel.force) {
        withheld.push({
          address: fn.address,
          vendorId: fn.vendorId,
          deviceId: fn.deviceId,
          entry: describe(sel),
          reasons: vfUses,
          forceable: true,
        });
        continue;
      }
      managed.add(fn.address);
      for (const vf of existing) managed.add(vf.address);
      const planned = plannedAddresses(fn, sel.vfs, existing);
      for (const a of planned) managed.add(a);
      const vfDeviceId = fn.sriov.vfDeviceId ?? existing[0]?.deviceId ?? null;
      const pf: PlannedPf = {
        address: fn.address,
        vendorId: fn.vendorId,
        deviceId: fn.deviceId,
        classCode: fn.classCode,
        vfDeviceId,
        announcedVfDeviceId: fn.sriov.vfDeviceId ?? null,
        numVfs: sel.vfs,
        totalVfs: fn.sriov.totalVfs,
        currentVfs: fn.sriov.numVfs,
        vfAddresses: planned,
        vfDriver: sel.physicalNetwork === null ? "vfio-pci" : "host",
        physicalNetwork: sel.physicalNetwork,
        alias: sel.alias ?? deriveAlias(fn),
        numaPolicy: sel.numaPolicy,
        entry: describe(sel),
      };
      const shared: Array<{ address: string; why: string }> = [];
      // The group judgement, per VF: one whose group holds anything else is not offered to nova.
      const plannedSet = new Set(planned);
      for (const vf of existing) {
        if (plannedSet.size > 0 && !plannedSet.has(vf.address)) continue;
        const share = vfGroupShare(facts, vf);
        if (share) {
          shared.push({
            address: vf.address,
            why: describeVfGroupShare(share, fn.address),
          });
        }
      }
      if (shared.length > 0) {
        pf.sharedGroupVfs = shared;
        const n = shared.length;
        notes.push(
          `${fn.address}: ${n} of its VFs not offered to nova, each sharing its IOMMU group (no ACS: a VM takes a whole group, the PF stays with the host): ${listOf(
            shared.map((v) => `${v.address} (${v.why})`),
            3,
            ", ",
          )}; a card, slot or firmware with ACS gives each VF its own group`,
        );
      }
      pfs.push(pf);
      if (planned.length === 0) {
        notes.push(
          `${fn.address}: the kernel does not say where its VFs will be (no sriov_offset/sriov_stride, kernel before 5.0): they are created at boot and listed once they exist`,
        );
      }
      if (pf.vfDriver === "vfio-pci" && vfDeviceId !== null) {
        for (const address of planned) {
          bind.push({
            address,
            vendorId: fn.vendorId,
            deviceId: vfDeviceId,
            classCode: fn.classCode,
            alias: pf.alias,
            deviceType: "type-VF",
            numaPolicy: pf.numaPolicy,
            reason: "selected",
            follows: null,
            physfn: fn.address,
            ...(sel.resourceClass ? { resourceClass: sel.resourceClass } : {}),
            ...(sel.traits?.length ? { traits: sel.traits } : {}),
          });
        }
      }
    }
  }
  pfs.sort(byAddress);
  bind.sort(byAddress);
  withheld.sort(byAddress);
  return { pfs, bind, withheld, problems, notes, managed, unmatched };
}

/** Where the planned VFs will be: computed from sriov_offset/sriov_stride, else the VFs that
 * exist now when there are as many as planned; empty when neither says. */
function plannedAddresses(pf: PciFunction, n: number, existing: PciFunction[]): string[] {
  const { offset, stride } = pf.sriov ?? {};
  if (offset != null && stride != null && offset > 0) {
    const computed = vfAddresses(pf.address, offset, Math.max(stride, 1), n);
    if (computed) return computed;
  }
  if (existing.length === n) return existing.map((vf) => vf.address);
  return [];
}

/** What the host must do at the next boot (or the sriov-vfs action now) for this PF: nothing when
 * it already has its planned VFs. */
export function vfCountChange(pf: PlannedPf): string | null {
  if (pf.currentVfs === pf.numVfs) return null;
  return `${pf.address} has ${pf.currentVfs} VF${pf.currentVfs === 1 ? "" : "s"}, ${pf.numVfs} planned`;
}

/** The whole selection on one host: the functions passed through as they are (select.ts) and the
 * PFs given VFs (planSriov), with the VFs for vfio-pci joining `bind`. One entry cannot take what
 * another gives VFs to: a PF with VFs stays on its host driver, and its VFs follow their entry. */
export function selectForHost(
  selectors: DeviceSelector[],
  facts: HostFacts,
  usage: HostUsage = new Map(),
): Selection & { sriov: SriovPlan } {
  const whole = selectors.filter((s) => s.vfs === null);
  const plain = selectFunctions(whole, facts, usage);
  if (whole.length === selectors.length) {
    return { ...plain, sriov: EMPTY_SRIOV };
  }
  const sriov = planSriov(selectors, facts, hostSafety(facts, usage));
  const clash = plain.bind.filter((b) => sriov.managed.has(b.address));
  const problems = [...plain.problems, ...sriov.problems];
  if (clash.length > 0) {
    problems.push({
      option: "devices",
      message:
        `${listOf(
          clash.map((b) => b.address),
          3,
          ", ",
        )} ${clash.length === 1 ? "is a PF or VF" : "are PFs or VFs"} ` +
        "that an entry with vfs manages, and an entry without vfs selects too: a PF with VFs stays " +
        "on its host driver and its VFs follow the vfs entry. Narrow the other entry.",
    });
  }
  const taken = new Set(clash.map((b) => b.address));
  const bind = [...plain.bind.filter((b) => !taken.has(b.address)), ...sriov.bind].sort(byAddress);
  return {
    bind,
    withheld: [...plain.withheld, ...sriov.withheld].sort(byAddress),
    problems,
    unmatched: [...plain.unmatched, ...sriov.unmatched].sort((a, b) => a.index - b.index),
    notes: [...plain.notes, ...sriov.notes],
    sriov,
  };
}

const EMPTY_SRIOV: SriovPlan = {
  pfs: [],
  bind: [],
  withheld: [],
  problems: [],
  notes: [],
  managed: new Set(),
  unmatched: [],
};

/** Whether a planned PF has all its VFs now, each where the plan puts it (vfio-pci for a flavor
 * alias; for neutron ports any driver: libvirt moves a VF to vfio-pci while a VM holds it). */
export function sriovReady(pf: PlannedPf, facts: HostFacts): boolean {
  const fn = facts.functions.find((f) => f.address === pf.address);
  if (!fn?.sriov || fn.sriov.numVfs !== pf.numVfs) return false;
  const vfs = facts.functions.filter((f) => f.physfn === pf.address);
  if (vfs.length !== pf.numVfs) return false;
  return pf.vfDriver === "host" || vfs.every((vf) => vf.driver === "vfio-pci");
}
