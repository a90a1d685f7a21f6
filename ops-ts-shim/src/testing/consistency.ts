// Scenario's consistency checker, in small: a test state that Juju could never produce (a config
// key config.yaml does not declare, a value of the wrong type, a relation on an endpoint that
// metadata.yaml lacks, an action that does not exist) is a bug in the test, reported before
// the charm runs so it cannot pass by accident.
import { STANDARD_HOOKS } from "../framework";
import { type ActionsSpec, type CharmMetadata, type ConfigSpec, endpointsOf } from "../metadata";
import { classifyEvent, type EventSpec, type RelationSpec } from "./unit-spec";

/** The test's state or event could not happen under Juju; `problems` lists every reason. */
export class InconsistentScenarioError extends Error {
  override name = "InconsistentScenarioError";
  constructor(readonly problems: string[]) {
    super(`inconsistent scenario:\n  - ${problems.join("\n  - ")}`);
  }
}

/** The declarations a scenario is checked against. */
export interface CharmSpec {
  metadata: CharmMetadata;
  config: ConfigSpec;
  actions: ActionsSpec;
}

/** The parts of a scenario state the checker reads. */
export interface CheckedState {
  config?: Record<string, unknown>;
  relations?: readonly RelationSpec[];
  stored?: Record<string, unknown>;
  actionParams?: Record<string, unknown>;
}

const CONFIG_TYPES: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === "string",
  secret: (v) => typeof v === "string",
  int: (v) => typeof v === "number" && Number.isInteger(v),
  float: (v) => typeof v === "number" && Number.isFinite(v),
  boolean: (v) => typeof v === "boolean",
};

const JSON_TYPES: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === "string",
  integer: (v) => typeof v === "number" && Number.isInteger(v),
  number: (v) => typeof v === "number" && Number.isFinite(v),
  boolean: (v) => typeof v === "boolean",
  array: (v) => Array.isArray(v),
  object: (v) => typeof v === "object" && v !== null && !Array.isArray(v),
  null: (v) => v === null,
};

const typeName = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "array" : typeof v;

function checkConfig(spec: CharmSpec, state: CheckedState, problems: string[]): void {
  const options = spec.config.options ?? {};
  for (const [key, value] of Object.entries(state.config ?? {})) {
    const option = options[key];
    if (!option) {
      problems.push(
        `config option "${key}" is not declared in config.yaml (declared: ${Object.keys(options).join(", ") || "none"})`,
      );
      continue;
    }
    if (value === undefined) continue;
    const check = CONFIG_TYPES[option.type];
    if (!check) problems.push(`config.yaml option "${key}" has unknown type "${option.type}"`);
    else if (!check(value)) {
      problems.push(
        `config option "${key}" is declared as ${option.type} but the test sets ${typeName(value)} ${JSON.stringify(value)}`,
      );
    }
  }
}

function checkRelations(spec: CharmSpec, state: CheckedState, problems: string[]): void {
  const endpoints = endpointsOf(spec.metadata);
  const ids = new Set<number>();
  (state.relations ?? []).forEach((relation, index) => {
    if (!endpoints.has(relation.endpoint)) {
      problems.push(
        `relation endpoint "${relation.endpoint}" is not declared in metadata.yaml (declared: ${[...endpoints.keys()].join(", ") || "none"})`,
      );
    }
    const id = relation.id ?? index + 1;
    const declaredPeer = endpoints.get(relation.endpoint)?.role === "peers";
    if (endpoints.has(relation.endpoint) && declaredPeer !== Boolean(relation.peer)) {
      problems.push(
        declaredPeer
          ? `relation ${relation.endpoint}:${id} is a peer relation in metadata.yaml: give it peer: true (its remote application is the unit's own)`
          : `relation ${relation.endpoint}:${id} has peer: true but metadata.yaml declares "${relation.endpoint}" under ${endpoints.get(relation.endpoint)?.role}`,
      );
    }
    if (ids.has(id)) problems.push(`relation id ${id} is used twice`);
    ids.add(id);
    if (relation.remoteUnits && relation.remoteUnitsData) {
      for (const unit of Object.keys(relation.remoteUnitsData)) {
        if (!relation.remoteUnits.includes(unit)) {
          problems.push(
            `relation ${relation.endpoint}:${id} has data for "${unit}", which is not in its remoteUnits`,
          );
        }
      }
    }
    for (const unit of relation.remoteUnits ?? Object.keys(relation.remoteUnitsData ?? {})) {
      if (!/^[a-z][a-z0-9-]*\/\d+$/.test(unit)) {
        problems.push(
          `relation ${relation.endpoint}:${id} remote unit "${unit}" is not a unit name`,
        );
      }
    }
  });
}

function checkStored(state: CheckedState, problems: string[]): void {
  for (const [key, value] of Object.entries(state.stored ?? {})) {
    if (value === undefined || JSON.stringify(value) === undefined) {
      problems.push(`stored value "${key}" is not JSON-able (${typeof value})`);
    }
  }
}

function checkActionParams(
  action: string,
  actions: ActionsSpec,
  params: Record<string, unknown>,
  problems: string[],
): void {
  const spec = actions[action];
  if (!spec) return;
  const declared = spec.params ?? {};
  for (const [key, value] of Object.entries(params)) {
    const param = declared[key];
    if (!param) {
      if (spec.additionalProperties === false) {
        problems.push(
          `action ${action} has no parameter "${key}" (declared: ${Object.keys(declared).join(", ") || "none"})`,
        );
      }
      continue;
    }
    const type = param.type;
    const types = Array.isArray(type) ? (type as string[]) : typeof type === "string" ? [type] : [];
    if (types.length > 0 && !types.some((t) => JSON_TYPES[t]?.(value))) {
      problems.push(
        `action ${action} parameter "${key}" is declared as ${types.join("|")} but the test passes ${typeName(value)} ${JSON.stringify(value)}`,
      );
    }
  }
  for (const key of spec.required ?? []) {
    if (!(key in params)) problems.push(`action ${action} requires parameter "${key}"`);
  }
}

/** Throws InconsistentScenarioError listing everything wrong with this event and state. */
export function checkConsistency(spec: CharmSpec, event: EventSpec, state: CheckedState): void {
  const problems: string[] = [];
  const name = typeof event === "string" ? event : event.name;
  const kind = classifyEvent(name);
  checkConfig(spec, state, problems);
  checkRelations(spec, state, problems);
  checkStored(state, problems);
  if (kind.type === "action") {
    if (!(kind.action in spec.actions)) {
      problems.push(
        `action "${kind.action}" is not declared in actions.yaml (declared: ${Object.keys(spec.actions).join(", ") || "none"})`,
      );
    }
    checkActionParams(kind.action, spec.actions, state.actionParams ?? {}, problems);
  } else {
    if (state.actionParams !== undefined) {
      problems.push(`actionParams are given but ${name} is not an action event`);
    }
    if (kind.type === "relation") {
      const relationId = typeof event === "string" ? undefined : event.relationId;
      const match = (state.relations ?? []).some(
        (r, i) =>
          r.endpoint === kind.endpoint &&
          (relationId === undefined || (r.id ?? i + 1) === relationId),
      );
      if (!endpointsOf(spec.metadata).has(kind.endpoint)) {
        problems.push(
          `event ${name}: endpoint "${kind.endpoint}" is not declared in metadata.yaml`,
        );
      } else if (!match) {
        problems.push(
          `event ${name} needs a relation on "${kind.endpoint}"${relationId === undefined ? "" : ` with id ${relationId}`} in the state`,
        );
      }
    } else if (!STANDARD_HOOKS.includes(name)) {
      problems.push(`"${name}" is not a Juju event this charm can receive`);
    }
  }
  if (problems.length > 0) throw new InconsistentScenarioError(problems);
}
