// IOMMU groups: who shares a function's group, and whether the group is viable. The one place
// for group logic, used by the safety judgement (host-safety.ts), verify-iommu and rebind. The kernel lets VFIO use a group only
// when every member is bound to a vfio driver, to pci-stub, to nothing, or is a bridge/port (a
// non-normal header: any driver, pcieport in practice). QEMU says "group N is not viable" otherwise.
import type { HostFacts, PciFunction, PciIsolation } from "../host/facts";
import { listOf } from "../text";

/** True for vfio-pci and its variant drivers (mlx5_vfio_pci, nvgrace_gpu_vfio_pci…). */
export function isVfioDriver(driver: string | null): boolean {
  return driver?.includes("vfio") ?? false;
}

/** True when this member does not stop its group from being given to a VM. */
export function isHarmlessMember(fn: Pick<PciFunction, "isBridge" | "driver">): boolean {
  return (
    fn.isBridge ||
    fn.driver === null ||
    fn.driver === "pci-stub" ||
    fn.driver === "pcieport" ||
    isVfioDriver(fn.driver)
  );
}

/** The other functions in `fn`'s IOMMU group (empty when it has no group). */
export function groupMates(facts: HostFacts, fn: PciFunction): PciFunction[] {
  if (fn.iommuGroup === null) return [];
  const members = facts.iommuGroups.get(fn.iommuGroup);
  const mates: PciFunction[] = [];
  // Most groups hold one function (every VF behind ACS): no index lookup for those.
  if (members === undefined || (members.length === 1 && members[0] === fn.address)) return mates;
  const byAddress = functionIndex(facts);
  for (const a of members) {
    if (a === fn.address) continue;
    const m = byAddress.get(a);
    if (m !== undefined) mates.push(m);
  }
  return mates;
}

const indexCache = new WeakMap<HostFacts, Map<string, PciFunction>>();

/** Functions by address (memoised per facts object; facts are read once and never mutated). */
export function functionIndex(facts: HostFacts): Map<string, PciFunction> {
  let index = indexCache.get(facts);
  if (!index) {
    index = new Map();
    for (const f of facts.functions) index.set(f.address, f);
    indexCache.set(facts, index);
  }
  return index;
}

const slotCache = new WeakMap<HostFacts, Map<string, PciFunction[]>>();

/** Functions by slot (`0000:83:00`), in bus order (memoised per facts object, as functionIndex). */
export function slotIndex(facts: HostFacts): Map<string, PciFunction[]> {
  let index = slotCache.get(facts);
  if (!index) {
    index = new Map();
    for (const fn of facts.functions) {
      const slot = fn.address.slice(0, fn.address.lastIndexOf("."));
      const list = index.get(slot);
      if (list) list.push(fn);
      else index.set(slot, [fn]);
    }
    slotCache.set(facts, index);
  }
  return index;
}

const vfCache = new WeakMap<HostFacts, Map<string, PciFunction[]>>();

/** Each PF's VFs (by the PF's address, in bus order), memoised per facts object. */
export function vfIndex(facts: HostFacts): Map<string, PciFunction[]> {
  let index = vfCache.get(facts);
  if (!index) {
    index = new Map();
    for (const fn of facts.functions) {
      if (fn.physfn === null) continue;
      const list = index.get(fn.physfn);
      if (list) list.push(fn);
      else index.set(fn.physfn, [fn]);
    }
    vfCache.set(facts, index);
  }
  return index;
}

// ------------------------------------------------------------------------------------------------
// The groups the kernel will make once the IOMMU is on, predicted while it is off.

/** A group the kernel will make at the next boot with the IOMMU on, and why its members share it. */
export interface PredictedGroup {
  /** Member addresses, in bus order. */
  members: string[];
  /** Operator words for each reason members were merged ("0000:03:00.0 and 0000:03:00.1 are
   * functions of one device without ACS"); empty for a function alone in its group. */
  why: string[];
}

// PCI Express device/port types (the PCI Express capability's flags, bits 7:4).
const PCIE_ROOT_PORT = 4;
const PCIE_DOWNSTREAM = 6;
const PCIE_TO_PCI_BRIDGE = 7;
const PCI_TO_PCIE_BRIDGE = 8;
const PCIE_RC_END = 9;
const PCIE_RC_EVENT_COLLECTOR = 10;

const predictionCache = new WeakMap<HostFacts, Map<string, PredictedGroup> | null>();

/**
 * The groups the kernel will make, predicted from config space the way pci_device_group
 * (drivers/iommu/iommu.c) makes them; null while the IOMMU is on (the kernel's own groups are the
 * truth) or when the facts were read without config space. The rules, each the kernel's:
 * - a function below a bridge or port whose path to the root is not isolated by ACS joins that
 *   bridge's group (pci_acs_path_enabled; a PCIe-to-PCI bridge and a conventional PCI bridge never
 *   isolate, so what sits behind one shares its group: its DMA alias);
 * - the functions of one multi-function device share a group unless they expose ACS
 *   (get_pci_function_alias_group with pci_acs_enabled); a single-function endpoint is isolated.
 * On x86 the IOMMU driver asks for ACS before the bus is scanned (pci_request_acs from
 * detect_intel_iommu / the AMD IVRS detection), and the kernel then enables every control the
 * capability offers (pci_enable_acs): having the capability is what counts, not its control
 * register while the IOMMU is off. Elsewhere (arm64 device-tree hosts ask later, after the scan)
 * only the controls already enabled count.
 * Of the kernel's per-device ACS quirks (drivers/pci/quirks.c pci_dev_acs_enabled) only Intel's
 * root-complex integrated endpoints are modelled; the rest (chipset root ports and multi-function
 * NICs by device id, that isolate without the capability) and the DMA-alias quirks are not. An ACS
 * quirk only ever isolates, so without it a predicted group can be larger than the real one, never
 * smaller: the prediction errs toward refusing. A config space not readable whole counts as no ACS.
 */
export function predictIommuGroups(facts: HostFacts): Map<string, PredictedGroup> | null {
  if (predictionCache.has(facts)) return predictionCache.get(facts)!;
  const predicted =
    facts.iommuGroups.size > 0 || facts.functions.some((f) => f.isolation === undefined)
      ? null
      : predict(facts);
  predictionCache.set(facts, predicted);
  return predicted;
}

/** The other members of `fn`'s predicted group, with why they share it; null without a prediction. */
export function predictedGroupOf(facts: HostFacts, fn: PciFunction): PredictedGroup | null {
  return predictIommuGroups(facts)?.get(fn.address) ?? null;
}

function predict(facts: HostFacts): Map<string, PredictedGroup> {
  const byAddress = functionIndex(facts);
  const bySlot = slotIndex(facts);
  const slotMates = (fn: PciFunction): PciFunction[] =>
    bySlot.get(fn.address.slice(0, fn.address.lastIndexOf("."))) ?? [];
  // The kernel's pdev->multifunction: the header type's bit, or any function but 0 of a slot it
  // scanned (pci_scan_slot sets it there: QEMU, and some cards, set the bit on function 0 only).
  const multifunction = (fn: PciFunction): boolean =>
    fn.physfn === null &&
    (fn.isolation
      ? fn.isolation.multifunction || !fn.address.endsWith(".0")
      : slotMates(fn).length > 1);
  const upstreamOf = (fn: PciFunction): PciFunction | null =>
    fn.upstream ? (byAddress.get(fn.upstream) ?? null) : null;

  // SV, RR, CR, UF: what pci_device_group asks of ACS (REQ_ACS_FLAGS).
  const REQUIRED = 0x01 | 0x04 | 0x08 | 0x10;
  const x86 = facts.arch === "x86";
  /** The ACS capability is there and, after the boot, enables what the kernel asks of it. */
  const acsOn = (iso: PciIsolation): boolean => {
    if (iso.acsCapability === null) return false;
    if (x86) return true;
    const wanted = REQUIRED & iso.acsCapability; // missing features count as hard-wired
    return ((iso.acsControl ?? 0) & wanted) === wanted;
  };
  /** pci_acs_enabled, with the controls the capability offers taken as enabled (x86). */
  const acsEnabled = (fn: PciFunction): boolean => {
    if (fn.physfn !== null) return true; // a VF: a single-function endpoint
    const iso = fn.isolation;
    if (!iso || iso.pcieType === null) return false; // unknown, or conventional PCI
    // The one quirk modelled (drivers/pci/quirks.c pci_quirk_rciep_acs): Intel's root-complex
    // integrated endpoints allow peer-to-peer only on translated addresses (VT-d 3.16), so the
    // kernel takes them as isolated whatever their config space says. Common on Intel hosts.
    if (fn.vendorId === "8086" && iso.pcieType === PCIE_RC_END) return true;
    switch (iso.pcieType) {
      case PCIE_TO_PCI_BRIDGE:
      case PCI_TO_PCIE_BRIDGE:
      case PCIE_RC_EVENT_COLLECTOR:
        return false;
      case PCIE_ROOT_PORT:
      case PCIE_DOWNSTREAM:
        return acsOn(iso);
      default:
        return multifunction(fn) ? acsOn(iso) : true;
    }
  };
  /** pci_acs_path_enabled(bridge, NULL): the bridge and every one above it isolate. */
  const pathIsolated = (bridge: PciFunction): PciFunction | true => {
    for (let b: PciFunction | null = bridge, guard = 0; b !== null && guard < 64; guard++) {
      if (!acsEnabled(b)) return b;
      b = upstreamOf(b);
    }
    return true;
  };
  const noAcs = (fn: PciFunction): string =>
    fn.isolation?.pcieType === PCIE_TO_PCI_BRIDGE
      ? `${fn.address} (a PCIe-to-PCI bridge)`
      : fn.isolation?.pcieType === null
        ? `${fn.address} (conventional PCI)`
        : fn.address;

  const parent = new Map<string, string>();
  const find = (a: string): string => {
    let root = a;
    while (parent.has(root)) root = parent.get(root)!;
    return root;
  };
  const why = new Map<string, string[]>();
  const union = (a: string, b: string, reason: string): void => {
    const ra = find(a);
    const rb = find(b);
    const reasons = [...(why.get(ra) ?? []), ...(ra === rb ? [] : (why.get(rb) ?? []))];
    if (!reasons.includes(reason)) reasons.push(reason);
    if (ra !== rb) {
      parent.set(rb, ra);
      why.delete(rb);
    }
    why.set(ra, reasons);
  };

  for (const fn of facts.functions) {
    const up = upstreamOf(fn);
    if (up !== null) {
      const blocker = pathIsolated(up);
      if (blocker !== true) {
        const at = blocker === up ? `${noAcs(up)} has` : `${noAcs(blocker)} above it has`;
        union(
          up.address,
          fn.address,
          `below ${up.address} everything shares its group: ${at} no ACS`,
        );
        continue;
      }
    }
    if (!multifunction(fn) || acsEnabled(fn)) continue;
    const slot = fn.address.slice(0, fn.address.lastIndexOf("."));
    const open = slotMates(fn).filter((m) => !acsEnabled(m));
    for (const mate of open) {
      if (mate === fn) continue;
      union(
        fn.address,
        mate.address,
        `${open.map(noAcs).join(", ")} are functions of one device (${slot}) without ACS`,
      );
    }
  }

  const groups = new Map<string, PredictedGroup>();
  const members = new Map<string, string[]>();
  for (const fn of facts.functions) {
    const root = find(fn.address);
    const list = members.get(root);
    if (list) list.push(fn.address);
    else members.set(root, [fn.address]);
  }
  for (const [root, list] of members) {
    const reasons = why.get(root) ?? [];
    const unread = list.filter((a) => byAddress.get(a)?.isolation === null);
    if (reasons.length > 0 && unread.length > 0) {
      reasons.push(
        `config space not readable whole for ${listOf(unread, 3, ", ")}: taken as without ACS`,
      );
    }
    const group = { members: list, why: reasons };
    for (const a of list) groups.set(a, group);
  }
  return groups;
}

/** The other members of `fn`'s predicted group (none without a prediction). */
export function predictedGroupMates(facts: HostFacts, fn: PciFunction): PciFunction[] {
  const group = predictedGroupOf(facts, fn);
  if (group === null) return [];
  const byAddress = functionIndex(facts);
  return group.members
    .filter((a) => a !== fn.address)
    .map((a) => byAddress.get(a))
    .filter((m): m is PciFunction => m !== undefined);
}
