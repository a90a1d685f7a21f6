// Scenario-style testing: a state goes in, one event runs through the real main() and Model
// code against an in-memory Juju, a new state comes out. Nothing is mocked above the hook-tool
// boundary, so what passes here is what the charm does under Juju.
import type { CharmClass } from "../framework";
import type { ParamValidator } from "../main";
import { main } from "../main";
import {
  type ActionsSpec,
  type CharmMetadata,
  type ConfigSpec,
  parseDeclaration,
} from "../metadata";
import { SHIM_STATE_PREFIX, StatusBase, type StatusName } from "../model";
import type { HookToolRunner } from "../runner";
import { enqueueActionParams } from "./action-params";
import { type CharmSpec, checkConsistency } from "./consistency";
import { commitHook, type FakeRelation, type FakeUnitState, runFakeHookTool } from "./fake-juju";
import {
  buildFakeUnit,
  classifyEvent,
  type EventSpec,
  hookEnvironment,
  type RelationSpec,
} from "./unit-spec";

/** A relation in a scenario state (see RelationSpec for defaults). */
export type RelationState = RelationSpec;

/** What the unit looks like before the event. */
export interface State {
  config?: Record<string, unknown>;
  leader?: boolean;
  relations?: readonly RelationState[];
  /** Stored state as the charm reads it (JSON values). */
  stored?: Record<string, unknown>;
  /** Params of the action being run (action events only). */
  actionParams?: Record<string, unknown>;
  /** The status the charm set in an earlier hook (so an unchanged status is not set again). */
  status?: StatusBase;
  /** The workload version the charm set in an earlier hook. */
  workloadVersion?: string;
}

/** A relation after the event, every field filled in (the fake controller's own record): what
 * the charm wrote is in localUnitData/localAppData. */
export type RelationOutput = FakeRelation;

/** What the unit looks like after the event. Can be passed to the next run. */
export interface OutputState extends State {
  config: Record<string, unknown>;
  leader: boolean;
  relations: RelationOutput[];
  stored: Record<string, unknown>;
  /** The unit's workload status now (unknown if nothing ever set one). */
  unitStatus: StatusBase;
  /** The status to carry into the next run (as unitStatus). */
  status: StatusBase;
  workloadVersion?: string;
  /** Nested action results, as `juju run` shows them (null outside actions). */
  actionResults: Record<string, unknown> | null;
  /** The action-fail message, or null. */
  actionFailure: string | null;
  actionLogs: string[];
  logs: Array<{ level: string; message: string }>;
  /** argv of every hook tool called, in order. */
  hookToolCalls: string[][];
  /** `juju-reboot` requested? */
  reboot: "after-hook" | "now" | null;
  /** What main() returned. */
  exitCode: number;
}

/** main() returned non-zero: the charm raised. The state is attached for inspection. */
export class UncaughtCharmError extends Error {
  override name = "UncaughtCharmError";
  constructor(
    message: string,
    readonly state: OutputState,
  ) {
    super(message);
  }
}

/** Declarations for the charm under test (YAML text or parsed). */
export interface ContextOptions {
  metadata: string | CharmMetadata;
  /** config.yaml. */
  config?: string | ConfigSpec;
  /** actions.yaml. */
  actions?: string | ActionsSpec;
  actionParamValidators?: Record<string, ParamValidator>;
  /** Default `<metadata name>/0`. */
  unitName?: string;
  /** JUJU_CHARM_DIR given to the charm (nothing is read from it: declarations are passed in). */
  charmDir?: string;
  /** Extra environment for the charm (e.g. PCI_PASSTHROUGH_ROOT); JUJU_* are set by the run. */
  env?: Record<string, string>;
}

const toStatus = (status: { status: string; message: string }): StatusBase =>
  new StatusBase(status.status as StatusName, status.message);

/** Runs a charm class against in-memory Juju states, one event at a time. */
export class Context {
  readonly spec: CharmSpec;
  private readonly unitName: string;
  private runs = 0;

  constructor(
    private readonly charmClass: CharmClass,
    private readonly options: ContextOptions,
  ) {
    const metadata = parseDeclaration<CharmMetadata>(options.metadata, "metadata.yaml");
    this.spec = {
      metadata,
      config: parseDeclaration<ConfigSpec>(options.config, "config.yaml"),
      actions: parseDeclaration<ActionsSpec>(options.actions, "actions.yaml"),
    };
    this.unitName = options.unitName ?? `${metadata.name ?? "charm"}/0`;
  }

  /** Checks the scenario, runs event on state through main(), returns the state after it. */
  run(event: EventSpec, state: State = {}): OutputState {
    checkConsistency(this.spec, event, state);
    const fake = buildFakeUnit({
      unitName: this.unitName,
      leader: state.leader,
      config: state.config,
      configSpec: this.spec.config,
      relations: state.relations,
      stored: state.stored,
      status: state.status,
      workloadVersion: state.workloadVersion,
    });
    const spec = typeof event === "string" ? { name: event } : event;
    const isAction = classifyEvent(spec.name).type === "action";
    this.runs += 1;
    const jujuEnv = hookEnvironment(
      fake,
      isAction
        ? {
            ...spec,
            // Juju validates and fills in defaults when the action is enqueued (the consistency
            // check above already refused invalid ones).
            params: enqueueActionParams(
              classifyEvent(spec.name).type === "action"
                ? spec.name.slice(0, -"-action".length)
                : "",
              this.spec.actions,
              state.actionParams ?? spec.params ?? {},
            ),
          }
        : spec,
      {
        charmDir: this.options.charmDir ?? "/var/lib/juju/agents/unit-0/charm",
        contextNumber: this.runs,
      },
    );
    const env = { ...(this.options.env ?? {}), ...jujuEnv };
    const runner: HookToolRunner = (argv, input) =>
      runFakeHookTool(fake, argv, { stdin: input, env });
    let raised = false;
    const exitCode = main(this.charmClass, {
      env,
      runner,
      metadata: this.spec.metadata,
      actions: this.spec.actions,
      actionParamValidators: this.options.actionParamValidators,
      onUncaught: () => {
        raised = true;
      },
    });
    const refused = commitHook(fake, exitCode);
    const output = this.output(fake, state, jujuEnv.JUJU_ACTION_UUID, exitCode);
    if (refused !== null) {
      throw new UncaughtCharmError(`Juju refused to commit ${spec.name}: ${refused}`, output);
    }
    if (exitCode !== 0 || raised) {
      const errors = output.logs.filter((l) => l.level === "ERROR").map((l) => l.message);
      throw new UncaughtCharmError(
        `charm failed on ${spec.name} (exit ${exitCode}): ${errors.join("; ") || "no error logged"}`,
        output,
      );
    }
    return output;
  }

  private output(
    fake: FakeUnitState,
    input: State,
    actionId: string | undefined,
    exitCode: number,
  ): OutputState {
    const stored: Record<string, unknown> = {};
    for (const [key, raw] of Object.entries(fake.stored)) {
      if (key.startsWith(SHIM_STATE_PREFIX)) continue;
      try {
        stored[key] = JSON.parse(raw);
      } catch {
        stored[key] = raw;
      }
    }
    const action = actionId ? fake.actions[actionId] : undefined;
    const unitStatus = toStatus(fake.unitStatus);
    return {
      // The operator's settings, unchanged (a charm cannot change its config).
      config: { ...(input.config ?? {}) },
      leader: fake.leader,
      relations: fake.relations.map((r) => structuredClone(r)),
      stored,
      unitStatus,
      status: unitStatus,
      ...(fake.workloadVersion === null ? {} : { workloadVersion: fake.workloadVersion }),
      actionResults: action ? structuredClone(action.results) : null,
      actionFailure: action?.failed ? action.failureMessage : null,
      actionLogs: action ? [...action.logs] : [],
      logs: fake.logs.map((l) => ({ ...l })),
      hookToolCalls: fake.calls.map((c) => [...c.argv]),
      reboot: fake.reboot,
      exitCode,
    };
  }
}
