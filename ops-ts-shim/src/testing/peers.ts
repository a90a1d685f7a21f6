// A peer relation across several units, as Juju's controller keeps it: each unit writes its own
// bag, the leader writes the application's bag, and once a hook's writes are committed every
// other unit sees them and gets `<endpoint>-relation-changed` (JUJU_REMOTE_UNIT = the writer for
// its unit bag; no remote unit, only JUJU_REMOTE_APP, for the application bag). The writer itself
// gets no event for its own writes. Shared by the in-memory harness (application.ts) and the
// process-level simulator (simulator/index.ts, syncPeers).
import type { FakeRelation } from "./fake-juju";
import type { EventSpec } from "./unit-spec";

/** What propagation needs of one unit: its name, leadership and its relations. */
export interface PeerUnitView {
  unitName: string;
  leader: boolean;
  relations: FakeRelation[];
}

/** A hook Juju runs on `unit` because a peer's committed writes changed what it sees. */
export interface PeerEvent {
  unit: string;
  event: Exclude<EventSpec, string>;
}

const sameBag = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
};

/**
 * Copies what `writer` committed in its peer relations into every other unit's view (mutating
 * the views) and returns the relation-changed hooks Juju runs on them, in unit order. An
 * application bag is taken only from the leader: Juju refuses anyone else's write.
 */
export function propagatePeerData(units: readonly PeerUnitView[], writer: string): PeerEvent[] {
  const source = units.find((u) => u.unitName === writer);
  if (!source) throw new Error(`unknown unit ${writer}`);
  const events: PeerEvent[] = [];
  for (const relation of source.relations.filter((r) => r.peer)) {
    for (const other of units) {
      if (other.unitName === writer) continue;
      const mirror = other.relations.find((r) => r.peer && r.id === relation.id);
      if (!mirror) continue;
      const name = `${relation.endpoint}-relation-changed`;
      if (!mirror.remoteUnits.includes(writer)) mirror.remoteUnits.push(writer);
      if (!sameBag(mirror.remoteUnitsData[writer] ?? {}, relation.localUnitData)) {
        mirror.remoteUnitsData[writer] = { ...relation.localUnitData };
        events.push({
          unit: other.unitName,
          event: { name, relationId: relation.id, remoteUnit: writer },
        });
      }
      if (source.leader && !sameBag(mirror.localAppData, relation.localAppData)) {
        mirror.localAppData = { ...relation.localAppData };
        mirror.remoteAppData = { ...relation.localAppData };
        events.push({
          unit: other.unitName,
          event: { name, relationId: relation.id, remoteUnit: null },
        });
      }
    }
  }
  return events;
}

/** The peer relation every unit of an n-unit application starts with, seen from `unit`: the
 * others as remote units with empty bags (as after relation-joined, before anyone wrote). */
export function peerRelationFor(
  unit: string,
  allUnits: readonly string[],
  endpoint: string,
  id: number,
): FakeRelation {
  const others = allUnits.filter((u) => u !== unit);
  return {
    id,
    endpoint,
    remoteApp: unit.split("/")[0]!,
    remoteUnits: [...others],
    remoteUnitsData: Object.fromEntries(others.map((u) => [u, {}])),
    remoteAppData: {},
    localUnitData: {},
    localAppData: {},
    peer: true,
  };
}
