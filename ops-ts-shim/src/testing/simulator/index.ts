// A process-level Juju unit for integration tests: real executables named like Juju's hook
// tools, on a PATH directory, backed by one JSON state file. Run the built `dispatch` with
// env(event) as its environment and it talks to these tools exactly as it would to Juju's.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";
import { type ActionsSpec, type ConfigSpec, parseDeclaration } from "../../metadata";
import { enqueueActionParams } from "../action-params";
import { commitHook, FAKE_TOOL_NAMES } from "../fake-juju";
import { type PeerEvent, propagatePeerData } from "../peers";
import { buildFakeUnit, type HookEnvOptions, hookEnvironment } from "../unit-spec";
import { readStateFile, updateStateFile, writeStateFile } from "./state-file";
import type { UnitSimulator, UnitSimulatorOptions } from "./unit";

export {
  createModelSimulator,
  type ModelHookRun,
  type ModelSimulator,
  type ModelSimulatorOptions,
  type ModelUnit,
} from "./model";

export type { SimulatorState, UnitSimulator, UnitSimulatorOptions } from "./unit";

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
