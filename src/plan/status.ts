// The unit's one status, computed afresh each dispatch from what host preparation found. Pure: the
// charm hands it the outcome; it never looks at the host itself.
import type { ConfigError } from "../config";
import type { HostFacts } from "../host/facts";
import type { BoundDevice, HostPlan, PlanProblem, WithheldFunction } from "./types";

export type UnitStatus = {
  name: "active" | "blocked" | "maintenance" | "waiting";
  message: string;
};

/** What one run of host preparation came to. */
export type PreparationOutcome =
  | { kind: "config-error"; errors: ConfigError[] }
  | { kind: "container" }
  | { kind: "plan-problems"; problems: PlanProblem[] }
  | { kind: "refused"; message: string }
  | { kind: "prepared"; plan: HostPlan; facts: HostFacts; pending: string[] }
  | { kind: "removed" };

/** Why the running host does not match the plan yet; empty when no reboot is needed. */
export function pendingReboot(plan: HostPlan, facts: HostFacts): string[] {
  const running = new Set(facts.cmdline.split(/\s+/).filter(Boolean));
  const reasons: string[] = [];
  const missing = plan.kernelParams.filter((p) => !running.has(p));
  if (missing.length > 0) reasons.push(`kernel command line lacks ${missing.join(" ")}`);
  const byAddress = new Map(facts.functions.map((f) => [f.address, f]));
  const notBound = plan.bind.filter((d) => byAddress.get(d.address)?.driver !== "vfio-pci");
  if (notBound.length > 0) {
    reasons.push(`${list(notBound.map((d) => d.address))} not on vfio-pci yet`);
  }
  return reasons;
}

/** The status an operator sees for this outcome. */
export function statusFor(outcome: PreparationOutcome): UnitStatus {
  switch (outcome.kind) {
    case "config-error": {
      const [first, ...rest] = outcome.errors;
      const more = rest.length > 0 ? ` (+${rest.length} more: juju debug-log)` : "";
      return blocked(`${formatConfigError(first!)}${more}`);
    }
    case "container":
      return blocked(
        "host preparation needs a machine, not a container: deploy to the compute host itself",
      );
    case "plan-problems": {
      const [first, ...rest] = outcome.problems;
      const more = rest.length > 0 ? ` (+${rest.length} more: juju debug-log)` : "";
      return blocked(`${first!.option ? `${first!.option}: ` : ""}${first!.message}${more}`);
    }
    case "refused":
      return blocked(outcome.message);
    case "removed":
      return {
        name: "maintenance",
        message: "host restored; reboot to return devices to their host drivers",
      };
    case "prepared":
      return preparedStatus(outcome.plan, outcome.facts, outcome.pending);
  }
}

/** One line naming the option, the value, the problem and the fix. */
export function formatConfigError(e: ConfigError): string {
  const value = e.value.length > 40 ? `${e.value.slice(0, 37)}...` : e.value;
  return `${e.option}=${JSON.stringify(value)}: ${e.problem}; ${e.fix}`;
}

function preparedStatus(plan: HostPlan, facts: HostFacts, pending: string[]): UnitStatus {
  const kept = plan.withheld.length > 0 ? `; ${withheldMessage(plan.withheld)}` : "";
  // A refusal (a chipset group) comes first: no reboot will make it work.
  if (pending.length > 0 && plan.withheld.some((w) => !w.forceable)) {
    return blocked(`${withheldMessage(plan.withheld)}; reboot required: ${pending.join("; ")}`);
  }
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
  const iommu = iommuSummary(facts);
  if (plan.bind.length > 0 && facts.iommuGroups.size === 0) {
    return blocked(
      "IOMMU is not active although the kernel command line asks for it: enable VT-d / AMD-Vi (IOMMU) in the firmware setup",
    );
  }
  const notes = plan.notes.length > 0 ? `; ${plan.notes.join("; ")}` : "";
  if (plan.bind.length === 0) return active(`no matching devices on this host; ${iommu}${notes}`);
  return active(`${devicesSummary(plan.bind)} on vfio-pci; ${iommu}${notes}${kept}`);
}

/**
 * The functions the selection matched but the host keeps: which, why, and how to override.
 * "kept for the host: 0000:18:00.0 (network interface eno1 is up; ...), not bound and its drivers
 * not blacklisted; to give it to VMs anyway add force: true to devices entry #1 "8086:1593" (or an
 * entry {address: 0000:18:00.0, force: true})". Refused ones (chipset groups) say no override.
 */
export function withheldMessage(withheld: WithheldFunction[]): string {
  const parts: string[] = [];
  const forceable = withheld.filter((w) => w.forceable);
  const refused = withheld.filter((w) => !w.forceable);
  if (refused.length > 0) {
    parts.push(
      `refused: ${listed(refused)}; no override exists: remove or narrow the devices entry`,
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

function listed(withheld: WithheldFunction[]): string {
  const shown = withheld
    .slice(0, 3)
    .map((w) => `${w.address} ${w.vendorId}:${w.deviceId} of ${w.entry} (${w.reasons.join("; ")})`);
  return withheld.length > 3
    ? `${shown.join(", ")} and ${withheld.length - 3} more`
    : shown.join(", ");
}

function devicesSummary(bind: BoundDevice[]): string {
  const perAlias = new Map<string, number>();
  for (const d of bind) perAlias.set(d.alias, (perAlias.get(d.alias) ?? 0) + 1);
  const parts = [...perAlias].map(([alias, n]) => `${alias} x${n}`);
  return `${bind.length} device${bind.length === 1 ? "" : "s"} (${parts.join(", ")})`;
}

function iommuSummary(facts: HostFacts): string {
  if (facts.iommuGroups.size === 0) return "IOMMU off";
  return `IOMMU on (${facts.iommuUnits.length > 0 ? facts.iommuUnits.join(", ") : `${facts.iommuGroups.size} groups`})`;
}

function list(items: string[]): string {
  return items.length <= 3
    ? items.join(", ")
    : `${items.slice(0, 3).join(", ")} and ${items.length - 3} more`;
}

const blocked = (message: string): UnitStatus => ({ name: "blocked", message });
const active = (message: string): UnitStatus => ({ name: "active", message });
