// One thin typed function per Juju hook tool, invoked exactly as Juju documents it: JSON output
// where the tool offers it, `--` before free text (a message may start with "-"), and bulk data
// on stdin (`--file -`) so no value is limited by the command-line length.
import { actionSetCalls } from "./action-results";
import { type HookToolRunner, runChecked } from "./runner";

export { argvCost } from "./action-results";

/** The statuses a charm may set (Juju sets error and unknown itself). */
export type SettableStatusName = "active" | "blocked" | "maintenance" | "waiting";
/** Levels juju-log accepts. */
export type LogLevel = "TRACE" | "DEBUG" | "INFO" | "WARNING" | "ERROR";

const SETTABLE: readonly string[] = ["active", "blocked", "maintenance", "waiting"];

const parseJson = (argv: readonly string[], stdout: string): unknown => {
  try {
    return JSON.parse(stdout);
  } catch {
    throw new Error(
      `hook tool \`${argv.join(" ")}\` printed invalid JSON: ${stdout.slice(0, 200)}`,
    );
  }
};

const runJson = (runner: HookToolRunner, argv: string[], input?: string): unknown =>
  parseJson(argv, runChecked(runner, argv, input));

/** All config options, unset ones included as null (`config-get --format=json --all`). */
export function configGet(runner: HookToolRunner): Record<string, unknown> {
  return (runJson(runner, ["config-get", "--format=json", "--all"]) ?? {}) as Record<
    string,
    unknown
  >;
}

/** The running action's parameters (`action-get --format=json`). */
export function actionGet(runner: HookToolRunner): Record<string, unknown> {
  return (runJson(runner, ["action-get", "--format=json"]) ?? {}) as Record<string, unknown>;
}

/** Bytes of argv per action-set call when the runner does not say what its exec allows (an
 * in-memory runner): half of Linux's 2 MiB for argv + environ with the default 8 MiB stack. */
export const ACTION_SET_CHUNK_BYTES = 1024 * 1024;

/**
 * Sets action results (`action-set k=v ...`), nested objects flattened to dotted keys. Every
 * key is checked first; a bad or duplicate key throws ActionResultKeyError and nothing runs.
 * Large results go in several calls, which Juju merges into one result set, each as full as the
 * runner's exec allows (runner.argvBudget): each call forks this process and the kernel copies
 * every argument, so fewer, fuller calls are cheaper (verify-iommu on 10,000 functions: 3 calls
 * with the default stack limit, not 5).
 */
export function actionSet(runner: HookToolRunner, results: Record<string, unknown>): void {
  for (const call of actionSetCalls(results, runner.argvBudget ?? ACTION_SET_CHUNK_BYTES)) {
    runChecked(runner, call);
  }
}

/** Marks the running action failed with a message (`action-fail -- msg`). */
export function actionFail(runner: HookToolRunner, message: string): void {
  runChecked(runner, ["action-fail", "--", message]);
}

/** Sends a progress line to whoever runs the action (`action-log -- msg`). */
export function actionLog(runner: HookToolRunner, message: string): void {
  runChecked(runner, ["action-log", "--", message]);
}

/** Sets the unit's (or, with application, the app's) workload status. */
export function statusSet(
  runner: HookToolRunner,
  status: SettableStatusName,
  message: string,
  options: { application?: boolean } = {},
): void {
  if (!SETTABLE.includes(status)) {
    throw new Error(
      `status "${status}" cannot be set by a charm; use one of ${SETTABLE.join(", ")}`,
    );
  }
  const argv = ["status-set"];
  if (options.application) argv.push("--application");
  argv.push(status, "--", message);
  runChecked(runner, argv);
}

/** Writes to the unit's Juju log (`juju-log --log-level LEVEL -- msg`). */
export function jujuLog(runner: HookToolRunner, level: LogLevel, message: string): void {
  runChecked(runner, ["juju-log", "--log-level", level, "--", message]);
}

/** Ids of the live relations on an endpoint (`relation-ids --format=json NAME`). */
export function relationIds(runner: HookToolRunner, endpoint: string): number[] {
  const ids = runJson(runner, ["relation-ids", "--format=json", endpoint]) as string[] | null;
  return (ids ?? []).map((id) => Number(id.slice(id.lastIndexOf(":") + 1)));
}

/** Remote units in a relation (`relation-list --format=json -r ID`). */
export function relationList(runner: HookToolRunner, relationId: number): string[] {
  return (runJson(runner, ["relation-list", "--format=json", "-r", String(relationId)]) ??
    []) as string[];
}

/**
 * One unit's (or, with app, one application's) relation data bag
 * (`relation-get --format=json -r ID [--app] - UNIT`).
 */
export function relationGet(
  runner: HookToolRunner,
  relationId: number,
  unitOrApp: string,
  options: { app?: boolean } = {},
): Record<string, string> {
  const argv = ["relation-get", "--format=json", "-r", String(relationId)];
  if (options.app) argv.push("--app");
  argv.push("-", unitOrApp);
  return (runJson(runner, argv) ?? {}) as Record<string, string>;
}

/**
 * Updates this unit's (or, with app, the app's) relation data: keys given are set, a null or
 * empty value deletes the key (`relation-set -r ID [--app] --file -`, JSON on stdin).
 */
export function relationSet(
  runner: HookToolRunner,
  relationId: number,
  data: Record<string, string | null>,
  options: { app?: boolean } = {},
): void {
  const argv = ["relation-set", "-r", String(relationId)];
  if (options.app) argv.push("--app");
  argv.push("--file", "-");
  const body = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v ?? ""]));
  runChecked(runner, argv, JSON.stringify(body));
}

/** Whether this unit is its application's leader (`is-leader --format=json`). */
export function isLeader(runner: HookToolRunner): boolean {
  return runJson(runner, ["is-leader", "--format=json"]) === true;
}

/** Shows the workload version in `juju status` (`application-version-set -- VERSION`). */
export function applicationVersionSet(runner: HookToolRunner, version: string): void {
  runChecked(runner, ["application-version-set", "--", version]);
}

/** The unit's server-side state, every value a string (`state-get --format=json`). */
export function stateGet(runner: HookToolRunner): Record<string, string> {
  // Juju 4 prints null when nothing was ever set.
  return (runJson(runner, ["state-get", "--format=json"]) ?? {}) as Record<string, string>;
}

/** Sets server-side state keys (`state-set --file -`, JSON on stdin); others are kept. */
export function stateSet(runner: HookToolRunner, data: Record<string, string>): void {
  runChecked(runner, ["state-set", "--file", "-"], JSON.stringify(data));
}

/** Removes one server-side state key (`state-delete KEY`). */
export function stateDelete(runner: HookToolRunner, key: string): void {
  runChecked(runner, ["state-delete", key]);
}

/** Asks Juju to reboot the machine after this hook (`juju-reboot`), or at once (`--now`). */
export function jujuReboot(runner: HookToolRunner, options: { now?: boolean } = {}): void {
  runChecked(runner, options.now ? ["juju-reboot", "--now"] : ["juju-reboot"]);
}
