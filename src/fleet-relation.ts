// The peer relation `fleet`: this unit publishes its host's offer; the leader keeps an index of
// every host's alias definitions (in its own unit state) and publishes the cloud-wide answer
// under `fleet`. What to publish and how to merge is decided in plan/fleet.ts.
import type { Model, Relation } from "ops-ts-shim";
import {
  buildOffer,
  EMPTY_FLEET_INDEX,
  FLEET_ENDPOINT,
  FLEET_KEY,
  type FleetIndex,
  type FleetOffers,
  type FleetSummary,
  type HostOffer,
  indexOffer,
  loadFleetIndex,
  OFFER_KEY,
  type OfferInput,
  parseFleetSummary,
  parseOffer,
  summarizeFleet,
} from "./plan/fleet";

/** Stored-state key (leader): the fleet index (plan/fleet.ts FleetIndex). */
const INDEX_KEY = "fleet-index";
/** The most the index may weigh in unit state: under Juju's 64 KiB per value, with room. */
export const INDEX_MAX_BYTES = 60 * 1024;

/** The peer relation, or null (Juju creates it with the first unit; absent only in old models
 * or before upgrade-charm adds it). */
export function fleetRelation(model: Model): Relation | null {
  return model.relations(FLEET_ENDPOINT)[0] ?? null;
}

/** Stored-state key: the offer last published (so an idle hook calls no relation tool). */
const PUBLISHED_OFFER_KEY = "fleet-offer";

/** Publishes this host's offer in our unit bag when it changed since the last publish (or with
 * force: a relation hook); returns it and whether it was sent. */
export function publishOffer(
  model: Model,
  input: OfferInput,
  force: boolean,
): { offer: HostOffer; changed: boolean } {
  const offer = buildOffer(input);
  const json = JSON.stringify(offer);
  if (!force && model.stored.get<string>(PUBLISHED_OFFER_KEY) === json) {
    return { offer, changed: false };
  }
  // Remembered even with no relation yet: its relation-created hook publishes with force.
  model.stored.set(PUBLISHED_OFFER_KEY, json);
  const relation = fleetRelation(model);
  if (!relation) return { offer, changed: false };
  relation.setLocalUnitData({ [OFFER_KEY]: json });
  return { offer, changed: true };
}

/** What changed, for the leader: a peer's offer, a peer leaving, or everything (a new leader). */
export type FleetTrigger =
  | { kind: "self" }
  | { kind: "changed"; unit: string }
  | { kind: "departed"; unit: string }
  | { kind: "rebuild" };

/**
 * The leader's merge: updates its index with what changed (one relation-get for one peer's
 * change; every peer's bag only on a rebuild) and publishes the summary under `fleet` when it
 * differs. Returns the summary (null when this unit does not lead or there is no relation).
 */
export function updateFleet(
  model: Model,
  /** This host's offer; undefined: the one published last (read back from our bag). */
  ownOffer: HostOffer | null | undefined,
  trigger: FleetTrigger,
): FleetSummary | null {
  if (!model.isLeader()) return null;
  const relation = fleetRelation(model);
  if (!relation) return null;
  let own = ownOffer ?? null;
  if (ownOffer === undefined) {
    const parsed = parseOffer(relation.localUnitData()[OFFER_KEY]);
    own = parsed === null || "unreadable" in parsed ? null : parsed;
  }
  const stored = model.stored.get<unknown>(INDEX_KEY);
  // No index (a new leader, or one too big to keep): gather every peer again.
  const rebuild = trigger.kind === "rebuild" || stored === undefined;
  let index: FleetIndex = rebuild ? EMPTY_FLEET_INDEX : loadFleetIndex(stored);
  const present = new Set(relation.units);
  // In relation-departed the shim still lists the leaving unit (its data stays readable).
  if (trigger.kind === "departed") present.delete(trigger.unit);
  if (rebuild) {
    for (const unit of present) index = indexOffer(index, unit, offerOf(relation, unit));
  } else if (trigger.kind === "changed" && present.has(trigger.unit)) {
    index = indexOffer(index, trigger.unit, offerOf(relation, trigger.unit));
  }
  // Units gone from the relation (departed, or the leader missed it) leave the index.
  for (const unit of Object.keys(index.hosts)) {
    if (unit !== model.unitName && !present.has(unit)) index = indexOffer(index, unit, null);
  }
  index = indexOffer(index, model.unitName, own);
  const json = JSON.stringify(index);
  // One state value may hold 64 KiB (Juju's quota): a fleet whose distinct definitions outgrow
  // INDEX_MAX_BYTES is not remembered, and each change then gathers every peer instead.
  if (Buffer.byteLength(json) > INDEX_MAX_BYTES) model.stored.delete(INDEX_KEY);
  else if (json !== JSON.stringify(stored)) model.stored.set(INDEX_KEY, index);
  const summary = summarizeFleet(index, model.unitName);
  relation.setLocalAppData({ [FLEET_KEY]: JSON.stringify(summary) });
  return summary;
}

/** A peer's offer from its bag (null when absent or unreadable: it is left out until fixed). */
function offerOf(relation: Relation, unit: string): HostOffer | null {
  const parsed = parseOffer(relation.remoteUnitData(unit)[OFFER_KEY]);
  return parsed === null || "unreadable" in parsed ? null : parsed;
}

/** The leader's summary as any unit reads it (peer application bags are readable by all). */
export function readFleetSummary(model: Model): FleetSummary | null {
  const relation = fleetRelation(model);
  if (!relation) return null;
  return parseFleetSummary(relation.localAppData()[FLEET_KEY]);
}

/** Every peer's offer, read now (the action's capacity table), with our own. */
export function readFleetOffers(model: Model, own: HostOffer | null): FleetOffers {
  const hosts: Record<string, HostOffer> = {};
  const unreadable: Record<string, string> = {};
  const relation = fleetRelation(model);
  if (own) hosts[model.unitName] = own;
  for (const unit of relation?.units ?? []) {
    const parsed = parseOffer(relation!.remoteUnitData(unit)[OFFER_KEY]);
    if (parsed === null) unreadable[unit] = "no offer published yet";
    else if ("unreadable" in parsed) unreadable[unit] = parsed.unreadable;
    else hosts[unit] = parsed;
  }
  return { hosts, unreadable };
}
