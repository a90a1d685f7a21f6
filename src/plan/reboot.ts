// Whether this unit reboots its host now (issue 24), decided from facts and memory alone: what the
// reboot must bring (the plan against the running host), what runs on the host (libvirt's
// domains, /dev/vfio holders, Juju containers), the window, the application's reboot lock, and
// what the unit remembered of the last reboot it asked for. No I/O: the caller reads, this
// decides, the caller acts (juju-reboot, the peer bags, stored state).
import { insideWindow, type RebootPolicy } from "../config/reboot";
import type { HostFacts } from "../host/facts";
import type { RebootFacts } from "../host/reboot-facts";
import { listOf } from "../text";
import type { UnitStatus } from "./status";
import type { HostDecisions } from "./types";

/** What the next boot must bring, remembered before asking for it. */
export interface RebootBring {
  /** The parameters the grub drop-in appends. */
  kernelParams: string[];
  /** Functions on vfio-pci from the boot on. */
  vfio: string[];
  /** PFs and the VFs they get at boot. */
  vfs: Array<{ pf: string; count: number }>;
}

/** What a unit remembers across the reboot (stored state, key `reboot`). */
export interface RebootMemory {
  /** juju-reboot was asked: the boot being left and what the next must bring. */
  requested: { bootId: string; bring: RebootBring } | null;
  /** A reboot that did not bring it: never again for the same bring. */
  failed: { bootId: string; bring: RebootBring; message: string } | null;
}

export const EMPTY_REBOOT_MEMORY: RebootMemory = { requested: null, failed: null };

/** Memory as stored by any version (absent, partial or garbled: nothing remembered). */
export function loadRebootMemory(stored: unknown): RebootMemory {
  if (!stored || typeof stored !== "object") return EMPTY_REBOOT_MEMORY;
  const m = stored as Partial<RebootMemory>;
  return { requested: m.requested ?? null, failed: m.failed ?? null };
}

/** The application's reboot lock as this unit sees it in the peer relation. */
export interface LockView {
  self: string;
  leader: boolean;
  /** Every unit of the application in the peer relation, this one included; null when the peer
   * relation does not exist (yet). */
  units: string[] | null;
  /** Units the leader granted the lock to (the application bag's `reboot-lock`). */
  holders: string[];
  /** Units whose bag asks for the lock (`reboot-request`); this unit's as this hook leaves it. */
  requests: string[];
}

/** The leader's decision on the lock. */
export interface LockDecision {
  holders: string[];
  granted: string[];
  released: Array<{ unit: string; why: string }>;
  limit: number;
}

/** How many units may hold the lock: never all of them (a lone unit may reboot). */
export function lockLimit(policy: RebootPolicy, units: number): number {
  return units <= 1 ? 1 : Math.max(1, Math.min(policy.maxUnavailable, units - 1));
}

const unitOrder = (a: string, b: string): number =>
  Number(a.slice(a.lastIndexOf("/") + 1)) - Number(b.slice(b.lastIndexOf("/") + 1)) ||
  a.localeCompare(b);

/**
 * The leader keeps the holders still in the relation and still asking (the rebooted unit drops
 * its request once it has verified the new boot), recovers the lock of a unit that vanished,
 * and grants it to those asking, in unit order, up to the limit.
 */
export function arbitrateLock(lock: LockView, policy: RebootPolicy): LockDecision {
  const units = lock.units ?? [lock.self];
  const limit = lockLimit(policy, units.length);
  const released: LockDecision["released"] = [];
  const holders: string[] = [];
  for (const h of lock.holders) {
    if (!units.includes(h)) released.push({ unit: h, why: "it left the application" });
    else if (!lock.requests.includes(h)) released.push({ unit: h, why: "it released it" });
    else holders.push(h);
  }
  const granted: string[] = [];
  for (const u of [...lock.requests].sort(unitOrder)) {
    if (holders.length >= limit) break;
    if (holders.includes(u) || !units.includes(u)) continue;
    holders.push(u);
    granted.push(u);
  }
  return { holders, granted, released, limit };
}

/** One check's answer, for the status and the reboot-plan action. */
export interface CheckAnswer {
  check: "guests" | "vfio" | "juju-containers" | "window" | "lock";
  ok: boolean;
  detail: string;
}

/** What the unit does about rebooting, and what it says. */
export type RebootVerdict =
  /** Nothing a reboot would bring is missing. */
  | { kind: "not-needed" }
  /** The first hook of a new boot found what was asked for: the lock goes back. */
  | { kind: "verified"; detail: string }
  /** Needed, but `reboot: manual`, or a reboot would not help (the status says why). */
  | { kind: "manual"; why: string }
  /** A reboot already failed to bring this; never again (blocked with what differs). */
  | { kind: "loop"; message: string }
  /** Needed and wanted, held back by the failing checks (the status names them). */
  | { kind: "held"; checks: CheckAnswer[]; waitingOnly: boolean }
  /** Every check passed: juju-reboot after this hook. */
  | { kind: "reboot"; checks: CheckAnswer[] };

export interface RebootDecision {
  verdict: RebootVerdict;
  memory: RebootMemory;
  /** Whether this unit's bag asks for the lock when the hook ends. */
  request: boolean;
  /** Every check's answer (also for a verdict that did not need them: the action shows them). */
  checks: CheckAnswer[];
}

/** What the plan says the next boot must bring. */
export function bringOf(plan: HostDecisions): RebootBring {
  return {
    kernelParams: [...plan.kernelParams],
    vfio: plan.bind.map((d) => d.address),
    vfs: plan.sriov.map((pf) => ({ pf: pf.address, count: pf.numVfs })),
  };
}

const sameBring = (a: RebootBring, b: RebootBring): boolean =>
  JSON.stringify(a) === JSON.stringify(b);

export interface RebootInputs {
  policy: RebootPolicy;
  /** Why the running host does not match the plan (status.ts pendingReboot); empty: it does. */
  pending: string[];
  /** Why a reboot would not help (update-grub failed or missing, the IOMMU off in the firmware),
   * or null. */
  futile: string | null;
  bring: RebootBring;
  hostFacts: Pick<HostFacts, "cmdline">;
  facts: RebootFacts;
  memory: RebootMemory;
  /** The lock after the leader's arbitration of this hook (if this unit leads). */
  lock: LockView;
}

const short = (bootId: string): string => bootId.slice(0, 8);

/** The host checks of `when-idle` (every answer, passing or not). */
export function hostChecks(policy: RebootPolicy, facts: RebootFacts): CheckAnswer[] {
  const checks: CheckAnswer[] = [];
  const g = facts.guests;
  if (g.kind === "unknown") {
    checks.push({ check: "guests", ok: false, detail: `cannot ask libvirt: ${g.why}` });
  } else if (g.kind === "no-libvirt") {
    checks.push({ check: "guests", ok: true, detail: "no libvirt on this host (no virsh)" });
  } else if (g.domains.length > 0) {
    checks.push({
      check: "guests",
      ok: false,
      detail: `libvirt ${g.domains.length === 1 ? "domain" : "domains"} ${listOf(
        g.domains.map((d) => `${d.name} is ${d.state}`),
        3,
        ", ",
      )}: migrate or stop ${g.domains.length === 1 ? "it" : "them"} first`,
    });
  } else {
    checks.push({ check: "guests", ok: true, detail: "libvirt lists no running or paused domain" });
  }
  if (facts.vfioHolders === null) {
    checks.push({ check: "vfio", ok: false, detail: "cannot tell who holds /dev/vfio" });
  } else if (facts.vfioHolders.length > 0) {
    checks.push({
      check: "vfio",
      ok: false,
      detail: `${listOf(
        facts.vfioHolders.map(
          (h) =>
            `pid ${h.pid} (${h.command}${h.instance ? `, instance ${h.instance}` : ""}) holds /dev/vfio/${h.group}`,
        ),
        2,
        ", ",
      )}`,
    });
  } else {
    checks.push({ check: "vfio", ok: true, detail: "no process holds a /dev/vfio group" });
  }
  const c = facts.jujuContainers;
  if (c === null) {
    checks.push({
      check: "juju-containers",
      ok: false,
      detail: "cannot tell whether Juju containers run here",
    });
  } else if (c.length > 0 && !policy.allowJujuContainers) {
    checks.push({
      check: "juju-containers",
      ok: false,
      detail: `Juju ${c.length === 1 ? "container" : "containers"} ${listOf(c, 3, ", ")} ${c.length === 1 ? "runs" : "run"} on this machine and Juju stops ${c.length === 1 ? "it" : "them"} to reboot: move ${c.length === 1 ? "it" : "them"}, or set reboot-with-juju-containers=true`,
    });
  } else {
    checks.push({
      check: "juju-containers",
      ok: true,
      detail:
        c.length > 0
          ? `Juju containers ${listOf(c, 3, ", ")} run here (allowed by reboot-with-juju-containers)`
          : "no Juju container runs on this machine",
    });
  }
  if (policy.windows.length === 0) {
    checks.push({
      check: "window",
      ok: true,
      detail: `any time (no reboot-window; local time ${facts.localTime.text})`,
    });
  } else {
    const inside = insideWindow(policy.windows, facts.localTime);
    checks.push({
      check: "window",
      ok: inside,
      detail: `local time ${facts.localTime.text} is ${inside ? "inside" : "outside"} reboot-window "${policy.windowText}"`,
    });
  }
  return checks;
}

function lockCheck(lock: LockView, request: boolean, limit: number): CheckAnswer {
  if (lock.units === null)
    return {
      check: "lock",
      ok: false,
      detail: "no peer relation `fleet` yet: nobody can grant the reboot lock",
    };
  if (lock.holders.includes(lock.self))
    return {
      check: "lock",
      ok: true,
      detail: `this unit holds the reboot lock (at most ${limit} at a time)`,
    };
  const others = lock.holders.filter((h) => h !== lock.self);
  if (!request) {
    return {
      check: "lock",
      ok: false,
      detail:
        others.length > 0
          ? `the reboot lock is held by ${others.join(", ")}`
          : "the reboot lock is free (asked once the other checks pass)",
    };
  }
  return {
    check: "lock",
    ok: false,
    detail:
      others.length > 0
        ? `waiting for the reboot lock, held by ${others.join(", ")} (at most ${limit} at a time)`
        : "waiting for the leader to grant the reboot lock",
  };
}

/** The loop guard's message: what the running kernel shows against what was written. */
function loopMessage(from: string, to: string, pending: string[], cmdline: string | null): string {
  return (
    `the reboot the charm asked for (boot ${short(from)} → ${short(to)}) did not bring what was written: ` +
    `${pending.join("; ")}; the running kernel's command line is ${cmdline === null ? "unknown" : `"${cmdline.trim()}"`}; ` +
    "check that grub is the boot loader, that no later file in /etc/default/grub.d (such as " +
    "50-cloudimg-settings.cfg) sets GRUB_CMDLINE_LINUX_DEFAULT without $GRUB_CMDLINE_LINUX_DEFAULT, " +
    "and that the kernel accepts each parameter (dmesg); the charm will not reboot again for this: " +
    "fix it and reboot by hand"
  );
}

/**
 * The unit's reboot decision for this hook. `lock` is as the leader's arbitration of this hook
 * left it (a unit that asks for the lock in this hook learns the answer in a later one).
 */
export function decideReboot(input: RebootInputs, limit: number): RebootDecision {
  const { policy, pending, facts, memory, lock } = input;
  const checks = hostChecks(policy, facts);
  const hostOk = checks.every((c) => c.ok);
  const held = (request: boolean, mem: RebootMemory = memory): RebootDecision => {
    const all = [...checks, lockCheck(lock, request, limit)];
    const failing = all.filter((c) => !c.ok);
    return {
      verdict: {
        kind: "held",
        checks: failing,
        waitingOnly: failing.every((c) => c.check === "lock" || c.check === "window"),
      },
      memory: mem,
      request,
      checks: all,
    };
  };
  const out = (verdict: RebootVerdict, mem: RebootMemory, request: boolean): RebootDecision => ({
    verdict,
    memory: mem,
    request,
    checks: [...checks, lockCheck(lock, request, limit)],
  });

  // The first hook of a new boot after a reboot this unit asked for: did it bring it?
  const asked = memory.requested;
  if (asked && facts.bootId !== null && facts.bootId !== asked.bootId) {
    if (pending.length === 0) {
      return out(
        {
          kind: "verified",
          detail: `the reboot (boot ${short(asked.bootId)} → ${short(facts.bootId)}) brought what was written`,
        },
        EMPTY_REBOOT_MEMORY,
        false,
      );
    }
    const message = loopMessage(asked.bootId, facts.bootId, pending, input.hostFacts.cmdline);
    // The lock stays with this unit: the next host would likely fail the same way.
    const failed = { bootId: facts.bootId, bring: asked.bring, message };
    return out({ kind: "loop", message }, { requested: null, failed }, policy.mode === "when-idle");
  }
  if (pending.length === 0) return out({ kind: "not-needed" }, EMPTY_REBOOT_MEMORY, false);
  if (memory.failed && sameBring(memory.failed.bring, input.bring)) {
    return out(
      { kind: "loop", message: memory.failed.message },
      { ...memory, requested: null },
      policy.mode === "when-idle",
    );
  }
  // A new reason: the failed one is forgotten (a changed config may reboot again).
  const mem: RebootMemory = { requested: null, failed: null };
  if (policy.mode === "manual") return out({ kind: "manual", why: "reboot is manual" }, mem, false);
  if (input.futile) return out({ kind: "manual", why: input.futile }, mem, false);
  if (facts.bootId === null) {
    return out(
      {
        kind: "manual",
        why: "the boot id is unreadable (/proc/sys/kernel/random/boot_id): the loop guard needs it",
      },
      mem,
      false,
    );
  }
  // The lock is asked for only by a host that could reboot now, and given back by one that no
  // longer could (a VM landed after the grant): a busy host never keeps the others waiting.
  if (!hostOk) return held(false, mem);
  if (!lock.holders.includes(lock.self)) return held(true, mem);
  return out(
    { kind: "reboot", checks: [...checks, lockCheck(lock, true, limit)] },
    { requested: { bootId: facts.bootId, bring: input.bring }, failed: null },
    true,
  );
}

/** The unit's status once the reboot decision is known: the preparation's status, with what
 * holds the reboot back, or the reboot under way, or the loop guard's block. */
export function rebootStatus(base: UnitStatus, verdict: RebootVerdict): UnitStatus {
  switch (verdict.kind) {
    case "not-needed":
    case "verified":
    case "manual":
      return base;
    case "loop":
      return { name: "blocked", message: verdict.message };
    case "reboot": {
      const head = "rebooting (reboot=when-idle, every check passed): ";
      const prefix = "reboot required: ";
      const rest = base.message.startsWith(prefix)
        ? base.message.slice(prefix.length)
        : base.message;
      return { name: "maintenance", message: `${head}${rest}` };
    }
    case "held": {
      const why = verdict.checks.map((c) => c.detail).join("; ");
      return {
        name: verdict.waitingOnly && base.name === "blocked" ? "waiting" : base.name,
        message: `${base.message}; reboot=when-idle holds the reboot: ${why}`,
      };
    }
  }
}
