// The hooks whose writes the fault-injection suites break: what host preparation does on install,
// on a config change and on removal, run with a given FsOps and command runner. Shared by the
// in-process errno suite and the SIGKILL harness (bundled into a child process), so it imports
// nothing from vitest and reads no files of the repository.
import type { CommandRunner } from "../../../src/apply/commands";
import type { FsOps } from "../../../src/apply/files";
import {
  type PreparationMemory,
  type PreparationResult,
  prepareHost,
  restoreHost,
} from "../../../src/host-preparation";

export type HookKind = "prepare" | "restore";

/** One hook to break: which operation, with which config (the full config-get view). */
export interface HookRun {
  kind: HookKind;
  /** config-get --all: every option, defaults filled in. Ignored for restore. */
  config: Record<string, unknown>;
  memory: PreparationMemory;
}

/** A command runner that records argv (update-grub, update-initramfs…) and succeeds, unless a
 * fault replaces command number `at`. */
export function recordingRunner(
  fault: { at: number; run(argv: string[]): ReturnType<CommandRunner> } | null = null,
): CommandRunner & { ran: string[][] } {
  const ran: string[][] = [];
  const runner = ((argv: string[]) => {
    const index = ran.length;
    ran.push([...argv]);
    if (fault && index === fault.at) return fault.run(argv);
    return { exitCode: 0, stdout: "", stderr: "" };
  }) as CommandRunner & { ran: string[][] };
  runner.ran = ran;
  return runner;
}

/** Runs the hook's host work under `root` with the given seams; logs go to `logs`. */
export function runHook(
  hook: HookRun,
  root: string,
  fs: FsOps,
  runner: CommandRunner,
  logs: string[] = [],
): PreparationResult {
  const deps = {
    root,
    runner,
    fs,
    log: (level: string, message: string) => logs.push(`${level} ${message}`),
  };
  return hook.kind === "prepare"
    ? prepareHost(hook.config, hook.memory, deps)
    : restoreHost(hook.memory, deps);
}
