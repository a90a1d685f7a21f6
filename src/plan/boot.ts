// Boot-time decisions: the kernel parameters our grub drop-in appends and the modules kept off the
// host. Pure: config, facts and the answers of modules.alias in (read before planning), lists out. The file texts that carry
// these decisions are rendered in render-files.ts.
import type { Config } from "../config";
import type { HostFacts, ModuleAliases, ModuleNames, PciFunction } from "../host/facts";
import { isProtectedModule, normaliseModule } from "../module-name-vocabulary";
import { idsOf } from "../pci-vocabulary";
import type { BoundDevice, PlanProblem } from "./types";

/** The kernel parameters, in the order the drop-in appends them, what is worth saying, and what
 * stops the plan (an IOMMU option naming hardware this architecture does not have). */
export function planKernelParams(
  config: Config,
  facts: HostFacts,
  blacklist: string[],
): { params: string[]; notes: string[]; problems: PlanProblem[] } {
  const params: string[] = [];
  const notes: string[] = [];
  const problems: PlanProblem[] = [];
  const arm = facts.arch === "arm64" || (config.iommu === "arm" && facts.arch !== "x86");
  const kernel = facts.machine || facts.arch;
  // AMD: `amd_iommu=on` is not a valid value (the kernel logs "AMD-Vi: Unknown option" and the
  // IOMMU is on by default anyway), so AMD hosts get no IOMMU switch at all. Arm's SMMU is on by
  // default too (it has no switch to add).
  switch (config.iommu) {
    case "auto":
      if (facts.arch === "x86" && facts.cpuVendor === "intel") params.push("intel_iommu=on");
      if (facts.arch === "x86" && facts.cpuVendor === "unknown") {
        notes.push(
          "iommu=auto: CPU vendor unknown, no IOMMU switch added (set iommu to intel or amd)",
        );
      } else if (facts.arch === "unknown") {
        notes.push(
          "iommu=auto: neither the kernel nor /proc/cpuinfo says which architecture this is; no IOMMU switch added (set iommu to intel, amd or arm)",
        );
      }
      break;
    case "intel":
    case "amd":
      if (facts.arch === "arm64" || facts.arch === "other") {
        problems.push({
          option: "iommu",
          message:
            `iommu=${config.iommu} names the ${config.iommu === "intel" ? "Intel VT-d" : "AMD-Vi"} IOMMU of x86 hosts, ` +
            `but this host runs a ${kernel} kernel${facts.arch === "arm64" ? ", whose IOMMU is an Arm SMMU" : ""}: ` +
            `set iommu to auto${facts.arch === "arm64" ? " (or arm)" : ""}.`,
        });
        break;
      }
      if (config.iommu === "intel") {
        params.push("intel_iommu=on");
        if (facts.cpuVendor === "amd")
          notes.push("iommu=intel on an AMD CPU: intel_iommu=on has no effect");
      } else if (facts.cpuVendor === "intel") {
        notes.push("iommu=amd on an Intel CPU: no IOMMU switch added");
      }
      break;
    case "arm":
      if (facts.arch === "x86" || facts.arch === "other") {
        problems.push({
          option: "iommu",
          message:
            `iommu=arm names the Arm SMMU of arm64 hosts, but this host runs a ${kernel} kernel: ` +
            `set iommu to auto${facts.arch === "x86" ? " (or intel/amd)" : ""}.`,
        });
      }
      break;
    case "off":
      break;
  }
  // The passthrough (identity) mapping for host-owned devices: `iommu=pt` on x86; arm64 does not
  // know that word and spells it `iommu.passthrough=1`.
  if (config.iommuPassthroughMode && config.iommu !== "off") {
    params.push(arm ? "iommu.passthrough=1" : "iommu=pt");
  }
  if (config.allowUnsafeInterrupts) {
    params.push("vfio_iommu_type1.allow_unsafe_interrupts=1");
    notes.push("allow-unsafe-interrupts is on: guests are less isolated");
  }
  // On the command line as well as in modprobe.d: kmod reads /proc/cmdline in the initramfs too,
  // and we cannot know which drivers the next initramfs will carry.
  if (blacklist.length > 0) params.push(`modprobe.blacklist=${blacklist.join(",")}`);
  params.push(...config.extraKernelParams);
  return { params, notes, problems };
}

/** The modules that serve or would claim a function: modules.alias matches (as `lspci -k`
 * shows them) plus the module of its current driver, in kmod's `_` spelling, without vfio
 * modules, pcieport or pci-stub. A driver is not a module: `i801_smbus` is module `i2c_i801`,
 * `xhci_hcd` is `xhci_pci`, so the driver counts only through its sysfs module link (`names`);
 * without one, the modalias answers speak for the device alone. */
export function claimersOf(
  fn: PciFunction,
  aliases: ModuleAliases | null,
  names: ModuleNames | null = null,
): string[] {
  return claimersOfNow(fn, aliases, names);
}

/** claimersOf for many functions: one answer per distinct modalias and driver (thousands of VFs
 * share one), the same list each time it is asked (to read, not to keep). Looked up by modalias,
 * then driver: no key string built per function. */
function claimersCache(
  aliases: ModuleAliases | null,
  names: ModuleNames | null,
): (fn: PciFunction) => readonly string[] {
  const answers = new Map<string, Map<string | null, string[]>>();
  return (fn) => {
    let byDriver = answers.get(fn.modalias);
    if (byDriver === undefined) {
      byDriver = new Map();
      answers.set(fn.modalias, byDriver);
    }
    let answer = byDriver.get(fn.driver);
    if (answer === undefined) {
      answer = claimersOfNow(fn, aliases, names);
      byDriver.set(fn.driver, answer);
    }
    return answer;
  };
}

function claimersOfNow(
  fn: PciFunction,
  aliases: ModuleAliases | null,
  names: ModuleNames | null,
): string[] {
  const found = new Set<string>();
  for (const m of aliases?.get(fn.modalias) ?? []) found.add(normaliseModule(m));
  const driverModule = fn.driver !== null ? (names?.ofDriver.get(fn.driver) ?? null) : null;
  if (driverModule !== null) found.add(normaliseModule(driverModule));
  return [...found].filter((m) => !isProtectedModule(m) && m !== "pci_stub").sort();
}

/** Splits module names into those the target kernel has and those it does not (or that cannot be
 * checked): only the first may be written; the others are reported. Without `names` (the pure
 * planner's tests) every name passes. */
export function checkModuleNames(
  modules: string[],
  names: ModuleNames | null,
): { known: string[]; unknown: string[] } {
  if (names === null) return { known: modules, unknown: [] };
  const known: string[] = [];
  const unknown: string[] = [];
  for (const m of modules) (names.known?.has(normaliseModule(m)) ? known : unknown).push(m);
  return { known, unknown };
}

/** The host's functions split by the plan: those given to VMs and those the host keeps. */
export interface FunctionSplit {
  /** The functions of `bind` (whole functions: the VFs the charm creates are not there yet). */
  given: PciFunction[];
  /** Every other function of the host. */
  kept: PciFunction[];
}

/** Splits the host's functions by `bind`, in facts order: the blacklist and the softdeps both need
 * the split, at 10,000 functions once is enough. */
export function splitByBinding(facts: HostFacts, bind: BoundDevice[]): FunctionSplit {
  // Both lists are in bus order, so one walk pairs them without an address set; facts in another
  // order (made by hand) leave some of `bind` unpaired, and the set decides instead.
  const given: PciFunction[] = [];
  const kept: PciFunction[] = [];
  let next = 0;
  for (const fn of facts.functions) {
    if (next < bind.length && bind[next]!.address === fn.address) {
      given.push(fn);
      next++;
    } else {
      kept.push(fn);
    }
  }
  if (next === bind.length) return { given, kept };
  const bound = new Set(bind.map((b) => b.address));
  return {
    given: facts.functions.filter((fn) => bound.has(fn.address)),
    kept: facts.functions.filter((fn) => !bound.has(fn.address)),
  };
}

/** The native drivers of the functions given to VMs: each gets `softdep <m> pre: vfio-pci`, and
 * (blacklist-drivers=auto) those the host does not need are blacklisted. */
export function nativeDrivers(
  given: PciFunction[],
  aliases: ModuleAliases | null,
  names: ModuleNames | null = null,
): string[] {
  const claimers = claimersCache(aliases, names);
  // Thousands of VFs share one answer, the very same list: each list is read once.
  const answers = new Set<readonly string[]>();
  for (const fn of given) answers.add(claimers(fn));
  const out = new Set<string>();
  for (const answer of answers) for (const m of answer) out.add(m);
  return [...out].sort();
}

/**
 * The host-wide blacklist. `auto`: every module that would claim a function given to VMs, minus
 * every module that serves or would claim a function the host keeps (the management NIC on the
 * same driver, the identical twin of a GPU selected by address). An explicit list is taken as is,
 * but refused when it would strand a kept function: its current driver is listed, or every module
 * that could claim it is.
 */
export function planBlacklist(
  config: Config,
  split: FunctionSplit,
  /** nativeDrivers of `split.given`. */
  native: string[],
  aliases: ModuleAliases | null,
  names: ModuleNames | null = null,
): { modules: string[]; problems: PlanProblem[]; notes: string[] } {
  const kept = split.kept;
  const setting = config.blacklistDrivers;

  if (setting.mode === "auto") {
    if (split.given.length === 0) return { modules: [], problems: [], notes: [] };
    if (aliases === null) {
      // Without modules.alias we cannot know what else a module would claim: blacklist nothing
      // (per-address binding works without a blacklist).
      return {
        modules: [],
        problems: [],
        notes: ["modules.alias unreadable: blacklist-drivers=auto blacklists nothing"],
      };
    }
    const wanted = new Set(native);
    const claimers = claimersCache(aliases, names);
    for (const fn of kept) for (const m of claimers(fn)) wanted.delete(m);
    return { modules: [...wanted].sort(), problems: [], notes: [] };
  }

  const listed = new Set(setting.modules.map(normaliseModule));
  const problems: PlanProblem[] = [];
  for (const module of [...listed].sort()) {
    const stranded = kept.filter((fn) => {
      const driver =
        fn.driver === null ? null : normaliseModule(names?.ofDriver.get(fn.driver) ?? fn.driver);
      if (driver === module) return true;
      const candidates = claimersOf(fn, aliases, names);
      return candidates.includes(module) && candidates.every((m) => listed.has(m));
    });
    if (stranded.length === 0) continue;
    const named = stranded
      .slice(0, 3)
      .map((fn) => `${fn.address} (${idsOf(fn)}${fn.driver ? `, on ${fn.driver}` : ""})`)
      .join(", ");
    const more = stranded.length > 3 ? ` and ${stranded.length - 3} more` : "";
    problems.push({
      option: "blacklist-drivers",
      message:
        `blacklisting ${module} would leave ${named}${more} without a driver, and the host keeps ` +
        `${stranded.length === 1 ? "it" : "them"}: remove ${module} from blacklist-drivers ` +
        "(per-address binding needs no blacklist), use auto, or select those devices too.",
    });
  }
  return { modules: [...listed].sort(), problems, notes: [] };
}
