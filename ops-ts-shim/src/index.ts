// The public API of ops-ts-shim: the TypeScript counterpart of Python ops for machine charms.
// Testing helpers live in "ops-ts-shim/testing" and "ops-ts-shim/testing/simulator" so the
// charm bundle never includes them.
export {
  ACTION_KEY_SEGMENT,
  ActionResultKeyError,
  actionKeyProblem,
  actionSetArguments,
  flattenActionResults,
  RESERVED_ACTION_KEYS,
} from "./action-results";
export { JujuContext, JujuContextError, type JujuContextFields } from "./context";
// Events, the framework and CharmBase: everything framework.ts exports is public.
export * from "./framework";
export type { LogLevel, SettableStatusName } from "./hookcmds";
// The hook tools, one namespace (hookcmds.configGet, hookcmds.statusSet…), as ops.hookcmds.
export * as hookcmds from "./hookcmds";
export {
  type MainOptions,
  main,
  type ParamValidator,
  type ResolvedEvent,
  resolveEvent,
  UnknownEventError,
} from "./main";
export {
  type ActionSpec,
  type ActionsSpec,
  type CharmMetadata,
  CharmMetadataError,
  type ConfigOptionSpec,
  type ConfigSpec,
  type EndpointSpec,
  endpointsOf,
  loadActions,
  loadMetadata,
  parseDeclaration,
} from "./metadata";
export {
  ActiveStatus,
  BlockedStatus,
  LAST_STATUS_KEY,
  MaintenanceStatus,
  Model,
  type ModelBackend,
  type ModelLogLevel,
  Relation,
  SHIM_STATE_PREFIX,
  StatusBase,
  type StatusName,
  StoredState,
  StoredStateError,
  TooManyRelationsError,
  UnknownEndpointError,
  WaitingStatus,
  WORKLOAD_VERSION_KEY,
} from "./model";
// How tools are run is the runner's business (main builds it); a charm sees its errors and types,
// runProcess for its own commands, and startedPrograms to know whether the dispatch started any.
export {
  HookCmdError,
  type HookToolResult,
  type HookToolRunner,
  NOT_FOUND_EXIT,
  type ProcessResult,
  runProcess,
  startedPrograms,
} from "./runner";
export { stopSignal } from "./stop";
