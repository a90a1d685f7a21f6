// Events and their observers. A charm registers synchronous handlers by event name; after the
// event, "collect-unit-status" handlers each offer the status they think the unit is in and
// the most severe one wins, so status is computed from everything the charm knows, once.
import type { JujuContext } from "./context";
import * as hookcmds from "./hookcmds";
import {
  LAST_STATUS_KEY,
  type Model,
  type Relation,
  type StatusBase,
  type StatusName,
} from "./model";
import type { HookToolRunner } from "./runner";

/** The five relation hook kinds. */
export type RelationEventKind = "created" | "joined" | "changed" | "departed" | "broken";

/** Every event name a charm can observe. */
export type EventName =
  | "install"
  | "start"
  | "stop"
  | "remove"
  | "config-changed"
  | "upgrade-charm"
  | "update-status"
  | "leader-elected"
  | "leader-settings-changed"
  | `${string}-relation-${RelationEventKind}`
  | `${string}-action`
  | "collect-unit-status";

/** Hooks Juju may run on any machine charm, whether or not it observes them. */
export const STANDARD_HOOKS: readonly string[] = [
  "install",
  "start",
  "stop",
  "remove",
  "config-changed",
  "upgrade-charm",
  "update-status",
  "leader-elected",
  "leader-settings-changed",
  "leader-deposed",
  // Juju 3 machine models run these around `juju upgrade-machine`; a no-op is correct.
  "pre-series-upgrade",
  "post-series-upgrade",
];

export const RELATION_EVENT_KINDS: readonly RelationEventKind[] = [
  "created",
  "joined",
  "changed",
  "departed",
  "broken",
];

/** Any event: its full name (`nova-compute-relation-joined`) and kind (`relation-joined`). */
export class HookEvent {
  constructor(
    readonly name: string,
    readonly kind: string,
  ) {}
}

/** A relation hook; `relation` is looked up only when a handler asks for it. */
export class RelationEvent extends HookEvent {
  private cached: Relation | undefined;
  constructor(
    name: string,
    kind: `relation-${RelationEventKind}`,
    private readonly model: Model,
    readonly endpoint: string,
    readonly relationId: number,
    readonly remoteUnit: string | null,
    readonly remoteApp: string | null,
    readonly departingUnit: string | null,
  ) {
    super(name, kind);
  }

  /** The relation this hook is about. */
  get relation(): Relation {
    if (this.cached === undefined) {
      const found = this.model.getRelation(this.endpoint, this.relationId);
      if (found === null) {
        throw new Error(
          `relation ${this.endpoint}:${this.relationId} of this ${this.name} hook is not known to Juju any more`,
        );
      }
      this.cached = found;
    }
    return this.cached;
  }
}

/** An action run by `juju run`; results, failure and progress go straight to Juju. */
export class ActionEvent extends HookEvent {
  constructor(
    name: string,
    readonly actionName: string,
    readonly id: string | null,
    readonly params: Record<string, unknown>,
    private readonly runner: HookToolRunner,
  ) {
    super(name, "action");
  }

  /** Adds results (nested objects become dotted keys; bad keys throw before anything runs). */
  setResults(results: Record<string, unknown>): void {
    hookcmds.actionSet(this.runner, results);
  }

  /** Marks the action failed; `juju run` shows the message. The handler should then return. */
  fail(message: string): void {
    hookcmds.actionFail(this.runner, message);
  }

  /** A progress line shown by `juju run` while the action runs. */
  log(message: string): void {
    hookcmds.actionLog(this.runner, message);
  }
}

const PRIORITY: Record<StatusName, number> = {
  error: 5,
  blocked: 4,
  maintenance: 3,
  waiting: 2,
  active: 1,
  unknown: 0,
};

/** Emitted after every event: each handler adds the status it believes in. */
export class CollectStatusEvent extends HookEvent {
  private readonly added: StatusBase[] = [];
  constructor() {
    super("collect-unit-status", "collect-unit-status");
  }

  /** Offers a status; the most severe offered status is set (first one wins a tie). */
  addStatus(status: StatusBase): void {
    this.added.push(status);
  }

  /** The statuses offered so far, in order. */
  get statuses(): readonly StatusBase[] {
    return [...this.added];
  }

  /** The winner: error > blocked > maintenance > waiting > active > unknown; null if none. */
  highest(): StatusBase | null {
    let best: StatusBase | null = null;
    for (const status of this.added) {
      if (best === null || PRIORITY[status.name] > PRIORITY[best.name]) best = status;
    }
    return best;
  }
}

/** The event object a handler for event name N receives. */
export type EventFor<N extends string> = N extends "collect-unit-status"
  ? CollectStatusEvent
  : N extends `${string}-relation-${RelationEventKind}`
    ? RelationEvent
    : N extends `${string}-action`
      ? ActionEvent
      : HookEvent;

type AnyHandler = (event: HookEvent) => unknown;

/** A handler returned a promise: the shim runs hooks synchronously and would not wait for it. */
export class AsyncHandlerError extends Error {
  override name = "AsyncHandlerError";
}

/** Holds the observers and runs one event through them. */
export class Framework {
  private readonly observers = new Map<string, AnyHandler[]>();

  constructor(
    readonly model: Model,
    readonly context: JujuContext,
    private readonly runner: HookToolRunner,
  ) {}

  /** Calls handler whenever the named event is dispatched (in registration order). */
  observe<N extends EventName>(eventName: N, handler: (event: EventFor<N>) => void): void {
    const list = this.observers.get(eventName) ?? [];
    list.push(handler as AnyHandler);
    this.observers.set(eventName, list);
  }

  /** Whether anything observes the named event. */
  isObserved(eventName: string): boolean {
    return (this.observers.get(eventName)?.length ?? 0) > 0;
  }

  /** Runs every handler of event.name, in order; a thrown error stops the dispatch. */
  emit(event: HookEvent): void {
    for (const handler of this.observers.get(event.name) ?? []) {
      const result = handler(event);
      if (result && typeof (result as { then?: unknown }).then === "function") {
        throw new AsyncHandlerError(
          `the ${event.name} handler returned a promise; handlers must be synchronous (use spawnSync/readFileSync) or the hook ends before they finish`,
        );
      }
    }
  }

  /**
   * Runs collect-unit-status and sets the winning status with one status-set, unless it is
   * exactly what this shim set last time (remembered in stored state): then nothing is called.
   */
  collectStatus(): StatusBase | null {
    const event = new CollectStatusEvent();
    this.emit(event);
    const status = event.highest();
    if (status === null || status.name === "unknown") return status;
    const last = this.model.stored.get<{ name: string; message: string }>(LAST_STATUS_KEY);
    if (last && last.name === status.name && last.message === status.message) return status;
    if (status.name === "error") {
      throw new Error(
        `a charm cannot set "error" status (Juju sets it when a hook fails); offer blocked with the reason instead: ${status.message}`,
      );
    }
    hookcmds.statusSet(this.runner, status.name, status.message);
    this.model.stored.set(LAST_STATUS_KEY, { name: status.name, message: status.message });
    return status;
  }
}

/** Base class of a charm: keeps the framework and model, registers observers in its ctor. */
export class CharmBase {
  readonly framework: Framework;
  readonly model: Model;
  constructor(framework: Framework) {
    this.framework = framework;
    this.model = framework.model;
  }
}

/** A charm class main() can instantiate. */
export type CharmClass = new (framework: Framework) => CharmBase;
