// Turning a test's description of a unit (config, relations, stored state, leadership) and of
// an event into what Juju would hold and set: the fake controller state and the JUJU_*
// environment of the hook. Shared by the in-memory harness and the process simulator.

import type { ConfigSpec } from "../metadata";
import { LAST_STATUS_KEY, type StatusBase, WORKLOAD_VERSION_KEY } from "../model";
import { emptyUnitState, type FakeRelation, type FakeUnitState } from "./fake-juju";

/** A relation as a test describes it; everything but the endpoint has a default. */
export interface RelationSpec {
  endpoint: string;
  /** Default: 1, 2, … in order. */
  id?: number;
  /** Default: the application of the first remote unit, else "remote". */
  remoteApp?: string;
  /** Default: the units of remoteUnitsData, else `<remoteApp>/0`. */
  remoteUnits?: string[];
  remoteUnitsData?: Record<string, Record<string, string>>;
  remoteAppData?: Record<string, string>;
  localUnitData?: Record<string, string>;
  localAppData?: Record<string, string>;
  /** A peer relation: remoteApp defaults to the unit's own application and remoteUnits to none
   * (a lone unit); see FakeRelation.peer. */
  peer?: boolean;
}

/** A unit as a test describes it. */
export interface UnitSpec {
  unitName: string;
  leader?: boolean;
  /** Option values set by the operator (the rest come from config.yaml defaults). */
  config?: Record<string, unknown>;
  configSpec?: ConfigSpec;
  relations?: readonly RelationSpec[];
  /** Stored state as the charm sees it (JSON values). */
  stored?: Record<string, unknown>;
  /** The status this shim set last (as if an earlier hook had set it). */
  status?: Pick<StatusBase, "name" | "message">;
  /** The workload version this shim set last. */
  workloadVersion?: string;
}

/** An event to run: a name, or a name with the relation/remote unit/action details. */
export type EventSpec =
  | string
  | {
      name: string;
      relationId?: number;
      remoteUnit?: string | null;
      departingUnit?: string | null;
      actionId?: string;
      params?: Record<string, unknown>;
    };

/** Fills a relation's defaults (localUnit: the unit it belongs to, for a peer relation's app). */
export function completeRelation(
  spec: RelationSpec,
  index: number,
  localUnit = "unit/0",
): FakeRelation {
  const dataUnits = Object.keys(spec.remoteUnitsData ?? {});
  const firstUnit = spec.remoteUnits?.[0] ?? dataUnits[0];
  const remoteApp = spec.peer
    ? localUnit.split("/")[0]!
    : (spec.remoteApp ?? firstUnit?.split("/")[0] ?? "remote");
  const remoteUnits =
    spec.remoteUnits ?? (dataUnits.length > 0 || spec.peer ? dataUnits : [`${remoteApp}/0`]);
  const remoteUnitsData: Record<string, Record<string, string>> = {};
  for (const unit of remoteUnits)
    remoteUnitsData[unit] = { ...(spec.remoteUnitsData?.[unit] ?? {}) };
  return {
    id: spec.id ?? index + 1,
    endpoint: spec.endpoint,
    remoteApp,
    remoteUnits: [...remoteUnits],
    remoteUnitsData,
    remoteAppData: { ...(spec.remoteAppData ?? {}) },
    localUnitData: { ...(spec.localUnitData ?? {}) },
    localAppData: { ...(spec.localAppData ?? {}) },
    ...(spec.peer ? { peer: true } : {}),
  };
}

/** Every declared option with its value: set, else default, else null (as `config-get --all`). */
export function effectiveConfig(
  spec: ConfigSpec | undefined,
  values: Record<string, unknown> = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, option] of Object.entries(spec?.options ?? {})) {
    out[name] = option.default ?? null;
  }
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** What the fake controller holds for the described unit. */
export function buildFakeUnit(spec: UnitSpec): FakeUnitState {
  const state = emptyUnitState(spec.unitName);
  state.leader = spec.leader ?? false;
  state.config = effectiveConfig(spec.configSpec, spec.config);
  state.relations = (spec.relations ?? []).map((r, i) => completeRelation(r, i, spec.unitName));
  for (const [key, value] of Object.entries(spec.stored ?? {})) {
    state.stored[key] = JSON.stringify(value);
  }
  if (spec.status) {
    state.unitStatus = { status: spec.status.name, message: spec.status.message };
    state.stored[LAST_STATUS_KEY] = JSON.stringify({
      name: spec.status.name,
      message: spec.status.message,
    });
  }
  if (spec.workloadVersion !== undefined) {
    state.workloadVersion = spec.workloadVersion;
    state.stored[WORKLOAD_VERSION_KEY] = JSON.stringify(spec.workloadVersion);
  }
  return state;
}

const RELATION_HOOK = /^(.+)-relation-(created|joined|changed|departed|broken)$/;

/** Splits an event name into what kind of dispatch it is. */
export function classifyEvent(
  name: string,
):
  | { type: "action"; action: string }
  | { type: "relation"; endpoint: string; kind: string }
  | { type: "hook" } {
  if (name.endsWith("-action")) return { type: "action", action: name.slice(0, -"-action".length) };
  const match = RELATION_HOOK.exec(name);
  if (match) return { type: "relation", endpoint: match[1]!, kind: match[2]! };
  return { type: "hook" };
}

/** Where the hook runs and who runs it (Juju's per-agent values). */
export interface HookEnvOptions {
  charmDir: string;
  modelName?: string;
  modelUuid?: string;
  jujuVersion?: string;
  principalUnit?: string;
  machineId?: string;
  /** Sequence number, for JUJU_CONTEXT_ID. */
  contextNumber?: number;
}

/**
 * The JUJU_* variables Juju sets for this event (as its HookVars does), registering the action
 * run in state for an action event. Does not validate the event: a test may want to send the
 * charm something it does not know.
 */
export function hookEnvironment(
  state: FakeUnitState,
  event: EventSpec,
  options: HookEnvOptions,
): Record<string, string> {
  const spec = typeof event === "string" ? { name: event } : event;
  const kind = classifyEvent(spec.name);
  const unitTag = `unit-${state.unitName.replace("/", "-")}`;
  const env: Record<string, string> = {
    CHARM_DIR: options.charmDir,
    JUJU_CHARM_DIR: options.charmDir,
    JUJU_CONTEXT_ID: `${state.unitName}-${spec.name}-${options.contextNumber ?? 1}`,
    JUJU_HOOK_NAME: kind.type === "action" ? "" : spec.name,
    JUJU_AGENT_SOCKET_ADDRESS: `@/var/lib/juju/agents/${unitTag}/agent.socket`,
    JUJU_AGENT_SOCKET_NETWORK: "unix",
    JUJU_UNIT_NAME: state.unitName,
    JUJU_MODEL_UUID: options.modelUuid ?? "3f2a6a3e-5c64-4b3e-8f58-0c5a3a1b2c3d",
    JUJU_MODEL_NAME: options.modelName ?? "test-model",
    JUJU_API_ADDRESSES: "10.0.0.1:17070",
    JUJU_MACHINE_ID: options.machineId ?? "0",
    JUJU_PRINCIPAL_UNIT: options.principalUnit ?? "",
    JUJU_AVAILABILITY_ZONE: "",
    JUJU_VERSION: options.jujuVersion ?? "3.6.4",
    CLOUD_API_VERSION: "",
    JUJU_CHARM_HTTP_PROXY: "",
    JUJU_CHARM_HTTPS_PROXY: "",
    JUJU_CHARM_FTP_PROXY: "",
    JUJU_CHARM_NO_PROXY: "",
    APT_LISTCHANGES_FRONTEND: "none",
    DEBIAN_FRONTEND: "noninteractive",
    LANG: "C.UTF-8",
    JUJU_DISPATCH_PATH: kind.type === "action" ? `actions/${kind.action}` : `hooks/${spec.name}`,
  };
  if (kind.type === "relation") {
    const relation =
      state.relations.find(
        (r) =>
          r.endpoint === kind.endpoint &&
          (spec.relationId === undefined || r.id === spec.relationId),
      ) ?? null;
    const id = relation?.id ?? spec.relationId ?? 0;
    // Juju names a remote unit for joined/changed/departed, none for created/broken.
    const wantsUnit = ["joined", "changed", "departed"].includes(kind.kind);
    const remoteUnit =
      spec.remoteUnit !== undefined
        ? (spec.remoteUnit ?? "")
        : wantsUnit
          ? (relation?.remoteUnits[0] ?? "")
          : "";
    env.JUJU_RELATION = kind.endpoint;
    env.JUJU_RELATION_ID = `${kind.endpoint}:${id}`;
    env.JUJU_REMOTE_UNIT = remoteUnit;
    env.JUJU_REMOTE_APP = relation?.remoteApp ?? remoteUnit.split("/")[0] ?? "";
    if (kind.kind === "departed") {
      env.JUJU_DEPARTING_UNIT = spec.departingUnit ?? remoteUnit;
    }
  }
  if (kind.type === "action") {
    const id = spec.actionId ?? String(Object.keys(state.actions).length + 1);
    state.actions[id] = {
      id,
      name: kind.action,
      params: structuredClone(spec.params ?? {}),
      results: {},
      failed: false,
      failureMessage: null,
      logs: [],
    };
    state.runningAction = id;
    env.JUJU_ACTION_NAME = kind.action;
    env.JUJU_ACTION_UUID = id;
    env.JUJU_ACTION_TAG = `action-${id}`;
  }
  return env;
}
