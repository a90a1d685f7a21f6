// The unit's one status, computed afresh each dispatch from what host preparation found. Pure: the
// charm hands it the outcome; it never looks at the host itself.
import type { ConfigError } from "../config";
import type { HostFacts } from "../host/facts";
import { kernelParamName } from "../kernel-param-vocabulary";
import { clip, listOf } from "../text";
import { isVfioDriver } from "./iommu-groups";
import { vfCountChange } from "./sriov";
import { describeBootFailures, type SriovBootFailure } from "./sriov-boot";
import type {
  BoundDevice,
  HostDecisions,
  PlanProblem,
  Regenerate,
  WithheldFunction,
} from "./types";

export type UnitStatus = {
  name: "active" | "blocked" | "maintenance" | "waiting";
  message: string;
};

/** A boot-file regeneration that did not happen (host-preparation maps apply's report to this). */
export interface FailedCommand {
  kind: Regenerate;
  argv: string[];
  /** Exit 127: the program is not on this host at all (no grub: systemd-boot, some ARM images). */
  notFound: boolean;
  /** The command, its exit code and the end of what it printed. */
  message: string;
}

/** What one run of host preparation came to. */
export type PreparationOutcome =
  | { kind: "config-error"; errors: ConfigError[] }
  | { kind: "container" }
  | { kind: "plan-problems"; problems: PlanProblem[] }
  | { kind: "refused"; message: string }
  | {
      kind: "prepared";
      plan: HostDecisions;
      facts: HostFacts;
      failed: FailedCommand[];
      /** PFs a boot already failed to give their VFs (plan/sriov-boot.ts): no reboot for them. */
      sriovBoot?: SriovBootFailure[];
    }
  | { kind: "removed"; failed: FailedCommand[] };

/** The planned parameters the running kernel was not booted with; null when /proc/cmdline could
 * not be read (unknown is not "missing"). */
export function missingKernelParams(plan: HostDecisions, facts: HostFacts): string[] | null {
  return missingParams(plan.kernelParams, facts);
}

/** The parameters of `params` the running kernel's command line lacks (null: line unknown); the
 * exporter asks the same question at every scrape. */
export function missingParams(
  params: string[],
  facts: Pick<HostFacts, "cmdline">,
): string[] | null {
  if (facts.cmdline === null) return null;
  const running = new Set(facts.cmdline.split(/\s+/).filter(Boolean));
  return params.filter((p) => !running.has(p));
}

/** The wording for a host whose boot loader the charm cannot configure (no grub): the exact
 * parameters to add by hand. One place, so every such status (x86 without grub, arm64 images
 * with systemd-boot) says it the same way. */
export function kernelParamsByHandMessage(params: string[], why: string): string {
  return (
    `${why}: add these kernel parameters to the boot loader's command line by hand, then ` +
    `reboot: ${params.join(" ")}`
  );
}

/** Why update-grub did not run: it is not on this host. */
export const NO_GRUB =
  "no grub on this host (update-grub not found: systemd-boot or another boot loader?)";

/** Why the running host does not match the plan yet (each reason in operator words); empty when
 * nothing a reboot would change stands in the way of passthrough. */
export function pendingReboot(
  plan: HostDecisions,
  facts: HostFacts,
  bootFailed: ReadonlySet<string> = new Set(),
): string[] {
  const reasons: string[] = [];
  const missing = missingKernelParams(plan, facts);
  const notBound = notOnVfio(plan, facts);
  const working = facts.iommuGroups.size > 0 && notBound.length === 0;
  // IOMMU on by default (AMD, some Intel kernels) with every function already on vfio-pci:
  // passthrough works, and the drop-in is for the next boot, not a reason to block.
  if (!working) {
    if (missing === null) {
      reasons.push(
        `kernel command line unknown (/proc/cmdline unreadable): cannot tell whether it has ` +
          plan.kernelParams.join(" "),
      );
    } else if (missing.length > 0) {
      reasons.push(`kernel command line lacks ${missing.join(" ")}`);
    }
  }
  // PFs whose VFs are not there yet: said once per PF, not once per missing VF.
  const changes = plan.sriov
    .filter((pf) => !bootFailed.has(pf.address))
    .map((pf) => vfCountChange(pf))
    .filter((c): c is string => c !== null);
  const recount = new Set(plan.sriov.filter((pf) => vfCountChange(pf)).map((pf) => pf.address));
  const waitingVfs = notBound.filter((d) => d.physfn === undefined || !recount.has(d.physfn));
  if (changes.length > 0) {
    reasons.push(`${list(changes)} (the VFs come at boot, or now with the sriov-vfs action)`);
  }
  if (waitingVfs.length > 0) {
    reasons.push(`${list(waitingVfs.map((d) => d.address))} not on vfio-pci yet`);
  }
  return reasons;
}

function notOnVfio(plan: HostDecisions, facts: HostFacts): BoundDevice[] {
  const byAddress = new Map(facts.functions.map((f) => [f.address, f]));
  return plan.bind.filter((d) => byAddress.get(d.address)?.driver !== "vfio-pci");
}

/**
 * Why the IOMMU is not usable, in operator words, when the kernel made no groups; null when it
 * made some. A reboot fixes only a command line that lacks the switch: with the switch already
 * there (or none needed, AMD) and still no group and no unit, the firmware has it disabled.
 */
export function iommuOffReason(kernelParams: string[], facts: HostFacts): string | null {
  if (facts.iommuGroups.size > 0) return null;
  if (facts.iommuGroupsDir === "absent") {
    return (
      "the running kernel has no IOMMU support (/sys/kernel/iommu_groups does not exist: " +
      "built without CONFIG_IOMMU_API, or /sys is not mounted): boot a kernel with it"
    );
  }
  if (facts.iommuGroupsDir === "unreadable") {
    return "whether the IOMMU is on is unknown (/sys/kernel/iommu_groups could not be read)";
  }
  const switches = kernelParams.filter((p) => /^(?:intel|amd)_iommu$/.test(kernelParamName(p)));
  const missing = missingParams(switches, facts);
  if (missing === null) {
    return (
      "the IOMMU is off (no IOMMU groups) and the kernel command line is unknown (/proc/cmdline " +
      "unreadable): cannot tell whether a reboot or the firmware setup would turn it on"
    );
  }
  if (missing.length > 0) return null; // the reboot the status asks for turns it on
  if (facts.iommuUnits.length > 0) return null; // units but no groups yet: nothing bound
  const what =
    facts.arch === "arm64"
      ? "the SMMU in the firmware (on ACPI hosts: the IORT table)"
      : `${
          facts.cpuVendor === "intel"
            ? "VT-d"
            : facts.cpuVendor === "amd"
              ? "AMD-Vi (IOMMU)"
              : "VT-d / AMD-Vi (IOMMU)"
        } in the firmware setup (BIOS/UEFI)`;
  const booted =
    switches.length > 0 ? ` although the kernel was booted with ${switches.join(" ")}` : "";
  return (
    `the IOMMU is off${booted} (no IOMMU groups, no IOMMU unit): enable ${what}; ` +
    "a reboot alone will not turn it on"
  );
}

/** Why a container is refused: the one message, for the status and the log. */
export const CONTAINER_MESSAGE =
  "host preparation needs a machine, not a container: deploy to the compute host itself";

/** The status an operator sees for this outcome. */
export function statusFor(outcome: PreparationOutcome): UnitStatus {
  switch (outcome.kind) {
    case "config-error": {
      const [first, ...rest] = outcome.errors;
      const more = rest.length > 0 ? ` (+${rest.length} more: juju debug-log)` : "";
      return blocked(`${formatConfigError(first!)}${more}`);
    }
    case "container":
      return blocked(CONTAINER_MESSAGE);
    case "plan-problems": {
      const [first, ...rest] = outcome.problems;
      const more = rest.length > 0 ? ` (+${rest.length} more: juju debug-log)` : "";
      return blocked(`${first!.option ? `${first!.option}: ` : ""}${first!.message}${more}`);
    }
    case "refused":
      return blocked(outcome.message);
    case "removed":
      if (outcome.failed.length > 0) return failedStatus(outcome.failed[0]!);
      return {
        name: "maintenance",
        message: "host restored; reboot to return devices to their host drivers",
      };
    case "prepared":
      return preparedStatus(outcome.plan, outcome.facts, outcome.failed, outcome.sriovBoot ?? []);
  }
}

/** One line naming the option, the value, the problem and the fix. */
export function formatConfigError(e: ConfigError): string {
  return `${e.option}=${JSON.stringify(clip(e.value, 40))}: ${e.problem}; ${e.fix}`;
}

function preparedStatus(
  plan: HostDecisions,
  facts: HostFacts,
  failed: FailedCommand[],
  sriovBoot: SriovBootFailure[],
): UnitStatus {
  const notes = [...plan.notes];
  const missing = missingKernelParams(plan, facts);
  for (const f of failed) {
    if (f.kind === "grub" && f.notFound) {
      // Nothing to regenerate with: the operator keeps the parameters by hand.
      if (missing !== null && missing.length === 0) {
        notes.push("no update-grub here: the kernel parameters are kept by hand");
        continue;
      }
      return blocked(kernelParamsByHandMessage(plan.kernelParams, NO_GRUB));
    }
    return failedStatus(f);
  }
  const kept = plan.withheld.length > 0 ? `; ${withheldMessage(plan.withheld)}` : "";
  const pending = pendingReboot(plan, facts, new Set(sriovBoot.map((f) => f.pf)));
  // A boot already failed to make these VFs: say what the kernel said and what fixes it, never
  // "reboot" (the same boot would fail the same way).
  if (sriovBoot.length > 0) {
    const more = pending.length > 0 ? `; reboot required: ${pending.join("; ")}` : "";
    return blocked(`${describeBootFailures(sriovBoot)}${more}${kept}`);
  }
  // A refusal (a chipset group) comes first: no reboot will make it work.
  if (pending.length > 0 && plan.withheld.some((w) => !w.forceable)) {
    return blocked(`${withheldMessage(plan.withheld)}; reboot required: ${pending.join("; ")}`);
  }
  // The firmware (or a kernel without IOMMU support) before a reboot: no reboot turns it on.
  const off = plan.bind.length > 0 ? iommuOffReason(plan.kernelParams, facts) : null;
  if (off) return blocked(`${off}${kept}`);
  if (pending.length > 0) {
    const nova = plan.bind.length > 0 ? "; waiting for reboot before offering devices to nova" : "";
    return blocked(`reboot required: ${pending.join("; ")}${nova}${kept}`);
  }
  // Something selected that no override can take, or nothing given to VMs because the host keeps
  // all of it: the selection is not met, the operator must act.
  if (plan.withheld.some((w) => !w.forceable) || (plan.bind.length === 0 && kept !== "")) {
    const given = plan.bind.length > 0 ? `; ${devicesSummary(plan.bind)} on vfio-pci` : "";
    return blocked(`${withheldMessage(plan.withheld)}${given}`);
  }
  if (missing === null) {
    notes.push("kernel command line unknown (/proc/cmdline unreadable)");
  } else if (missing.length > 0) {
    notes.push(
      `the running kernel lacks ${missing.join(" ")}: the drop-in applies at the next boot`,
    );
  }
  const iommu = iommuSummary(facts);
  const tail = notes.length > 0 ? `; ${notes.join("; ")}` : "";
  if (plan.bind.length === 0) return active(`no matching devices on this host; ${iommu}${tail}`);
  return active(`${devicesSummary(plan.bind)} on vfio-pci; ${iommu}${tail}${kept}`);
}

/** A regeneration that failed: what failed, that the files are in place, and that it is retried. */
function failedStatus(f: FailedCommand): UnitStatus {
  if (f.notFound) {
    return blocked(
      `${f.message}; the charm's files are written: install it or do its work by hand; the charm runs it once it is on PATH or its inputs change`,
    );
  }
  const fix = /no space left on device/i.test(f.message)
    ? "free space in /boot (df -h /boot)"
    : "fix what it reports";
  return blocked(
    `${f.message}; the charm's files are written: ${fix}, and the charm runs it again at its next hook`,
  );
}

/**
 * The functions the selection matched but the host keeps: which, why, where each is now, and how
 * to override. "kept for the host: 0000:18:00.0 (network interface eno1 is up; ...), not bound
 * and its drivers not blacklisted; to give it to VMs anyway add force: true to devices entry #1
 * "8086:1593" (or an entry {address: 0000:18:00.0, force: true})". Refused ones (chipset groups)
 * say no override. One that still sits on vfio-pci (bound at an earlier boot, before its group was
 * known) is said as such, with what returns it to the host: the next reboot, or `rebind` now.
 */
export function withheldMessage(withheld: WithheldFunction[]): string {
  const parts: string[] = [];
  const onVfio = withheld.filter((w) => isVfioDriver(w.driver ?? null));
  const forceable = withheld.filter((w) => w.forceable && !onVfio.includes(w));
  const refused = withheld.filter((w) => !w.forceable && !onVfio.includes(w));
  if (refused.length > 0) {
    parts.push(
      `refused: ${listed(refused)}; no override exists: remove or narrow the devices entry`,
    );
  }
  if (onVfio.length > 0) {
    const addresses = onVfio.map((w) => w.address);
    const drivers = [...new Set(onVfio.map((w) => w.driver))].join("/");
    parts.push(
      `${onVfio.some((w) => !w.forceable) ? "refused" : "kept for the host"} but still on ` +
        `${drivers} (bound at an earlier boot): ${listed(onVfio)}; the charm no longer binds ` +
        `${onVfio.length === 1 ? "it" : "them"} at boot, so the next reboot returns ` +
        `${onVfio.length === 1 ? "it" : "them"} to the host driver; to return ` +
        `${onVfio.length === 1 ? "it" : "them"} now run the rebind action with ` +
        `devices="${addresses.join(" ")}" to=host`,
    );
  }
  if (forceable.length > 0) {
    const first = forceable[0]!;
    parts.push(
      `kept for the host (not bound, its drivers not blacklisted): ${listed(forceable)}; to give ` +
        `${forceable.length === 1 ? "it" : "one"} to VMs anyway, select it with force: true, e.g. ` +
        `{address: ${first.address}, force: true}`,
    );
  }
  return parts.join("; ");
}

/** Every withheld function is named: the first three with their ids, entry and reasons, the rest
 * by address with where their reasons are (the status line would not hold them all). */
function listed(withheld: WithheldFunction[]): string {
  const full = withheld
    .slice(0, 3)
    .map((w) => `${w.address} ${w.vendorId}:${w.deviceId} of ${w.entry} (${w.reasons.join("; ")})`);
  const rest = withheld.slice(3).map((w) => w.address);
  if (rest.length === 0) return full.join(", ");
  return `${full.join(", ")}, and ${rest.join(", ")} (their reasons: the list-devices action's host-use, or juju debug-log)`;
}

function devicesSummary(bind: BoundDevice[]): string {
  const perAlias = new Map<string, number>();
  for (const d of bind) perAlias.set(d.alias, (perAlias.get(d.alias) ?? 0) + 1);
  const parts = [...perAlias].map(([alias, n]) => `${alias} x${n}`);
  return `${bind.length} device${bind.length === 1 ? "" : "s"} (${parts.join(", ")})`;
}

function iommuSummary(facts: HostFacts): string {
  if (facts.iommuGroups.size === 0) {
    if (facts.iommuGroupsDir === "absent") return "no IOMMU support in the running kernel";
    if (facts.iommuGroupsDir === "unreadable") return "IOMMU state unknown";
    return "IOMMU off";
  }
  return `IOMMU on (${facts.iommuUnits.length > 0 ? facts.iommuUnits.join(", ") : `${facts.iommuGroups.size} groups`})`;
}

function list(items: string[]): string {
  return listOf(items, 3, ", ");
}

const blocked = (message: string): UnitStatus => ({ name: "blocked", message });
const active = (message: string): UnitStatus => ({ name: "active", message });
