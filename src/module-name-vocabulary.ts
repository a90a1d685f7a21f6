// The kernel-module vocabulary: module names as modprobe, modules.alias and /proc/modules spell
// them. The config parser, the boot planner and the host readers ask it, so a name one accepts
// the others compare alike. Pure: strings in, strings out.

/** Lower-case letters, digits, _ and -: what modprobe takes and lsmod prints. */
const MODULE_NAME = /^[a-z0-9_-]+$/;

/** True for a string that can name a kernel module. */
export function isModuleName(text: string): boolean {
  return MODULE_NAME.test(text);
}

/** kmod treats `-` and `_` in module names as the same character; we store the `_` spelling,
 * which is how modules.alias and /proc/modules spell them, so comparisons just work. */
export function normaliseModule(name: string): string {
  return name.replace(/-/g, "_");
}

/** Modules the charm needs on the host: blacklisting them would break passthrough or every PCIe
 * port. (`vfio_pci`, `vfio_iommu_type1`, `vfio_pci_core`… all start with vfio.) */
export function isProtectedModule(name: string): boolean {
  const n = normaliseModule(name);
  return n.startsWith("vfio") || n === "pcieport";
}
