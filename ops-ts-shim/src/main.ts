// One dispatch, start to finish: read the Juju context, name the event, build the charm, run
// its handlers, collect status, commit stored state. Returns the exit code for the caller to
// put in process.exitCode (never process.exit(): output must flush).
import { JujuContext } from "./context";
import {
  ActionEvent,
  type CharmClass,
  Framework,
  HookEvent,
  RELATION_EVENT_KINDS,
  RelationEvent,
  type RelationEventKind,
  STANDARD_HOOKS,
} from "./framework";
import * as hookcmds from "./hookcmds";
import {
  type ActionsSpec,
  type CharmMetadata,
  endpointsOf,
  loadActions,
  loadMetadata,
} from "./metadata";
import { Model } from "./model";
import {
  createSpawnRunner,
  type HookToolRunner,
  PREFETCHED_ENV,
  readStdin,
  withPrefetched,
} from "./runner";
import { dispatchStoppable } from "./stop";

/** Validates action params; the shape of an ajv (standalone) validate function. */
export interface ParamValidator {
  (params: unknown): boolean;
  errors?: ReadonlyArray<{ instancePath?: string; message?: string }> | null;
}

/** Everything main() can be given instead of reading it from the process. */
export interface MainOptions {
  /** Environment to read JUJU_* from (default process.env; also the tools' environment). */
  env?: NodeJS.ProcessEnv;
  /** How hook tools are run (default: spawnSync on PATH, first serving any results the dispatch
   * script piped in when it set OPS_TS_PREFETCHED=stdin; see withPrefetched). */
  runner?: HookToolRunner;
  /** metadata.yaml, parsed (default: read from JUJU_CHARM_DIR when needed). */
  metadata?: CharmMetadata;
  /** actions.yaml, parsed (default: read from JUJU_CHARM_DIR for actions). */
  actions?: ActionsSpec;
  /** Per action name: checked (and may fill defaults) before any handler runs. */
  actionParamValidators?: Record<string, ParamValidator>;
  /** The dispatch script's prefetched lines (OPS_TS_PREFETCHED=stdin), when the caller has read
   * stdin itself (a loader that looked at them first); default: read from stdin when needed. */
  prefetched?: string;
  /** Told of an error the charm raised (the testing harness raises it again: an action that
   * raised exits 0, so the exit code alone does not say). */
  onUncaught?: (error: unknown) => void;
  /** Actions whose handlers look at stopSignal() between steps: dispatched in a worker thread,
   * so that SIGTERM (the agent or host stopping) is noticed while they run instead of killing them
   * mid-step (see stop.ts). Only for a real dispatch (no env or runner given). */
  stoppableActions?: readonly string[];
}

/** The dispatch path names an event this charm does not have. */
export class UnknownEventError extends Error {
  override name = "UnknownEventError";
}

/** What the dispatch path resolved to. */
export type ResolvedEvent =
  | { type: "hook"; name: string }
  | { type: "relation"; name: string; endpoint: string; kind: RelationEventKind }
  | { type: "action"; name: string; action: string };

/**
 * Maps `hooks/<name>` or `actions/<name>` to an event, refusing anything the charm does not
 * declare: a hook that is neither standard nor `<endpoint>-relation-<kind>` for an endpoint in
 * metadata.yaml, or an action missing from actions.yaml.
 */
export function resolveEvent(
  dispatchPath: string,
  metadata: () => CharmMetadata,
  actions: () => ActionsSpec,
): ResolvedEvent {
  const slash = dispatchPath.indexOf("/");
  const dir = dispatchPath.slice(0, slash);
  const name = dispatchPath.slice(slash + 1);
  if (slash < 0 || name === "" || name.includes("/")) {
    throw new UnknownEventError(
      `JUJU_DISPATCH_PATH "${dispatchPath}" is neither hooks/<name> nor actions/<name>`,
    );
  }
  if (dir === "actions") {
    const declared = Object.keys(actions());
    if (!declared.includes(name)) {
      throw new UnknownEventError(
        `unknown action "${name}": actions.yaml declares ${declared.join(", ") || "no actions"}; is the deployed charm older than the command?`,
      );
    }
    return { type: "action", name: `${name}-action`, action: name };
  }
  if (dir !== "hooks") {
    throw new UnknownEventError(
      `JUJU_DISPATCH_PATH "${dispatchPath}" is neither hooks/<name> nor actions/<name>`,
    );
  }
  if (STANDARD_HOOKS.includes(name)) return { type: "hook", name };
  const match = /^(.+)-relation-([a-z]+)$/.exec(name);
  const kind = match?.[2] as RelationEventKind | undefined;
  const endpoints = endpointsOf(metadata());
  if (match && kind && RELATION_EVENT_KINDS.includes(kind) && endpoints.has(match[1]!)) {
    return { type: "relation", name, endpoint: match[1]!, kind };
  }
  const declared = [...endpoints.keys()].join(", ") || "none";
  throw new UnknownEventError(
    `unknown hook "${name}": not a standard Juju hook, nor <endpoint>-relation-<created|joined|changed|departed|broken> for an endpoint in metadata.yaml (endpoints: ${declared})`,
  );
}

const describe = (e: unknown): { message: string; stack: string | null } => {
  if (e instanceof Error) return { message: `${e.name}: ${e.message}`, stack: e.stack ?? null };
  return { message: String(e), stack: null };
};

/** Logs without ever throwing (the hook is already failing; stderr is the last resort). */
const safeLog = (runner: HookToolRunner, level: hookcmds.LogLevel, message: string): void => {
  try {
    hookcmds.jujuLog(runner, level, message);
  } catch {
    process.stderr.write(`${level} ${message}\n`);
  }
};

function defaultRunner(env: NodeJS.ProcessEnv, prefetched: string | undefined): HookToolRunner {
  const spawn = createSpawnRunner(env);
  if (env[PREFETCHED_ENV] !== "stdin") return spawn;
  // Meant for this process only: not for the tools and commands it starts.
  delete env[PREFETCHED_ENV];
  return withPrefetched(spawn, prefetched === undefined ? readStdin : () => prefetched);
}

/** Runs one Juju dispatch of charmClass and returns the process exit code (0 or 1), in phases,
 * as ops' main does: (1) read the environment once and resolve which event this is, (2) build the
 * event (buildEvent), (3) emit it, collect status and commit stored state (emitAndCommit). */
export function main(charmClass: CharmClass, options: MainOptions = {}): number {
  if (stoppable(options)) {
    // This thread only watches for signals; the worker runs this same script and dispatches.
    // Its exit code becomes the process's when it ends (process.exitCode is set then).
    dispatchStoppable(process.argv[1]!, process.env.JUJU_DISPATCH_PATH ?? "");
    return 0;
  }
  const env = options.env ?? process.env;
  const runner = options.runner ?? defaultRunner(env, options.prefetched);
  let context: JujuContext;
  try {
    context = JujuContext.fromEnv(env);
  } catch (e) {
    const { message } = describe(e);
    process.stderr.write(`${message}\n`);
    safeLog(runner, "ERROR", message);
    return 1;
  }

  let metadataCache = options.metadata;
  const metadata = (): CharmMetadata => {
    metadataCache ??= loadMetadata(context.charmDir);
    return metadataCache;
  };
  const actions = (): ActionsSpec => options.actions ?? loadActions(context.charmDir);
  let eventName = context.dispatchPath;
  let isAction = context.dispatchPath.startsWith("actions/");
  let resolved: ResolvedEvent;
  try {
    resolved = resolveEvent(context.dispatchPath, metadata, actions);
  } catch (e) {
    if (!(e instanceof UnknownEventError))
      return failed(runner, context, eventName, isAction, e, options);
    // As ops does: an event the charm does not know is not an error of the unit (a newer Juju
    // may run hooks this charm predates). Say so and exit 0; an action still gets its answer.
    const message = `${context.dispatchPath} ignored: ${e.message}`;
    safeLog(runner, "WARNING", message);
    if (isAction) failAction(runner, message);
    return 0;
  }
  eventName = resolved.name;
  isAction = resolved.type === "action";
  try {
    const model = new Model({ runner, context, metadata });
    const framework = new Framework(model, context, runner);
    // The charm constructor registers observers; an error there is reported like any other.
    new charmClass(framework);
    const built = buildEvent(resolved, context, model, runner, options);
    emitAndCommit(framework, model, built);
    return 0;
  } catch (e) {
    return failed(runner, context, eventName, isAction, e, options);
  }
}

/** The event to emit, and whether its handlers run (not for an action whose params the charm's
 * validator refused: action-fail has already said why). */
interface BuiltEvent {
  event: HookEvent;
  runHandlers: boolean;
}

/** Phase 2 of main(): the event object for the resolved dispatch, with what Juju says about it
 * (an action's params, checked; a relation's id and units). */
function buildEvent(
  resolved: ResolvedEvent,
  context: JujuContext,
  model: Model,
  runner: HookToolRunner,
  options: MainOptions,
): BuiltEvent {
  if (resolved.type === "action") {
    const params = hookcmds.actionGet(runner);
    const validate = options.actionParamValidators?.[resolved.action];
    let runHandlers = true;
    if (validate && !validate(params)) {
      const reasons = (validate.errors ?? [])
        // A reason with no path is the charm's own sentence about the params: said as it is.
        .map((err) =>
          err.instancePath
            ? `${err.instancePath} ${err.message ?? "is invalid"}`
            : (err.message ?? "the params are invalid"),
        )
        .join("; ");
      hookcmds.actionFail(
        runner,
        `invalid parameters for ${resolved.action}: ${reasons || "rejected by the validator"}; see \`juju actions --schema\``,
      );
      runHandlers = false;
    }
    return {
      event: new ActionEvent(resolved.name, resolved.action, context.actionId, params, runner),
      runHandlers,
    };
  }
  if (resolved.type === "relation") {
    if (context.relationId === null) {
      throw new UnknownEventError(`${resolved.name} without JUJU_RELATION_ID; Juju always sets it`);
    }
    return {
      event: new RelationEvent(
        resolved.name,
        `relation-${resolved.kind}`,
        model,
        resolved.endpoint,
        context.relationId,
        context.remoteUnit,
        context.remoteApp,
        context.departingUnit,
      ),
      runHandlers: true,
    };
  }
  return { event: new HookEvent(resolved.name, resolved.name), runHandlers: true };
}

/** Phase 3 of main(): the handlers, then collect-status, then stored state (what changed). */
function emitAndCommit(framework: Framework, model: Model, built: BuiltEvent): void {
  if (built.runHandlers) framework.emit(built.event);
  framework.collectStatus();
  model.stored.commit();
}

/** Whether this is the main thread of a real dispatch of an action listed as stoppable. */
function stoppable(options: MainOptions): boolean {
  if (options.env || options.runner || !options.stoppableActions) return false;
  const path = process.env.JUJU_DISPATCH_PATH ?? "";
  if (
    !path.startsWith("actions/") ||
    !options.stoppableActions.includes(path.slice("actions/".length))
  )
    return false;
  // Loaded only here: worker_threads costs every hook a millisecond it never uses.
  const { isMainThread } = require("node:worker_threads") as typeof import("node:worker_threads");
  return isMainThread;
}

/** action-fail that never throws: the message also goes to stderr, which Juju keeps too. */
function failAction(runner: HookToolRunner, message: string): void {
  process.stderr.write(`${message}\n`);
  try {
    hookcmds.actionFail(runner, message);
  } catch {
    // stderr above already carries it.
  }
}

/**
 * An uncaught error: ERROR with the message, the stack at DEBUG, nothing committed.
 * A hook exits 1 (Juju marks the unit in error and retries it). An action fails with the message
 * and exits 0: Juju replaces the message of an action whose process exits non-zero with
 * "exit status 1", even one set with action-fail, and the operator would lose the reason.
 */
function failed(
  runner: HookToolRunner,
  context: JujuContext,
  eventName: string,
  isAction: boolean,
  e: unknown,
  options: MainOptions,
): number {
  options.onUncaught?.(e);
  const { message, stack } = describe(e);
  safeLog(runner, "ERROR", `${eventName} failed: ${message}`);
  // A stack helps with charm bugs, not with a dispatch the charm does not know.
  if (stack && !(e instanceof UnknownEventError)) safeLog(runner, "DEBUG", stack);
  if (context.debug) process.stderr.write(`${stack ?? message}\n`);
  if (!isAction) return 1;
  failAction(runner, message);
  return 0;
}
