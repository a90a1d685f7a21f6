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
import type { HostFacts } from "../host/facts";
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

export interface SriovVfsInput {
  /** Checked by parseSriovVfsParams before any host read. */
  params: SriovVfsParams;
  facts: HostFacts;
  /** PFs the plan gives VFs (plan/sriov.ts). */
  sriov: PlannedPf[];
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
      unchanged.push(pf.address);
      continue;
    }
    changes.push({ pf, from, writes: sriovWrites(pf, from), busy: [] });
  }
  // The busy check: every VF that exists now is destroyed first.
  const vfsNow = input.facts.functions.filter(
    (f) => f.physfn !== null && changes.some((c) => c.pf.address === f.physfn),
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
  const done = changes.map((c) => `${c.pf.address}: ${c.from} → ${c.pf.numVfs} VFs`).join(", ");
  const message = ok
    ? changes.length === 0
      ? `every PF already has its planned VFs (${unchanged.join(", ")})`
      : `${done}${changes.some((c) => c.pf.vfDriver === "vfio-pci") ? ", each on vfio-pci" : ""}`
    : `sriov-vfs: ${[...failures, ...(offPlan.length > 0 ? [`not on vfio-pci after probing: ${listOf(offPlan, 3, ", ")}`] : [])].join("; ")}`;
  return {
    ok,
    message,
    results: {
      ok: ok ? "yes" : "no",
      message,
      ...changeResults(changes),
      ...(warnings.length > 0 ? { warnings: listResult(warnings, (w) => w) } : {}),
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
    };
  }
  return { pfs: out };
}
