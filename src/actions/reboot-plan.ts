// The reboot-plan action (issue 24): the operator's view of the reboot for this unit now. The
// charm assesses the reboot the way a hook would (host-reboot.ts, acting on nothing) and this
// module turns that into results: needed or not and why, what `reboot` would do, each check,
// the lock, the loop guard's memory, and the host after the reboot.
import type { RebootPolicy } from "../config/reboot";
import { validateActionRebootPlan } from "../generated/validators.js";
import type { HostFacts } from "../host/facts";
import type { RebootFacts } from "../host/reboot-facts";
import type { CheckAnswer, LockView, RebootDecision, RebootMemory } from "../plan/reboot";
import type { HostDecisions } from "../plan/types";
import { type Checked, validateParams } from "./params";
import { type ActionReply, listResult, type ResultTree, yesNo } from "./results";

export function parseRebootPlanParams(raw: unknown): Checked<Record<string, never>> {
  const checked = validateParams("reboot-plan", validateActionRebootPlan, raw);
  return checked.ok ? { ok: true, params: {} } : checked;
}

export interface RebootPlanInput {
  policy: RebootPolicy;
  plan: HostDecisions;
  facts: HostFacts;
  pending: string[];
  decision: RebootDecision;
  lock: LockView;
  limit: number;
  rebootFacts: RebootFacts | null;
  memory: RebootMemory;
}

const WHAT: Record<RebootDecision["verdict"]["kind"], string> = {
  "not-needed": "nothing: the running host already has what the charm wrote",
  verified:
    "nothing more: the last reboot brought what was written (the next hook gives the lock back)",
  manual: "nothing by itself",
  loop: "nothing: a reboot already failed to bring this (loop guard)",
  held: "wait: a check holds the reboot back",
  reboot: "ask Juju to reboot the host after the hook (juju-reboot)",
};

/** The results of reboot-plan; never fails (an unknown answer is itself an answer). */
export function rebootPlanReply(input: RebootPlanInput): ActionReply {
  const { policy, plan, facts, pending, decision, lock } = input;
  const v = decision.verdict;
  const next =
    v.kind === "manual"
      ? `${WHAT.manual} (${v.why}): reboot the host when it suits you`
      : v.kind === "loop"
        ? `${WHAT.loop}: ${v.message}`
        : WHAT[v.kind];
  const results: ResultTree = {
    needed: yesNo(pending.length > 0),
    why:
      pending.length > 0
        ? listResult(pending, (r) => r)
        : "nothing a reboot would change is missing",
    policy: {
      reboot: policy.mode,
      window: policy.windowText === "" ? "any time" : policy.windowText,
      "with-juju-containers": yesNo(policy.allowJujuContainers),
      "max-unavailable": `${policy.maxUnavailable} (now at most ${input.limit})`,
    },
    "next-hook-would": next,
    checks: checksResult(decision.checks),
    lock: {
      holders: lock.holders.length > 0 ? lock.holders.join(", ") : "nobody",
      requests: lock.requests.length > 0 ? lock.requests.join(", ") : "nobody",
      units: lock.units === null ? "no peer relation fleet" : lock.units.join(", "),
      leader: yesNo(lock.leader),
    },
    after: afterReboot(plan, facts),
  };
  if (input.rebootFacts) {
    results["boot-id"] = input.rebootFacts.bootId ?? "unreadable";
    results["local-time"] = input.rebootFacts.localTime.text;
  }
  const m = input.memory;
  if (m.requested) {
    results["asked-for"] =
      `a reboot from boot ${m.requested.bootId}, to bring: ${bringText(m.requested.bring)}`;
  }
  if (m.failed) results["loop-guard"] = m.failed.message;
  return { ok: true, message: "", results };
}

function checksResult(checks: CheckAnswer[]): ResultTree {
  const out: ResultTree = {};
  for (const c of checks) out[c.check] = `${c.ok ? "pass" : "hold"}: ${c.detail}`;
  return out;
}

function bringText(b: {
  kernelParams: string[];
  vfio: string[];
  vfs: Array<{ pf: string; count: number }>;
}): string {
  const parts = [`kernel parameters ${b.kernelParams.join(" ") || "(none)"}`];
  if (b.vfio.length > 0) parts.push(`on vfio-pci ${b.vfio.join(", ")}`);
  for (const pf of b.vfs) parts.push(`${pf.count} VFs on ${pf.pf}`);
  return parts.join("; ");
}

/** The host after the reboot, as the files the charm wrote will make it. */
function afterReboot(plan: HostDecisions, facts: HostFacts): ResultTree {
  const running = (facts.cmdline ?? "").trim().split(/\s+/).filter(Boolean);
  const added = plan.kernelParams.filter((p) => !running.includes(p));
  const byAddress = new Map(facts.functions.map((f) => [f.address, f]));
  const out: ResultTree = {
    "kernel-cmdline":
      facts.cmdline === null
        ? `unknown now; with ${plan.kernelParams.join(" ")}`
        : [...running, ...added].join(" "),
    "kernel-params-added": added.length > 0 ? added.join(" ") : "none",
    "on-vfio-pci":
      plan.bind.length > 0
        ? listResult(plan.bind, (d) => {
            const now = byAddress.get(d.address)?.driver ?? "no driver";
            return `${d.address} ${d.vendorId}:${d.deviceId} (${d.alias}; now ${now})`;
          })
        : "nothing",
  };
  if (plan.sriov.length > 0)
    out.vfs = listResult(
      plan.sriov,
      (pf) => `${pf.address}: ${pf.numVfs} VFs (now ${pf.currentVfs})`,
    );
  if (plan.withheld.length > 0)
    out["kept-for-host"] = listResult(
      plan.withheld,
      (w) => `${w.address} (${w.reasons.join("; ")})`,
    );
  return out;
}
