// IOMMU groups: who shares a function's group, and whether the group is viable. The one place
// for group logic, used by the safety judgement (host-safety.ts), verify-iommu and rebind. The kernel lets VFIO use a group only
// when every member is bound to a vfio driver, to pci-stub, to nothing, or is a bridge/port (a
// non-normal header: any driver, pcieport in practice). QEMU says "group N is not viable" otherwise.
import type { HostFacts, PciFunction } from "../host/facts";

/** True for vfio-pci and its variant drivers (mlx5_vfio_pci, nvgrace_gpu_vfio_pci…). */
export function isVfioDriver(driver: string | null): boolean {
  return driver !== null && /vfio/.test(driver);
}

/** True when this member does not stop its group from being given to a VM. */
export function isHarmlessMember(fn: PciFunction): boolean {
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
  const members = facts.iommuGroups.get(fn.iommuGroup) ?? [];
  const byAddress = functionIndex(facts);
  return members
    .filter((a) => a !== fn.address)
    .map((a) => byAddress.get(a))
    .filter((m): m is PciFunction => m !== undefined);
}

const indexCache = new WeakMap<HostFacts, Map<string, PciFunction>>();

/** Functions by address (memoised per facts object; facts are read once and never mutated). */
export function functionIndex(facts: HostFacts): Map<string, PciFunction> {
  let index = indexCache.get(facts);
  if (!index) {
    index = new Map(facts.functions.map((f) => [f.address, f]));
    indexCache.set(facts, index);
  }
  return index;
}
