// One scrape: the hook's plan (its summary, EXPORTER_OWNED.plan) against the live host, read now.
// What is measured, metric by metric, is in README "Observability".
//
// Two steps, so a scrape at 10,000 functions stays within the exporter's memory budget (bench/
// exporter.ts): readHost reads everything the scrape needs into a few typed arrays (a number or a
// byte per function, no object per function), then renderScrape writes the exposition a chunk at a
// time, which the server sends as it goes. Nothing holds every sample, nor the whole text.
import type { HostReadProblem } from "../host/facts";
import { readCmdline } from "../host/kernel";
import {
  forEachVfioGroupNode,
  type LiveFunction,
  readEnabledVfs,
  readGroupCount,
  readGroupMembers,
  readIommuUnitNames,
  readIsBridge,
  readLiveFunction,
  readMtimeSeconds,
  readRegisteredDrivers,
} from "../host/live-state";
import { OWNED } from "../host/root";
import { readVfioGroupUsers } from "../host/vfio-users";
import type { ExporterPlan } from "../plan/exporter-files";
import { isHarmlessMember, isVfioDriver } from "../plan/iommu-groups";
import { missingParams } from "../plan/status";
import { escapeLabel, sampleText } from "./text-format";

/** The plan as the exporter last read it, and when the hook wrote it. */
export interface LoadedPlan {
  plan: ExporterPlan | null;
  /** Modification time of the plan file (seconds); null when there is none. */
  writtenAt: number | null;
  /** Why the plan could not be used (absent, unreadable, not JSON), or null. */
  problem: string | null;
}

const NONE = "none";

/** A plan's functions as a scrape uses them, made once per plan file: every address and every
 * function's rendered labels (`address="…",ids="…",alias="…"`) kept in one string each, cut at
 * offsets, instead of an object and three strings a function (a third of the exporter's heap at
 * 10,000 functions). */
export class PreparedPlan {
  /** The plan without its functions (they are in the texts below). */
  readonly plan: ExporterPlan;
  readonly count: number;
  private readonly addressText: string;
  private readonly addressEnd: Uint32Array;
  private readonly labelText: string;
  private readonly labelEnd: Uint32Array;
  /** Per planned PF, per VF address: its index among the functions, -1 when not planned. */
  readonly vfIndex: Int32Array[];

  constructor(plan: ExporterPlan) {
    const functions = plan.functions;
    this.count = functions.length;
    this.addressEnd = new Uint32Array(this.count);
    this.labelEnd = new Uint32Array(this.count);
    const addresses: string[] = [];
    const labels: string[] = [];
    const index = new Map<string, number>();
    let a = 0;
    let l = 0;
    functions.forEach((f, i) => {
      const label = `address="${escapeLabel(f.a)}",ids="${escapeLabel(f.ids)}",alias="${escapeLabel(f.alias)}"`;
      addresses.push(f.a);
      labels.push(label);
      a += f.a.length;
      l += label.length;
      this.addressEnd[i] = a;
      this.labelEnd[i] = l;
      if (!index.has(f.a)) index.set(f.a, i);
    });
    this.addressText = addresses.join("");
    this.labelText = labels.join("");
    this.vfIndex = plan.pfs.map((pf) =>
      Int32Array.from(pf.vfAddresses, (vf) => index.get(vf) ?? -1),
    );
    this.plan = { ...plan, functions: [] };
  }

  address(i: number): string {
    return this.addressText.slice(i === 0 ? 0 : this.addressEnd[i - 1], this.addressEnd[i]);
  }

  labels(i: number): string {
    return this.labelText.slice(i === 0 ? 0 : this.labelEnd[i - 1], this.labelEnd[i]);
  }
}

/** IOMMU group membership, listed again at most once a minute (or when the planned functions'
 * groups change): members change only when a device is added or removed (their drivers, which do
 * change, are read at every scrape). At 10,000 VFs each in its own group, listing every group at
 * every scrape would be most of the scrape. Kept small: a group whose members are the planned
 * functions in it, in the order the kernel lists them (nearly every group), is only a number. */
export class GroupMembersCache {
  private at = Number.NEGATIVE_INFINITY;
  /** The planned functions' groups the listing was made for, ascending. */
  private groups: Int32Array = new Int32Array(0);
  /** The groups whose members are not just their planned functions, with their members. */
  private irregular = new Map<number, string[]>();

  constructor(
    private readonly maxAgeMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the listing made for `groups` (ascending) is still good; if not, it is forgotten and
   * the scrape lists each group again (record). */
  fresh(groups: Int32Array): boolean {
    const t = this.now();
    const same =
      t - this.at < this.maxAgeMs &&
      groups.length === this.groups.length &&
      groups.every((g, k) => this.groups[k] === g);
    if (!same) {
      this.at = t;
      this.groups = groups.slice(); // the scrape's own array is reused by the next scrape
      this.irregular.clear();
    }
    return same;
  }

  /** A group's members when they are not just its planned functions (fresh() was true). */
  membersOf(group: number): string[] | undefined {
    return this.irregular.get(group);
  }

  /** Records a group listed this scrape whose members are not just its planned functions. */
  record(group: number, members: string[]): void {
    this.irregular.set(group, members);
  }
}

/** The per-function arrays a scrape fills, reused by the next scrape once this one is sent: new
 * ones each scrape lived through its young collections into the old generation, where their
 * memory (outside V8's heap) waited for the next full collection, 0.2 MB a scrape at 10,000. */
export class ScrapeArrays {
  readonly driverOf: Uint16Array;
  readonly groupOf: Int32Array;
  readonly used: Uint8Array;
  /** (group, index) pairs packed in one number each, to sort. */
  readonly byGroup: Float64Array;
  readonly groups: Int32Array;
  readonly groupViable: Uint8Array;
  readonly hasNode: Uint8Array;

  constructor(readonly capacity: number) {
    this.driverOf = new Uint16Array(capacity);
    this.groupOf = new Int32Array(capacity);
    this.used = new Uint8Array(capacity);
    this.byGroup = new Float64Array(capacity);
    this.groups = new Int32Array(capacity);
    this.groupViable = new Uint8Array(capacity);
    this.hasNode = new Uint8Array(capacity);
  }
}

/** Driver table index of a function not on the bus, and of one bound to no driver. */
const ABSENT = 0;
const UNBOUND = 1;

/** Everything one scrape read of the host, compared with the plan. Per function: typed arrays. */
export interface HostReading {
  prepared: PreparedPlan | null;
  writtenAt: number | null;
  problems: HostReadProblem[];
  iommuGroups: number;
  iommuUnits: number;
  missingParams: string[];
  rebootPendingSince: number | null;
  /** Driver names seen this scrape, escaped for a label: [ABSENT] "absent", [UNBOUND] "none". */
  driverNames: string[];
  /** Per driver name: a vfio driver. */
  driverIsVfio: boolean[];
  /** Per function: its index in driverNames. */
  driverOf: Uint16Array;
  /** Per function: its IOMMU group, -1 without one. */
  groupOf: Int32Array;
  /** Per function: 1 when a process holds its group open. */
  used: Uint8Array;
  /** The planned functions' groups, ascending, and whether each is viable (1) or not (0). */
  groups: Int32Array;
  groupViable: Uint8Array;
  /** `iommu_group_blocker_info` samples, rendered. */
  blockers: string[];
  /** Per planned PF: VFs enabled now, and its planned VFs on their planned driver. */
  vfsPresent: number[];
  vfsOnPlanned: number[];
}

/** Where group `g` is in the ascending `groups`, or -1. */
export function indexOfGroup(groups: Int32Array, g: number): number {
  let lo = 0;
  let hi = groups.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = groups[mid]!;
    if (at === g) return mid;
    if (at < g) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Reads the host and compares it with the plan; never throws for a host read. */
export function readHost(
  root: string,
  loaded: LoadedPlan,
  prepared: PreparedPlan | null,
  cache: GroupMembersCache = new GroupMembersCache(),
  scratch: ScrapeArrays = new ScrapeArrays(prepared?.count ?? 0),
): HostReading {
  const problems: HostReadProblem[] = [];
  const plan = prepared?.plan ?? null;

  // IOMMU: on when the kernel made groups (the directory exists even with the IOMMU off).
  const groupCount = readGroupCount(root, problems) ?? 0;
  const iommuUnits = readIommuUnitNames(root, problems).length;

  // Kernel command line: what the grub drop-in appends, and what the running kernel lacks.
  const cmdline = plan ? readCmdline(root, problems) : null;
  const missing = plan ? (missingParams(plan.kernelParams, { cmdline }) ?? []) : [];
  const since = missing.length > 0 ? readMtimeSeconds(root, OWNED.grubDropIn) : null;

  // Functions: each planned one, live.
  const n = prepared && plan ? prepared.count : 0;
  const registered = n > 0 ? readRegisteredDrivers(root, problems) : null;
  const driverNames = ["absent", NONE];
  const driverRaw: Array<string | null> = [null, null];
  const driverIsVfio = [false, false];
  const driverIndex = new Map<string, number>();
  const indexOfDriver = (fn: LiveFunction): number => {
    if (!fn.present) return ABSENT;
    if (fn.driver === null) return UNBOUND;
    let d = driverIndex.get(fn.driver);
    if (d === undefined) {
      d = driverNames.length;
      driverNames.push(escapeLabel(fn.driver));
      driverRaw.push(fn.driver);
      driverIsVfio.push(isVfioDriver(fn.driver));
      driverIndex.set(fn.driver, d);
    }
    return d;
  };
  const arrays = scratch.capacity >= n ? scratch : new ScrapeArrays(n);
  const driverOf = arrays.driverOf.subarray(0, n);
  const groupOf = arrays.groupOf.subarray(0, n);
  for (let i = 0; i < n; i++) {
    const fn = readLiveFunction(root, prepared!.address(i), registered, problems);
    driverOf[i] = indexOfDriver(fn);
    groupOf[i] = fn.iommuGroup ?? -1;
  }

  // The functions in group order: (group, index) pairs packed in one number each, sorted.
  const byGroup = arrays.byGroup;
  let grouped = 0;
  for (let i = 0; i < n; i++) if (groupOf[i]! >= 0) byGroup[grouped++] = groupOf[i]! * 2 ** 21 + i;
  const order = byGroup.subarray(0, grouped).sort();
  const groupAt = (k: number): number => Math.floor(order[k]! / 2 ** 21);
  const indexAt = (k: number): number => order[k]! % 2 ** 21;
  let distinct = 0;
  for (let k = 0; k < grouped; k++) if (k === 0 || groupAt(k) !== groupAt(k - 1)) distinct++;
  const planGroups = arrays.groups.subarray(0, distinct);
  for (let k = 0, j = 0; k < grouped; k++) {
    if (k === 0 || groupAt(k) !== groupAt(k - 1)) planGroups[j++] = groupAt(k);
  }

  // Their groups: viable when every member is harmless (vfio, pci-stub, no driver, a bridge).
  const listed = cache.fresh(planGroups);
  const groupViable = arrays.groupViable.subarray(0, distinct);
  const blockers: string[] = [];
  for (let k = 0, start = 0; k < distinct; k++) {
    const group = planGroups[k]!;
    let end = start;
    while (end < grouped && groupAt(end) === group) end++;
    // The members: the planned functions in the group, unless the listing said otherwise.
    let members = listed ? cache.membersOf(group) : undefined;
    if (!listed) {
      const found = readGroupMembers(root, group, problems) ?? [];
      const justPlanned =
        found.length === end - start &&
        found.every((m, j) => m === prepared!.address(indexAt(start + j)));
      if (!justPlanned) {
        cache.record(group, found);
        members = found;
      }
    }
    let ok = true;
    const blocks = (address: string, driver: string | null): void => {
      // A bridge is harmless on any driver: its class is read only for a member that would
      // otherwise block the group.
      if (isHarmlessMember({ driver, isBridge: false }) || readIsBridge(root, address)) return;
      ok = false;
      blockers.push(sampleText({ iommu_group: String(group), address, driver: driver ?? NONE }, 1));
    };
    if (members === undefined) {
      for (let j = start; j < end; j++) {
        const i = indexAt(j);
        blocks(prepared!.address(i), driverRaw[driverOf[i]!]!);
      }
    } else {
      for (const address of members) {
        let i = -1;
        for (let j = start; j < end && i < 0; j++) {
          if (prepared!.address(indexAt(j)) === address) i = indexAt(j);
        }
        const driver =
          i >= 0
            ? driverRaw[driverOf[i]!]!
            : readLiveFunction(root, address, registered, problems).driver;
        blocks(address, driver);
      }
    }
    groupViable[k] = ok ? 1 : 0;
    start = end;
  }
  // Only a group with /dev/vfio/<n> (a member on vfio-pci) can be held open: no node, no scan of
  // every process's fds.
  const hasNode = arrays.hasNode.subarray(0, distinct).fill(0);
  let nodes = 0;
  if (distinct > 0) {
    forEachVfioGroupNode(root, problems, (g) => {
      const k = indexOfGroup(planGroups, g);
      if (k >= 0 && hasNode[k] === 0) {
        hasNode[k] = 1;
        nodes++;
      }
    });
  }
  const users = readVfioGroupUsers(root, {
    size: nodes,
    has: (g) => {
      const k = indexOfGroup(planGroups, g);
      return k >= 0 && hasNode[k] === 1;
    },
  });
  const used = arrays.used.subarray(0, n).fill(0);
  if (users.size > 0) {
    for (let i = 0; i < n; i++) used[i] = (users.get(groupOf[i]!)?.length ?? 0) > 0 ? 1 : 0;
  }

  // SR-IOV PFs: VFs enabled now, and on the planned driver.
  const vfsPresent: number[] = [];
  const vfsOnPlanned: number[] = [];
  (plan?.pfs ?? []).forEach((pf, p) => {
    vfsPresent.push(readEnabledVfs(root, pf.a, problems) ?? 0);
    const vfIndex = prepared!.vfIndex[p]!;
    let good = 0;
    pf.vfAddresses.forEach((vf, v) => {
      const i = vfIndex[v]!;
      let vfio: boolean;
      if (i < 0) {
        const fn = readLiveFunction(root, vf, registered, problems);
        if (!fn.present || fn.driver === null) return;
        vfio = isVfioDriver(fn.driver);
      } else {
        const d = driverOf[i]!;
        if (d === ABSENT || d === UNBOUND) return;
        vfio = driverIsVfio[d]!;
      }
      if (pf.vfDriver === "vfio-pci" ? vfio : !vfio) good++;
    });
    vfsOnPlanned.push(good);
  });

  return {
    prepared: plan ? prepared : null,
    writtenAt: loaded.writtenAt,
    problems,
    iommuGroups: groupCount,
    iommuUnits,
    missingParams: missing,
    rebootPendingSince: since,
    driverNames,
    driverIsVfio,
    driverOf,
    groupOf,
    used,
    groups: planGroups,
    groupViable,
    blockers,
    vfsPresent,
    vfsOnPlanned,
  };
}
