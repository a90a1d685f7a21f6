// What verify-iommu shows of its checks, pure: the problem lines (a check's lines on the VFs of
// one PF folded into one), the selected VFs summarised under their PF, and the result tree
// action-set is given. The checks themselves are verify-iommu-checks.ts.
import type { InterruptRemapping } from "../host/interrupt-remapping";
import { READ } from "../host/root";
import type { BoundDevice } from "../plan/types";
import { driverWords, thousands } from "../text";
import { addressKey, listResult, type ResultTree, yesNo } from "./results";
import type {
  DeviceCheck,
  Judged,
  SriovCheck,
  VerifyCheck,
  VerifyIommuInput,
  VerifyProblem,
} from "./verify-iommu-checks";

/** A PF's selected VFs in a few words: what verify-iommu shows instead of one entry per VF. */
export interface VfChecksSummary {
  pf: string;
  count: number;
  first: string;
  last: string;
  ok: number;
  /** Driver (or "no driver") → how many of these VFs sit on it, most first. */
  drivers: Array<[string, number]>;
  noGroup: number;
  /** In an IOMMU group that is not viable (VFs without a group are counted in noGroup). */
  notViable: number;
  /** In a group whose /dev/vfio/<group> is missing. */
  noVfioDevice: number;
  /** The first failing VFs by address (at most FAILING_SHOWN), each with its first problem. */
  failing: Array<{ address: string; problem: string }>;
  /** How many more fail than `failing` shows. */
  moreFailing: number;
}

/** Problem lines the action-fail message shows; the rest are named by count (all are in the
 * results): `juju run` prints the message whole. */
const MESSAGE_LINES = 5;

export function messageLines(lines: string[]): string {
  if (lines.length <= MESSAGE_LINES) return lines.join("; ");
  const more = lines.length - MESSAGE_LINES;
  return `${lines.slice(0, MESSAGE_LINES).join("; ")}; and ${more} more problem${more === 1 ? "" : "s"} (see \`problems\` in the results)`;
}

/** Failing VFs a PF's summary names, each with its first problem; each-vf shows all. */
const FAILING_SHOWN = 8;

/** What a folded line says when the VFs' messages differ (a driver or a group number each). */
const FOLDED_CHECK_WORDS: Partial<Record<VerifyCheck, string>> = {
  ids: "have other ids than selected",
  driver: "are not on vfio-pci",
  group: "have no IOMMU group",
  viability: "are in IOMMU groups that are not viable",
  "vfio-device": `have no ${READ.devVfio}/<group>`,
  "host-use": "are used by the host or share an IOMMU group with something it uses",
};

/** The problem lines to show: a check's lines on several VFs of one PF become one line, where the
 * first of them stood, naming how many, their address range and the first one's problem. Lines of
 * one VF, of a function that is not a VF, and host-wide lines are as they are. */
export function foldProblemLines(
  problems: VerifyProblem[],
  judged: Judged[],
  ordered: boolean,
): string[] {
  // PF → check → its fold: nothing looked up or built per problem but the fold it joins.
  const folds = new Map<string, Map<VerifyCheck, Fold>>();
  const order: Array<string | Fold> = [];
  let next = 0;
  for (let i = 0; i < judged.length; i++) {
    const j = judged[i]!;
    for (; next < j.from; next++) order.push(problems[next]!.message);
    if (j.pf === undefined) continue;
    let byCheck = folds.get(j.pf);
    if (!byCheck) {
      byCheck = new Map();
      folds.set(j.pf, byCheck);
    }
    for (; next < j.to; next++) {
      const p = problems[next]!;
      let fold = byCheck.get(p.check);
      if (!fold) {
        fold = { pf: j.pf, check: p.check, problems: [], devices: [] };
        byCheck.set(p.check, fold);
        order.push(fold);
      }
      fold.problems.push(p);
      if (fold.devices[fold.devices.length - 1] !== j.device) fold.devices.push(j.device);
    }
  }
  for (; next < problems.length; next++) order.push(problems[next]!.message);
  return order.flatMap((o) => (typeof o === "string" ? [o] : foldedLines(o, ordered)));
}

/** One check's problems on VFs of one PF, and those VFs (in the order checked). */
interface Fold {
  pf: string;
  check: VerifyCheck;
  problems: VerifyProblem[];
  devices: DeviceCheck[];
}

function foldedLines(fold: Fold, ordered: boolean): string[] {
  if (fold.devices.length === 1) return fold.problems.map((p) => p.message);
  const vfs = inAddressOrder(fold.devices, ordered, (d) => d.address);
  const firstVf = vfs[0]!.address;
  const first = fold.problems.find((p) => p.device === firstVf)!;
  const what = `${thousands(vfs.length)} VFs of ${fold.pf} (${firstVf} - ${vfs[vfs.length - 1]!.address})`;
  // Each message starts with its VF's address: the rest is what it says of that VF.
  const said = first.message.slice(firstVf.length + 2);
  const same = fold.problems.every(
    (p) => p.message.length - p.device!.length - 2 === said.length && p.message.endsWith(said),
  );
  if (same) return [`${what}: ${said}`];
  let words = FOLDED_CHECK_WORDS[fold.check] ?? `fail the ${fold.check} check`;
  if (fold.check === "driver") {
    const tally = driverTally(vfs.map((d) => d.driver));
    words += ` (${tally.map(([d, n]) => `${d} x${thousands(n)}`).join(", ")})`;
  }
  return [`${what} ${words}; the first: ${first.message}`];
}

/** `list` in address order: as it is when the selection was (the plan's is in bus order, and
 * these lists keep its order), else sorted. */
function inAddressOrder<T>(list: T[], ordered: boolean, address: (item: T) => string): T[] {
  return ordered ? list : [...list].sort((a, b) => (address(a) < address(b) ? -1 : 1));
}

export function isInAddressOrder(selection: BoundDevice[]): boolean {
  for (let i = 1; i < selection.length; i++) {
    if (selection[i - 1]!.address > selection[i]!.address) return false;
  }
  return true;
}

/** Driver (or "no driver") → how many, most first. */
function driverTally(drivers: Array<string | null>): Array<[string, number]> {
  const counts = new Map<string | null, number>();
  for (let i = 0; i < drivers.length; i++) {
    const d = drivers[i]!;
    counts.set(d, (counts.get(d) ?? 0) + 1);
  }
  const byWords = new Map<string, number>();
  for (const [d, n] of counts) byWords.set(driverWords(d), (byWords.get(driverWords(d)) ?? 0) + n);
  return [...byWords].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

/** One summary per PF of the selected VFs shown under it, in the PFs' address order. */
export function summariseVfChecks(
  judged: Judged[],
  problems: VerifyProblem[],
  ordered: boolean,
): VfChecksSummary[] {
  const byPf = new Map<string, Judged[]>();
  for (let i = 0; i < judged.length; i++) {
    const j = judged[i]!;
    if (j.pf === undefined) continue;
    const list = byPf.get(j.pf);
    if (list) list.push(j);
    else byPf.set(j.pf, [j]);
  }
  return [...byPf]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([pf, list]) => summariseVfs(pf, list, problems, ordered));
}

/** One PF's selected VFs counted in one pass. */
function summariseVfs(
  pf: string,
  list: Judged[],
  problems: VerifyProblem[],
  ordered: boolean,
): VfChecksSummary {
  const sorted = inAddressOrder(list, ordered, (j) => j.device.address);
  const vfs = sorted.map((j) => j.device);
  const failing: VfChecksSummary["failing"] = [];
  let failed = 0;
  let noGroup = 0;
  let notViable = 0;
  let noVfioDevice = 0;
  for (let i = 0; i < sorted.length; i++) {
    const { device: d, from, to } = sorted[i]!;
    if (!d.ok) {
      failed++;
      if (failing.length < FAILING_SHOWN) {
        failing.push({ address: d.address, problem: to > from ? problems[from]!.message : "" });
      }
    }
    if (d.group === null) noGroup++;
    else {
      if (!d.viable) notViable++;
      if (!d.vfioDevice) noVfioDevice++;
    }
  }
  return {
    pf,
    count: vfs.length,
    first: vfs[0]!.address,
    last: vfs[vfs.length - 1]!.address,
    ok: vfs.length - failed,
    drivers: driverTally(vfs.map((d) => d.driver)),
    noGroup,
    notViable,
    noVfioDevice,
    failing,
    moreFailing: Math.max(0, failed - FAILING_SHOWN),
  };
}

function renderVfSummaries(summaries: VfChecksSummary[]): ResultTree {
  const out: ResultTree = {};
  for (const v of summaries) {
    const entry: ResultTree = {
      pf: v.pf,
      ok: yesNo(v.ok === v.count),
      count: String(v.count),
      addresses: v.count === 1 ? v.first : `${v.first} - ${v.last}`,
      "vfs-ok": String(v.ok),
      drivers: v.drivers.map(([d, n]) => `${d} x${n}`).join(", "),
      "without-iommu-group": String(v.noGroup),
      "not-viable": String(v.notViable),
      "without-vfio-device": String(v.noVfioDevice),
    };
    if (v.failing.length > 0) entry.failing = listResult(v.failing, (f) => f.problem);
    if (v.moreFailing > 0)
      entry["failing-more"] = `${thousands(v.moreFailing)} more: run with each-vf=true`;
    out[addressKey(v.pf)] = entry;
  }
  return out;
}

export function renderSriov(checks: SriovCheck[]): ResultTree {
  const out: ResultTree = {};
  for (const c of checks) {
    out[addressKey(c.pf)] = {
      pf: c.pf,
      ok: yesNo(c.ok),
      "vfs-planned": String(c.planned),
      "vfs-now": c.now === null ? "PF not present" : String(c.now),
      "vf-driver-planned": c.vfDriver === "vfio-pci" ? "vfio-pci" : "host VF driver (neutron)",
      drivers: c.drivers.length > 0 ? c.drivers.map(([d, n]) => `${d} x${n}`).join(", ") : "none",
      "off-plan": String(c.offPlan.length),
      "sharing-group-with-pf": String(c.withPf.length),
      "sharing-group-with-vfs": String(c.sharing.length),
    };
  }
  return out;
}

/** What the results show of the checks: devices not summarised, lines as folded. */
export interface Shown {
  devices: DeviceCheck[];
  problemLines: string[];
  vfSummaries: VfChecksSummary[];
}

export function renderResults(
  input: VerifyIommuInput,
  ok: boolean,
  notes: string[],
  missing: string[],
  ir: InterruptRemapping,
  unsafeAllowed: boolean,
  shown: Shown,
): ResultTree {
  const { devices, problemLines, vfSummaries } = shown;
  const { facts } = input;
  const out: ResultTree = {
    ok: yesNo(ok),
    iommu: {
      enabled:
        facts.iommuGroups.size === 0 && facts.iommuGroupsDir === "unreadable"
          ? "unknown"
          : yesNo(facts.iommuGroups.size > 0),
      groups: String(facts.iommuGroups.size),
      units: facts.iommuUnits.length > 0 ? facts.iommuUnits.join(", ") : "none",
    },
    cmdline: {
      running: facts.cmdline ?? "unknown (/proc/cmdline unreadable)",
      planned: input.plannedCmdline.join(" "),
      missing: missing.length > 0 ? missing.join(" ") : "none",
    },
    // arm64 says it in its own terms: MSIs isolated by the GIC ITS, not interrupt remapping.
    [facts.arch === "arm64" ? "msi-isolation" : "interrupt-remapping"]: {
      state: ir.state,
      ...(facts.arch === "arm64" ? { by: "GIC ITS" } : {}),
      evidence: ir.evidence,
      "unsafe-interrupts-allowed": yesNo(unsafeAllowed),
    },
    "vfio-pci": facts.vfioPci,
  };
  const devs: ResultTree = {};
  for (const d of devices) {
    const entry: ResultTree = {
      address: d.address,
      present: yesNo(d.present),
      ok: yesNo(d.ok),
    };
    if (d.present) {
      entry.ids = d.ids ?? "";
      entry.driver = driverWords(d.driver);
      entry["iommu-group"] = d.group === null ? "none" : String(d.group);
      entry.viable = yesNo(d.viable);
      entry["vfio-device"] = yesNo(d.vfioDevice);
      if (d.groupMembers.length > 0) {
        entry["group-members"] = listResult(d.groupMembers, (c) => ({
          address: c.address,
          driver: driverWords(c.driver),
          selected: yesNo(c.selected),
          "blocks-group": yesNo(!c.harmless),
        }));
      }
    }
    devs[addressKey(d.address)] = entry;
  }
  if (devices.length > 0) out.devices = devs;
  if (vfSummaries.length > 0) {
    out["selected-vfs"] = renderVfSummaries(vfSummaries);
    const n = vfSummaries.reduce((sum, v) => sum + v.count, 0);
    out["vfs-summarised"] =
      `${thousands(n)} selected SR-IOV VF${n === 1 ? " is" : "s are"} summarised under ${n === 1 ? "its" : "their"} PF (selected-vfs), and so are ${n === 1 ? "its" : "their"} problems; each-vf=true lists them one by one`;
  }
  if (problemLines.length > 0) out.problems = listResult(problemLines, (p) => p);
  if (notes.length > 0) out.notes = listResult(notes, (n) => n);
  return out;
}
