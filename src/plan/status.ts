// The unit's one status, computed afresh each dispatch from what host preparation found. Pure: the
// charm hands it the outcome; it never looks at the host itself.
import type { ConfigError } from "../config";
import type { HostFacts } from "../host/facts";
import type { BoundDevice, HostPlan, PlanProblem } from "./types";

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
  if (pending.length > 0) {
    const nova = plan.bind.length > 0 ? "; waiting for reboot before offering devices to nova" : "";
    return blocked(`reboot required: ${pending.join("; ")}${nova}`);
  }
  const iommu = iommuSummary(facts);
  if (plan.bind.length > 0 && facts.iommuGroups.size === 0) {
    return blocked(
      "IOMMU is not active although the kernel command line asks for it: enable VT-d / AMD-Vi (IOMMU) in the firmware setup",
    );
  }
  const notes = plan.notes.length > 0 ? `; ${plan.notes.join("; ")}` : "";
  if (plan.bind.length === 0) return active(`no matching devices on this host; ${iommu}${notes}`);
  return active(`${devicesSummary(plan.bind)} on vfio-pci; ${iommu}${notes}`);
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
