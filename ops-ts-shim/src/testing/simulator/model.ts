// Several simulated units of one application, as Juju's controller ties them together: one peer
// relation id shared by every unit, committed bags passed on (peers.ts, as syncPeers does), the
// relation-created/joined/changed/departed hooks Juju queues as units come, write and go,
// leadership that moves, and a machine reboot after a hook that asked for one (juju-reboot),
// followed by the `start` hook Juju runs on the machine's units after a reboot.
import { propagatePeerData } from "../peers";
import type { EventSpec } from "../unit-spec";
import type { UnitSimulator } from "./unit";

/** One unit in the model: its simulator and how the test runs (and finishes) one dispatch. */
export interface ModelUnit {
  sim: UnitSimulator;
  /** Runs the charm for `event` with sim.env(event), calls sim.finish, returns the exit code. */
  run: (event: EventSpec) => number;
  /** The machine the unit is on (default: its own, named after the unit). */
  machine?: string;
}

/** A hook the model ran, in order. */
export interface ModelHookRun {
  unit: string;
  event: string;
  remoteUnit: string | null;
  exitCode: number;
}

export interface ModelSimulatorOptions {
  /** The application's peer relations (endpoint and relation id, one id for every unit). */
  peers: ReadonlyArray<{ endpoint: string; id: number }>;
  /** Called when Juju reboots `machine` (after a hook that ran juju-reboot exited 0): the test
   * makes the new boot (a new boot id, what the kernel brings). `start` runs afterwards. */
  onReboot?: (machine: string) => void;
  /** The most queued hooks settle() runs before it gives up (a charm that never settles). */
  maxHooks?: number;
  /** When true, a machine asked to reboot goes down and stays down (its units run no hook;
   * theirs wait in the queue) until the test calls bootMachine: what happens meanwhile on the
   * other units can be seen. Default false: it reboots at once. */
  manualReboots?: boolean;
}

interface Queued {
  unit: string;
  event: EventSpec;
}

export interface ModelSimulator {
  /** Adds a unit: it joins every peer relation (Juju runs `<peer>-relation-created` on it, then
   * `-joined`/`-changed` on both sides for each pair); queued, not run. */
  addUnit(name: string, unit: ModelUnit, options?: { leader?: boolean }): void;
  /** The unit vanishes (its machine is gone, `remove-unit --force`): every other unit gets
   * `<peer>-relation-departed` naming it; its bags go with it. If it led, nobody leads until
   * setLeader. Queued, not run. */
  removeUnit(name: string): void;
  /** Makes `name` the leader (the old leader, if alive, loses it) and queues leader-elected. */
  setLeader(name: string): void;
  /** Runs one hook on one unit now, then what Juju does once it ended (commit, propagate bags,
   * queue the hooks that causes, reboot). Returns the exit code. */
  dispatch(unit: string, event: EventSpec): number;
  /** Queues a hook without running it. */
  enqueue(unit: string, event: EventSpec): void;
  /** Runs queued hooks (in order, each followed by what it causes) until none is left but
   * those of machines down for a reboot. */
  settle(): ModelHookRun[];
  /** Brings a machine that went down for a reboot back up (manualReboots): onReboot, then
   * `start` on each of its units before anything else they had queued. */
  bootMachine(machine: string): void;
  /** Machines down for a reboot (manualReboots), not booted yet. */
  readonly down: ReadonlySet<string>;
  /** Every hook run so far, in order. */
  readonly history: ModelHookRun[];
  /** Machines rebooted so far, in order. */
  readonly reboots: string[];
  unitNames(): string[];
  unit(name: string): ModelUnit;
}

const eventName = (e: EventSpec): string => (typeof e === "string" ? e : e.name);

/** A model of units that share peer relations; see ModelSimulator. */
export function createModelSimulator(options: ModelSimulatorOptions): ModelSimulator {
  const units = new Map<string, ModelUnit>();
  const queue: Queued[] = [];
  const history: ModelHookRun[] = [];
  const reboots: string[] = [];
  const down = new Set<string>();
  /** Units gone whose bags the departed hooks may still read. */
  const pendingDrops: string[] = [];
  const maxHooks = options.maxHooks ?? 500;
  const app = (name: string): string => name.slice(0, name.lastIndexOf("/"));

  const get = (name: string): ModelUnit => {
    const u = units.get(name);
    if (!u) throw new Error(`no unit ${name} in the model`);
    return u;
  };
  const machineOf = (name: string): string => get(name).machine ?? `machine-of-${name}`;
  const relationOf = (name: string, id: number) =>
    get(name)
      .sim.readState()
      .relations.find((r) => r.id === id);

  /** What `from` committed reaches the others (peers.ts); queues the hooks that causes. */
  function propagate(from: string): void {
    const names = [...units.keys()];
    const states = names.map((n) => get(n).sim.readState());
    const events = propagatePeerData(states, from);
    names.forEach((n, i) => {
      if (n === from) return;
      get(n).sim.updateState((s) => {
        s.relations = states[i]!.relations;
      });
    });
    for (const e of events) queue.push({ unit: e.unit, event: e.event });
  }

  function runNow(name: string, event: EventSpec): number {
    const u = get(name);
    if (down.has(machineOf(name)))
      throw new Error(`${name} runs no hook: its machine ${machineOf(name)} is down for a reboot`);
    const exitCode = u.run(event);
    const ev = typeof event === "string" ? { name: event } : event;
    history.push({
      unit: name,
      event: ev.name,
      remoteUnit: "remoteUnit" in ev ? (ev.remoteUnit ?? null) : null,
      exitCode,
    });
    const reboot = u.sim.readState().reboot;
    if (reboot !== null) u.sim.updateState((s) => (s.reboot = null));
    if (exitCode !== 0) return exitCode; // nothing committed, the reboot request dropped
    propagate(name);
    if (reboot !== null) {
      // Juju reboots after the hook (`now` kills it first; the charm's hook then reruns: not
      // modelled, as the charm never asks for it).
      const machine = machineOf(name);
      reboots.push(machine);
      down.add(machine);
      if (!options.manualReboots) boot(machine);
    }
    return exitCode;
  }

  /** The machine's new boot: the test's onReboot, then `start` on each of its units (Juju 2.8+
   * runs it after a reboot) ahead of what they had queued. */
  function boot(machine: string): void {
    if (!down.delete(machine)) throw new Error(`machine ${machine} is not down for a reboot`);
    options.onReboot?.(machine);
    const starts = [...units.keys()]
      .filter((u) => machineOf(u) === machine)
      .map((unit) => ({ unit, event: "start" as EventSpec }));
    queue.unshift(...starts);
  }

  return {
    history,
    reboots,
    down,
    bootMachine: boot,
    unitNames: () => [...units.keys()],
    unit: get,
    addUnit(name, unit, addOptions = {}) {
      if (units.has(name)) throw new Error(`unit ${name} is already in the model`);
      const others = [...units.keys()];
      const leaderState = others.map((o) => get(o).sim.readState()).find((s) => s.leader);
      units.set(name, unit);
      unit.sim.updateState((s) => {
        s.leader = addOptions.leader ?? false;
        for (const peer of options.peers) {
          s.relations = s.relations.filter((r) => r.id !== peer.id);
          const appData = leaderState?.relations.find((r) => r.id === peer.id)?.localAppData ?? {};
          const remoteUnitsData: Record<string, Record<string, string>> = {};
          for (const o of others)
            remoteUnitsData[o] = { ...(relationOf(o, peer.id)?.localUnitData ?? {}) };
          s.relations.push({
            id: peer.id,
            endpoint: peer.endpoint,
            remoteApp: app(name),
            remoteUnits: [...others],
            remoteUnitsData,
            remoteAppData: { ...appData },
            localUnitData: {},
            localAppData: { ...appData },
            peer: true,
          });
        }
      });
      for (const peer of options.peers) {
        queue.push({
          unit: name,
          event: { name: `${peer.endpoint}-relation-created`, relationId: peer.id },
        });
        for (const o of others) {
          get(o).sim.updateState((s) => {
            const rel = s.relations.find((r) => r.id === peer.id);
            if (!rel) return;
            if (!rel.remoteUnits.includes(name)) rel.remoteUnits.push(name);
            rel.remoteUnitsData[name] = {};
          });
          for (const [who, remote] of [
            [o, name],
            [name, o],
          ] as const) {
            queue.push({
              unit: who,
              event: {
                name: `${peer.endpoint}-relation-joined`,
                relationId: peer.id,
                remoteUnit: remote,
              },
            });
            queue.push({
              unit: who,
              event: {
                name: `${peer.endpoint}-relation-changed`,
                relationId: peer.id,
                remoteUnit: remote,
              },
            });
          }
        }
      }
    },
    removeUnit(name) {
      get(name);
      units.delete(name);
      for (let i = queue.length - 1; i >= 0; i--) if (queue[i]!.unit === name) queue.splice(i, 1);
      for (const [other, u] of units) {
        for (const peer of options.peers) {
          u.sim.updateState((s) => {
            const rel = s.relations.find((r) => r.id === peer.id);
            if (!rel) return;
            rel.remoteUnits = rel.remoteUnits.filter((x) => x !== name);
          });
          queue.push({
            unit: other,
            event: {
              name: `${peer.endpoint}-relation-departed`,
              relationId: peer.id,
              remoteUnit: name,
              departingUnit: name,
            },
          });
        }
      }
      // Its bag stays readable during the departed hooks; settle() drops it after them.
      pendingDrops.push(name);
    },
    setLeader(name) {
      get(name);
      for (const [other, u] of units) u.sim.updateState((s) => (s.leader = other === name));
      queue.push({ unit: name, event: "leader-elected" });
    },
    dispatch(name, event) {
      return runNow(name, event);
    },
    enqueue(name, event) {
      get(name);
      queue.push({ unit: name, event });
    },
    settle() {
      const ran: ModelHookRun[] = [];
      let budget = maxHooks;
      while (queue.length > 0) {
        if (budget-- <= 0) {
          throw new Error(
            `the model did not settle after ${maxHooks} hooks; next: ${queue
              .slice(0, 5)
              .map((q) => `${q.unit} ${eventName(q.event)}`)
              .join(", ")}`,
          );
        }
        const index = queue.findIndex((q) => !units.has(q.unit) || !down.has(machineOf(q.unit)));
        if (index < 0) break; // what is left waits for machines down for a reboot
        const next = queue.splice(index, 1)[0]!;
        if (!units.has(next.unit)) continue;
        const before = history.length;
        runNow(next.unit, next.event);
        ran.push(...history.slice(before));
        if (!queue.some((q) => eventName(q.event).endsWith("-relation-departed"))) dropDeparted();
      }
      return ran;
    },
  };

  function dropDeparted(): void {
    for (const gone of pendingDrops.splice(0)) {
      for (const u of units.values()) {
        u.sim.updateState((s) => {
          for (const rel of s.relations) delete rel.remoteUnitsData[gone];
        });
      }
    }
  }
}
