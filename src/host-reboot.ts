// The reboot, for one hook (issue 24): after host preparation, read what the decision needs (the
// host's guests, containers and clock, this unit's memory, the lock in the peer relation),
// decide (plan/reboot.ts), then act: this unit's request in its peer bag, the leader's grant in
// the application bag, the memory, and juju-reboot (Juju reboots after the hook succeeds and then
// runs `start`, whose hook verifies the new boot). The reboot-plan action reads the same way and
// acts on nothing.
import type { Model, Relation } from "ops-ts-shim";
import type { RebootPolicy } from "./config/reboot";
import { type RebootFacts, readBootId, readRebootFacts } from "./host/reboot-facts";
import type { PreparationDeps, PreparationResult } from "./host-preparation";
import { FLEET_ENDPOINT } from "./plan/fleet";
import {
  arbitrateLock,
  bringOf,
  type CheckAnswer,
  decideReboot,
  EMPTY_REBOOT_MEMORY,
  type LockDecision,
  type LockView,
  loadRebootMemory,
  lockLimit,
  type RebootDecision,
  type RebootMemory,
} from "./plan/reboot";
import { iommuOffReason, pendingReboot } from "./plan/status";

/** Unit bag: the boot this unit asks to leave (present = it asks for the lock). */
export const REQUEST_KEY = "reboot-request";
/** Application bag (the leader's): the units holding the lock, as a JSON list. */
export const LOCK_KEY = "reboot-lock";
/** Stored-state key of RebootMemory. */
export const REBOOT_MEMORY_KEY = "reboot";

/** What this hook found about rebooting, for the status and the action. */
export interface RebootAssessment {
  decision: RebootDecision;
  /** The leader's arbitration of this hook, or null (not the leader, or no lock work). */
  arbitration: LockDecision | null;
  lock: LockView;
  pending: string[];
  facts: RebootFacts | null;
  /** What the unit remembered when the hook began. */
  memory: RebootMemory;
  /** How many units may hold the lock now. */
  limit: number;
}

function parseHolders(text: string | undefined): string[] {
  if (!text) return [];
  try {
    const value = JSON.parse(text) as unknown;
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
  } catch {
    return [];
  }
}

function fleet(model: Model): Relation | null {
  try {
    return model.relations(FLEET_ENDPOINT)[0] ?? null;
  } catch {
    return null; // a charm revision without the peer endpoint (never with this metadata)
  }
}

/** The lock as this unit sees it; `departing` is the unit relation-departed names (gone). */
function readLock(model: Model, relation: Relation | null, departing: string | null): LockView {
  const self = model.unitName;
  if (relation === null)
    return { self, leader: model.isLeader(), units: null, holders: [], requests: [] };
  const others = relation.units.filter((u) => u !== departing && u !== self);
  const units = [self, ...others];
  const requests = others.filter((u) => (relation.remoteUnitData(u)[REQUEST_KEY] ?? "") !== "");
  if ((relation.localUnitData()[REQUEST_KEY] ?? "") !== "") requests.push(self);
  return {
    self,
    leader: model.isLeader(),
    units,
    holders: parseHolders(relation.localAppData()[LOCK_KEY]),
    requests,
  };
}

/** What the reboot decision takes of a hook's preparation (an action passes the same). */
type RebootInput = Pick<PreparationResult, "outcome" | "config">;

/** Why a reboot would not help now, or null (update-grub failed or is missing, IOMMU off in the
 * firmware): then the charm never reboots by itself. */
function futility(result: RebootInput): string | null {
  const o = result.outcome;
  if (o.kind !== "prepared") return null;
  if (o.failed.length > 0) return `${o.failed[0]!.message}: a reboot would not bring the change`;
  return o.plan.bind.length > 0 ? iommuOffReason(o.plan.kernelParams, o.facts) : null;
}

/**
 * Decides about the reboot after host preparation; when `act`, also does what the decision says
 * (peer bags, memory, juju-reboot). Returns null when there is nothing to decide (the host was
 * not prepared: a config error, a container) and no memory of a reboot.
 */
export function handleReboot(
  model: Model,
  result: RebootInput,
  deps: PreparationDeps,
  options: { act: boolean; departing?: string | null; fleetEvent?: boolean; now?: Date },
): RebootAssessment | null {
  const memory = loadRebootMemory(model.stored.get<unknown>(REBOOT_MEMORY_KEY));
  const outcome = result.outcome;
  const policy: RebootPolicy | null = result.config?.reboot ?? null;
  if (outcome.kind !== "prepared" || policy === null) return null;
  const pending = pendingReboot(outcome.plan, outcome.facts);
  const remembered = memory.requested !== null || memory.failed !== null;
  // Lock work only where it can matter: hooks on an idle host with reboot=manual and nothing
  // remembered cost no relation reads.
  const lockWork =
    policy.mode === "when-idle" || remembered || options.fleetEvent === true || !options.act;
  if (!lockWork && pending.length === 0) return null;
  if (!lockWork && policy.mode === "manual") {
    return manualOnly(pending, memory);
  }
  const needFacts = pending.length > 0 || memory.requested !== null || !options.act;
  const facts = needFacts ? readRebootFacts(deps.root, deps.runner, options.now) : null;
  const hostFacts: RebootFacts = facts ?? {
    bootId: readBootId(deps.root),
    guests: { kind: "listed", domains: [] },
    vfioHolders: [],
    jujuContainers: [],
    localTime: { day: 0, minutes: 0, text: "" },
  };
  const relation = fleet(model);
  let lock = readLock(model, relation, options.departing ?? null);
  const limit = lockLimit(policy, lock.units?.length ?? 1);
  const inputs = {
    policy,
    pending,
    futile: futility(result),
    bring: bringOf(outcome.plan),
    hostFacts: outcome.facts,
    facts: hostFacts,
    memory,
    lock,
  };
  let decision = decideReboot(inputs, limit);
  const withRequest = (l: LockView, request: boolean): LockView => ({
    ...l,
    requests: request
      ? [...new Set([...l.requests, l.self])]
      : l.requests.filter((u) => u !== l.self),
  });
  lock = withRequest(lock, decision.request);
  let arbitration: LockDecision | null = null;
  if (lock.leader && lock.units !== null) {
    arbitration = arbitrateLock(lock, policy);
    lock = { ...lock, holders: arbitration.holders };
    // The leader may have just granted itself the lock: decide again with it.
    if (arbitration.granted.includes(lock.self))
      decision = decideReboot({ ...inputs, lock }, limit);
  }
  if (options.act) act(model, relation, arbitration, decision, memory, deps);
  return { decision, arbitration, lock, pending, facts, memory, limit };
}

/** reboot=manual with nothing remembered and no lock: the status says what is pending. */
function manualOnly(pending: string[], memory: RebootMemory): RebootAssessment {
  const lock: LockView = { self: "", leader: false, units: null, holders: [], requests: [] };
  return {
    decision: {
      verdict: { kind: "manual", why: "reboot is manual" },
      memory,
      request: false,
      checks: [],
    },
    arbitration: null,
    lock,
    pending,
    facts: null,
    memory,
    limit: 1,
  };
}

function act(
  model: Model,
  relation: Relation | null,
  arbitration: LockDecision | null,
  decision: RebootDecision,
  before: RebootMemory,
  deps: PreparationDeps,
): void {
  const v = decision.verdict;
  if (relation !== null) {
    relation.setLocalUnitData({
      [REQUEST_KEY]: decision.request ? (decision.memory.requested?.bootId ?? "yes") : null,
    });
    if (arbitration !== null) {
      for (const r of arbitration.released)
        deps.log("INFO", `reboot lock of ${r.unit} released: ${r.why}`);
      for (const g of arbitration.granted) deps.log("INFO", `reboot lock granted to ${g}`);
      relation.setLocalAppData({
        [LOCK_KEY]: arbitration.holders.length > 0 ? JSON.stringify(arbitration.holders) : null,
      });
    }
  }
  if (JSON.stringify(decision.memory) !== JSON.stringify(before)) {
    if (JSON.stringify(decision.memory) === JSON.stringify(EMPTY_REBOOT_MEMORY))
      model.stored.delete(REBOOT_MEMORY_KEY);
    else model.stored.set(REBOOT_MEMORY_KEY, decision.memory);
  }
  if (v.kind === "verified") deps.log("INFO", `${v.detail}; the reboot lock goes back`);
  if (v.kind === "loop") deps.log("ERROR", v.message);
  if (v.kind === "reboot") {
    deps.log(
      "WARNING",
      `rebooting through Juju after this hook (reboot=when-idle, every check passed: ${v.checks.map((c) => c.detail).join("; ")})`,
    );
    model.requestReboot();
  }
}

/** Every check's answer in one line each, for logs and the action. */
export function describeChecks(checks: CheckAnswer[]): Record<string, string> {
  return Object.fromEntries(checks.map((c) => [c.check, `${c.ok ? "pass" : "hold"}: ${c.detail}`]));
}
