// The fleet view: what each host offers nova (its `offer`, shared with the other units over the
// peer relation `fleet`) and what the whole cloud then needs on the controller (the leader's
// merge). nova-cloud-controller's `pci-alias` is one value for the cloud; each host only knows
// its own devices, so the merge is where a name two hosts define differently is caught.
//
// Bounded by construction: an offer is at most OFFER_MAX_BYTES (reasons are clipped, then left
// out, then aliases), so the leader's collection of 1,000 offers stays far inside the 16 MiB one
// relation settings bag can hold (ops-ts-shim RELATION_SETTINGS_QUOTA).
import type { NovaRelease } from "../host/facts";
import { clip } from "../text";
import { type NovaAlias, novaPciEntries, offeredToNova, offeredToNovaNow } from "./nova";
import type { PlannedPf } from "./sriov";
import type { BoundDevice, NovaDeviceType, WithheldFunction } from "./types";

/** The peer endpoint (metadata.yaml `peers:`), shared with issue 24's reboot lock. */
export const FLEET_ENDPOINT = "fleet";
/** Unit bag key: this host's offer (JSON, HostOffer). */
export const OFFER_KEY = "offer";
/** Application bag key (the leader writes it): every host's offer, gathered (JSON, FleetBag). */
export const FLEET_KEY = "fleet";
/** The offer format; a reader skips (and names) an offer of another version. */
export const OFFER_VERSION = 1;
/** The most one offer may weigh (its JSON, in bytes). */
export const OFFER_MAX_BYTES = 4096;
/** How much of one withheld reason an offer carries. */
const WHY_MAX_CHARS = 160;

/** One alias entry of a host: nova's alias fields, and how many functions it counts. */
export interface OfferAlias {
  name: string;
  vendor_id: string;
  product_id: string;
  device_type: NovaDeviceType;
  numa_policy?: string;
  /** PCI in Placement (nova ≥ 27 on the alias side): the resource class and traits. */
  resource_class?: string;
  traits?: string[];
  /** On vfio-pci now and sent to nova-compute. */
  offered: number;
  /** Selected, not on vfio-pci yet (a reboot or the rebind/sriov-vfs action). */
  pending: number;
  /** Selected, left with the host for its safety. */
  withheld: number;
  /** Why functions are withheld (clipped; dropped first when the offer is too big). */
  why?: string[];
}

/** What one host offers, as the peer relation carries it. */
export interface HostOffer {
  v: number;
  /** nova's upstream version on the host ("26.2.2"), or null when none is installed. */
  nova: string | null;
  /** `[pci] report_in_placement` is on for this host's nova-compute. */
  placement: boolean;
  aliases: OfferAlias[];
  /** Alias entries left out to stay within OFFER_MAX_BYTES. */
  more?: number;
}

/** What the offer is built from: the plan's functions, which are ready now, the nova release. */
export interface OfferInput {
  bound: BoundDevice[];
  withheld: WithheldFunction[];
  sriov: PlannedPf[];
  /** Whether a function (not a VF the charm creates) is on vfio-pci now. */
  onVfio: (address: string) => boolean;
  /** Whether a PF's VFs are all there on their planned driver now. */
  pfReady: (pf: PlannedPf) => boolean;
  release: NovaRelease | null;
  /** This host's nova-compute reports PCI devices to Placement (option on, nova ≥ 26). */
  placement: boolean;
}

const idsKey = (name: string, vendor: string, product: string) =>
  `${name}\u0000${vendor}:${product}`;

/** This host's offer: one entry per nova alias (name and ids), with its counts. */
export function buildOffer(input: OfferInput): HostOffer {
  const offerable = input.bound.filter(offeredToNova);
  // Offered exactly when the nova-compute relation offers it: the same rule (plan/nova.ts).
  const { offered } = offeredToNovaNow(offerable, input.onVfio, {
    pfs: input.sriov,
    ready: input.pfReady,
  });
  const now = new Set(offered.map((d) => d.address));
  const isReady = (d: BoundDevice) => now.has(d.address);
  // The alias definitions of everything selected, pending too (valid names, one
  // device_type/numa_policy per name): the fleet counts what waits, the relation sends only what
  // is offered.
  const definitions = novaPciEntries(offerable, input.sriov).aliases;
  const entries = new Map<string, OfferAlias>();
  for (const a of definitions) {
    // The entry's Placement fields, from a function of this alias and ids.
    const source = input.placement
      ? offerable.find(
          (d) =>
            d.alias === a.name &&
            d.vendorId.toLowerCase() === a.vendor_id &&
            d.deviceId.toLowerCase() === a.product_id,
        )
      : undefined;
    const placement = source
      ? { resource_class: source.resourceClass, traits: source.traits }
      : null;
    entries.set(idsKey(a.name, a.vendor_id, a.product_id), {
      name: a.name,
      vendor_id: a.vendor_id,
      product_id: a.product_id,
      device_type: a.device_type,
      ...(a.numa_policy ? { numa_policy: a.numa_policy } : {}),
      ...(placement?.resource_class ? { resource_class: placement.resource_class } : {}),
      ...(placement?.traits && placement.traits.length > 0 ? { traits: placement.traits } : {}),
      offered: 0,
      pending: 0,
      withheld: 0,
    });
  }
  for (const d of offerable) {
    const entry = entries.get(idsKey(d.alias, d.vendorId.toLowerCase(), d.deviceId.toLowerCase()));
    if (!entry) continue;
    if (isReady(d)) entry.offered += 1;
    else entry.pending += 1;
  }
  for (const w of input.withheld) {
    if (w.alias === undefined) continue;
    const entry = entries.get(idsKey(w.alias, w.vendorId.toLowerCase(), w.deviceId.toLowerCase()));
    if (!entry) continue;
    entry.withheld += 1;
    const why = clip(`${w.address}: ${w.reasons.join("; ")}`, WHY_MAX_CHARS);
    entry.why = [...(entry.why ?? []), why].slice(0, 3);
  }
  const offer: HostOffer = {
    v: OFFER_VERSION,
    nova: input.release ? input.release.upstream.join(".") : null,
    placement: input.placement,
    // By name, then ids: the same host gives the same bytes (no needless relation-changed).
    aliases: [...entries.values()].sort((a, b) =>
      `${a.name}\u0000${a.vendor_id}:${a.product_id}`.localeCompare(
        `${b.name}\u0000${b.vendor_id}:${b.product_id}`,
      ),
    ),
  };
  return boundOffer(offer);
}

/** Keeps an offer within OFFER_MAX_BYTES: reasons go first, then the last alias entries. */
export function boundOffer(offer: HostOffer): HostOffer {
  const size = (o: HostOffer) => Buffer.byteLength(JSON.stringify(o));
  if (size(offer) <= OFFER_MAX_BYTES) return offer;
  const out: HostOffer = { ...offer, aliases: offer.aliases.map(({ why: _, ...a }) => a) };
  let more = offer.more ?? 0;
  while (size(out) > OFFER_MAX_BYTES && out.aliases.length > 0) {
    out.aliases = out.aliases.slice(0, -1);
    more += 1;
    out.more = more;
  }
  return out;
}

/** An offer read from a peer's bag, or why it cannot be used. */
export function parseOffer(raw: string | undefined): HostOffer | { unreadable: string } | null {
  if (raw === undefined || raw === "") return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { unreadable: "its offer is not JSON" };
  }
  const o = value as Partial<HostOffer> | null;
  if (o === null || typeof o !== "object" || !Array.isArray(o.aliases)) {
    return { unreadable: "its offer has no aliases list" };
  }
  if (o.v !== OFFER_VERSION) {
    return {
      unreadable: `its offer is format ${String(o.v)}, this unit reads ${OFFER_VERSION} (upgrade-charm pending?)`,
    };
  }
  return o as HostOffer;
}

/** Offers gathered from the peer relation, by unit name (the action reads every peer's bag). */
export interface FleetOffers {
  hosts: Record<string, HostOffer>;
  /** Units whose offer could not be read, and why. */
  unreadable?: Record<string, string>;
}

/** `app/10` after `app/9`: unit numbers compare as numbers. */
export function compareUnits(a: string, b: string): number {
  const [pa, na] = a.split("/");
  const [pb, nb] = b.split("/");
  if (pa !== pb) return (pa ?? "") < (pb ?? "") ? -1 : 1;
  return Number(na) - Number(nb);
}

/** One way a host defines an alias name: its ids, device_type, numa_policy (and placement). */
function definitionOf(entries: OfferAlias[]): string {
  const first = entries[0]!;
  const ids = [...new Set(entries.map((e) => `${e.vendor_id}:${e.product_id}`))].sort().join(",");
  let text = `${ids} ${first.device_type}`;
  if (first.numa_policy) text += ` numa_policy=${first.numa_policy}`;
  if (first.resource_class) text += ` resource_class=${first.resource_class}`;
  if (first.traits && first.traits.length > 0)
    text += ` traits=${[...first.traits].sort().join(",")}`;
  return text;
}

/** Two hosts define one alias name differently: nova would get one name for two things. */
export interface AliasConflict {
  name: string;
  /** Each definition and the hosts that have it (most hosts first). */
  variants: Array<{ definition: string; units: string[] }>;
}

/** One row of the capacity table. */
export interface CapacityRow {
  unit: string;
  offered: number;
  pending: number;
  withheld: number;
  why: string[];
}

/** Capacity of one alias name across the fleet. */
export interface AliasCapacity {
  name: string;
  conflict: boolean;
  hosts: CapacityRow[];
  total: { offered: number; pending: number; withheld: number };
}

/** The cloud-wide answer. */
export interface FleetView {
  /** Units whose offers were merged. */
  units: string[];
  /** Units with an offer that could not be read, and why. */
  unreadable: Record<string, string>;
  /** The merged alias entries (conflicting names left out), for `pci-alias`. */
  aliases: NovaAlias[];
  conflicts: AliasConflict[];
  capacity: AliasCapacity[];
  /** Lowest and highest nova major among the hosts that reported one. */
  nova: { min: number; max: number } | null;
  /** How many hosts report PCI devices to Placement. */
  placementHosts: number;
  /** Whether the aliases carry resource_class/traits (every host in Placement, nova ≥ 27). */
  aliasPlacement: boolean;
  /** Offers that left alias entries out (size bound), by unit. */
  truncated: Record<string, number>;
}

/** nova reads `resource_class`/`traits` in an alias from 27.0.0 (2023.1 Antelope). */
export const ALIAS_PLACEMENT_SINCE_MAJOR = 27;

/** Merges every host's offer into one controller answer; a name defined differently on two
 * hosts is a conflict, left out of the aliases and named with its hosts. */
export function mergeFleet(bag: FleetOffers): FleetView {
  const units = Object.keys(bag.hosts).sort(compareUnits);
  const byName = new Map<string, Map<string, OfferAlias[]>>();
  const majors: number[] = [];
  let placementHosts = 0;
  const truncated: Record<string, number> = {};
  for (const unit of units) {
    const offer = bag.hosts[unit]!;
    if (offer.nova) {
      const major = Number(offer.nova.split(".")[0]);
      if (Number.isFinite(major)) majors.push(major);
    }
    if (offer.placement) placementHosts += 1;
    if (offer.more) truncated[unit] = offer.more;
    for (const a of offer.aliases) {
      let hosts = byName.get(a.name);
      if (!hosts) {
        hosts = new Map();
        byName.set(a.name, hosts);
      }
      hosts.set(unit, [...(hosts.get(unit) ?? []), a]);
    }
  }
  const nova = majors.length > 0 ? { min: Math.min(...majors), max: Math.max(...majors) } : null;
  const aliasPlacement =
    units.length > 0 &&
    placementHosts === units.length &&
    nova !== null &&
    nova.min >= ALIAS_PLACEMENT_SINCE_MAJOR;
  const aliases: NovaAlias[] = [];
  const conflicts: AliasConflict[] = [];
  const capacity: AliasCapacity[] = [];
  for (const name of [...byName.keys()].sort()) {
    const hosts = byName.get(name)!;
    const variants = new Map<string, string[]>();
    for (const [unit, entries] of hosts) {
      const definition = definitionOf(entries);
      variants.set(definition, [...(variants.get(definition) ?? []), unit]);
    }
    const conflict = variants.size > 1;
    if (conflict) {
      conflicts.push({
        name,
        variants: [...variants.entries()]
          .map(([definition, list]) => ({ definition, units: list }))
          .sort(
            (a, b) => b.units.length - a.units.length || a.definition.localeCompare(b.definition),
          ),
      });
    } else {
      const entries = [...hosts.values()][0]!;
      const seen = new Set<string>();
      for (const e of [...entries].sort((a, b) =>
        `${a.vendor_id}:${a.product_id}`.localeCompare(`${b.vendor_id}:${b.product_id}`),
      )) {
        const key = `${e.vendor_id}:${e.product_id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const alias: NovaAlias = {
          name,
          vendor_id: e.vendor_id,
          product_id: e.product_id,
          device_type: e.device_type,
        };
        if (e.numa_policy) alias.numa_policy = e.numa_policy;
        if (aliasPlacement && e.resource_class) alias.resource_class = e.resource_class;
        if (aliasPlacement && e.traits && e.traits.length > 0) alias.traits = e.traits.join(",");
        aliases.push(alias);
      }
    }
    const rows: CapacityRow[] = [...hosts.entries()].map(([unit, entries]) => ({
      unit,
      offered: entries.reduce((n, e) => n + e.offered, 0),
      pending: entries.reduce((n, e) => n + e.pending, 0),
      withheld: entries.reduce((n, e) => n + e.withheld, 0),
      why: entries.flatMap((e) => e.why ?? []),
    }));
    capacity.push({
      name,
      conflict,
      hosts: rows,
      total: {
        offered: rows.reduce((n, r) => n + r.offered, 0),
        pending: rows.reduce((n, r) => n + r.pending, 0),
        withheld: rows.reduce((n, r) => n + r.withheld, 0),
      },
    });
  }
  return {
    units,
    unreadable: { ...(bag.unreadable ?? {}) },
    aliases,
    conflicts,
    capacity,
    nova,
    placementHosts,
    aliasPlacement,
    truncated,
  };
}

/** "a/0, a/3, a/7 (+12 more)": a bounded list of units for status lines. */
export function someUnits(units: string[], shown = 3): string {
  const head = units.slice(0, shown).join(", ");
  return units.length > shown ? `${head} (+${units.length - shown} more)` : head;
}

/** One conflict in operator words: the name, each definition with its hosts, what to do. */
export function describeConflict(c: AliasConflict, shown = 3): string {
  const sides = c.variants.map((v) => `${v.definition} on ${someUnits(v.units, shown)}`);
  return `alias "${c.name}" is ${sides.join(" but ")}`;
}

/** The leader's status line for conflicts (null when there is none). */
export function conflictStatus(view: Pick<FleetView, "conflicts">): string | null {
  if (view.conflicts.length === 0) return null;
  const first = describeConflict(view.conflicts[0]!);
  const others =
    view.conflicts.length > 1 ? ` (and ${view.conflicts.length - 1} more alias conflicts)` : "";
  return (
    `fleet: ${first}${others}: left out of the cloud-wide pci-alias. Give one side another ` +
    "`alias` in `devices` on those hosts (juju run <unit> nova-config shows them all)."
  );
}

/** The capacity table as aligned text: one row per alias and host, then each alias's total. */
export function capacityTable(view: FleetView): string {
  const rows: string[][] = [["alias", "host", "offered", "pending", "withheld"]];
  for (const a of view.capacity) {
    const label = a.conflict ? `${a.name} (conflict)` : a.name;
    for (const r of a.hosts) {
      rows.push([label, r.unit, String(r.offered), String(r.pending), String(r.withheld)]);
    }
    rows.push([
      label,
      `total (${a.hosts.length} host${a.hosts.length === 1 ? "" : "s"})`,
      String(a.total.offered),
      String(a.total.pending),
      String(a.total.withheld),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

// --- the leader's answer --------------------------------------------------------------------
//
// Every write to the application bag wakes every other unit (relation-changed), so the leader
// writes only what changes rarely: the merged aliases, the conflicts, the nova range and whether
// the hosts report to Placement. Per-host numbers are read by nova-config from the peers' own
// bags when the operator asks. What the leader needs to merge incrementally (one peer's change
// costs one relation-get, not one per unit) is its index, kept in its own unit state.

/** The leader's record of each host: its alias definitions (by digest), nova major, Placement. */
export interface FleetIndex {
  /** unit → [definitions digest, nova major or null, reports to Placement (1) or not (0)]. */
  hosts: Record<string, [string, number | null, 0 | 1]>;
  /** digest → the alias entries (no counts) that host set defines. */
  defs: Record<string, OfferAlias[]>;
}

export const EMPTY_FLEET_INDEX: FleetIndex = { hosts: {}, defs: {} };

/** FNV-1a, 32 bits, as 8 hex digits: a short stable name for a set of definitions. */
function digest(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/** The index with one unit's offer put in (or taken out with null); unused digests go. */
export function indexOffer(index: FleetIndex, unit: string, offer: HostOffer | null): FleetIndex {
  const hosts = { ...index.hosts };
  const defs = { ...index.defs };
  if (offer === null) delete hosts[unit];
  else {
    const entries = offer.aliases
      .map(({ offered: _o, pending: _p, withheld: _w, why: _y, ...a }) => ({
        ...a,
        offered: 0,
        pending: 0,
        withheld: 0,
      }))
      .sort((a, b) =>
        `${a.name}:${a.vendor_id}:${a.product_id}`.localeCompare(
          `${b.name}:${b.vendor_id}:${b.product_id}`,
        ),
      );
    const key = digest(JSON.stringify(entries));
    defs[key] = entries;
    const major = offer.nova === null ? null : Number(offer.nova.split(".")[0]);
    hosts[unit] = [key, Number.isFinite(major) ? major : null, offer.placement ? 1 : 0];
  }
  const used = new Set(Object.values(hosts).map((h) => h[0]));
  for (const key of Object.keys(defs)) if (!used.has(key)) delete defs[key];
  return { hosts, defs };
}

/** The index read back from unit state (anything unexpected is an empty index: rebuilt). */
export function loadFleetIndex(stored: unknown): FleetIndex {
  const i = stored as FleetIndex | undefined;
  if (!i || typeof i.hosts !== "object" || typeof i.defs !== "object") return EMPTY_FLEET_INDEX;
  return i;
}

/** What the leader publishes under `fleet`: the cloud-wide answer without per-host numbers. */
export interface FleetSummary {
  v: number;
  leader: string;
  // No host count, no per-host numbers: they change as units come and go, and every change of
  // this bag wakes every other unit (1,000 joins would be a million hooks).
  aliases: NovaAlias[];
  /** Each conflict's variants with at most CONFLICT_UNITS_SHOWN units each, and their count. */
  conflicts: Array<{
    name: string;
    variants: Array<{ definition: string; units: string[]; count: number }>;
  }>;
  nova: { min: number; max: number } | null;
  /** Whether every host, some or none reports PCI devices to Placement. */
  placement: "all" | "some" | "none";
  aliasPlacement: boolean;
}

/** Units named per conflict side in the summary (the action reads the rest from the peers). */
export const CONFLICT_UNITS_SHOWN = 5;

/** The leader's summary from its index. */
export function summarizeFleet(index: FleetIndex, leader: string): FleetSummary {
  const hosts: Record<string, HostOffer> = {};
  for (const [unit, [key, major, placement]] of Object.entries(index.hosts)) {
    hosts[unit] = {
      v: OFFER_VERSION,
      nova: major === null ? null : String(major),
      placement: placement === 1,
      aliases: index.defs[key] ?? [],
    };
  }
  const view = mergeFleet({ hosts });
  return {
    v: OFFER_VERSION,
    leader,
    aliases: view.aliases,
    conflicts: view.conflicts.map((c) => ({
      name: c.name,
      variants: c.variants.map((v) => ({
        definition: v.definition,
        units: v.units.slice(0, CONFLICT_UNITS_SHOWN),
        count: v.units.length,
      })),
    })),
    nova: view.nova,
    placement:
      view.placementHosts === 0
        ? "none"
        : view.placementHosts === view.units.length
          ? "all"
          : "some",
    aliasPlacement: view.aliasPlacement,
  };
}

/** The summary read back from the application bag; null when absent or of another format. */
export function parseFleetSummary(raw: string | undefined): FleetSummary | null {
  if (!raw) return null;
  try {
    const s = JSON.parse(raw) as FleetSummary;
    return s?.v === OFFER_VERSION && Array.isArray(s.aliases) ? s : null;
  } catch {
    return null;
  }
}

/** The leader's status line for the conflicts in its summary (null when there is none). */
export function summaryConflictStatus(summary: FleetSummary): string | null {
  if (summary.conflicts.length === 0) return null;
  return conflictStatus({
    conflicts: summary.conflicts.map((c) => ({
      name: c.name,
      variants: c.variants.map((v) => ({
        definition: v.definition,
        units: [...v.units, ...Array.from({ length: v.count - v.units.length }, () => "?")],
      })),
    })),
  });
}
