// Test helpers: the Scenario-style harness and the in-memory fake Juju behind it. The process
// simulator is separate ("ops-ts-shim/testing/simulator") because it needs esbuild.
export { ActionParamsError, enqueueActionParams } from "./action-params";
export { ApplicationContext, type ApplicationOptions } from "./application";
export {
  type CharmSpec,
  type CheckedState,
  checkConsistency,
  InconsistentScenarioError,
} from "./consistency";
export {
  ACTION_RESULTS_QUOTA,
  CHARM_STATE_QUOTA,
  commitHook,
  EXEC_ARG_LIMITS,
  emptyUnitState,
  execArgProblem,
  FAKE_TOOL_NAMES,
  type FakeAction,
  type FakeRelation,
  type FakeStatus,
  type FakeToolCall,
  type FakeToolEnv,
  type FakeUnitState,
  type PendingChanges,
  RELATION_SETTINGS_QUOTA,
  runFakeHookTool,
  storedView,
  type ToolCaller,
} from "./fake-juju";
export {
  type PeerEvent,
  type PeerUnitView,
  peerRelationFor,
  propagatePeerData,
} from "./peers";
export {
  Context,
  type ContextOptions,
  type OutputState,
  type RelationOutput,
  type RelationState,
  type State,
  UncaughtCharmError,
} from "./scenario";
export {
  buildFakeUnit,
  classifyEvent,
  completeRelation,
  type EventSpec,
  effectiveConfig,
  type HookEnvOptions,
  hookEnvironment,
  type RelationSpec,
  type UnitSpec,
} from "./unit-spec";
