// nova-config scope=cloud, pure: the cloud-wide answer. The `pci-alias` line is the one the
// leader merged and published (`fleet` in the peer application bag); the capacity table and the
// conflicts' full host lists come from every unit's offer, read when the operator asks, so the
// numbers are current even while the leader is still catching up with its peers' changes.
import {
  ALIAS_PLACEMENT_SINCE_MAJOR,
  capacityTable,
  describeConflict,
  type FleetOffers,
  type FleetSummary,
  mergeFleet,
  someUnits,
} from "../plan/fleet";
import { openstackReleaseName } from "../plan/nova";
import { controllerDefaultFilters } from "./nova-config";
import { type ActionReply, listResult, type ResultTree } from "./results";

export interface FleetConfigInput {
  /** What the leader published; null before any leader merged. */
  summary: FleetSummary | null;
  /** Every unit's offer, read now (this unit's built fresh). */
  offers: FleetOffers;
  /** Whether the peer relation exists at all. */
  related: boolean;
}

/** The longest value one action-set argument may carry, with room for its key (Linux's
 * MAX_ARG_STRLEN is 128 KiB per argument). */
const MAX_RESULT_VALUE_BYTES = 100 * 1024;

/** Text as one result value, or as parts (`01`, `02`…) cut at line ends when it is too long for
 * one argument; `juju run` prints the parts in order. */
export function splitText(text: string, max = MAX_RESULT_VALUE_BYTES): string | ResultTree {
  if (Buffer.byteLength(text) <= max) return text;
  const parts: string[] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const line of text.split("\n")) {
    const size = Buffer.byteLength(line) + 1;
    if (current.length > 0 && bytes + size > max) {
      parts.push(current.join("\n"));
      current = [];
      bytes = 0;
    }
    current.push(line);
    bytes += size;
  }
  if (current.length > 0) parts.push(current.join("\n"));
  return listResult(parts, (p) => p);
}

/** Units named per conflict side in the action's results (the status names fewer). */
const CONFLICT_UNITS_IN_RESULTS = 50;

/** Builds the nova-config reply for scope=cloud. */
export function fleetConfig(input: FleetConfigInput): ActionReply {
  const view = mergeFleet(input.offers);
  const summary = input.summary;
  const results: ResultTree = { scope: "cloud" };
  if (!input.related) {
    results.note =
      "This unit has no fleet peer relation (a model from before this charm revision?): run " +
      "`juju refresh` to the current charm, or nova-config scope=host on each unit.";
  }
  const aliases = summary?.aliases ?? view.aliases;
  results.hosts =
    `${view.units.length} host${view.units.length === 1 ? "" : "s"} report an offer: ` +
    `${someUnits(view.units, 10)}`;
  results.leader = summary
    ? `merged by ${summary.leader}`
    : "no leader has merged the fleet yet: the lines below are merged on this unit from the offers it can read";

  const controller: ResultTree = {};
  if (aliases.length > 0) {
    const line = `juju config nova-cloud-controller pci-alias='${JSON.stringify(aliases)}'`;
    if (Buffer.byteLength(line) <= MAX_RESULT_VALUE_BYTES) controller["pci-alias"] = line;
    else {
      // Neither action-set nor a shell takes one argument this long (Linux: 128 KiB).
      controller["pci-alias"] =
        `the merged aliases are ${Buffer.byteLength(line)} bytes, too long for one command ` +
        "line: write `nova-cloud-controller: {pci-alias: '[<the entries of pci-alias-entries, " +
        "joined with commas>]'}` to a file and run `juju config nova-cloud-controller --file <file>`.";
      controller["pci-alias-entries"] = listResult(aliases, (a) => JSON.stringify(a));
    }
  }
  const major = summary?.nova?.min ?? view.nova?.min ?? null;
  const filters = [...controllerDefaultFilters(major), "PciPassthroughFilter"].join(",");
  controller["scheduler-filters"] =
    `juju config nova-cloud-controller scheduler-default-filters='${filters}'`;
  const novaWords =
    major === null
      ? "no host reported its nova release"
      : `the oldest nova on the hosts is ${openstackReleaseName(major) ?? `nova ${major}`}`;
  controller.note =
    "pci-alias is one setting for the whole cloud: this line merges every host's aliases. " +
    "scheduler-default-filters replaces nova-cloud-controller's release default: the line is " +
    `that default (${novaWords}) plus PciPassthroughFilter; if you set the option already, ` +
    "append ,PciPassthroughFilter to your value instead.";
  // Counted from the offers read now (the leader publishes no counts).
  const placementHosts = view.placementHosts;
  const aliasPlacement = summary?.aliasPlacement ?? view.aliasPlacement;
  if (aliasPlacement) {
    controller.placement =
      "Every host reports its PCI devices to Placement, so the aliases carry resource_class " +
      "and traits. Let the scheduler use them: [filter_scheduler] pci_in_placement = True on " +
      "nova-cloud-controller's nova.conf (nova 27, 2023.1 Antelope, and later).";
  } else if (placementHosts > 0) {
    controller.placement =
      `${placementHosts} of ${view.units.length} hosts report PCI devices to Placement: the ` +
      "aliases carry no resource_class/traits until every host does" +
      (major !== null && major < ALIAS_PLACEMENT_SINCE_MAJOR
        ? ` and every nova is ${ALIAS_PLACEMENT_SINCE_MAJOR} (2023.1 Antelope) or later.`
        : ".");
  }
  results.controller = controller;

  if (view.conflicts.length > 0) {
    results.conflicts = listResult(
      view.conflicts,
      (c) =>
        `${describeConflict(c, CONFLICT_UNITS_IN_RESULTS)}: nova would get one name for ` +
        "different devices, so it is left out of pci-alias. Give one side another `alias` in " +
        "`devices` on those hosts.",
    );
  }
  if (view.capacity.length > 0) results.capacity = splitText(capacityTable(view));
  const unreadable = Object.entries(view.unreadable);
  if (unreadable.length > 0) {
    results.unreadable = listResult(unreadable, ([unit, why]) => `${unit}: ${why}`);
  }
  const truncated = Object.entries(view.truncated);
  if (truncated.length > 0) {
    results.truncated = listResult(
      truncated,
      ([unit, n]) =>
        `${unit} left ${n} alias entries out of its offer (size bound): run nova-config scope=host there`,
    );
  }
  if (summary && JSON.stringify(summary.aliases) !== JSON.stringify(view.aliases)) {
    results.behind =
      "The leader's merged aliases differ from the offers read now: it is still processing " +
      "its peers' changes (juju status shows its hooks); run this again shortly.";
  }
  const names = [...new Set(aliases.map((a) => a.name))];
  if (names.length > 0) {
    results.flavor = listResult(
      names,
      (name) => `openstack flavor set <flavor> --property "pci_passthrough:alias"="${name}:1"`,
    );
  }
  const offered = view.capacity.reduce((n, a) => n + a.total.offered, 0);
  const message =
    `${view.units.length} hosts, ${names.length} aliases, ${offered} functions offered` +
    (view.conflicts.length > 0 ? `, ${view.conflicts.length} alias conflicts` : "");
  return { ok: true, message, results };
}
