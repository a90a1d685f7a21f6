// The sriov-vfs action: give the PFs the number of VFs the `devices` option plans NOW, instead of at
// the next boot. A change of the number of VFs passes through 0 (the kernel refuses to change a
// non-zero count), which destroys every VF of that PF: so it is refused while a process holds a
// VF's IOMMU group open (/dev/vfio/<group>: a running VM), the same busy check as rebind. `force`
// never lifts that refusal: with the VF's device fd open (as QEMU holds it) the kernel's removal
// waits for the holder to let go, ignoring signals after the first (vfio_unregister_group_dev), and
// Juju holds the machine's execution lock for the whole action, so every hook of every charm on the
// machine would wait with it. The writes are the boot helper's (render-sriov.ts), in the same order;
// dry-run prints them.

import type { SysfsWriter } from "../apply/sysfs";
import { type ActionSriovVfs, validateActionSriovVfs } from "../generated/validators.js";
import type { HostFacts, HostUsage, PciFunction } from "../host/facts";
import { deviceAttr, SYSFS_WRITES } from "../host/root";
import type { VfioGroupUser } from "../host/vfio-users";
import { describeUser } from "../host/vfio-users";
import { parseAddressPattern } from "../pci-vocabulary";
import type { PlannedPf } from "../plan/sriov";
import { listOf } from "../text";
import { type Checked, checkParams } from "./params";
import { type ActionReply, addressKey, listResult, type ResultTree } from "./results";

export interface SriovVfsParams {
  /** Only this PF (full address); null: every PF the plan gives VFs. */
  pf: string | null;
  dryRun: boolean;
  force: boolean;
}

/** Checks raw params (schema from actions.yaml, then the PF's address through the PCI
 * vocabulary, as the option and rebind read it). One PF or all: actions.yaml's pattern already
 * refuses a glob, since a change of VF count destroys every VF of each PF it names. */
export function parseSriovVfsParams(raw: unknown): Checked<SriovVfsParams> {
  return checkParams<ActionSriovVfs, SriovVfsParams>(
    "sriov-vfs",
    validateActionSriovVfs,
    raw,
    (p) => {
      const address = typeof p.pf === "string" ? parseAddressPattern(p.pf) : null;
      if (typeof address === "string") {
        const message = `pf "${p.pf}" ${address} (list-devices shows the PFs)`;
        return { errors: [{ param: "pf", message }] };
      }
      const pf = address?.text ?? null;
      return { params: { pf, dryRun: p["dry-run"] === true, force: p.force === true } };
    },
  );
}

/** Why an open group refuses a change of VF count, whatever `force` says (rebind says the same). */
export const HELD_GROUP_RISK =
  "changing the number of VFs removes every VF of the PF, and the kernel waits, without any timeout, for that process to let go of its VF: the action would never end, and Juju's machine lock, held for the whole action, would stop every hook of every charm on this machine";

/** One write, in order: the host path and the value. */
export interface SriovWrite {
  path: string;
  value: string;
  why: string;
}

/** What the action would do for one PF. */
export interface PfChange {
  pf: PlannedPf;
  from: number;
  /** The count is right; only VFs off their planned driver (or autoprobe left off) are fixed. */
  repair?: string[];
  writes: SriovWrite[];
  /** The VFs that exist now and are destroyed first, with who holds their group open. */
  busy: Array<{ vf: string; group: number; users: VfioGroupUser[] }>;
}

/** The writes that give `pf` its planned VFs (the boot helper's order). Pure. */
export function sriovWrites(pf: PlannedPf, from: number): SriovWrite[] {
  const numvfs = deviceAttr(pf.address, "sriov_numvfs");
  const autoprobe = deviceAttr(pf.address, "sriov_drivers_autoprobe");
  const writes: SriovWrite[] = [];
  if (from !== 0) {
    writes.push({
      path: numvfs,
      value: "0",
      why: `remove its ${from} VFs (a count changes through 0)`,
    });
  }
  const vfio = pf.vfDriver === "vfio-pci";
  if (vfio) {
    writes.push({
      path: autoprobe,
      value: "0",
      why: "no driver probes the new VFs while they appear",
    });
  }
  writes.push({ path: numvfs, value: String(pf.numVfs), why: `create ${pf.numVfs} VFs` });
  if (vfio) {
    for (const vf of pf.vfAddresses) {
      writes.push({
        path: deviceAttr(vf, "driver_override"),
        value: "vfio-pci",
        why: "this VF goes to vfio-pci, by its own address",
      });
      writes.push({
        path: SYSFS_WRITES.pciDriversProbe,
        value: vf,
        why: "probe it: vfio-pci takes it",
      });
    }
    writes.push({ path: autoprobe, value: "1", why: "back to the default" });
  }
  return writes;
}

/**
 * The count is right but VFs sit off the plan (a helper udev killed after its 180 s, or another
 * agent): each VF for vfio-pci that is not on it gets its override, leaves its driver and is
 * probed; a neutron-port VF left with no driver is probed for its host driver; autoprobe left off
 * is turned back on. Pure; empty when everything is where the plan puts it.
 */
export function repairWrites(
  pf: PlannedPf,
  fn: PciFunction,
  vfs: PciFunction[],
): { writes: SriovWrite[]; moved: string[] } {
  const writes: SriovWrite[] = [];
  const moved: string[] = [];
  for (const vf of vfs) {
    if (pf.vfDriver === "vfio-pci") {
      if (vf.driver === "vfio-pci") continue;
      moved.push(`${vf.address} (was on ${vf.driver ?? "no driver"})`);
      if (vf.driverOverride !== "vfio-pci") {
        writes.push({
          path: deviceAttr(vf.address, "driver_override"),
          value: "vfio-pci",
          why: "this VF goes to vfio-pci, by its own address",
        });
      }
      if (vf.driver !== null) {
        writes.push({
          path: deviceAttr(vf.address, "driver/unbind"),
          value: vf.address,
          why: `take it from ${vf.driver}`,
        });
      }
      writes.push({
        path: SYSFS_WRITES.pciDriversProbe,
        value: vf.address,
        why: "probe it: vfio-pci takes it",
      });
    } else if (vf.driver === null && vf.driverOverride === null) {
      moved.push(`${vf.address} (had no driver)`);
      writes.push({
        path: SYSFS_WRITES.pciDriversProbe,
        value: vf.address,
        why: "probe it: its host VF driver takes it",
      });
    }
  }
  if (fn.sriov?.driversAutoprobe === false) {
    writes.push({
      path: deviceAttr(pf.address, "sriov_drivers_autoprobe"),
      value: "1",
      why: "back to the default (left off by an interrupted helper)",
    });
  }
  return { writes, moved };
}

/** What a neutron SR-IOV agent must hear after a count change on a physical-network PF. */
export const NEUTRON_RESTART =
  "systemctl restart neutron-sriov-agent (on this host): the agent scans a PF's VFs once, when it first maps the PF (eswitch_manager.py _process_emb_switch_map keeps a PF it knows), so ports on new VFs never go ACTIVE until it restarts";

export interface SriovVfsInput {
  /** Checked by parseSriovVfsParams before any host read. */
  params: SriovVfsParams;
  facts: HostFacts;
  /** PFs the plan gives VFs (plan/sriov.ts). */
  sriov: PlannedPf[];
  /** What the host uses each function for (host/usage.ts): a PF that carries the host's own
   * network resets its port on a change of VF count. Absent: nothing known. */
  usage?: HostUsage;
  /** Processes holding each asked group open (host/vfio-users.ts readVfioGroupUsers). */
  groupUsers: (groups: ReadonlySet<number>) => Map<number, VfioGroupUser[]>;
  sysfs: SysfsWriter;
}

/** The whole action (params already checked): plan, refusals, then dry-run or the writes with a
 * read-back. */
export function sriovVfsAction(input: SriovVfsInput): ActionReply {
  const { pf: only, dryRun } = input.params;
  const pfs = input.sriov.filter((pf) => only === null || pf.address === only);
  if (pfs.length === 0) {
    const message =
      only === null
        ? "sriov-vfs: the devices option gives no PF VFs (an entry with vfs: N); nothing to do"
        : `sriov-vfs: the devices option gives ${only} no VFs (planned: ${input.sriov.map((p) => p.address).join(", ") || "none"}); nothing was changed`;
    return { ok: false, message, results: { ok: "no", message } };
  }
  const byAddress = new Map(input.facts.functions.map((f) => [f.address, f]));
  const changes: PfChange[] = [];
  const unchanged: string[] = [];
  for (const pf of pfs) {
    const fn = byAddress.get(pf.address);
    const from = fn?.sriov?.numVfs ?? 0;
    if (!fn?.sriov) {
      const message = `sriov-vfs: ${pf.address} is not an SR-IOV PF on this host now; nothing was changed`;
      return { ok: false, message, results: { ok: "no", message } };
    }
    if (from === pf.numVfs) {
      const vfs = input.facts.functions.filter((f) => f.physfn === pf.address);
      const { writes, moved } = repairWrites(pf, fn, vfs);
      if (writes.length === 0) unchanged.push(pf.address);
      else changes.push({ pf, from, writes, busy: [], repair: moved });
      continue;
    }
    changes.push({ pf, from, writes: sriovWrites(pf, from), busy: [] });
  }
  const recounts = changes.filter((c) => c.repair === undefined);
  // The busy check: every VF that exists now is destroyed first.
  const vfsNow = input.facts.functions.filter(
    (f) => f.physfn !== null && recounts.some((c) => c.pf.address === f.physfn),
  );
  const groups = new Set(vfsNow.flatMap((vf) => (vf.iommuGroup === null ? [] : [vf.iommuGroup])));
  const users = input.groupUsers(groups);
  for (const vf of vfsNow) {
    const held = vf.iommuGroup === null ? undefined : users.get(vf.iommuGroup);
    if (!held) continue;
    changes
      .find((c) => c.pf.address === vf.physfn)!
      .busy.push({
        vf: vf.address,
        group: vf.iommuGroup!,
        users: held,
      });
  }
  const busy = changes.flatMap((c) => c.busy);
  const warnings: string[] = [];
  if (busy.length > 0) {
    const named = listOf(
      busy.map(
        (b) => `${b.vf} (IOMMU group ${b.group} open by ${b.users.map(describeUser).join("; ")})`,
      ),
      3,
      ", ",
    );
    const message = `sriov-vfs refused: ${named}: ${HELD_GROUP_RISK}. Stop or migrate those instances first, then run the action again (force does not override this). Nothing was changed.`;
    return { ok: false, message, results: { ok: "no", message, ...changeResults(changes) } };
  }
  // A PF that carries the host's own network: enabling and disabling VFs resets the port (i40e
  // and ice reset the PF both ways), so its link, addresses and routes drop for a moment.
  const carriers = recounts.flatMap((c) => {
    // Its network uses only (host/usage.ts also lists "SR-IOV PF with N VFs enabled").
    const uses = (input.usage?.get(c.pf.address) ?? []).filter((r) =>
      r.startsWith("network interface "),
    );
    if (uses.length === 0) return [];
    const resets = c.from === 0 ? "one reset (N)" : "two resets (0, then N)";
    return [`${c.pf.address} carries the host's network (${uses.join("; ")}): ${resets}`];
  });
  if (carriers.length > 0) {
    const risk =
      "changing the VF count resets the PF's port (i40e and ice reset it when VFs are enabled and when they are disabled), so that interface drops and its addresses stop answering until the link is back";
    if (!input.params.force) {
      const message = `sriov-vfs refused: ${carriers.join("; ")}: ${risk}. Run it from the console or in a maintenance window with force=true. Nothing was changed.`;
      return { ok: false, message, results: { ok: "no", message, ...changeResults(changes) } };
    }
    warnings.push(`forced past: ${carriers.join("; ")}: ${risk}`);
  }
  if (
    changes.some((c) => c.pf.vfDriver === "vfio-pci") &&
    !input.sysfs.driverRegistered("vfio-pci") &&
    !dryRun
  ) {
    const message =
      "sriov-vfs: /sys/bus/pci/drivers/vfio-pci is missing: load it (modprobe vfio-pci) and run the action again; nothing was changed";
    return { ok: false, message, results: { ok: "no", message } };
  }
  if (dryRun) {
    const message =
      changes.length === 0
        ? `every PF already has its planned VFs (${unchanged.join(", ")}): nothing to write`
        : `dry run: ${changes.reduce((n, c) => n + c.writes.length, 0)} writes for ${changes.length} PF${changes.length === 1 ? "" : "s"}, in order; nothing was changed`;
    return {
      ok: true,
      message,
      results: {
        ok: "yes",
        message,
        ...changeResults(changes),
        ...(warnings.length > 0 ? { warnings: listResult(warnings, (w) => w) } : {}),
      },
    };
  }
  const failures: string[] = [];
  for (const change of changes) {
    for (const w of change.writes) {
      try {
        input.sysfs.writeAttr(w.path, w.value);
      } catch (err) {
        failures.push(`${change.pf.address}: ${err instanceof Error ? err.message : String(err)}`);
        // A failed count write leaves nothing more to do for this PF; a VF's failure only that VF.
        if (w.path.endsWith("/sriov_numvfs")) break;
      }
    }
  }
  const offPlan: string[] = [];
  for (const change of changes) {
    if (change.pf.vfDriver !== "vfio-pci") continue;
    for (const vf of change.pf.vfAddresses) {
      let driver: string | null = null;
      try {
        driver = input.sysfs.readDriver(vf);
      } catch {
        driver = null;
      }
      if (driver !== "vfio-pci") offPlan.push(`${vf} on ${driver ?? "no driver"}`);
    }
  }
  const ok = failures.length === 0 && offPlan.length === 0;
  const done = changes
    .map((c) =>
      c.repair === undefined
        ? `${c.pf.address}: ${c.from} → ${c.pf.numVfs} VFs`
        : `${c.pf.address}: ${c.from} VFs as planned; moved to ${c.pf.vfDriver === "vfio-pci" ? "vfio-pci" : "their host driver"}: ${c.repair.length > 0 ? listOf(c.repair, 3, ", ") : "none"}${c.writes.some((w) => w.path.endsWith("/sriov_drivers_autoprobe")) ? "; sriov_drivers_autoprobe back on" : ""}`,
    )
    .join(", ");
  const neutron = recounts.filter((c) => c.pf.physicalNetwork !== null);
  const restart: ResultTree =
    neutron.length > 0 && failures.length === 0
      ? {
          restart: {
            service: "neutron-sriov-agent",
            command: "systemctl restart neutron-sriov-agent",
            why: `${neutron.map((c) => `${c.pf.address} (${c.pf.physicalNetwork})`).join(", ")}: ${NEUTRON_RESTART}`,
          },
        }
      : {};
  const message = ok
    ? changes.length === 0
      ? `every PF already has its planned VFs (${unchanged.join(", ")})`
      : `${done}${recounts.some((c) => c.pf.vfDriver === "vfio-pci") ? ", each on vfio-pci" : ""}${neutron.length > 0 ? `; now run: systemctl restart neutron-sriov-agent (${NEUTRON_RESTART.slice(NEUTRON_RESTART.indexOf(":") + 2)})` : ""}`
    : `sriov-vfs: ${[...failures, ...(offPlan.length > 0 ? [`not on vfio-pci after probing: ${listOf(offPlan, 3, ", ")}`] : [])].join("; ")}`;
  return {
    ok,
    message,
    results: {
      ok: ok ? "yes" : "no",
      message,
      ...changeResults(changes),
      ...(warnings.length > 0 ? { warnings: listResult(warnings, (w) => w) } : {}),
      ...restart,
    },
  };
}

/** Per PF: from, to, the writes in order (a long VF list stays one result value per write). */
function changeResults(changes: PfChange[]): ResultTree {
  if (changes.length === 0) return {};
  const out: ResultTree = {};
  for (const c of changes) {
    out[addressKey(c.pf.address)] = {
      pf: c.pf.address,
      from: String(c.from),
      to: String(c.pf.numVfs),
      "vf-driver": c.pf.vfDriver === "vfio-pci" ? "vfio-pci" : "host VF driver",
      writes: listResult(c.writes, (w) => `${w.path} <- ${w.value} (${w.why})`),
      ...(c.repair && c.repair.length > 0 ? { moved: listResult(c.repair, (m) => m) } : {}),
    };
  }
  return { pfs: out };
}
