// Scenario-style testing of a whole application: several units of one charm, each with its own
// state (and its own environment, e.g. its own host root), joined by a peer relation that
// behaves as Juju's does (peers.ts). Run an event on one unit, then settle(): every
// relation-changed the commits cause runs on the units it concerns, until nothing changes.
import type { CharmClass } from "../framework";
import { StatusBase } from "../model";
import { type PeerEvent, peerRelationFor, propagatePeerData } from "./peers";
import { Context, type ContextOptions, type OutputState, type State } from "./scenario";
import type { EventSpec } from "./unit-spec";

export interface ApplicationOptions extends Omit<ContextOptions, "unitName" | "env"> {
  /** Units, e.g. ["pci-passthrough/0", …]. */
  units: readonly string[];
  /** The peer endpoint (metadata.yaml `peers:`). */
  peer: string;
  /** The peer relation's id (one relation, the same id on every unit, as in Juju). */
  relationId?: number;
  /** The leading unit (default the first). */
  leader?: string;
  /** Each unit's extra environment for main() (JUJU_* are set by the run). */
  env?: (unit: string) => Record<string, string>;
  /** Called before each of a unit's hooks: a charm that reads process.env (its host root, say)
   * is pointed at that unit's here. */
  beforeRun?: (unit: string) => void;
  /** Each unit's state besides the peer relation (config, other relations, stored). */
  state?: (unit: string) => State;
}

/** Runs events on the units of one application and delivers the peer hooks they cause. */
export class ApplicationContext {
  private readonly contexts = new Map<string, Context>();
  private readonly states = new Map<string, State>();
  private readonly outputs = new Map<string, OutputState>();
  private queue: PeerEvent[] = [];
  /** Every hook run, in order (unit and event name), for tests that check the sequence. */
  readonly history: Array<{ unit: string; event: string }> = [];

  private readonly beforeRun: (unit: string) => void;

  constructor(charmClass: CharmClass, options: ApplicationOptions) {
    this.beforeRun = options.beforeRun ?? (() => {});
    const leader = options.leader ?? options.units[0];
    const id = options.relationId ?? 1;
    for (const unit of options.units) {
      this.contexts.set(
        unit,
        new Context(charmClass, { ...options, unitName: unit, env: options.env?.(unit) ?? {} }),
      );
      const base = options.state?.(unit) ?? {};
      this.states.set(unit, {
        ...base,
        leader: unit === leader,
        relations: [
          ...(base.relations ?? []),
          peerRelationFor(unit, options.units, options.peer, id),
        ],
      });
    }
  }

  /** The units, in the order given. */
  get units(): string[] {
    return [...this.contexts.keys()];
  }

  /** What a unit looked like after its last hook (throws if it ran none). */
  output(unit: string): OutputState {
    const out = this.outputs.get(unit);
    if (!out) throw new Error(`${unit} has run no event yet`);
    return out;
  }

  /** The unit's state as its next hook will see it. */
  state(unit: string): State {
    const state = this.states.get(unit);
    if (!state) throw new Error(`unknown unit ${unit}`);
    return state;
  }

  /** Changes a unit's state between hooks (new config, a relation joining…). */
  update(unit: string, change: (state: State) => State): void {
    this.states.set(unit, change(this.state(unit)));
  }

  /** Runs one event on one unit, commits it, and queues the peer hooks it causes. */
  run(unit: string, event: EventSpec): OutputState {
    const context = this.contexts.get(unit);
    if (!context) throw new Error(`unknown unit ${unit}`);
    this.beforeRun(unit);
    const out = context.run(event, this.state(unit));
    this.history.push({ unit, event: typeof event === "string" ? event : event.name });
    this.outputs.set(unit, out);
    this.states.set(unit, {
      ...this.state(unit),
      leader: out.leader,
      relations: out.relations,
      stored: out.stored,
      status: new StatusBase(out.status.name, out.status.message),
      ...(out.workloadVersion === undefined ? {} : { workloadVersion: out.workloadVersion }),
    });
    const views = this.units.map((u) => ({
      unitName: u,
      leader: this.state(u).leader ?? false,
      relations: (this.state(u).relations ?? []) as OutputState["relations"],
    }));
    this.queue.push(...propagatePeerData(views, unit));
    return out;
  }

  /** Runs one event on every unit, in order (e.g. install, config-changed). */
  runAll(event: EventSpec): void {
    for (const unit of this.units) this.run(unit, event);
  }

  /** Moves leadership to `unit` and runs leader-elected there (as Juju does). */
  elect(unit: string): OutputState {
    for (const u of this.units) this.update(u, (s) => ({ ...s, leader: u === unit }));
    return this.run(unit, "leader-elected");
  }

  /**
   * Takes a unit out of the application (`juju remove-unit`): it leaves every peer's view and each
   * remaining unit gets `<peer>-relation-departed` naming it, as Juju runs it. A leaving leader
   * leaves no leader: call elect() for the next one, as Juju would.
   */
  remove(unit: string): void {
    if (!this.contexts.has(unit)) throw new Error(`unknown unit ${unit}`);
    this.contexts.delete(unit);
    this.states.delete(unit);
    this.outputs.delete(unit);
    this.queue = this.queue.filter((e) => e.unit !== unit && e.event.remoteUnit !== unit);
    for (const other of this.units) {
      const relations = (this.state(other).relations ?? []).map((r) => {
        if (!r.peer) return r;
        const data = { ...(r.remoteUnitsData ?? {}) };
        delete data[unit];
        return {
          ...r,
          remoteUnits: (r.remoteUnits ?? []).filter((u) => u !== unit),
          remoteUnitsData: data,
        };
      });
      this.update(other, (s) => ({ ...s, relations }));
    }
    for (const other of this.units) {
      for (const r of this.state(other).relations ?? []) {
        if (!r.peer) continue;
        this.run(other, {
          name: `${r.endpoint}-relation-departed`,
          relationId: r.id,
          remoteUnit: unit,
          departingUnit: unit,
        });
      }
    }
  }

  /** Delivers queued peer hooks until none is left; throws if they never stop (a charm that
   * rewrites its bag on every change would loop forever under Juju too). */
  settle(maxHooks = 10_000): number {
    let ran = 0;
    while (this.queue.length > 0) {
      if (ran >= maxHooks) {
        throw new Error(`peer hooks did not settle after ${maxHooks} hooks`);
      }
      const next = this.queue.shift()!;
      this.run(next.unit, next.event);
      ran += 1;
    }
    return ran;
  }
}
