// A small imitation of Juju's hook tools over a plain state object, shared by the in-memory
// Scenario harness and the process-level simulator (whose executables call it). It parses
// arguments the way Juju's gnuflag-based commands do, prints Juju's output formats, and
// refuses what Juju refuses, with Juju's messages and exit codes: 2 for a usage error
// (bad flag or argument, found before the command runs), 1 for a failure while running.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import type { HookToolResult } from "../runner";

/** One relation as the fake controller knows it. */
export interface FakeRelation {
  id: number;
  endpoint: string;
  remoteApp: string;
  remoteUnits: string[];
  remoteUnitsData: Record<string, Record<string, string>>;
  remoteAppData: Record<string, string>;
  localUnitData: Record<string, string>;
  localAppData: Record<string, string>;
  /** A peer relation (metadata.yaml `peers:`): remoteApp is the unit's own application,
   * remoteUnits its other units, and the application bag (localAppData) is one bag that every
   * unit reads and only the leader writes. */
  peer?: boolean;
}

/** One action run: its params in, what the charm reported out. */
export interface FakeAction {
  id: string;
  name: string;
  params: Record<string, unknown>;
  /** Nested, as Juju assembles dotted action-set keys. */
  results: Record<string, unknown>;
  failed: boolean;
  failureMessage: string | null;
  logs: string[];
}

/** A status as status-set left it. */
export interface FakeStatus {
  status: string;
  message: string;
}

/** Everything the fake controller knows about one unit. Plain JSON, so it can live in a file. */
export interface FakeUnitState {
  unitName: string;
  leader: boolean;
  /** Every declared option; null for unset options without a default. */
  config: Record<string, unknown>;
  relations: FakeRelation[];
  /** Juju's unit state (state-get/state-set): strings only. */
  stored: Record<string, string>;
  unitStatus: FakeStatus;
  appStatus: FakeStatus;
  statusHistory: Array<FakeStatus & { application: boolean }>;
  logs: Array<{ level: string; message: string }>;
  actions: Record<string, FakeAction>;
  workloadVersion: string | null;
  reboot: "after-hook" | "now" | null;
  calls: FakeToolCall[];
  /** What the running hook changed that Juju commits only when it exits 0 (HookContext.Flush):
   * stored state and relation settings. status-set and juju-log take effect at once. */
  pending?: PendingChanges | null;
  /** The model's max-charm-state-size: the whole unit state's cap (Juju's default 2 MiB). */
  maxCharmStateSize?: number;
  /** Why Juju refused to commit a hook that exited 0 (the hook then counts as failed). */
  flushErrors?: string[];
  /** The id of the action the running dispatch is (finished by commitHook), or null. */
  runningAction?: string | null;
  /** The cap on one action's results (ACTION_RESULTS_QUOTA; a test may set it lower). */
  maxActionResultsSize?: number;
}

/** A hook's uncommitted writes: stored keys (null deletes) and relation settings per relation id
 * ("" deletes, as relation-set does). */
export interface PendingChanges {
  stored: Record<string, string | null>;
  relations: Record<string, { unit: Record<string, string>; app: Record<string, string> }>;
}

/** Juju's quotas on unit state (juju/juju core/quota): each key, each value, and the default of
 * the model's max-charm-state-size. */
export const CHARM_STATE_QUOTA = {
  maxKeySize: 256,
  maxValueSize: 64 * 1024,
  defaultMaxStateSize: 2 * 1024 * 1024,
} as const;

/**
 * What an action's results may weigh. Juju itself checks nothing (the uniter's
 * HookContext.UpdateActionResults just adds to a map); the controller stores them, with the
 * action, in ONE MongoDB document (juju/juju state/action.go: actionDoc.Results, written by
 * Action.Finish with a $set), and MongoDB refuses a document over 16 MiB: the action cannot be
 * finished. No Juju message exists to copy; ours names the cause.
 */
export const ACTION_RESULTS_QUOTA = { maxSize: 16 * 1024 * 1024 } as const;

/**
 * What one relation settings bag (a unit's, or an application's, in one relation) may weigh.
 * Juju checks no quota on relation settings (core/quota guards only unit state); the controller
 * keeps each bag as ONE MongoDB document (juju/juju state: the settings collection, one document
 * per relation unit and per relation application), and MongoDB refuses a document over 16 MiB,
 * so the hook's commit fails. No Juju message exists to copy; ours names the cause.
 */
export const RELATION_SETTINGS_QUOTA = { maxSize: 16 * 1024 * 1024 } as const;

/**
 * Linux's limits on the argv (and environment) of an execve: each string at most
 * MAX_ARG_STRLEN bytes counting its NUL (include/uapi/linux/binfmts.h: 32 pages), and all of
 * them, with one pointer each, at most a quarter of the stack rlimit (fs/exec.c; 2 MiB with the
 * usual 8 MiB). Over either, execve fails with E2BIG and the tool never runs. action-set takes
 * its values only as arguments, so a big result hits them.
 */
export const EXEC_ARG_LIMITS = {
  maxArgStrlen: 32 * 4096,
  maxArgvAndEnv: (8 * 1024 * 1024) / 4,
} as const;

/** Why execve would refuse this argv and environment (E2BIG), or null. */
export function execArgProblem(argv: readonly string[], env: FakeToolEnv = {}): string | null {
  const strings = [
    ...argv,
    ...Object.entries(env)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}`),
  ];
  let total = 0;
  for (const s of strings) {
    const size = bytes(s) + 1;
    if (size > EXEC_ARG_LIMITS.maxArgStrlen) {
      return `an argument of ${size - 1} bytes (MAX_ARG_STRLEN is ${EXEC_ARG_LIMITS.maxArgStrlen} with its NUL)`;
    }
    total += size + 8;
  }
  if (total > EXEC_ARG_LIMITS.maxArgvAndEnv) {
    return `arguments and environment of ${total} bytes (the limit is ${EXEC_ARG_LIMITS.maxArgvAndEnv})`;
  }
  return null;
}

/** One hook-tool call as the fake controller saw it. */
export interface FakeToolCall {
  argv: string[];
  exitCode: number;
  stdin?: string;
  /** Process-level simulator only: the tool's process, the process that started it (its
   * parent: the tool wrapper execs), and that parent's executable. A charm that Juju can stop is
   * the process Juju started, so its tools' parent is dispatch's own pid. */
  caller?: ToolCaller;
}

/** Who ran a tool (see FakeToolCall.caller). */
export interface ToolCaller {
  pid: number;
  ppid: number;
  parentExe: string | null;
}

/** The hook context a tool call runs in, as Juju's environment tells it. */
export type FakeToolEnv = Record<string, string | undefined>;

/** Names of the tools this fake implements. */
export const FAKE_TOOL_NAMES = [
  "action-fail",
  "action-get",
  "action-log",
  "action-set",
  "application-version-set",
  "config-get",
  "is-leader",
  "juju-log",
  "juju-reboot",
  "relation-get",
  "relation-ids",
  "relation-list",
  "relation-set",
  "state-delete",
  "state-get",
  "state-set",
  "status-get",
  "status-set",
] as const;

/** A new, empty unit state. */
export function emptyUnitState(unitName: string): FakeUnitState {
  return {
    unitName,
    leader: false,
    config: {},
    relations: [],
    stored: {},
    unitStatus: { status: "unknown", message: "" },
    appStatus: { status: "unknown", message: "" },
    statusHistory: [],
    logs: [],
    actions: {},
    workloadVersion: null,
    reboot: null,
    calls: [],
  };
}

class UsageError extends Error {}
class RunError extends Error {}

// Go's %q, near enough for messages.
const q = (s: string): string => JSON.stringify(s);

type FlagSpec = Record<string, { type: "string" | "boolean"; short?: string }>;

const GO_BOOL: Record<string, boolean> = {
  "1": true,
  t: true,
  T: true,
  true: true,
  TRUE: true,
  True: true,
  "0": false,
  f: false,
  F: false,
  false: false,
  FALSE: false,
  False: false,
};

/** gnuflag semantics on node's parseArgs: interspersed flags, `--`, unknown flag = usage error. */
function parseFlags(
  spec: FlagSpec,
  args: readonly string[],
): { flags: Record<string, string | boolean>; positionals: string[] } {
  const { tokens } = parseArgs({
    args: [...args],
    options: spec,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const flags: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === "positional") positionals.push(token.value);
    if (token.kind !== "option") continue;
    const option = spec[token.name];
    if (!option) throw new UsageError(`flag provided but not defined: ${token.rawName}`);
    if (option.type === "boolean") {
      if (token.value === undefined) flags[token.name] = true;
      else if (token.value in GO_BOOL) flags[token.name] = GO_BOOL[token.value]!;
      else
        throw new UsageError(
          `invalid value ${q(token.value)} for flag ${token.rawName}: parse error`,
        );
    } else {
      if (token.value === undefined)
        throw new UsageError(`flag needs an argument: ${token.rawName}`);
      flags[token.name] = token.value;
    }
  }
  return { flags, positionals };
}

const checkEmpty = (rest: readonly string[]): void => {
  if (rest.length > 0) throw new UsageError(`unrecognized args: [${rest.map(q).join(" ")}]`);
};

const FORMAT_FLAG: FlagSpec = {
  format: { type: "string" },
  o: { type: "string" },
  output: { type: "string" },
};

const sortKeys = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
};

/** Juju's cmd.Output: json, yaml, or "smart" (plain strings, True/False, YAML otherwise). */
function formatOutput(format: string, value: unknown): string {
  const sorted = sortKeys(value);
  switch (format) {
    case "json":
      return `${JSON.stringify(sorted ?? null)}\n`;
    case "yaml":
      return value === null || value === undefined ? "" : stringifyYaml(sorted);
    case "smart":
      if (value === null || value === undefined) return "";
      if (typeof value === "string") return `${value}\n`;
      if (typeof value === "boolean") return value ? "True\n" : "False\n";
      if (typeof value === "number") return `${value}\n`;
      return stringifyYaml(sorted);
    default:
      throw new UsageError(
        `invalid value ${q(format)} for flag --format: unknown format ${q(format)}`,
      );
  }
}

/** The flags relation-list and relation-get share: an output format, the relation, --app. */
const RELATION_READ_FLAGS: FlagSpec = {
  ...FORMAT_FLAG,
  r: { type: "string" },
  relation: { type: "string" },
  app: { type: "boolean" },
};

const outputFormat = (flags: Record<string, string | boolean>): string => {
  const format = (flags.format ?? flags.output ?? flags.o ?? "smart") as string;
  formatOutput(format, null); // validate early: a bad format is a usage error
  return format;
};

const UNIT_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]*[a-z][a-z0-9]*)*\/\d+$/;
const APP_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]*[a-z][a-z0-9]*)*$/;
const ACTION_KEY = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const RESERVED = ["stdout", "stdout-encoding", "stderr", "stderr-encoding"];
const LOG_LEVELS = ["TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const SETTABLE = ["maintenance", "blocked", "waiting", "active"];

interface Invocation {
  state: FakeUnitState;
  args: readonly string[];
  stdin: string;
  env: FakeToolEnv;
  cwd: string;
  out: string[];
}

const fakeId = (r: FakeRelation): string => `${r.endpoint}:${r.id}`;

function pendingOf(state: FakeUnitState): PendingChanges {
  state.pending ??= { stored: {}, relations: {} };
  return state.pending;
}

/** The unit state as the running hook sees it: committed, with its own writes on top. */
export function storedView(state: FakeUnitState): Record<string, string> {
  const view = { ...state.stored };
  for (const [k, v] of Object.entries(state.pending?.stored ?? {})) {
    if (v === null) delete view[k];
    else view[k] = v;
  }
  return view;
}

/** A local settings bag as the running hook sees it. */
function localView(
  state: FakeUnitState,
  relation: FakeRelation,
  app: boolean,
): Record<string, string> {
  const view = { ...(app ? relation.localAppData : relation.localUnitData) };
  const own = state.pending?.relations[String(relation.id)];
  for (const [k, v] of Object.entries((app ? own?.app : own?.unit) ?? {})) {
    if (v === "") delete view[k];
    else view[k] = v;
  }
  return view;
}

const bytes = (s: string): number => Buffer.byteLength(s, "utf8");

/**
 * Ends a hook as Juju's HookContext.Flush does: exit 0 commits the hook's stored-state and
 * relation writes (unless the state would exceed max-charm-state-size, which fails the hook);
 * any other exit drops them. Returns the reason a commit was refused, or null.
 */
export function commitHook(state: FakeUnitState, exitCode: number): string | null {
  finishAction(state);
  const pending = state.pending;
  state.pending = null;
  if (!pending || exitCode !== 0) return null;
  const stored = storedView({ ...state, pending });
  const max = state.maxCharmStateSize ?? CHARM_STATE_QUOTA.defaultMaxStateSize;
  const total = Object.entries(stored).reduce((n, [k, v]) => n + bytes(k) + bytes(v), 0);
  if (max > 0 && total > max) {
    const error = `persisting charm state: max allowed size (${max}) exceeded: the unit state would be ${total} bytes`;
    state.flushErrors = [...(state.flushErrors ?? []), error];
    return error;
  }
  for (const id of Object.keys(pending.relations)) {
    const relation = state.relations.find((r) => String(r.id) === id);
    if (!relation) continue;
    for (const app of [false, true]) {
      const bag = localView({ ...state, pending }, relation, app);
      const size = Object.entries(bag).reduce((n, [k, v]) => n + bytes(k) + bytes(v), 0);
      if (size > RELATION_SETTINGS_QUOTA.maxSize) {
        const error = `writing relation ${fakeId(relation)} ${app ? "application" : "unit"} settings: ${size} bytes exceed the ${RELATION_SETTINGS_QUOTA.maxSize} bytes the controller stores for one settings document`;
        state.flushErrors = [...(state.flushErrors ?? []), error];
        return error;
      }
    }
  }
  state.stored = stored;
  for (const id of Object.keys(pending.relations)) {
    const relation = state.relations.find((r) => String(r.id) === id);
    if (!relation) continue;
    relation.localUnitData = localView({ ...state, pending }, relation, false);
    relation.localAppData = localView({ ...state, pending }, relation, true);
  }
  return null;
}

/** The controller stores the running action's results, or refuses them (ACTION_RESULTS_QUOTA):
 * the action then fails, its results lost. */
function finishAction(state: FakeUnitState): void {
  const action = state.runningAction ? state.actions[state.runningAction] : undefined;
  state.runningAction = null;
  if (!action) return;
  const max = state.maxActionResultsSize ?? ACTION_RESULTS_QUOTA.maxSize;
  const size = bytes(JSON.stringify(action.results));
  if (size <= max) return;
  action.results = {};
  action.failed = true;
  action.failureMessage = `cannot finish action: its results (${size} bytes) exceed the ${max} bytes the controller can store for one action`;
}

function hookRelation(inv: Invocation): FakeRelation | null {
  const raw = inv.env.JUJU_RELATION_ID;
  if (!raw) return null;
  const id = Number(raw.slice(raw.lastIndexOf(":") + 1));
  return inv.state.relations.find((r) => r.id === id) ?? null;
}

function relationFlagValue(
  inv: Invocation,
  flags: Record<string, string | boolean>,
): FakeRelation | null {
  const raw = (flags.relation ?? flags.r) as string | undefined;
  if (raw === undefined) return hookRelation(inv);
  const flag = flags.relation !== undefined ? "--relation" : "-r";
  const tail = raw.slice(raw.lastIndexOf(":") + 1);
  if (!/^-?\d+$/.test(tail))
    throw new UsageError(`invalid value ${q(raw)} for flag ${flag}: invalid relation id`);
  const relation = inv.state.relations.find((r) => r.id === Number(tail));
  if (!relation)
    throw new UsageError(`invalid value ${q(raw)} for flag ${flag}: unknown relation id`);
  return relation;
}

function currentAction(inv: Invocation): FakeAction {
  const id = inv.env.JUJU_ACTION_UUID;
  const action = id ? inv.state.actions[id] : undefined;
  if (!action) throw new RunError("not running an action");
  return action;
}

/** key=value arguments, as juju/utils keyvalues.Parse(args, true). */
function parseKeyValues(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf("=");
    if (eq < 1) throw new UsageError(`expected "key=value", got ${q(arg)}`);
    const key = arg.slice(0, eq);
    if (key in out) throw new UsageError(`key ${q(key)} specified more than once`);
    out[key] = arg.slice(eq + 1);
  }
  return out;
}

/** A --file argument: a YAML (or JSON) map whose scalar values become strings, as goyaml does. */
function readSettingsFile(inv: Invocation, path: string): Record<string, string> {
  let text: string;
  if (path === "-") text = inv.stdin;
  else {
    try {
      text = readFileSync(resolve(inv.cwd, path), "utf8");
    } catch (e) {
      throw new RunError(
        `open ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message}`,
      );
    }
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    try {
      data = parseYaml(text);
    } catch (e) {
      throw new RunError(`yaml: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new RunError(
      "yaml: unmarshal errors:\n  line 1: cannot unmarshal into map[string]string",
    );
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    if (v !== null && typeof v === "object") {
      throw new RunError(
        `yaml: unmarshal errors:\n  cannot unmarshal ${Array.isArray(v) ? "!!seq" : "!!map"} into string (key ${q(k)})`,
      );
    }
    out[k] = v === null ? "" : String(v);
  }
  return out;
}

function setNested(target: Record<string, unknown>, keys: string[], value: string): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (next === null || typeof next !== "object") node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

type Tool = (inv: Invocation) => void;

const TOOLS: Record<string, Tool> = {
  "config-get": (inv) => {
    const { flags, positionals } = parseFlags(
      { ...FORMAT_FLAG, a: { type: "boolean" }, all: { type: "boolean" } },
      inv.args,
    );
    const format = outputFormat(flags);
    const all = Boolean(flags.a || flags.all);
    const key = positionals[0] ?? "";
    if (key !== "" && all)
      throw new UsageError(`cannot use argument --all together with key ${q(key)}`);
    checkEmpty(positionals.slice(1));
    if (key === "") {
      const settings = Object.fromEntries(
        Object.entries(inv.state.config).filter(([, v]) => all || (v !== null && v !== undefined)),
      );
      inv.out.push(formatOutput(format, settings));
    } else {
      inv.out.push(formatOutput(format, inv.state.config[key] ?? null));
    }
  },

  "action-get": (inv) => {
    const { flags, positionals } = parseFlags(FORMAT_FLAG, inv.args);
    const format = outputFormat(flags);
    checkEmpty(positionals.slice(1));
    const action = currentAction(inv);
    if (positionals.length === 0) {
      inv.out.push(formatOutput(format, action.params ?? {}));
      return;
    }
    let node: unknown = action.params;
    for (const key of positionals[0]!.split(".")) {
      node = node && typeof node === "object" ? (node as Record<string, unknown>)[key] : undefined;
    }
    inv.out.push(formatOutput(format, node ?? null));
  },

  "action-set": (inv) => {
    const { positionals } = parseFlags({}, inv.args);
    const pairs: Array<[string[], string]> = [];
    for (const arg of positionals) {
      const eq = arg.indexOf("=");
      if (eq < 0) throw new UsageError(`argument ${q(arg)} must be of the form key...=value`);
      const keys = arg.slice(0, eq).split(".");
      for (const key of keys) {
        if (!ACTION_KEY.test(key)) {
          throw new UsageError(
            `key ${q(key)} must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric and hyphens`,
          );
        }
        if (RESERVED.includes(key))
          throw new UsageError(`cannot set reserved action key ${q(key)}`);
      }
      pairs.push([keys, arg.slice(eq + 1)]);
    }
    const action = currentAction(inv);
    for (const [keys, value] of pairs) setNested(action.results, keys, value);
  },

  "action-fail": (inv) => {
    const { positionals } = parseFlags({}, inv.args);
    let message = "action failed without reason given, check action for errors";
    if (positionals.length > 0) {
      message = positionals[0]!;
      checkEmpty(positionals.slice(1));
    }
    const action = currentAction(inv);
    action.failed = true;
    action.failureMessage = message;
  },

  "action-log": (inv) => {
    const { positionals } = parseFlags({}, inv.args);
    if (positionals.length === 0) throw new UsageError("no message specified");
    currentAction(inv).logs.push(positionals.join(" "));
  },

  "status-set": (inv) => {
    const { flags, positionals } = parseFlags({ application: { type: "boolean" } }, inv.args);
    if (positionals.length < 1) throw new UsageError("invalid args, require <status> [message]");
    const status = positionals[0]!;
    if (!SETTABLE.includes(status)) {
      throw new UsageError(`invalid status ${q(status)}, expected one of [${SETTABLE.join(" ")}]`);
    }
    const message = positionals[1] ?? "";
    checkEmpty(positionals.slice(2));
    const application = Boolean(flags.application);
    if (application && !inv.state.leader) throw new RunError("this unit is not the leader");
    if (application) inv.state.appStatus = { status, message };
    else inv.state.unitStatus = { status, message };
    inv.state.statusHistory.push({ status, message, application });
  },

  "status-get": (inv) => {
    const { flags, positionals } = parseFlags(
      { ...FORMAT_FLAG, application: { type: "boolean" }, "include-data": { type: "boolean" } },
      inv.args,
    );
    const format = outputFormat(flags);
    checkEmpty(positionals);
    const s = flags.application ? inv.state.appStatus : inv.state.unitStatus;
    inv.out.push(
      formatOutput(
        format,
        flags["include-data"]
          ? { status: s.status, message: s.message, "status-data": {} }
          : s.status,
      ),
    );
  },

  "juju-log": (inv) => {
    const { flags, positionals } = parseFlags(
      {
        debug: { type: "boolean" },
        l: { type: "string" },
        "log-level": { type: "string" },
        format: { type: "string" },
      },
      inv.args,
    );
    if (positionals.length === 0) throw new UsageError("no message specified");
    let level = "INFO";
    if (flags.debug) level = "DEBUG";
    else {
      const wanted = String(flags["log-level"] ?? flags.l ?? "INFO").toUpperCase();
      const normalised = wanted === "WARN" ? "WARNING" : wanted;
      if (LOG_LEVELS.includes(normalised)) level = normalised;
      else
        inv.state.logs.push({
          level: "WARNING",
          message: `Specified log level of ${q(wanted)} is not valid`,
        });
    }
    inv.state.logs.push({ level, message: positionals.join(" ") });
  },

  "relation-ids": (inv) => {
    const { flags, positionals } = parseFlags(FORMAT_FLAG, inv.args);
    const format = outputFormat(flags);
    const name = positionals[0] ?? hookRelation(inv)?.endpoint;
    if (!name) throw new UsageError("no endpoint name specified");
    checkEmpty(positionals.slice(1));
    const ids = inv.state.relations
      .filter((r) => r.endpoint === name)
      .map(fakeId)
      .sort();
    inv.out.push(formatOutput(format, ids));
  },

  "relation-list": (inv) => {
    const { flags, positionals } = parseFlags(RELATION_READ_FLAGS, inv.args);
    const format = outputFormat(flags);
    const relation = relationFlagValue(inv, flags);
    if (!relation) throw new UsageError("no relation id specified");
    checkEmpty(positionals);
    inv.out.push(formatOutput(format, flags.app ? relation.remoteApp : [...relation.remoteUnits]));
  },

  "relation-get": (inv) => {
    const { flags, positionals } = parseFlags(RELATION_READ_FLAGS, inv.args);
    const format = outputFormat(flags);
    const relation = relationFlagValue(inv, flags);
    if (!relation) throw new UsageError("no relation id specified");
    const args = [...positionals];
    let key = args.shift() ?? "";
    if (key === "-") key = "";
    let app = Boolean(flags.app);
    let target: string | undefined = args.shift();
    if (target !== undefined) {
      if (app) {
        if (UNIT_NAME.test(target)) target = target.split("/")[0]!;
      } else if (!UNIT_NAME.test(target)) {
        throw new UsageError(
          APP_NAME.test(target)
            ? `expected unit name, got application name ${q(target)}`
            : `invalid unit name ${q(target)}`,
        );
      }
    } else if (app) {
      target = inv.env.JUJU_REMOTE_APP || undefined;
      if (!target) throw new UsageError("no unit or application specified");
    } else if (inv.env.JUJU_REMOTE_UNIT) {
      target = inv.env.JUJU_REMOTE_UNIT;
    } else if (inv.env.JUJU_REMOTE_APP) {
      target = inv.env.JUJU_REMOTE_APP;
      app = true;
    } else {
      throw new UsageError("no unit or application specified");
    }
    checkEmpty(args);
    const localApp = inv.state.unitName.split("/")[0];
    let settings: Record<string, string> | undefined;
    if (!app && target === inv.state.unitName) settings = localView(inv.state, relation, false);
    else if (app && target === localApp) {
      // Juju (apiserver uniter readLocalApplicationSettings): every unit may read its own
      // application's bag in a peer relation; in any other relation only the leader may.
      if (!inv.state.leader && !relation.peer)
        throw new RunError(
          `cannot read settings for application ${q(target)} in relation ${q(fakeId(relation))}: permission denied`,
        );
      settings = localView(inv.state, relation, true);
    } else if (app) settings = target === relation.remoteApp ? relation.remoteAppData : undefined;
    else
      settings =
        relation.remoteUnitsData[target] ??
        (relation.remoteUnits.includes(target) ? {} : undefined);
    if (settings === undefined) {
      throw new RunError(
        `cannot read settings for ${app ? "application" : "unit"} ${q(target)} in relation ${q(fakeId(relation))}: settings not found`,
      );
    }
    inv.out.push(formatOutput(format, key === "" ? { ...settings } : (settings[key] ?? null)));
  },

  "relation-set": (inv) => {
    const { flags, positionals } = parseFlags(
      {
        r: { type: "string" },
        relation: { type: "string" },
        app: { type: "boolean" },
        file: { type: "string" },
        format: { type: "string" },
      },
      inv.args,
    );
    const relation = relationFlagValue(inv, flags);
    if (!relation) throw new UsageError("no relation id specified");
    const overrides = parseKeyValues(positionals);
    const settings = typeof flags.file === "string" ? readSettingsFile(inv, flags.file) : {};
    Object.assign(settings, overrides);
    if (flags.app && !inv.state.leader) throw new RunError("cannot write relation settings");
    // Committed when the hook exits 0 (commitHook), dropped otherwise.
    const pending = pendingOf(inv.state);
    pending.relations[String(relation.id)] ??= { unit: {}, app: {} };
    Object.assign(pending.relations[String(relation.id)]![flags.app ? "app" : "unit"], settings);
  },

  "is-leader": (inv) => {
    const { flags, positionals } = parseFlags(FORMAT_FLAG, inv.args);
    const format = outputFormat(flags);
    checkEmpty(positionals);
    inv.out.push(formatOutput(format, inv.state.leader));
  },

  "application-version-set": (inv) => {
    const { positionals } = parseFlags({}, inv.args);
    if (positionals.length === 0) throw new UsageError("no version specified");
    checkEmpty(positionals.slice(1));
    inv.state.workloadVersion = positionals[0]!;
  },

  "state-get": (inv) => {
    const { flags, positionals } = parseFlags(
      { ...FORMAT_FLAG, strict: { type: "boolean" } },
      inv.args,
    );
    const format = outputFormat(flags);
    let key = positionals[0] ?? "";
    if (key === "-") key = "";
    checkEmpty(positionals.slice(1));
    const stored = storedView(inv.state);
    if (key === "") {
      inv.out.push(formatOutput(format, stored));
      return;
    }
    if (!(key in stored) && flags.strict) throw new RunError(`${q(key)} not found`);
    // Juju prints an empty string for a missing key, not null.
    inv.out.push(formatOutput(format, stored[key] ?? ""));
  },

  "state-set": (inv) => {
    const { flags, positionals } = parseFlags({ file: { type: "string" } }, inv.args);
    const overrides = parseKeyValues(positionals);
    const values = typeof flags.file === "string" ? readSettingsFile(inv, flags.file) : {};
    Object.assign(values, overrides);
    // quota.CheckTupleSize(key, value, 256, 64 KiB), checked as each call runs (HookContext).
    for (const [k, v] of Object.entries(values)) {
      if (bytes(k) > CHARM_STATE_QUOTA.maxKeySize)
        throw new RunError(`max allowed key length (${CHARM_STATE_QUOTA.maxKeySize}) exceeded`);
      if (bytes(v) > CHARM_STATE_QUOTA.maxValueSize)
        throw new RunError(`max allowed value length (${CHARM_STATE_QUOTA.maxValueSize}) exceeded`);
    }
    Object.assign(pendingOf(inv.state).stored, values);
  },

  "state-delete": (inv) => {
    const { positionals } = parseFlags({}, inv.args);
    if (positionals.length === 0) throw new UsageError("specify a key");
    checkEmpty(positionals.slice(1));
    pendingOf(inv.state).stored[positionals[0]!] = null;
  },

  "juju-reboot": (inv) => {
    const { flags, positionals } = parseFlags({ now: { type: "boolean" } }, inv.args);
    checkEmpty(positionals);
    if (inv.env.JUJU_ACTION_UUID)
      throw new RunError("juju-reboot is not supported when running an action.");
    inv.state.reboot = flags.now ? "now" : (inv.state.reboot ?? "after-hook");
  },
};

/**
 * Runs one fake hook tool against state (mutating it) and records the call. Unknown tool
 * names behave like a missing executable (exit 127).
 */
export function runFakeHookTool(
  state: FakeUnitState,
  argv: readonly string[],
  options: { stdin?: string; env?: FakeToolEnv; cwd?: string; caller?: ToolCaller } = {},
): HookToolResult {
  const [tool = "", ...args] = argv;
  // The tool never starts (execve fails): nothing is recorded, as Juju never hears of it. The
  // process-level simulator gets this from the kernel itself; this is the in-memory twin, with
  // the message createSpawnRunner gives for it.
  const tooBig = execArgProblem(argv, options.env);
  if (tooBig)
    return {
      exitCode: 127,
      stdout: "",
      stderr: `cannot run ${tool}: spawnSync ${tool} E2BIG (${tooBig})`,
    };
  const out: string[] = [];
  let result: HookToolResult;
  const impl = TOOLS[tool];
  if (!impl) {
    result = { exitCode: 127, stdout: "", stderr: `${tool}: command not found\n` };
  } else {
    try {
      impl({
        state,
        args,
        stdin: options.stdin ?? "",
        env: options.env ?? {},
        cwd: options.cwd ?? process.cwd(),
        out,
      });
      result = { exitCode: 0, stdout: out.join(""), stderr: "" };
    } catch (e) {
      if (e instanceof UsageError)
        result = { exitCode: 2, stdout: "", stderr: `ERROR ${e.message}\n` };
      else if (e instanceof RunError)
        result = { exitCode: 1, stdout: "", stderr: `ERROR ${e.message}\n` };
      else throw e;
    }
  }
  const call: FakeToolCall = { argv: [...argv], exitCode: result.exitCode };
  if (options.stdin) call.stdin = options.stdin;
  if (options.caller) call.caller = options.caller;
  state.calls.push(call);
  return result;
}
