// A process-level Juju unit for integration tests: real executables named like Juju's hook
// tools, on a PATH directory, backed by one JSON state file. Run the built `dispatch` with
// env(event) as its environment and it talks to these tools exactly as it would to Juju's.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";
import { type ActionsSpec, type ConfigSpec, parseDeclaration } from "../../metadata";
import { enqueueActionParams } from "../action-params";
import { commitHook, FAKE_TOOL_NAMES, type FakeAction, type FakeUnitState } from "../fake-juju";
import { type PeerEvent, propagatePeerData } from "../peers";
import {
  buildFakeUnit,
  type EventSpec,
  type HookEnvOptions,
  hookEnvironment,
  type RelationSpec,
} from "../unit-spec";
import { readStateFile, updateStateFile, writeStateFile } from "./state-file";

export {
  createModelSimulator,
  type ModelHookRun,
  type ModelSimulator,
  type ModelSimulatorOptions,
  type ModelUnit,
} from "./model";

/** How the simulated unit starts out. */
export interface UnitSimulatorOptions {
  /** A directory of the test's own (a temp dir); bin/, state.json and the tool script go here. */
  dir: string;
  /** Default `unit/0`. */
  unitName?: string;
  /** Options set by the operator. */
  config?: Record<string, unknown>;
  /** config.yaml (text or parsed): defaults, and the unset options `config-get --all` shows. */
  configYaml?: string | ConfigSpec;
  relations?: readonly RelationSpec[];
  leader?: boolean;
  /** Stored state as the charm sees it (JSON values). */
  stored?: Record<string, unknown>;
  /** Params for action events whose env() call gives none. */
  actionParams?: Record<string, unknown>;
  /** JUJU_CHARM_DIR (default `<dir>/charm`). */
  charmDir?: string;
  /** JUJU_PRINCIPAL_UNIT, for subordinates. */
  principalUnit?: string;
  jujuVersion?: string;
  /** The model's max-charm-state-size (default Juju's 2 MiB). */
  maxCharmStateSize?: number;
  /** The most one action's results may weigh (default Juju's: ACTION_RESULTS_QUOTA). */
  maxActionResultsSize?: number;
  /** actions.yaml (text or parsed): when given, env() validates an action's params against it
   * and inserts its defaults, as Juju does when the action is enqueued; invalid params throw
   * ActionParamsError (`juju run` fails) and never reach the charm. */
  actionsYaml?: string | ActionsSpec;
}

/** The state file's content, plus the most recent action run for convenience. */
export interface SimulatorState extends FakeUnitState {
  lastAction: FakeAction | null;
}

/** A running simulated unit. */
export interface UnitSimulator {
  /** Directory holding one executable per hook tool; put it first on PATH. */
  readonly binDir: string;
  readonly stateFile: string;
  readonly charmDir: string;
  /**
   * The environment Juju would give the dispatch for this event: JUJU_* as Juju sets them and
   * PATH = binDir + (options.path ?? process.env.PATH). Action events register the action run
   * (params from the event, else actionParams). Nothing of process.env but PATH is inherited
   * unless inherit is true.
   */
  env(
    event: EventSpec,
    options?: { path?: string; inherit?: boolean; extra?: Record<string, string> },
  ): NodeJS.ProcessEnv;
  /**
   * Ends the dispatch env() began, as Juju does when the process exits: exit 0 commits its
   * stored-state and relation writes, anything else drops them. Returns why Juju refused to
   * commit (the state over max-charm-state-size), or null. A dispatch env() began and nobody
   * finished is committed as a success when env() starts the next one (benchmarks that only
   * time a dispatch need not care; tests of failure call finish).
   */
  finish(exitCode: number | null): string | null;
  /** The state file, parsed. */
  readState(): SimulatorState;
  /** Changes the state between hooks (e.g. new config, a remote unit joining). */
  updateState(change: (state: FakeUnitState) => void): void;
}

let toolScript: string | null = null;

/** The fake tools bundled into one self-contained CommonJS file (built once per process). */
function fakeToolScript(): string {
  if (toolScript === null) {
    const entry = join(dirname(fileURLToPath(import.meta.url)), "tool-main.ts");
    const result = buildSync({
      entryPoints: [entry],
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node18",
      write: false,
      logLevel: "silent",
      legalComments: "none",
    });
    toolScript = result.outputFiles[0]!.text;
  }
  return toolScript;
}

const shQuote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;

/** Creates the simulated unit's tools and state under options.dir. */
export function createUnitSimulator(options: UnitSimulatorOptions): UnitSimulator {
  const dir = options.dir;
  const binDir = join(dir, "bin");
  const stateFile = join(dir, "juju-state.json");
  const scriptFile = join(dir, "fake-juju.cjs");
  const charmDir = options.charmDir ?? join(dir, "charm");
  mkdirSync(binDir, { recursive: true });
  writeFileSync(scriptFile, fakeToolScript());
  for (const tool of FAKE_TOOL_NAMES) {
    // An absolute interpreter: the charm may run with no node on PATH at all.
    const wrapper = `#!/bin/sh\nexec ${shQuote(process.execPath)} ${shQuote(scriptFile)} ${shQuote(stateFile)} ${tool} "$@"\n`;
    const path = join(binDir, tool);
    writeFileSync(path, wrapper);
    chmodSync(path, 0o755);
  }
  const configSpec = parseDeclaration<ConfigSpec>(options.configYaml, "config.yaml");
  const actionsSpec =
    options.actionsYaml === undefined
      ? null
      : parseDeclaration<ActionsSpec>(options.actionsYaml, "actions.yaml");
  const initial = buildFakeUnit({
    unitName: options.unitName ?? "unit/0",
    leader: options.leader,
    config: options.config,
    configSpec,
    relations: options.relations,
    stored: options.stored,
  });
  if (options.maxCharmStateSize !== undefined)
    initial.maxCharmStateSize = options.maxCharmStateSize;
  if (options.maxActionResultsSize !== undefined)
    initial.maxActionResultsSize = options.maxActionResultsSize;
  writeStateFile(stateFile, initial);
  let dispatches = 0;
  let running = false;
  const envOptions: HookEnvOptions = {
    charmDir,
    principalUnit: options.principalUnit,
    jujuVersion: options.jujuVersion,
  };

  return {
    binDir,
    stateFile,
    charmDir,
    env(event, envOpts = {}) {
      const spec = typeof event === "string" ? { name: event } : event;
      const action = spec.name.endsWith("-action") ? spec.name.slice(0, -"-action".length) : null;
      const given = spec.params ?? options.actionParams ?? {};
      const withParams =
        action === null
          ? spec
          : {
              ...spec,
              params: actionsSpec ? enqueueActionParams(action, actionsSpec, given) : given,
            };
      dispatches += 1;
      const juju = updateStateFile(stateFile, (state) => {
        if (running) commitHook(state, 0);
        return hookEnvironment(state, withParams, { ...envOptions, contextNumber: dispatches });
      });
      running = true;
      const base: NodeJS.ProcessEnv = envOpts.inherit ? { ...process.env } : {};
      for (const key of Object.keys(base)) if (key.startsWith("JUJU_")) delete base[key];
      return {
        ...base,
        ...juju,
        ...(envOpts.extra ?? {}),
        PATH: `${binDir}:${envOpts.path ?? process.env.PATH ?? "/usr/bin:/bin"}`,
      };
    },
    finish(exitCode) {
      running = false;
      return updateStateFile(stateFile, (state) => commitHook(state, exitCode ?? -1));
    },
    readState() {
      const state = readStateFile(stateFile);
      const ids = Object.keys(state.actions);
      const last = ids.length > 0 ? state.actions[ids[ids.length - 1]!]! : null;
      return { ...state, lastAction: last };
    },
    updateState(change) {
      updateStateFile(stateFile, change);
    },
  };
}

/**
 * After a dispatch on `writer` finished: what it committed in its peer relations reaches the
 * other simulated units of its application (their state files), as Juju's controller delivers
 * it, and the relation-changed hooks Juju would run on them are returned (run each with that
 * unit's env(), then finish() and syncPeers again, until none is left).
 */
export function syncPeers(units: readonly UnitSimulator[], writer: UnitSimulator): PeerEvent[] {
  const states = units.map((u) => readStateFile(u.stateFile));
  const writerName = readStateFile(writer.stateFile).unitName;
  const events = propagatePeerData(states, writerName);
  units.forEach((u, i) => {
    if (u === writer) return;
    updateStateFile(u.stateFile, (state) => {
      state.relations = states[i]!.relations;
    });
  });
  return events;
}
