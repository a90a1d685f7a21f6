// The rebind action's decisions, pure: its params checked (the schema from actions.yaml, then the
// `devices` list), which functions move, which are already where asked, what the host would lose
// (refusals), the exact sysfs writes in order, and the busy-group judgement (busyGroupRefusal: a
// group a running VM holds open never leaves vfio-pci; the caller reads who holds the groups that
// groupsLeavingVfio names). rebind.ts performs a plan or, for a dry run, prints it
// (rebind-results.ts). Nothing here touches the host.

import { type ActionRebind, validateActionRebind } from "../generated/validators.js";
import type { HostFacts, HostUsage, PciFunction } from "../host/facts";
import { deviceAttr, driverAttr, SYSFS_WRITES } from "../host/root";
import { describeUser, type VfioGroupUser } from "../host/vfio-users";
import {
  byAddress,
  idsOf,
  parseAddressPattern,
  parseIdPair,
  splitDeviceList,
} from "../pci-vocabulary";
import {
  chipsetRole,
  describeHazards,
  type HostSafety,
  hostSafety,
  NO_GROUP_WITH_IOMMU_ON,
} from "../plan/host-safety";
import { functionIndex, groupMates, isHarmlessMember, isVfioDriver } from "../plan/iommu-groups";
import type { BoundDevice, WithheldFunction } from "../plan/types";
import { driverWords } from "../text";
import { type Checked, checkParams, type ParamError } from "./params";

export type RebindTarget = "vfio-pci" | "host";

/** The rebind params once checked. `devices` null means "the configured selection". */
export interface RebindParams {
  devices: DeviceToken[] | null;
  to: RebindTarget;
  dryRun: boolean;
  force: boolean;
}

/** One entry of the `devices` param: a full address, or every function with these ids. */
export type DeviceToken =
  | { kind: "address"; address: string; source: string }
  | { kind: "ids"; vendorId: string; deviceId: string; source: string };

/** One write into sysfs, as the kernel will see it. `path` is a host path. */
export interface SysfsWrite {
  path: string;
  value: string;
}

/** Why a function is in the set being moved. */
export type MoveReason = "requested" | "selected" | "companion" | "group-member";

export interface PlannedMove {
  address: string;
  reason: MoveReason;
  /** For companions and group members: the function it follows. */
  follows: string | null;
  /** Driver and driver_override as the facts saw them; the executor re-checks before writing. */
  before: { driver: string | null; override: string | null };
  /** The writes for this function, in order. */
  writes: SysfsWrite[];
  /** Host uses that `force` overrode (empty without force). */
  forced: string[];
}

export interface UnchangedDevice {
  address: string;
  driver: string | null;
  message: string;
}

export interface RebindPlan {
  kind: "plan";
  to: RebindTarget;
  dryRun: boolean;
  force: boolean;
  /** Make sure /sys/bus/pci/drivers/vfio-pci exists (modprobe vfio-pci) before the first write. */
  ensureVfioPci: boolean;
  /** Functions to move, sorted by address. */
  moves: PlannedMove[];
  /** Functions already where asked: a no-op, reported. */
  unchanged: UnchangedDevice[];
  /** Things the operator should know that do not stop the move. */
  warnings: string[];
}

/** Why one function cannot be moved. `forceable` refusals give way to force=true. */
export interface Refusal {
  /** The address (or the `devices` entry, for one that matches nothing). */
  device: string;
  reason: string;
  forceable: boolean;
}

export interface RebindRefusal {
  kind: "refusal";
  refusals: Refusal[];
  /** One paragraph for action-fail. */
  message: string;
}

/** Parses the `devices` param in the grammar of the `devices` option's short forms
 * (pci-vocabulary.ts): addresses (`0000:83:00.0`, `83:00.0` in domain 0000, `10000:01:00.0`
 * behind an Intel VMD) and `vendor:product` ids (`10de:1bb0`, `0x10de:0x1bb0`), separated by
 * commas and/or spaces. Unlike the option it takes exact addresses only: a glob that moves
 * devices live is one typo away from the host's own NIC. */
export function parseDeviceList(text: string): { tokens: DeviceToken[]; errors: ParamError[] } {
  const tokens: DeviceToken[] = [];
  const errors: ParamError[] = [];
  const parts = splitDeviceList(text);
  if (parts.length === 0) {
    errors.push({
      param: "devices",
      message:
        "devices is empty; give PCI addresses or vendor:product ids, or leave it out to use the `devices` option",
    });
  }
  for (const source of parts) {
    const ids = parseIdPair(source);
    if (ids) {
      tokens.push({ kind: "ids", ...ids, source });
      continue;
    }
    const address = parseAddressPattern(source);
    if (typeof address !== "string" && !address.isGlob) {
      tokens.push({ kind: "address", address: address.text, source });
      continue;
    }
    const why =
      typeof address === "string"
        ? ""
        : ": rebind takes exact addresses, not the globs of the `devices` option";
    errors.push({
      param: "devices",
      message: `devices entry "${source}" is neither a PCI address (0000:83:00.0) nor vendor:product ids (10de:1bb0)${why}`,
    });
  }
  return { tokens, errors };
}

/** Checks raw rebind params (schema from actions.yaml, then the `devices` syntax). */
export function parseRebindParams(raw: unknown): Checked<RebindParams> {
  return checkParams<ActionRebind, RebindParams>("rebind", validateActionRebind, raw, (p) => {
    let devices: DeviceToken[] | null = null;
    if (typeof p.devices === "string") {
      const parsed = parseDeviceList(p.devices);
      if (parsed.errors.length > 0) return { errors: parsed.errors };
      devices = parsed.tokens;
    }
    return { params: { devices, to: p.to, dryRun: p["dry-run"], force: p.force } };
  });
}

export interface PlanRebindInput {
  params: RebindParams;
  facts: HostFacts;
  /** What the host uses each function for (net up, addresses, routes, mounts, swap, console…). */
  usage: HostUsage;
  /** The configured selection (planner output): the default set, with companions. */
  selection: BoundDevice[];
  /** What the selection matched but the hooks leave with the host: part of the default set too,
   * so the judgement below refuses each one naming why (or takes it with force=true). */
  withheld?: WithheldFunction[];
}

interface Candidate {
  fn: PciFunction;
  reason: MoveReason;
  follows: string | null;
}

function isPfWithVfs(fn: PciFunction): boolean {
  return fn.sriov !== null && fn.sriov.numVfs > 0;
}

/** Is `fn` already where `to` asks? Then the reason, for the result; else null. */
function alreadyThere(fn: PciFunction, to: RebindTarget): string | null {
  if (to === "vfio-pci") {
    return isVfioDriver(fn.driver) ? `already bound to ${fn.driver}; nothing to do` : null;
  }
  if (isVfioDriver(fn.driver) || fn.driverOverride === "vfio-pci") return null;
  return fn.driver === null
    ? "already with the host (no driver claims it and no override is set); nothing to do"
    : `already with the host on ${fn.driver}; nothing to do`;
}

function resolveTargets(
  input: PlanRebindInput,
): { candidates: Candidate[]; refusals: Refusal[] } | { refusals: Refusal[]; candidates?: never } {
  const { params, facts, selection } = input;
  const withheld = input.withheld ?? [];
  const index = functionIndex(facts);
  const refusals: Refusal[] = [];
  const candidates: Candidate[] = [];
  if (params.devices === null) {
    if (selection.length === 0 && withheld.length === 0) {
      refusals.push({
        device: "(none)",
        reason:
          "no devices given and the `devices` option selects none; pass devices=<address> or set the option",
        forceable: false,
      });
    }
    for (const b of selection) {
      const fn = index.get(b.address);
      if (!fn) {
        refusals.push({
          device: b.address,
          reason: "selected by the `devices` option but not present on this host",
          forceable: false,
        });
      } else candidates.push({ fn, reason: b.reason, follows: b.follows });
    }
    for (const w of withheld) {
      const fn = index.get(w.address);
      if (fn) candidates.push({ fn, reason: "selected", follows: null });
    }
    return { candidates, refusals };
  }
  for (const token of params.devices) {
    if (token.kind === "address") {
      const fn = index.get(token.address);
      if (fn) candidates.push({ fn, reason: "requested", follows: null });
      else {
        refusals.push({
          device: token.address,
          reason:
            "no PCI function at this address on this host; run the list-devices action to see them",
          forceable: false,
        });
      }
    } else {
      const matches = facts.functions.filter(
        (f) => f.vendorId === token.vendorId && f.deviceId === token.deviceId,
      );
      if (matches.length === 0) {
        refusals.push({
          device: token.source,
          reason: `no PCI function has ids ${idsOf(token)}; run the list-devices action to see them`,
          forceable: false,
        });
      }
      for (const fn of matches) candidates.push({ fn, reason: "requested", follows: null });
    }
  }
  return { candidates, refusals };
}

/** The writes that move `fn` to `to`, in the kernel-documented race-free order. */
export function writesFor(fn: PciFunction, to: RebindTarget): SysfsWrite[] {
  const writes: SysfsWrite[] = [];
  // The override goes first: once set, no driver but the named one can grab the function, so
  // the window between unbind and probe cannot be lost to the old driver.
  writes.push({
    path: deviceAttr(fn.address, "driver_override"),
    value: to === "vfio-pci" ? "vfio-pci" : "\n",
  });
  const unbindFrom = to === "vfio-pci" ? (isVfioDriver(fn.driver) ? null : fn.driver) : fn.driver;
  if (unbindFrom !== null) {
    // The driver's own unbind file (not the `driver` link): if the function moved to another
    // driver since we looked, the kernel answers ENODEV instead of unbinding the wrong one.
    writes.push({ path: driverAttr(unbindFrom, "unbind"), value: fn.address });
  }
  writes.push({ path: SYSFS_WRITES.pciDriversProbe, value: fn.address });
  return writes;
}

/** Decides a rebind: the functions to move, in order, with their writes, or why not. Pure. */
export function planRebind(input: PlanRebindInput): RebindPlan | RebindRefusal {
  const { params, facts, usage } = input;
  const { to, force } = params;
  const safety: HostSafety = hostSafety(facts, usage);
  const resolved = resolveTargets(input);
  const refusals = [...resolved.refusals];
  if (refusals.length > 0 || !resolved.candidates) return refuse(refusals);

  // Dedupe (ids and addresses may name the same function); the first reason wins.
  const chosen = new Map<string, Candidate>();
  for (const c of resolved.candidates) if (!chosen.has(c.fn.address)) chosen.set(c.fn.address, c);

  // The rest of each group moves too when it would otherwise leave the group half on the host:
  // to vfio-pci, members on a host driver (a non-viable group is useless to VMs); to the host,
  // members still on vfio-pci (a group split across vfio and host drivers is not viable either).
  // A function already on vfio-pci still pulls its group-mates along (that is what makes its group
  // usable); one already with the host does not push its vfio-pci mates back unasked.
  const queue = [...chosen.values()].filter(
    (c) => to === "vfio-pci" || alreadyThere(c.fn, to) === null,
  );
  while (queue.length > 0) {
    const c = queue.shift()!;
    for (const mate of groupMates(facts, c.fn)) {
      if (chosen.has(mate.address)) continue;
      const needsMove = to === "vfio-pci" ? !isHarmlessMember(mate) : isVfioDriver(mate.driver);
      if (!needsMove) continue;
      const follower: Candidate = { fn: mate, reason: "group-member", follows: c.fn.address };
      chosen.set(mate.address, follower);
      queue.push(follower);
    }
  }

  const ordered = [...chosen.values()].sort((a, b) => byAddress(a.fn, b.fn));
  const moves: PlannedMove[] = [];
  const unchanged: UnchangedDevice[] = [];
  const warnings: string[] = [];
  for (const c of ordered) {
    const { fn } = c;
    const done = alreadyThere(fn, to);
    if (done !== null) {
      unchanged.push({ address: fn.address, driver: fn.driver, message: done });
      continue;
    }
    const forced: string[] = [];
    if (to === "vfio-pci") {
      for (const r of vfioRefusals(fn, facts)) refusals.push(r);
      // A chipset function, or a group holding one, never goes to a VM (host-safety.ts).
      const role = chipsetRole(fn);
      const chipset = safety.groupHazards(fn).filter((h) => h.kind === "chipset");
      if (role !== null || chipset.length > 0) {
        const what =
          role !== null
            ? `it is the chipset's ${role}`
            : `its IOMMU group ${fn.iommuGroup} holds chipset functions ${describeHazards(chipset)}`;
        refusals.push({
          device: fn.address,
          reason: `${what}: the host keeps its chipset, so this never goes to a VM (force does not override this)`,
          forceable: false,
        });
      }
      // A PF with VFs has its own refusal that force cannot lift (vfioRefusals); host/usage.ts
      // also lists it as a use, which would repeat it as a forceable one.
      const uses = safety.uses(fn).filter((r) => !(isPfWithVfs(fn) && /SR-IOV/i.test(r)));
      for (const reason of uses) {
        if (force) forced.push(reason);
        else refusals.push({ device: fn.address, reason, forceable: true });
      }
      for (const { mate, uses: mateUses } of safety.groupMatesInUse(fn)) {
        const reason = `its IOMMU group ${fn.iommuGroup} also holds ${mate.address}, which the host uses (${mateUses.join("; ")}); the whole group goes to the VM`;
        if (force) forced.push(reason);
        else refusals.push({ device: fn.address, reason, forceable: true });
      }
    }
    for (const reason of forced) warnings.push(`${fn.address}: forced past: ${reason}`);
    if (fn.driver === "nvidia") {
      // The proprietary driver's unbind blocks while persistence mode or a CUDA process holds the
      // GPU; the action would then hang rather than fail.
      warnings.push(
        `${fn.address}: unbinding nvidia blocks while nvidia-persistenced or a GPU process holds it; stop them first (systemctl stop nvidia-persistenced)`,
      );
    }
    moves.push({
      address: fn.address,
      reason: c.reason,
      follows: c.follows,
      before: { driver: fn.driver, override: fn.driverOverride },
      writes: writesFor(fn, to),
      forced,
    });
  }
  if (to === "vfio-pci" && moves.length > 0 && facts.vfioPci === "missing") {
    refusals.push({
      device: "vfio-pci",
      reason: `the running kernel (${facts.kernelRelease}) has no vfio-pci driver, built in or as a module; install the kernel's extra modules package (linux-modules-extra-${facts.kernelRelease})`,
      forceable: false,
    });
  }
  const blocking = refusals.filter((r) => !r.forceable || !force);
  if (blocking.length > 0) return refuse(blocking);
  return {
    kind: "plan",
    to,
    dryRun: params.dryRun,
    force,
    ensureVfioPci: to === "vfio-pci" && moves.length > 0,
    moves,
    unchanged,
    warnings,
  };
}

/** Refusals that no `force` can lift: the kernel would say no anyway. */
function vfioRefusals(fn: PciFunction, facts: HostFacts): Refusal[] {
  const out: Refusal[] = [];
  if (isPfWithVfs(fn)) {
    out.push({
      device: fn.address,
      reason: `it is an SR-IOV PF with ${fn.sriov!.numVfs} VFs enabled: vfio-pci refuses such a PF (EBUSY) and unbinding its driver tears the VFs away from whoever uses them; set sriov_numvfs to 0 first (force does not override this)`,
      forceable: false,
    });
  }
  if (fn.isBridge) {
    out.push({
      device: fn.address,
      reason: "it is a PCI bridge/port: vfio-pci does not take bridges; pass the devices behind it",
      forceable: false,
    });
  }
  if (fn.iommuGroup === null) {
    out.push({
      device: fn.address,
      // A reboot turns an IOMMU that is off on; it does not give a group to a function the
      // IOMMU left out while it is on (plan/select.ts refuses that function at boot alike).
      reason:
        facts.iommuGroups.size === 0
          ? "it has no IOMMU group (the IOMMU is off in the running kernel), so vfio-pci cannot take it; reboot with the charm's kernel parameters and run verify-iommu"
          : NO_GROUP_WITH_IOMMU_ON,
      forceable: false,
    });
  }
  return out;
}

function refuse(refusals: Refusal[]): RebindRefusal {
  const anyForceable = refusals.some((r) => r.forceable);
  const lines = refusals.map((r) => `${r.device}: ${r.reason}`);
  const tail = anyForceable
    ? " Nothing was changed. Rerun with force=true to take them anyway (the host loses what is listed)."
    : " Nothing was changed.";
  return {
    kind: "refusal",
    refusals,
    message: `rebind refused: ${lines.join("; ")}.${tail}`,
  };
}

/** "e1000e → vfio-pci" style summary of a planned move, for results and logs. */
export function describeMove(move: PlannedMove, to: RebindTarget): string {
  const target = to === "vfio-pci" ? "vfio-pci" : "the kernel's default driver";
  return `${driverWords(move.before.driver)} → ${target}`;
}

/** The IOMMU groups of the functions the plan moves off vfio-pci: the only groups whose holders
 * (a running VM) can refuse it, so the only ones the executor reads /proc for. */
export function groupsLeavingVfio(plan: RebindPlan, facts: HostFacts): Set<number> {
  const groupOf = new Map(facts.functions.map((f) => [f.address, f.iommuGroup]));
  return new Set(
    plan.moves
      .filter((m) => isVfioDriver(m.before.driver))
      .map((m) => groupOf.get(m.address))
      .filter((g): g is number => typeof g === "number"),
  );
}

/** Why a running VM's group refuses a move off vfio-pci, whatever `force` says. */
const HELD_RISK =
  "unbinding vfio-pci makes the kernel wait, without any timeout, for that process to let go of the device: the action would never end, and Juju's machine lock, held for the whole action, would stop every hook of every charm on this machine (force does not override this)";

/**
 * A function on vfio-pci whose IOMMU group a process holds open (/dev/vfio/<group>) belongs to a
 * running VM. Moving it (to the host, or anywhere) is refused, naming the process and the nova
 * instance, and `force` does not lift it: with the device fd open (as QEMU holds it) the kernel's
 * unbind waits for the holder (vfio_unregister_group_dev ignores signals after the first one).
 * `users`: who holds each group open (host/vfio-users.ts reads them for groupsLeavingVfio's groups).
 */
export function busyGroupRefusal(
  plan: RebindPlan,
  facts: HostFacts,
  users: Map<number, VfioGroupUser[]>,
): RebindRefusal | null {
  const groupOf = new Map(facts.functions.map((f) => [f.address, f.iommuGroup]));
  const leaving = plan.moves.filter((m) => isVfioDriver(m.before.driver));
  const refusals: RebindRefusal["refusals"] = [];
  for (const move of leaving) {
    const group = groupOf.get(move.address);
    const holders = typeof group === "number" ? users.get(group) : undefined;
    if (!holders) continue;
    const reason = `it is on vfio-pci and IOMMU group ${group} is open by ${holders.map(describeUser).join("; ")}: ${HELD_RISK}`;
    refusals.push({ device: move.address, reason, forceable: false });
  }
  if (refusals.length === 0) return null;
  const instances = [
    ...new Set([...users.values()].flat().flatMap((u) => (u.instance ? [u.instance] : []))),
  ];
  const stop =
    instances.length > 0
      ? `Stop or migrate ${instances.join(", ")} first (openstack server stop / migrate)`
      : "Stop the process that holds it first";
  return {
    kind: "refusal",
    refusals,
    message: `rebind refused: ${refusals.map((r) => `${r.device}: ${r.reason}`).join("; ")}. ${stop}, then run the action again. Nothing was changed.`,
  };
}
