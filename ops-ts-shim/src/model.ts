// What the charm sees of Juju during one dispatch: config, leadership, relations and their data,
// stored state. Every read is made at most once per dispatch (cached), and every write is
// skipped when it would change nothing, so an idle hook costs as few tool calls as possible.
import type { JujuContext } from "./context";
import * as hookcmds from "./hookcmds";
import { type CharmMetadata, endpointsOf } from "./metadata";
import type { HookToolRunner } from "./runner";

/** Workload status names, in Juju's words. */
export type StatusName = "active" | "blocked" | "maintenance" | "waiting" | "error" | "unknown";

/** A workload status: a name and a message for `juju status`. */
export class StatusBase {
  constructor(
    readonly name: StatusName,
    readonly message: string = "",
  ) {}
  /** `blocked: devices: "10de:1bb0" selects nothing` style, for logs and test failures. */
  toString(): string {
    return this.message ? `${this.name}: ${this.message}` : this.name;
  }
}
/** A status class with its name fixed, as ops has them: `new BlockedStatus("why")`. */
function namedStatus(name: StatusName) {
  return class extends StatusBase {
    constructor(message = "") {
      super(name, message);
    }
  };
}

/** Everything the charm manages is in place. */
export const ActiveStatus = namedStatus("active");
export type ActiveStatus = InstanceType<typeof ActiveStatus>;
/** The operator must act (the message says how). */
export const BlockedStatus = namedStatus("blocked");
export type BlockedStatus = InstanceType<typeof BlockedStatus>;
/** The charm is changing the host. */
export const MaintenanceStatus = namedStatus("maintenance");
export type MaintenanceStatus = InstanceType<typeof MaintenanceStatus>;
/** The charm waits for something outside itself (another unit, a reboot). */
export const WaitingStatus = namedStatus("waiting");
export type WaitingStatus = InstanceType<typeof WaitingStatus>;

/** Levels for Model.log. */
export type ModelLogLevel = "DEBUG" | "INFO" | "WARNING" | "ERROR";

/** Keys the shim keeps for itself in Juju's unit state (hidden from nobody, used by nobody else). */
export const SHIM_STATE_PREFIX = "ops-ts-shim.";
export const LAST_STATUS_KEY = `${SHIM_STATE_PREFIX}status`;
export const WORKLOAD_VERSION_KEY = `${SHIM_STATE_PREFIX}workload-version`;

/** More than one relation exists where the charm asked for exactly one. */
export class TooManyRelationsError extends Error {
  override name = "TooManyRelationsError";
}

/** An endpoint name that metadata.yaml does not declare. */
export class UnknownEndpointError extends Error {
  override name = "UnknownEndpointError";
}

/** A value that cannot be stored: it does not survive JSON. */
export class StoredStateError extends Error {
  override name = "StoredStateError";
}

/**
 * Per-unit state kept by Juju (state-get/state-set), so it survives a reboot or a lost disk.
 * Values are JSON, one Juju key each. Loaded with one state-get the first time it is used;
 * written at the end of the dispatch with one state-set holding only the keys that changed.
 */
export class StoredState {
  private loaded: Map<string, string> | null = null;
  private current = new Map<string, string>();

  constructor(private readonly runner: HookToolRunner) {}

  private load(): Map<string, string> {
    if (this.loaded === null) {
      this.loaded = new Map(Object.entries(hookcmds.stateGet(this.runner)));
      this.current = new Map(this.loaded);
    }
    return this.current;
  }

  /** The value stored under key (a fresh copy), or undefined. */
  get<T>(key: string): T | undefined {
    const raw = this.load().get(key);
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch {
      // Written by something other than this shim (e.g. `juju exec state-set`): a plain string.
      return raw as T;
    }
  }

  /** Stores a JSON-able value under key (written at commit, only if it changed). */
  set(key: string, value: unknown): void {
    let raw: string | undefined;
    try {
      raw = JSON.stringify(value);
    } catch (e) {
      throw new StoredStateError(`cannot store "${key}": ${(e as Error).message}`);
    }
    if (raw === undefined) {
      throw new StoredStateError(
        `cannot store "${key}": ${typeof value} values do not survive JSON; use delete() to remove a key`,
      );
    }
    this.load().set(key, raw);
  }

  /** Removes key (state-delete at commit, only if Juju has it). */
  delete(key: string): void {
    this.load().delete(key);
  }

  /** Every key and value (parsed), for tests and debugging. */
  entries(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const key of this.load().keys()) out[key] = this.get(key);
    return out;
  }

  /** Sends what changed to Juju: at most one state-set, plus one state-delete per removed key. */
  commit(): void {
    if (this.loaded === null) return;
    const changed: Record<string, string> = {};
    for (const [key, raw] of this.current) {
      if (this.loaded.get(key) !== raw) changed[key] = raw;
    }
    if (Object.keys(changed).length > 0) hookcmds.stateSet(this.runner, changed);
    for (const key of this.loaded.keys()) {
      if (!this.current.has(key)) hookcmds.stateDelete(this.runner, key);
    }
    this.loaded = new Map(this.current);
  }
}

/** One relation on one of the charm's endpoints, seen from this unit. */
export class Relation {
  private unitData = new Map<string, Record<string, string>>();
  private appData: Record<string, string> | null = null;
  private ownAppData: Record<string, string> | null = null;

  constructor(
    private readonly runner: HookToolRunner,
    private readonly localUnit: string,
    readonly id: number,
    readonly name: string,
    /** The remote application, when Juju told us or a remote unit reveals it (for a peer
     * relation: this unit's own application). */
    readonly app: string | null,
    /** Remote units currently in the relation (relation-list; for a peer relation the other
     * units of this application). */
    readonly units: string[],
    /** Whether this is a peer relation (metadata.yaml `peers:`). */
    readonly isPeer: boolean = false,
  ) {}

  private get localApp(): string {
    return this.localUnit.split("/")[0]!;
  }

  private bag(unit: string): Record<string, string> {
    let data = this.unitData.get(unit);
    if (data === undefined) {
      data = hookcmds.relationGet(this.runner, this.id, unit);
      this.unitData.set(unit, data);
    }
    return data;
  }

  /** A remote unit's data bag (read once per dispatch). */
  remoteUnitData(unit: string): Record<string, string> {
    return { ...this.bag(unit) };
  }

  /** The remote application's data bag (empty when the remote app is not known yet). */
  remoteAppData(): Record<string, string> {
    if (this.app === null) return {};
    if (this.appData === null) {
      this.appData = hookcmds.relationGet(this.runner, this.id, this.app, { app: true });
    }
    return { ...this.appData };
  }

  /**
   * This application's own data bag in the relation. Juju lets every unit read it in a peer
   * relation and only the leader in any other (apiserver uniter readLocalApplicationSettings);
   * only the leader may write it.
   */
  localAppData(): Record<string, string> {
    if (this.ownAppData === null) {
      this.ownAppData = hookcmds.relationGet(this.runner, this.id, this.localApp, { app: true });
    }
    return { ...this.ownAppData };
  }

  /** Updates the application's data bag (leader only): like setLocalUnitData, only changes go. */
  setLocalAppData(data: Record<string, string | null>): void {
    const current = this.localAppData();
    const changes = changedKeys(current, data);
    if (Object.keys(changes).length === 0) return;
    hookcmds.relationSet(this.runner, this.id, changes, { app: true });
    this.ownAppData = applyChanges(current, changes);
  }

  /** This unit's own data bag in the relation. */
  localUnitData(): Record<string, string> {
    return { ...this.bag(this.localUnit) };
  }

  /**
   * Updates this unit's data bag: a string sets a key, null (or "") deletes it. Reads the bag
   * first and sends only real changes, so republishing the same data costs no relation-set.
   */
  setLocalUnitData(data: Record<string, string | null>): void {
    const current = this.bag(this.localUnit);
    const changes = changedKeys(current, data);
    if (Object.keys(changes).length === 0) return;
    hookcmds.relationSet(this.runner, this.id, changes);
    this.unitData.set(this.localUnit, applyChanges(current, changes));
  }
}

/** The keys of data that would change current ("" and null delete). */
function changedKeys(
  current: Record<string, string>,
  data: Record<string, string | null>,
): Record<string, string | null> {
  const changes: Record<string, string | null> = {};
  for (const [key, value] of Object.entries(data)) {
    const wanted = value === "" ? null : value;
    if (wanted === null ? key in current : current[key] !== wanted) changes[key] = wanted;
  }
  return changes;
}

function applyChanges(
  current: Record<string, string>,
  changes: Record<string, string | null>,
): Record<string, string> {
  const next = { ...current };
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  return next;
}

/** How the model learns about the current dispatch; main() builds it. */
export interface ModelBackend {
  runner: HookToolRunner;
  context: JujuContext;
  /** Called lazily: only relation look-ups need metadata. */
  metadata: () => CharmMetadata;
}

/** The charm's view of Juju for one dispatch. */
export class Model {
  readonly unitName: string;
  readonly appName: string;
  readonly stored: StoredState;
  private readonly runner: HookToolRunner;
  private readonly context: JujuContext;
  private readonly metadata: () => CharmMetadata;
  private configCache: Readonly<Record<string, unknown>> | null = null;
  private leaderCache: boolean | null = null;
  private relationCache = new Map<string, Relation[]>();
  private brokenRelation: Relation | null = null;

  constructor(backend: ModelBackend) {
    this.runner = backend.runner;
    this.context = backend.context;
    this.metadata = backend.metadata;
    this.unitName = backend.context.unitName;
    this.appName = backend.context.appName;
    this.stored = new StoredState(backend.runner);
  }

  /** Every config option (unset ones as null), read once per dispatch. */
  config(): Readonly<Record<string, unknown>> {
    if (this.configCache === null) {
      this.configCache = Object.freeze(hookcmds.configGet(this.runner));
    }
    return this.configCache;
  }

  /** Whether this unit leads its application (asked once per dispatch). */
  isLeader(): boolean {
    if (this.leaderCache === null) this.leaderCache = hookcmds.isLeader(this.runner);
    return this.leaderCache;
  }

  private checkEndpoint(endpoint: string): void {
    const endpoints = endpointsOf(this.metadata());
    if (!endpoints.has(endpoint)) {
      const known = [...endpoints.keys()].join(", ") || "none";
      throw new UnknownEndpointError(
        `relation endpoint "${endpoint}" is not declared in metadata.yaml (declared: ${known})`,
      );
    }
  }

  private isBrokenHook(endpoint: string, id: number): boolean {
    return (
      this.context.hookName === `${endpoint}-relation-broken` && this.context.relationId === id
    );
  }

  private makeRelation(endpoint: string, id: number, units: string[]): Relation {
    const isPeer = endpointsOf(this.metadata()).get(endpoint)?.role === "peers";
    const isEventRelation = this.context.relationId === id;
    const app = isPeer
      ? this.appName
      : ((isEventRelation ? this.context.remoteApp : null) ?? units[0]?.split("/")[0] ?? null);
    return new Relation(this.runner, this.unitName, id, endpoint, app, units, isPeer);
  }

  /** The live relations on an endpoint (relation-ids, then relation-list for each; cached). */
  relations(endpoint: string): Relation[] {
    this.checkEndpoint(endpoint);
    let relations = this.relationCache.get(endpoint);
    if (relations === undefined) {
      relations = [];
      for (const id of hookcmds.relationIds(this.runner, endpoint)) {
        // In relation-broken Juju may still list the dying relation; the charm must not see it.
        if (this.isBrokenHook(endpoint, id)) continue;
        const units = hookcmds.relationList(this.runner, id);
        // relation-departed: the leaving unit is gone from relation-list, but its data is still
        // readable and handlers usually want to know who it was (as in Python ops).
        const departing = this.context.hookName === `${endpoint}-relation-departed`;
        if (departing && this.context.relationId === id && this.context.remoteUnit) {
          if (!units.includes(this.context.remoteUnit)) units.push(this.context.remoteUnit);
        }
        relations.push(this.makeRelation(endpoint, id, units));
      }
      this.relationCache.set(endpoint, relations);
    }
    return [...relations];
  }

  /**
   * One relation: by id, or the only one on the endpoint (null when there is none; throws
   * TooManyRelationsError when there are several and no id was given). In relation-broken the
   * broken relation is still returned by id, with no units.
   */
  getRelation(endpoint: string, id?: number): Relation | null {
    if (id !== undefined && this.isBrokenHook(endpoint, id)) {
      this.checkEndpoint(endpoint);
      this.brokenRelation ??= this.makeRelation(endpoint, id, []);
      return this.brokenRelation;
    }
    const relations = this.relations(endpoint);
    if (id !== undefined) return relations.find((r) => r.id === id) ?? null;
    if (relations.length > 1) {
      throw new TooManyRelationsError(
        `endpoint "${endpoint}" has ${relations.length} relations (ids ${relations.map((r) => r.id).join(", ")}); pass the relation id`,
      );
    }
    return relations[0] ?? null;
  }

  /** Shows the workload version in `juju status`; skipped when it is already shown. */
  setWorkloadVersion(version: string): void {
    if (this.stored.get<string>(WORKLOAD_VERSION_KEY) === version) return;
    hookcmds.applicationVersionSet(this.runner, version);
    this.stored.set(WORKLOAD_VERSION_KEY, version);
  }

  /**
   * Writes one line to the unit's Juju log, right away (one juju-log per call: log when the
   * charm acts or something is wrong, not on every idle hook). A failing juju-log never fails
   * the hook: the line goes to stderr, which Juju also records.
   */
  log(level: ModelLogLevel, message: string): void {
    if (this.context.debug) process.stderr.write(`${level} ${message}\n`);
    try {
      hookcmds.jujuLog(this.runner, level, message);
    } catch (e) {
      process.stderr.write(`${level} ${message} (juju-log failed: ${(e as Error).message})\n`);
    }
  }

  /** Asks Juju to reboot the machine once this hook succeeds (or at once, with now). */
  requestReboot(options: { now?: boolean } = {}): void {
    hookcmds.jujuReboot(this.runner, options);
  }
}
