// The simulated unit's public shape, apart from how it is made (index.ts) so that the model of
// several units (model.ts) can name it without importing its maker back.
import type { ActionsSpec, ConfigSpec } from "../../metadata";
import type { FakeAction, FakeUnitState } from "../fake-juju";
import type { EventSpec, RelationSpec } from "../unit-spec";

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
