// The list-devices action, pure: every PCI function with what an operator needs to choose devices
// (class, ids, names, driver, the modules that would claim it, IOMMU group, NUMA node, boot VGA,
// SR-IOV, whether the `devices` option selects it), filtered by class, vendor or selection.
import { type ActionListDevices, validateActionListDevices } from "../generated/validators.js";
import type { HostFacts, HostUsage, ModuleAliases, PciFunction } from "../host/facts";
import type { PciIdNames } from "../host/pci-ids";
import { CLASS_WORD_NAMES, CLASS_WORDS, classWord, parsePciId } from "../pci-vocabulary";
import {
  isVfioDriver,
  type PredictedGroup,
  predictedGroupOf,
  predictIommuGroups,
} from "../plan/iommu-groups";
import type { PlannedPf } from "../plan/sriov";
import type { BoundDevice, WithheldFunction } from "../plan/types";
import { driverWords } from "../text";
import { type Checked, checkParams, type ParamError } from "./params";
import { addressKey, type ResultTree, yesNo } from "./results";

export interface ListDevicesParams {
  /** Hex class-code prefixes to keep (a word expands to several), or null for all. */
  classPrefixes: string[] | null;
  vendor: string | null;
  selectedOnly: boolean;
  /** List every SR-IOV VF on its own; by default they are summarised under their PF (a host can
   * have thousands: one line each would bury everything else, and Juju's results). */
  eachVf: boolean;
}

/** Checks raw list-devices params (schema, then the class word / hex prefix and vendor id). */
export function parseListDevicesParams(raw: unknown): Checked<ListDevicesParams> {
  return checkParams<ActionListDevices, ListDevicesParams>(
    "list-devices",
    validateActionListDevices,
    raw,
    (p) => {
      const errors: ParamError[] = [];
      let classPrefixes: string[] | null = null;
      if (typeof p.class === "string") {
        const value = p.class.trim().toLowerCase().replace(/^0x/, "");
        if (CLASS_WORDS[value]) classPrefixes = CLASS_WORDS[value]!;
        else if (/^[0-9a-f]{2,6}$/.test(value)) classPrefixes = [value];
        else {
          errors.push({
            param: "class",
            message: `class "${p.class}" is neither a class word (${CLASS_WORD_NAMES.join(", ")}) nor a hex class prefix (2 to 6 hex digits, e.g. 03 or 0200)`,
          });
        }
      }
      let vendor: string | null = null;
      if (typeof p.vendor === "string") {
        vendor = parsePciId(p.vendor);
        if (vendor === null) {
          errors.push({
            param: "vendor",
            message: `vendor "${p.vendor}" is not a vendor id: give 4 hex digits, e.g. 10de`,
          });
        }
      }
      if (errors.length > 0) return { errors };
      return {
        params: {
          classPrefixes,
          vendor,
          selectedOnly: p["selected-only"] === true,
          eachVf: p["each-vf"] === true,
        },
      };
    },
  );
}

/** One listed function, structured (the results tree is rendered from these). */
export interface DeviceRow {
  address: string;
  classCode: string;
  classWord: string;
  ids: string;
  vendorName: string | null;
  deviceName: string | null;
  /** pci.ids' name for the class code ("VGA compatible controller"). */
  className: string | null;
  driver: string | null;
  driverOverride: string | null;
  /** null when modules.alias could not be read. */
  modules: readonly string[] | null;
  iommuGroup: number | null;
  numaNode: number | null;
  bootVga: boolean;
  sriov: { role: "pf"; numVfs: number; totalVfs: number } | { role: "vf"; pf: string } | null;
  selected: BoundDevice | null;
  /** Why the host uses it (from HostUsage), empty when unknown or unused. */
  hostUse: string[];
  /** For a PF whose VFs are summarised (not listed one by one): what they are now. */
  vfSummary: VfSummary | null;
  /** For a PF the `devices` option gives VFs: what every boot creates. */
  planned: PlannedPf | null;
  /** Selected but kept for the host by the plan (why), or null. */
  withheld: WithheldFunction | null;
  /** While the IOMMU is off: the group the kernel will make at the next boot (predicted). */
  predictedGroup: PredictedGroup | null;
}

/** A PF's VFs in a few words: how many, where, on which drivers, in which IOMMU groups. */
export interface VfSummary {
  count: number;
  first: string;
  last: string;
  /** Driver (or "no driver") → how many VFs sit on it, most first. */
  drivers: Array<[string, number]>;
  /** Distinct IOMMU groups, the lowest and highest, and how many VFs share a group with another
   * function (no ACS: they can only go to one VM together). */
  groups: number;
  firstGroup: number | null;
  lastGroup: number | null;
  sharingGroup: number;
  selected: number;
}

export interface ListDevicesInput {
  params: ListDevicesParams;
  facts: HostFacts;
  usage?: HostUsage;
  /** modules.alias's answers for the functions' modaliases (read before); null: not known. */
  modules: ModuleAliases | null;
  /** loadPciIds(root); null or `source: null` when the host has no pci.ids. */
  names: PciIdNames | null;
  selection: BoundDevice[];
  /** PFs the `devices` option gives VFs (plan/sriov.ts); absent: none. */
  sriov?: PlannedPf[];
  /** What the selection matched but the plan keeps for the host; absent: none. */
  withheld?: WithheldFunction[];
}

export interface ListDevicesResult {
  rows: DeviceRow[];
  /** For action-set: `count`, `devices.<0000-83-00-0>.<field>`, `notes`. */
  results: ResultTree;
}

function rowFor(fn: PciFunction, input: ListDevicesInput, sel: BoundDevice | null): DeviceRow {
  const { names, modules, usage } = input;
  let sriov: DeviceRow["sriov"] = null;
  if (fn.physfn) sriov = { role: "vf", pf: fn.physfn };
  else if (fn.sriov) sriov = { role: "pf", numVfs: fn.sriov.numVfs, totalVfs: fn.sriov.totalVfs };
  return {
    address: fn.address,
    classCode: fn.classCode,
    classWord: classWord(fn.classCode),
    ids: `${fn.vendorId}:${fn.deviceId}`,
    vendorName: names?.vendorName(fn.vendorId) ?? null,
    deviceName: names?.deviceName(fn.vendorId, fn.deviceId) ?? null,
    className: names?.className(fn.classCode) ?? null,
    driver: fn.driver,
    driverOverride: fn.driverOverride,
    modules: modules ? (modules.get(fn.modalias) ?? []) : null,
    iommuGroup: fn.iommuGroup,
    numaNode: fn.numaNode,
    bootVga: fn.bootVga,
    sriov,
    selected: sel,
    hostUse: usage?.get(fn.address) ?? [],
    vfSummary: null,
    planned: null,
    withheld: null,
    predictedGroup: predictedGroupOf(input.facts, fn),
  };
}

/** Summarises VFs (sorted by address) for their PF's row. */
function summarise(
  vfs: PciFunction[],
  facts: HostFacts,
  selected: Map<string, BoundDevice>,
): VfSummary {
  const drivers = new Map<string, number>();
  const groups = new Set<number>();
  let sharingGroup = 0;
  let selectedCount = 0;
  for (const vf of vfs) {
    const d = driverWords(vf.driver);
    drivers.set(d, (drivers.get(d) ?? 0) + 1);
    if (vf.iommuGroup !== null) {
      groups.add(vf.iommuGroup);
      if ((facts.iommuGroups.get(vf.iommuGroup)?.length ?? 1) > 1) sharingGroup++;
    }
    if (selected.has(vf.address)) selectedCount++;
  }
  const sortedGroups = [...groups].sort((a, b) => a - b);
  return {
    count: vfs.length,
    first: vfs[0]!.address,
    last: vfs[vfs.length - 1]!.address,
    drivers: [...drivers].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)),
    groups: sortedGroups.length,
    firstGroup: sortedGroups[0] ?? null,
    lastGroup: sortedGroups[sortedGroups.length - 1] ?? null,
    sharingGroup,
    selected: selectedCount,
  };
}

function rowResult(row: DeviceRow): ResultTree {
  const out: ResultTree = {
    address: row.address,
    class: row.classCode,
    "class-name": row.classWord,
    ...(row.className ? { "class-description": row.className } : {}),
    ids: row.ids,
    name:
      row.vendorName || row.deviceName
        ? [row.vendorName ?? row.ids.slice(0, 4), row.deviceName ?? row.ids.slice(5)].join(" ")
        : row.ids,
    driver: driverWords(row.driver),
    "iommu-group": row.iommuGroup === null ? "none" : String(row.iommuGroup),
    "numa-node": row.numaNode === null ? "none" : String(row.numaNode),
    "boot-vga": yesNo(row.bootVga),
    selected: yesNo(row.selected !== null),
  };
  if (row.driverOverride) out["driver-override"] = row.driverOverride;
  if (row.modules) out.modules = row.modules.length > 0 ? row.modules.join(", ") : "none";
  if (row.sriov?.role === "pf") {
    out.sriov = {
      role: "pf",
      numvfs: String(row.sriov.numVfs),
      totalvfs: String(row.sriov.totalVfs),
    };
  } else if (row.sriov?.role === "vf") {
    out.sriov = { role: "vf", pf: row.sriov.pf };
  }
  if (row.selected) {
    out.alias = row.selected.alias;
    out["selected-as"] = row.selected.follows
      ? `${row.selected.reason} of ${row.selected.follows}`
      : row.selected.reason;
  }
  if (row.hostUse.length > 0) out["host-use"] = row.hostUse.join("; ");
  if (row.predictedGroup) {
    const others = row.predictedGroup.members.filter((a) => a !== row.address);
    out["iommu-group-after-reboot"] =
      others.length === 0
        ? "its own (predicted from config space)"
        : `shared with ${others.join(", ")} (predicted from config space: ${row.predictedGroup.why.join("; ")})`;
  }
  const onVfio = isVfioDriver(row.driver);
  if (row.withheld) {
    out["kept-for-host"] = row.withheld.reasons.join("; ");
    // Where it is, where the plan wants it, and what moves it: never "not bound" while it is.
    if (onVfio) {
      out.next =
        `on ${row.driver} now (bound at an earlier boot) but the plan keeps it for the host: the ` +
        `charm no longer binds it at boot, so the next reboot returns it to the host driver; now: ` +
        `run the rebind action with devices=${row.address} to=host`;
    }
  } else if (row.selected && !onVfio) {
    out.next =
      "the plan gives it to vfio-pci: the charm binds it at the next boot; now: run the rebind action";
  } else if (!row.selected && onVfio && row.sriov?.role !== "vf") {
    out.next =
      `on ${row.driver} now but the devices option does not select it: the charm does not bind ` +
      `it at boot; to return it to the host now run the rebind action with devices=${row.address} to=host`;
  }
  const sriov = out.sriov;
  if (typeof sriov === "object" && row.vfSummary) {
    const v = row.vfSummary;
    sriov.vfs = {
      count: String(v.count),
      addresses: v.count === 1 ? v.first : `${v.first} - ${v.last}`,
      drivers: v.drivers.map(([d, n]) => `${d} x${n}`).join(", "),
      "iommu-groups":
        v.firstGroup === null
          ? "none"
          : `${v.groups} (${v.firstGroup === v.lastGroup ? v.firstGroup : `${v.firstGroup}-${v.lastGroup}`})`,
      "sharing-a-group": String(v.sharingGroup),
      selected: String(v.selected),
    };
  }
  if (typeof sriov === "object" && row.planned) {
    const p = row.planned;
    sriov.planned =
      `${p.numVfs} VFs at every boot, on ${p.vfDriver === "vfio-pci" ? "vfio-pci" : "the host VF driver"}` +
      (p.physicalNetwork === null
        ? ` (nova alias ${p.alias})`
        : ` (neutron physical network ${p.physicalNetwork})`);
  }
  return out;
}

/** Lists the host's PCI functions as structured rows and as action results. Pure. */
export function listDevices(input: ListDevicesInput): ListDevicesResult {
  const { params, facts, selection } = input;
  const selected = new Map(selection.map((b) => [b.address, b]));
  const withheld = new Map((input.withheld ?? []).map((w) => [w.address, w]));
  const planned = new Map((input.sriov ?? []).map((p) => [p.address, p]));
  // VFs under their PF unless asked one by one (only VFs whose PF is listed here too).
  const present = new Set(facts.functions.map((fn) => fn.address));
  const vfsOf = new Map<string, PciFunction[]>();
  if (!params.eachVf) {
    for (const fn of facts.functions) {
      if (fn.physfn === null || !present.has(fn.physfn)) continue;
      const list = vfsOf.get(fn.physfn);
      if (list) list.push(fn);
      else vfsOf.set(fn.physfn, [fn]);
    }
  }
  const summarised = (fn: PciFunction) =>
    fn.physfn !== null && !params.eachVf && present.has(fn.physfn);
  const rows = facts.functions
    .filter((fn) => !summarised(fn))
    .filter(
      (fn) => !params.classPrefixes || params.classPrefixes.some((p) => fn.classCode.startsWith(p)),
    )
    .filter((fn) => !params.vendor || fn.vendorId === params.vendor)
    .filter(
      (fn) =>
        !params.selectedOnly ||
        selected.has(fn.address) ||
        planned.has(fn.address) ||
        (vfsOf.get(fn.address) ?? []).some((vf) => selected.has(vf.address)),
    )
    .map((fn) => {
      const row = rowFor(fn, input, selected.get(fn.address) ?? null);
      const vfs = vfsOf.get(fn.address);
      if (vfs && vfs.length > 0) row.vfSummary = summarise(vfs, facts, selected);
      row.planned = planned.get(fn.address) ?? null;
      row.withheld = withheld.get(fn.address) ?? null;
      return row;
    });
  const devices: ResultTree = {};
  for (const row of rows) devices[addressKey(row.address)] = rowResult(row);
  const results: ResultTree = { count: String(rows.length), devices };
  const vfCount = [...vfsOf.values()].reduce((n, vfs) => n + vfs.length, 0);
  if (vfCount > 0) {
    results["vfs-summarised"] =
      `${vfCount} SR-IOV VFs are summarised under their PF (sriov.vfs); each-vf=true lists them one by one`;
  }
  const notes: string[] = [];
  if (!input.names?.source)
    notes.push("no pci.ids on this host: names show the ids only (install pciutils or hwdata)");
  if (!input.modules)
    notes.push("the running kernel's modules.alias could not be read: modules are not shown");
  if (facts.iommuGroups.size === 0)
    notes.push(
      predictIommuGroups(facts) !== null
        ? "no IOMMU groups: the IOMMU is off in the running kernel; iommu-group-after-reboot is the group the kernel will make once it is on, predicted from config space"
        : "no IOMMU groups: the IOMMU is off in the running kernel",
    );
  if (rows.length === 0) notes.push("no PCI function matches the filters");
  if (notes.length > 0) results.notes = notes.join("; ");
  return { rows, results };
}
