// The one seam between the shim and the processes it starts: every hook tool goes through a
// HookToolRunner, so tests substitute an in-memory Juju and the charm never spawns directly.
// runProcess is the one way a process is started at all, for hook tools and for a charm's own
// commands alike.
import { readFileSync } from "node:fs";

/** What a finished process left behind. */
export interface ProcessResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const started: string[] = [];

/** The programs this process has started through runProcess, in order (a hook tool served from
 * what the dispatch script prefetched is not among them): a dispatch that started none told Juju
 * nothing and ran nothing. */
export function startedPrograms(): readonly string[] {
  return started;
}

/** What a finished hook tool left behind. */
export type HookToolResult = ProcessResult;

/** The shell's code for "no such program", and for "found but it cannot be run". */
export const NOT_FOUND_EXIT = 127;
export const CANNOT_RUN_EXIT = 126;

/**
 * Runs argv to completion, synchronously, with `input` on stdin; never throws for how it ended.
 * A program that cannot be started reports 127 (not found) or 126 (found, not runnable) with why
 * on stderr; one killed by a signal exits 128 and says which signal.
 */
export function runProcess(
  argv: readonly string[],
  options: { env?: NodeJS.ProcessEnv; input?: string } = {},
): ProcessResult {
  const [file, ...args] = argv;
  if (file === undefined) throw new TypeError("argv is empty");
  started.push(file);
  // Required on first use: most dispatches of a quiet charm start no process at all (see
  // withPrefetched), and loading child_process costs every one of them several milliseconds.
  const { spawnSync } = require("node:child_process") as typeof import("node:child_process");
  const child = spawnSync(file, args, {
    env: options.env ?? process.env,
    input: options.input ?? "",
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (child.error) {
    const code = (child.error as NodeJS.ErrnoException).code;
    return {
      exitCode: code === "ENOENT" ? NOT_FOUND_EXIT : CANNOT_RUN_EXIT,
      stdout: "",
      stderr: `cannot run ${file}: ${child.error.message}`,
    };
  }
  const signal = child.signal ? ` (killed by ${child.signal})` : "";
  return {
    exitCode: child.status ?? 128,
    stdout: child.stdout ?? "",
    stderr: (child.stderr ?? "") + signal,
  };
}

/** Runs one hook tool, `argv[0]` being its name, with optional stdin; synchronous. */
export type HookToolRunner = ((argv: readonly string[], input?: string) => HookToolResult) & {
  /** Bytes of arguments (UTF-8, a NUL and a pointer each) one call may carry, when the runner
   * execs the tool for real (execArgvBudget); absent when it does not (an in-memory Juju). */
  readonly argvBudget?: number;
};

/** Linux's limit on one execve's arguments and environment together, strings and pointers
 * (fs/exec.c, bprm_stack_limits): a quarter of the stack rlimit (soft, which the tool inherits),
 * at most 6 MiB (3/4 of _STK_LIM), at least 128 KiB (ARG_MAX). `limits` is /proc/self/limits. */
export function execArgLimit(limits: string): number {
  const soft = /^Max stack size\s+(\S+)/m.exec(limits)?.[1];
  const stack =
    soft === "unlimited" ? Number.POSITIVE_INFINITY : Number(soft ?? Number.NaN) || 8 << 20;
  return Math.max(128 << 10, Math.min(6 << 20, Math.floor(stack / 4)));
}

/** Room left under execArgLimit for what a runner execs besides its arguments: the program's path
 * (the kernel copies it too), a #! interpreter's path and argv[0], with plenty to spare. */
export const EXEC_ARGV_MARGIN = 64 << 10;

/**
 * Bytes of arguments one exec with this environment may carry: execArgLimit, less the
 * environment (each `NAME=value`, its NUL and pointer) and EXEC_ARGV_MARGIN; 2 MiB less ~70 KiB
 * in a hook with the default 8 MiB stack. Never below 64 KiB: a call always carries something.
 */
export function execArgvBudget(env: NodeJS.ProcessEnv, limits = readLimits()): number {
  let envBytes = 0;
  for (const name in env) {
    const value = env[name];
    if (value !== undefined) envBytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 10;
  }
  return Math.max(64 << 10, execArgLimit(limits) - envBytes - EXEC_ARGV_MARGIN);
}

function readLimits(): string {
  try {
    return readFileSync("/proc/self/limits", "utf8");
  } catch {
    return ""; // Not Linux, or no /proc: the default stack's limit.
  }
}

/** A hook tool exited non-zero (or could not be started at all: exit code 127). */
export class HookCmdError extends Error {
  override name = "HookCmdError";
  readonly cmd: string[];
  readonly exitCode: number;
  readonly stderr: string;
  readonly stdout: string;

  constructor(cmd: readonly string[], result: HookToolResult) {
    const detail = result.stderr.trim() || result.stdout.trim() || "no output";
    // Arguments shortened: this message goes to juju-log and action-fail as ONE argument, and a
    // long one (an action-set value) would take it over Linux's 128 KiB per-argument limit.
    const shown = cmd.map((a) => (a.length > 200 ? `${a.slice(0, 60)}…(${a.length} chars)` : a));
    super(`hook tool \`${formatArgv(shown)}\` failed with exit code ${result.exitCode}: ${detail}`);
    this.cmd = [...cmd];
    this.exitCode = result.exitCode;
    this.stderr = result.stderr;
    this.stdout = result.stdout;
  }
}

/** Shell-like rendering of argv for messages (quotes only what needs it). */
export function formatArgv(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`))
    .join(" ");
}

/**
 * The production runner: spawnSync with the given environment (default process.env, so the
 * tools are found on the PATH Juju prepared). A tool that cannot be started reports exit 127.
 */
export function createSpawnRunner(env: NodeJS.ProcessEnv = process.env): HookToolRunner {
  let budget: number | undefined;
  return Object.defineProperty(
    (argv: readonly string[], input?: string) => runProcess(argv, { env, input }),
    "argvBudget",
    // Read on first use: only a large action-set asks, and most dispatches start no process.
    { get: () => (budget ??= execArgvBudget(env)) },
  );
}

/** Runs a tool and returns its stdout; throws HookCmdError on a non-zero exit. */
export function runChecked(
  runner: HookToolRunner,
  argv: readonly string[],
  input?: string,
): string {
  const result = runner(argv, input);
  if (result.exitCode !== 0) throw new HookCmdError(argv, result);
  return result.stdout;
}

/** Set by the charm's dispatch script when stdin carries results of hook tools it already ran. */
export const PREFETCHED_ENV = "OPS_TS_PREFETCHED";

/**
 * Serves results the dispatch script already fetched, then runs everything else for real.
 *
 * Why: forking the Node.js process (tens of MB mapped) to run a hook tool costs several times
 * what forking sh does, and every dispatch needs the same reads (config-get, state-get). So
 * dispatch runs them in sh while Node.js starts, on the other core, and pipes one line per
 * tool that succeeded: `<argv joined by spaces><TAB><its one line of stdout>`. Each result
 * answers the first call with exactly that argv and no stdin; a tool that failed, printed
 * more than a line, or was called with other flags is not there and simply runs here, so its
 * error is reported exactly as before. `read` is called once, at the first tool call.
 */
export function withPrefetched(runner: HookToolRunner, read: () => string): HookToolRunner {
  let results: Map<string, string> | null = null;
  const prefetched = (argv: readonly string[], input?: string): HookToolResult => {
    // Prefetched command lines are a few words: an action-set of 30,000 results is not among
    // them, and joining it into a key to look up would copy its megabytes for nothing.
    if (!input && argv.length <= MAX_PREFETCHED_WORDS) {
      results ??= parsePrefetched(read());
      const key = argv.join(" ");
      const stdout = results.get(key);
      if (stdout !== undefined) {
        results.delete(key);
        return { exitCode: 0, stdout: `${stdout}\n`, stderr: "" };
      }
    }
    return runner(argv, input);
  };
  return Object.defineProperty(prefetched, "argvBudget", { get: () => runner.argvBudget });
}

/** The most words a prefetched command line has (`config-get --format=json --all`); a longer
 * argv runs for real. */
const MAX_PREFETCHED_WORDS = 8;

/** `<argv><TAB><stdout>` lines; anything malformed is ignored (the tool then runs for real). */
export function parsePrefetched(text: string): Map<string, string> {
  const results = new Map<string, string>();
  for (const line of text.split("\n")) {
    const tab = line.indexOf("\t");
    if (tab > 0 && !results.has(line.slice(0, tab))) {
      results.set(line.slice(0, tab), line.slice(tab + 1));
    }
  }
  return results;
}

/** All of stdin, or "" when it cannot be read (then every tool simply runs). */
export function readStdin(): string {
  try {
    return readFileSync(0, "utf8");
  } catch {
    return "";
  }
}
