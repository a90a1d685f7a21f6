// The host plan: config + facts → every owned file with its bytes, the kernel parameters, the
// blacklist, the functions for vfio-pci, and what blocks or is worth saying. Pure and
// deterministic (same input, same bytes): the apply step writes exactly this, nothing more.
import type { Config } from "../config";
import type { HostFacts, HostUsage, ModuleAliases, ModuleNames } from "../host/facts";
import { OWNED } from "../host/root";
import type { VfCountClaim } from "../host/vf-count-owners";
import { compareAddresses, idsOf } from "../pci-vocabulary";
import { listOf } from "../text";
import {
  checkModuleNames,
  nativeDrivers,
  planBlacklist,
  planKernelParams,
  splitByBinding,
} from "./boot";
import {
  renderBindHelper,
  renderGrubDropIn,
  renderInitramfsHook,
  renderModprobeConf,
  renderUdevRules,
} from "./render-files";
import { renderSriovHelper, renderSriovRules } from "./render-sriov";
import {
  renderSriovBootUnit,
  renderSriovBootWait,
  renderSriovBootWants,
} from "./render-sriov-boot";
import { selectedByIds } from "./select";
import { selectForHost } from "./sriov";
import type {
  BoundDevice,
  FileSpec,
  HostDecisions,
  HostPlan,
  PlanProblem,
  Regenerate,
} from "./types";
import { vfCountDisagreements, vfCountProblems } from "./vf-count-owners";

/** What the charm stored the last time it applied a plan. */
export interface PreviousBinding {
  /** Address → "vvvv:dddd" of every function set up for vfio-pci. */
  boundIds: Record<string, string>;
}

/** Which regeneration each owned file feeds, whether it is written or removed. */
export const FEEDS: Record<string, Regenerate[]> = {
  [OWNED.grubDropIn]: ["grub"],
  [OWNED.modprobeConf]: ["initramfs"],
  [OWNED.udevRule]: ["initramfs"],
  [OWNED.bindHelper]: ["initramfs"],
  [OWNED.initramfsHook]: ["initramfs"],
  [OWNED.sriovRule]: ["initramfs"],
  [OWNED.sriovHelper]: ["initramfs"],
  // Read by systemd from the real root at boot: nothing to regenerate.
  [OWNED.sriovBootUnit]: [],
  [OWNED.sriovBootWants]: [],
  [OWNED.sriovBootWait]: [],
};

/** What the planner knows of the host beyond the facts, when the caller read it. */
export interface PlanContext {
  /** What the host uses (host/usage.ts): those functions are withheld, never bound. */
  usage?: HostUsage;
  /** The target kernel's module names and its drivers' modules (host/modules.ts
   * readModuleNames, read before planning): only those names are written. */
  moduleNames?: ModuleNames | null;
  /** What the host's other owners of VF counts (netplan, ovn-chassis, neutron-openvswitch) set at
   * boot (host/vf-count-owners.ts): a planned PF they count differently blocks the plan. */
  vfCountClaims?: VfCountClaim[];
}

/** Plans the host: the files the charm should own and why, or the problems that stop it. Every
 * input is data read before (the module answers too): planning reads nothing. */
export function planHost(
  config: Config,
  facts: HostFacts,
  /** modules.alias's answers for the functions' modaliases (host/modules.ts readModuleAliases);
   * null: unknown (auto blacklists nothing). */
  moduleAliases: ModuleAliases | null,
  previous: PreviousBinding,
  context: PlanContext = {},
): HostPlan {
  return renderHostPlan(decideHost(config, facts, moduleAliases, previous, context));
}

/** What planHost decides, without rendering the files: what the actions show (at 10,000 selected
 * functions the per-address udev rules alone are megabytes no action prints). */
export function decideHost(
  config: Config,
  facts: HostFacts,
  moduleAliases: ModuleAliases | null,
  previous: PreviousBinding,
  context: PlanContext = {},
): HostDecisions {
  const usage = context.usage ?? new Map<string, string[]>();
  const names = context.moduleNames ?? null;
  const problems: PlanProblem[] = [];
  const notes: string[] = [];

  const selection = selectForHost(config.devices, facts, usage);
  const bind = selection.bind;
  problems.push(...selection.problems);
  const claims = context.vfCountClaims ?? [];
  problems.push(
    ...vfCountProblems(vfCountDisagreements(selection.sriov.pfs, facts, claims), claims),
  );
  if (bind.length > 0 && selection.unmatched.length > 0) {
    // With nothing bound at all the status already says "no matching devices on this host".
    const entries = selection.unmatched.map((s) => `#${s.index + 1}`).join(", ");
    const noun = selection.unmatched.length === 1 ? "entry" : "entries";
    notes.push(`devices ${noun} ${entries} match nothing here`);
  }
  notes.push(...selection.notes);

  problems.push(...identityChanges(config, facts, bind, previous, notes));

  if (bind.length > 0 && facts.vfioPci === "missing") {
    problems.push({
      option: "devices",
      message:
        `kernel ${facts.kernelRelease} has no vfio-pci (neither built in nor a module): install ` +
        `linux-modules-extra-${facts.kernelRelease} (or a kernel with CONFIG_VFIO_PCI), then retry.`,
    });
  }

  if (bind.length > 0 && facts.vfioPci === "unknown") {
    // Unknown, not missing: the udev helper loads vfio-pci at boot if the kernel has it.
    notes.push(
      "kernel release unknown (/proc/sys/kernel/osrelease unreadable): cannot tell whether this kernel has vfio-pci",
    );
  }

  // The VFs the charm creates need no blacklist and no softdep: the SR-IOV helper keeps every
  // driver off them until each has its override. Counted as kept, their VF driver is never
  // blacklisted either (neutron-port VFs of another PF, or a later boot, need it).
  // Only the SR-IOV plan's VFs carry a physfn: without them every device is a whole function.
  const wholeFunctions =
    selection.sriov.bind.length === 0 ? bind : bind.filter((d) => d.physfn === undefined);
  const split = splitByBinding(facts, wholeFunctions);
  const native = nativeDrivers(split.given, moduleAliases, names);
  const blacklist = planBlacklist(config, split, native, moduleAliases, names);
  problems.push(...blacklist.problems);
  notes.push(...blacklist.notes);
  // Every module name written must be one the target kernel has: a name modprobe cannot find
  // blacklists nothing and hides the mistake (a driver's name is often not its module's).
  const blacklisted = checkModuleNames(blacklist.modules, names);
  const softdeps = checkModuleNames(native, names);
  const unknown = [...new Set([...blacklisted.unknown, ...softdeps.unknown])].sort();
  if (unknown.length > 0) {
    notes.push(
      `not written (no such module in kernel ${facts.kernelRelease}'s modules.dep or modules.builtin): ${unknown.join(", ")}`,
    );
  }

  const kernel = planKernelParams(config, facts, blacklisted.known);
  problems.push(...kernel.problems);
  notes.push(...kernel.notes);

  return {
    kernelParams: kernel.params,
    blacklist: blacklisted.known,
    softdeps: softdeps.known,
    bind,
    withheld: selection.withheld,
    sriov: selection.sriov.pfs,
    problems,
    notes,
  };
}

/** The decisions with every owned file that carries them, rendered. */
export function renderHostPlan(plan: HostDecisions): HostPlan {
  const files: FileSpec[] = [];
  if (plan.kernelParams.length > 0) {
    const content = renderGrubDropIn(plan.kernelParams);
    files.push({ path: OWNED.grubDropIn, content, mode: 0o644 });
  }
  const modprobe = renderModprobeConf(plan.blacklist, plan.softdeps);
  if (modprobe !== null) files.push({ path: OWNED.modprobeConf, content: modprobe, mode: 0o644 });
  // VFs the charm creates are steered by the SR-IOV helper as they appear (render-sriov.ts): one
  // line per PF, not one per VF (8 PFs × 1,024 VFs would be 2 MB of rules matched on every event).
  const udev = renderUdevRules(plan.bind.filter((d) => d.physfn === undefined));
  if (udev !== null) {
    files.push({ path: OWNED.udevRule, content: udev, mode: 0o644 });
    files.push({ path: OWNED.bindHelper, content: renderBindHelper(), mode: 0o755 });
  }
  const sriovRules = renderSriovRules(plan.sriov);
  if (sriovRules !== null) {
    files.push({ path: OWNED.sriovRule, content: sriovRules, mode: 0o644 });
    files.push({ path: OWNED.sriovHelper, content: renderSriovHelper(), mode: 0o755 });
  }
  // The boot order: nova-compute and neutron's SR-IOV agent start after the VFs are ready.
  const sriovUnit = renderSriovBootUnit(plan.sriov);
  if (sriovUnit !== null) {
    files.push({ path: OWNED.sriovBootUnit, content: sriovUnit, mode: 0o644 });
    files.push({ path: OWNED.sriovBootWants, content: renderSriovBootWants(), mode: 0o644 });
    files.push({ path: OWNED.sriovBootWait, content: renderSriovBootWait(), mode: 0o755 });
  }
  if (udev !== null || sriovRules !== null) {
    files.push({ path: OWNED.initramfsHook, content: renderInitramfsHook(), mode: 0o755 });
  }
  files.sort((a, b) => (a.path < b.path ? -1 : 1));
  return { ...plan, files, feeds: { ...FEEDS } };
}

/**
 * The charm stored vendor:device next to each address it bound. A function planned for vfio-pci
 * whose address now holds another device (a card swapped, a slot renumbered by a BIOS update) is
 * refused, unless an entry that selects it names its current ids: that is the operator's
 * confirmation. An address that changed but is no longer planned only gets a note.
 */
function identityChanges(
  config: Config,
  facts: HostFacts,
  bind: BoundDevice[],
  previous: PreviousBinding,
  notes: string[],
): PlanProblem[] {
  const problems: PlanProblem[] = [];
  // Nothing remembered (a first hook; an action, which judges the host as it is): nothing changed.
  if (Object.keys(previous.boundIds).length === 0) return problems;
  const gone: string[] = [];
  const planned = new Map(bind.map((b) => [b.address, b]));
  const byAddress = new Map(facts.functions.map((f) => [f.address, f]));
  const confirmedByIds = (b: BoundDevice): boolean => {
    const anchor = b.follows === null ? b : (planned.get(b.follows) ?? b);
    const fn = byAddress.get(anchor.address);
    return fn !== undefined && selectedByIds(config.devices, fn);
  };
  for (const address of Object.keys(previous.boundIds).sort(compareAddresses)) {
    const before = previous.boundIds[address]!;
    const fn = byAddress.get(address);
    const now = fn ? idsOf(fn) : null;
    if (now === before) continue;
    const b = planned.get(address);
    // A VF the charm creates is absent until its PF's driver made it (the next boot, or the
    // sriov-vfs action); its PF's ids are checked by the SR-IOV rule itself.
    if (b?.physfn !== undefined && fn === undefined) continue;
    if (b && !confirmedByIds(b)) {
      problems.push({
        option: "devices",
        message:
          `${address} was ${before} when the charm bound it and is now ${now}: the card in that ` +
          `slot changed. Check the hardware; to give the new device to VMs, add vendor-id ` +
          `${fn!.vendorId} and product-id ${fn!.deviceId} to its devices entry, or remove it from devices.`,
      });
    } else if (!b) {
      gone.push(`${address} was ${before}, now ${now ?? "absent"}`);
    }
  }
  if (gone.length > 0) notes.push(`left to the host: ${listOf(gone)}`);
  return problems;
}
