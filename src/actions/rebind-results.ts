// rebind's results as the operator reads them (`juju run … rebind`): the exact writes of a dry
// run, how each function ended after a real one, and why a call was refused. Pure: the plan
// (rebind-plan.ts) or the outcome (rebind.ts) in, result trees out.
import { driverWords } from "../text";
import {
  describeMove,
  type PlannedMove,
  type RebindPlan,
  type RebindRefusal,
  type RebindTarget,
  type SysfsWrite,
} from "./rebind-plan";
import { addressKey, listResult, type ResultTree, yesNo } from "./results";

/** How one function ended. */
export type DeviceStatus =
  /** Now where asked. */
  | "moved"
  /** Was already where asked. */
  | "unchanged"
  /** Moved, then put back because a later function failed. */
  | "rolled-back"
  /** This function failed and is back as it was. */
  | "failed-restored"
  /** This function (or a rollback) failed and could not be restored: see `after`. */
  | "stranded"
  /** Not touched: an earlier failure stopped the run. */
  | "not-attempted";

export interface DeviceOutcome {
  address: string;
  reason: PlannedMove["reason"] | "unchanged";
  before: string | null;
  after: string | null;
  status: DeviceStatus;
  message: string;
}

export interface RebindOutcome {
  ok: boolean;
  to: RebindTarget;
  /** One line for the operator (and action-fail when not ok). */
  message: string;
  devices: DeviceOutcome[];
  /** Every write made, in order, including rollback writes. */
  writes: SysfsWrite[];
  warnings: string[];
}

function writeResult(w: SysfsWrite): ResultTree {
  return { path: w.path, value: JSON.stringify(w.value) };
}

/** Action results for a dry run: the exact writes, in order, per function and overall. */
export function dryRunResults(plan: RebindPlan): ResultTree {
  const devices: ResultTree = {};
  for (const m of plan.moves) {
    devices[addressKey(m.address)] = {
      address: m.address,
      reason: m.follows ? `${m.reason} (follows ${m.follows})` : m.reason,
      before: driverWords(m.before.driver),
      change: describeMove(m, plan.to),
      writes: listResult(m.writes, writeResult),
    };
  }
  for (const u of plan.unchanged) {
    devices[addressKey(u.address)] = {
      address: u.address,
      before: driverWords(u.driver),
      change: u.message,
    };
  }
  const all = plan.moves.flatMap((m) => m.writes);
  const out: ResultTree = {
    "dry-run": "yes",
    to: plan.to,
    message:
      plan.moves.length === 0
        ? "every device is already where asked; nothing would change"
        : `would make ${all.length} sysfs write${all.length === 1 ? "" : "s"} for ${plan.moves.length} function${plan.moves.length === 1 ? "" : "s"}; nothing was changed`,
    devices,
    writes: listResult(all, writeResult),
  };
  if (plan.ensureVfioPci) {
    out["load-module"] = "modprobe vfio-pci (only if /sys/bus/pci/drivers/vfio-pci is missing)";
  }
  if (plan.warnings.length > 0) out.warnings = listResult(plan.warnings, (w) => w);
  return out;
}

/** Action results for a performed rebind: per-function before/after/status and the writes made. */
export function outcomeResults(outcome: RebindOutcome): ResultTree {
  const devices: ResultTree = {};
  for (const d of outcome.devices) {
    devices[addressKey(d.address)] = {
      address: d.address,
      reason: d.reason,
      before: driverWords(d.before),
      after: driverWords(d.after),
      status: d.status,
      ok: yesNo(d.status === "moved" || d.status === "unchanged"),
      message: d.message,
    };
  }
  const out: ResultTree = {
    ok: yesNo(outcome.ok),
    to: outcome.to,
    message: outcome.message,
    devices,
  };
  if (outcome.writes.length > 0) out.writes = listResult(outcome.writes, writeResult);
  if (outcome.warnings.length > 0) out.warnings = listResult(outcome.warnings, (w) => w);
  return out;
}

/** Action results for a refusal (the lead also calls action-fail with `refusal.message`). */
export function refusalResults(refusal: RebindRefusal): ResultTree {
  return {
    ok: "no",
    message: refusal.message,
    refusals: listResult(refusal.refusals, (r) => ({
      device: r.device,
      reason: r.reason,
      "force-overrides": yesNo(r.forceable),
    })),
  };
}
