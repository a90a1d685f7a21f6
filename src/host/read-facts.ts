// The host-facts layer in one import. readHostFacts is what every hook pays for, so it reads only
// sysfs/procfs: modules.alias (loadModuleIndex), pci.ids (loadPciIds) and host usage
// (readHostUsage) are separate so the hooks and actions that do not need them skip them.
import type { HostFacts, HostReadProblem } from "./facts";
import { readKernelFacts } from "./kernel";
import type { ModuleListing } from "./modules";
import { type PciDetail, readIommu, readPciFunctions } from "./pci";
import { readIsolation } from "./pci-config";

export type { ContainerDetection, KernelFacts } from "./kernel";
export {
  archOf,
  detectContainer,
  readCmdline,
  readCpuVendor,
  readKernelRelease,
  readLoadedModules,
  readMachine,
  readVfioPciAvailability,
} from "./kernel";
export type { ModuleListing } from "./modules";
export { EMPTY_MODULE_INDEX, loadModuleIndex, parseModuleAliases } from "./modules";
export type { IommuReadResult, PciDetail, PciReadResult } from "./pci";
export { readIommu, readPciFunctions } from "./pci";
export type { PciIdNames } from "./pci-ids";
export { loadPciIds, parsePciIds } from "./pci-ids";
export {
  judgeWithHostUsage,
  readHostUsage,
  readHostUsageFromFiles,
  readNetInterfaces,
} from "./usage";

/** Everything the planner needs about the host, plus what could not be read (never throws).
 * `detail` "plan" (the hooks) leaves what only the actions show to be read on first use. */
export function readHostFacts(
  root: string,
  detail: PciDetail = "all",
): {
  facts: HostFacts;
  problems: HostReadProblem[];
  /** Operator words for why this is a container (`/run/systemd/container says "lxc"`), or null. */
  containerEvidence: string | null;
  /** What the kernel facts read of modules.builtin/modules.dep: hand it to planModulesFor so the
   * plan's module names come from the same read. */
  moduleListing: ModuleListing;
} {
  const problems: HostReadProblem[] = [];
  const pci = readPciFunctions(root, detail);
  problems.push(...pci.problems);
  const iommu = readIommu(root, pci);
  problems.push(...iommu.problems);
  // No groups yet (IOMMU off): what the kernel will group them by, for the prediction.
  if (iommu.groups.size === 0) readIsolation(root, pci.functions, problems);
  const kernel = readKernelFacts(root, problems);
  return {
    facts: {
      functions: pci.functions,
      iommuGroups: iommu.groups,
      iommuGroupsDir: iommu.groupsDir,
      iommuUnits: iommu.units,
      cmdline: kernel.cmdline,
      cpuVendor: kernel.cpuVendor,
      machine: kernel.machine,
      arch: kernel.arch,
      kernelRelease: kernel.kernelRelease,
      vfioPci: kernel.vfioPci,
      container: kernel.container,
      vfioDevices: iommu.vfioDevices,
    },
    problems,
    containerEvidence: kernel.containerEvidence,
    moduleListing: kernel.moduleListing,
  };
}
