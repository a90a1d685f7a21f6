// The one seam between the shim and the processes it starts: every hook tool goes through a
// HookToolRunner, so tests substitute an in-memory Juju and the charm never spawns directly.
import { spawnSync } from "node:child_process";

/** What a finished hook tool left behind. */
export interface HookToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs one hook tool, `argv[0]` being its name, with optional stdin; synchronous. */
export type HookToolRunner = (argv: readonly string[], input?: string) => HookToolResult;

/** A hook tool exited non-zero (or could not be started at all: exit code 127). */
export class HookCmdError extends Error {
  override name = "HookCmdError";
  readonly cmd: string[];
  readonly exitCode: number;
  readonly stderr: string;
  readonly stdout: string;

  constructor(cmd: readonly string[], result: HookToolResult) {
    const detail = result.stderr.trim() || result.stdout.trim() || "no output";
    super(`hook tool \`${formatArgv(cmd)}\` failed with exit code ${result.exitCode}: ${detail}`);
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
  return (argv, input) => {
    const [file, ...args] = argv;
    if (file === undefined) throw new TypeError("hook tool argv is empty");
    const child = spawnSync(file, args, {
      env,
      input: input ?? "",
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    if (child.error) {
      return { exitCode: 127, stdout: "", stderr: `cannot run ${file}: ${child.error.message}` };
    }
    const signal = child.signal ? ` (killed by ${child.signal})` : "";
    return {
      exitCode: child.status ?? 128,
      stdout: child.stdout ?? "",
      stderr: (child.stderr ?? "") + signal,
    };
  };
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
