// The rebind action (rebindAction): plans (rebind-plan.ts), reads who holds the IOMMU groups the
// plan takes off vfio-pci (host/vfio-users.ts; the judgement is the planner's), then prints the
// plan (dry run) or performs it. executeRebind performs a plan through a SysfsWriter: loads
// vfio-pci when its driver directory is missing, makes each function's writes in order, reads the
// `driver` link back, and when a function fails, or the action is asked to stop (SIGTERM) between
// two writes, puts every function moved in this call back the way it was, so that each ends
// either as it was or fully moved, never unbound and orphaned. The result text is
// rebind-results.ts's.
import type { CommandRunner } from "../apply/commands";
import type { SysfsWriter } from "../apply/sysfs";
import type { HostFacts, HostUsage } from "../host/facts";
import { deviceAttr, driverAttr, isRealRoot, READ, SYSFS_WRITES } from "../host/root";
import { readVfioGroupUsers } from "../host/vfio-users";
import { byAddress } from "../pci-vocabulary";
import { isVfioDriver } from "../plan/iommu-groups";
import type { BoundDevice, WithheldFunction } from "../plan/types";
import { driverWords } from "../text";
import {
  busyGroupRefusal,
  groupsLeavingVfio,
  type PlannedMove,
  planRebind,
  type RebindParams,
  type RebindPlan,
  type RebindTarget,
  type SysfsWrite,
} from "./rebind-plan";
import {
  type DeviceOutcome,
  type DeviceStatus,
  dryRunResults,
  outcomeResults,
  type RebindOutcome,
  refusalResults,
} from "./rebind-results";
import type { ActionReply } from "./results";

class MoveFailed extends Error {}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Makes /sys/bus/pci/drivers/vfio-pci exist: modprobe on a real host; a clear error otherwise. */
function ensureVfioPci(sysfs: SysfsWriter, run: CommandRunner | null): string | null {
  if (sysfs.driverRegistered("vfio-pci")) return null;
  const dir = `${READ.pciDrivers}/vfio-pci`;
  if (!isRealRoot(sysfs.root)) {
    return `${dir} is missing under the root ${sysfs.root}, and modprobe only runs against the real host (/); nothing was changed`;
  }
  if (!run) return `${dir} is missing and no command runner was given to load vfio-pci`;
  const res = run(["modprobe", "vfio-pci"]);
  if (res.exitCode !== 0) {
    return `modprobe vfio-pci failed (exit ${res.exitCode}): ${res.stderr.trim() || "no message"}; nothing was changed`;
  }
  if (!sysfs.driverRegistered("vfio-pci")) {
    return `modprobe vfio-pci succeeded but ${dir} did not appear; nothing was changed`;
  }
  return null;
}

/** Asks whether the action was told to stop (the signal's name), between sysfs writes. */
export type StopCheck = () => string | null;

const NEVER_STOP: StopCheck = () => null;

/** A stop (SIGTERM: the agent's service or the host stopping, kill by hand) seen before a
 * write: the run is undone like a failure, so no function is left half moved. */
class StopRequested extends Error {}

/** One run of a plan: the writes made so far and every function's outcome as it stands. */
interface RebindRun {
  plan: RebindPlan;
  sysfs: SysfsWriter;
  stop: StopCheck;
  /** Every write made, in order, including rollback writes. */
  writes: SysfsWrite[];
  /** One per plan.moves entry, same order. */
  outcomes: DeviceOutcome[];
  write(w: SysfsWrite): void;
}

/**
 * Does the plan, one function at a time: check it is still as planned, make its writes (each
 * after a look at `stop`), read the driver back. When a function fails or a stop is asked for, it
 * and every function moved before it are put back, so each ends either as it was or fully moved.
 * Never throws for kernel refusals.
 */
export function executeRebind(
  plan: RebindPlan,
  sysfs: SysfsWriter,
  run: CommandRunner | null = null,
  stop: StopCheck = NEVER_STOP,
): RebindOutcome {
  const rebind = startRun(plan, sysfs, stop);
  if (plan.moves.length === 0) {
    return finish(rebind, true, "every device is already where asked; nothing was changed");
  }
  const stoppedBy = stop();
  if (stoppedBy) {
    return finish(
      rebind,
      false,
      `rebind stopped by ${stoppedBy} before any change; nothing was changed`,
    );
  }
  if (plan.ensureVfioPci) {
    const problem = ensureVfioPci(sysfs, run);
    if (problem) return finish(rebind, false, `rebind failed: ${problem}`);
  }
  for (let i = 0; i < plan.moves.length; i++) {
    const failure = moveOne(rebind, i);
    if (failure) return undoRun(rebind, i, failure);
  }
  const moved = rebind.outcomes.map((o) => `${o.address} (${o.message})`).join(", ");
  const late = stop();
  if (late) {
    plan.warnings.push(
      `${late} arrived after the last write: the move was complete, so it was kept rather than undone`,
    );
  }
  return finish(rebind, true, `moved ${moved}`);
}

function startRun(plan: RebindPlan, sysfs: SysfsWriter, stop: StopCheck): RebindRun {
  const writes: SysfsWrite[] = [];
  return {
    plan,
    sysfs,
    stop,
    writes,
    outcomes: plan.moves.map((m) => ({
      address: m.address,
      reason: m.reason,
      before: m.before.driver,
      after: m.before.driver,
      status: "not-attempted",
      message: "not attempted",
    })),
    write(w) {
      sysfs.writeAttr(w.path, w.value);
      writes.push(w);
    },
  };
}

function finish(rebind: RebindRun, ok: boolean, message: string): RebindOutcome {
  const unchanged: DeviceOutcome[] = rebind.plan.unchanged.map((u) => ({
    address: u.address,
    reason: "unchanged",
    before: u.driver,
    after: u.driver,
    status: "unchanged",
    message: u.message,
  }));
  return {
    ok,
    to: rebind.plan.to,
    message,
    devices: [...rebind.outcomes, ...unchanged].sort(byAddress),
    writes: rebind.writes,
    warnings: rebind.plan.warnings,
  };
}

/** Why moving one function stopped part-way, and whether any of its writes were made. */
interface MoveStopped {
  error: MoveFailed | StopRequested | Error;
  touched: boolean;
}

/** Moves plan.moves[i]; null when it arrived, else why not (its own writes not yet undone). */
function moveOne(rebind: RebindRun, i: number): MoveStopped | null {
  const move = rebind.plan.moves[i]!;
  const outcome = rebind.outcomes[i]!;
  let touched = false;
  try {
    checkStillAsPlanned(rebind.sysfs, move);
    for (const w of move.writes) {
      const signal = rebind.stop();
      if (signal) throw new StopRequested(signal);
      touched = true;
      rebind.write(w);
    }
    const after = rebind.sysfs.readDriver(move.address);
    outcome.after = after;
    checkArrived(rebind.plan.to, move.address, after);
    outcome.status = "moved";
    outcome.message = arrivalMessage(rebind.plan.to, move, after);
    return null;
  } catch (err) {
    return { error: err instanceof Error ? err : new Error(String(err)), touched };
  }
}

/** The plan was made from facts read earlier; if the function moved since, the planned unbind
 * would name the wrong driver. Stop rather than guess. */
function checkStillAsPlanned(sysfs: SysfsWriter, move: PlannedMove): void {
  const live = sysfs.readDriver(move.address);
  if (live !== move.before.driver) {
    throw new MoveFailed(
      `its driver changed since the plan was made (${driverWords(move.before.driver)} → ${driverWords(live)}); run the action again`,
    );
  }
}

/** After drivers_probe: on vfio-pci when asked for it; off it when asked for the host. */
function checkArrived(to: RebindTarget, address: string, after: string | null): void {
  if (to === "vfio-pci" && !isVfioDriver(after)) {
    throw new MoveFailed(
      after === null
        ? `after drivers_probe no driver has it: vfio-pci refused it (see the kernel log: dmesg | grep ${address})`
        : `after drivers_probe it is on ${after}, not vfio-pci`,
    );
  }
  if (to === "host" && isVfioDriver(after)) {
    throw new MoveFailed(`after drivers_probe it is still on ${after}`);
  }
}

function arrivalMessage(to: RebindTarget, move: PlannedMove, after: string | null): string {
  const from = driverWords(move.before.driver);
  if (to === "vfio-pci") return `${from} → ${after}`;
  return after === null
    ? `${from} → no driver: no host driver claimed it (is its module blacklisted or not loaded? see list-devices for the modules)`
    : `${from} → ${after} (the kernel's default driver)`;
}

/**
 * Puts back plans.moves[i] (if it was touched) and then every earlier one, newest first, and
 * says what happened: each function's status and one message for the operator.
 */
function undoRun(rebind: RebindRun, i: number, why: MoveStopped): RebindOutcome {
  const { plan, outcomes } = rebind;
  const move = plan.moves[i]!;
  const stopped = why.error instanceof StopRequested ? why.error.message : null;
  const reason = errorText(why.error);
  const cause = stopped ? `the action was stopped (${stopped})` : `${move.address} failed`;
  markUndone(rebind, i, why.touched, stopped, reason);
  for (let j = i - 1; j >= 0; j--) {
    const back = restore(plan.moves[j]!, rebind.sysfs, rebind.write);
    const o = outcomes[j]!;
    o.after = back.after;
    o.status = back.ok ? "rolled-back" : "stranded";
    o.message = back.ok
      ? `moved, then put back on ${driverWords(back.after)} because ${cause}`
      : `moved, but putting it back failed (${back.problem}); it is now on ${driverWords(back.after)}`;
  }
  for (let j = i + 1; j < outcomes.length; j++) {
    outcomes[j]!.message = stopped ? `not attempted: ${cause}` : `not attempted: ${cause} first`;
  }
  const stranded = outcomes.filter((o) => o.status === "stranded").map((o) => o.address);
  const rolled = outcomes.filter((o) => o.status === "rolled-back").map((o) => o.address);
  const parts = [
    stopped
      ? `rebind stopped by ${stopped} at ${move.address}, before it finished`
      : `rebind failed at ${move.address}: ${reason}`,
  ];
  if (rolled.length > 0) parts.push(`rolled back ${rolled.join(", ")}`);
  if (stranded.length > 0) {
    parts.push(
      `COULD NOT RESTORE ${stranded.join(", ")}: check them with list-devices and rebind them by hand`,
    );
  } else parts.push("every device is as it was before the action");
  return finish(rebind, false, parts.join("; "));
}

/** The outcome of the function the run stopped at, after putting it back if it was touched. */
function markUndone(
  rebind: RebindRun,
  i: number,
  touched: boolean,
  stopped: string | null,
  reason: string,
): void {
  const move = rebind.plan.moves[i]!;
  const outcome = rebind.outcomes[i]!;
  if (!touched) {
    outcome.after = move.before.driver;
    if (stopped) {
      outcome.message = `not attempted: the action was stopped (${stopped})`;
      return;
    }
    outcome.status = "failed-restored";
    outcome.message = `failed before any write: ${reason}`;
    return;
  }
  const back = restore(move, rebind.sysfs, rebind.write);
  outcome.after = back.after;
  if (!back.ok) {
    outcome.status = "stranded";
    outcome.message = `${stopped ? `stopped by ${stopped} part-way` : `failed: ${reason}`}; could not restore it (${back.problem}); it is now on ${driverWords(back.after)}`;
    return;
  }
  outcome.status = stopped ? "rolled-back" : "failed-restored";
  outcome.message = stopped
    ? `stopped by ${stopped} part-way through its writes; put back on ${driverWords(back.after)}`
    : `failed: ${reason}; restored to ${driverWords(back.after)}`;
}

/** Puts a function back to its planned `before` state: the old override, then re-probe. */
function restore(
  move: PlannedMove,
  sysfs: SysfsWriter,
  write: (w: SysfsWrite) => void,
): { ok: boolean; after: string | null; problem: string } {
  const problems: string[] = [];
  const attempt = (w: SysfsWrite) => {
    try {
      write(w);
    } catch (err) {
      problems.push(errorText(err));
    }
  };
  const readDriver = (): string | null | undefined => {
    try {
      return sysfs.readDriver(move.address);
    } catch (err) {
      problems.push(errorText(err));
      return undefined;
    }
  };
  const { driver: wasDriver, override: wasOverride } = move.before;
  attempt({ path: deviceAttr(move.address, "driver_override"), value: wasOverride ?? "\n" });
  const now = readDriver();
  if (now && now !== wasDriver) {
    attempt({ path: driverAttr(now, "unbind"), value: move.address });
  }
  if (wasDriver !== null && readDriver() === null) {
    attempt({ path: SYSFS_WRITES.pciDriversProbe, value: move.address });
  }
  const after = readDriver() ?? null;
  if (after !== wasDriver) {
    problems.push(`expected ${driverWords(wasDriver)}, found ${driverWords(after)}`);
  }
  return { ok: after === wasDriver, after, problem: problems.join("; ") };
}

export interface RebindActionInput {
  /** The params, checked (parseRebindParams) before any host read. */
  params: RebindParams;
  facts: HostFacts;
  usage: HostUsage;
  /** The configured selection: the host plan's `bind` (plan/plan-host.ts). */
  selection: BoundDevice[];
  /** What the selection matched but the hooks withheld: the host plan's `withheld`. */
  withheld?: WithheldFunction[];
  sysfs: SysfsWriter;
  /** Runs `modprobe vfio-pci` when its driver directory is missing (real root only). */
  run: CommandRunner | null;
  /** Whether the action was asked to stop (ops-ts-shim's stopSignal); never, when not given. */
  stop?: StopCheck;
}

/** The whole rebind action on checked params: plan, then print (dry-run) or perform the plan. */
export function rebindAction(input: RebindActionInput): ActionReply {
  const plan = planRebind({
    params: input.params,
    facts: input.facts,
    usage: input.usage,
    selection: input.selection,
    withheld: input.withheld ?? [],
  });
  if (plan.kind === "refusal") {
    return { ok: false, message: plan.message, results: refusalResults(plan) };
  }
  // The busy-group judgement is the planner's; only the read of who holds the groups is here.
  const leaving = groupsLeavingVfio(plan, input.facts);
  const busy =
    leaving.size === 0
      ? null
      : busyGroupRefusal(plan, input.facts, readVfioGroupUsers(input.sysfs.root, leaving));
  if (busy) {
    return { ok: false, message: busy.message, results: refusalResults(busy) };
  }
  if (plan.dryRun) {
    const results = dryRunResults(plan);
    return { ok: true, message: String(results.message), results };
  }
  const outcome = executeRebind(plan, input.sysfs, input.run, input.stop);
  return { ok: outcome.ok, message: outcome.message, results: outcomeResults(outcome) };
}

export type { DeviceOutcome, DeviceStatus, RebindOutcome };
