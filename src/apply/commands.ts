// Runs the few external programs host preparation needs (update-grub, update-initramfs, modprobe).
// They are only meaningful on the real host: under any other root (tests, the demo sandbox, a copy
// of a host) they are skipped with a log line, unless a test substitutes a runner of its own.
// Processes are started the one way the shim starts its hook tools (runProcess).
import { type ProcessResult, runProcess } from "ops-ts-shim";
import { accessExecutable } from "../host/fs";

export interface CommandResult extends ProcessResult {
  /** True when the runner did not run it (a sandbox root): logs must not say it ran. */
  skipped?: boolean;
}

/** Runs argv and returns its result; never throws for a non-zero exit (callers decide). */
export type CommandRunner = (argv: string[]) => CommandResult;

/** A command that failed, with what it printed: shown to the operator as the hook's error. */
export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly result: CommandResult,
  ) {
    const tail = (result.stderr || result.stdout).trim().split("\n").slice(-3).join(" | ");
    super(
      `\`${argv.join(" ")}\` failed with exit code ${result.exitCode}${tail ? `: ${tail}` : ""}`,
    );
    this.name = "CommandError";
  }
}

/** The real runner: runs the program with the hook's environment (child_process is loaded only
 * when a program runs: a hook with nothing to change runs none). */
export const spawnRunner: CommandRunner = (argv) => runProcess(argv);

/**
 * Whether a program is on PATH, as spawn would find it: a few stat calls, nothing run. Asked only
 * to decide whether a program an earlier hook did not find may be there now.
 */
export function onPath(program: string, searchPath = process.env.PATH ?? ""): boolean {
  return searchPath
    .split(":")
    .filter((dir) => dir !== "")
    .some((dir) => {
      try {
        accessExecutable(`${dir}/${program}`);
        return true;
      } catch {
        return false;
      }
    });
}

/** A runner that runs nothing and says so: used when the root is not `/`. */
export function skippingRunner(log: (message: string) => void): CommandRunner {
  return (argv) => {
    log(`skipped \`${argv.join(" ")}\`: the root is not / (PCI_PASSTHROUGH_ROOT is set)`);
    return { exitCode: 0, stdout: "", stderr: "", skipped: true };
  };
}

/** The commands that regenerate boot files from the inputs the charm writes. */
export const REGENERATE = {
  // grub-mkconfig through Ubuntu's wrapper: reads /etc/default/grub and /etc/default/grub.d/*.cfg.
  grub: ["update-grub"],
  // Every installed kernel's initramfs: the next boot may be a newer kernel than the running one.
  initramfs: ["update-initramfs", "-u", "-k", "all"],
} as const;
