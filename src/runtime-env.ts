// The two environment knobs the charm honours besides Juju's own variables, read in one place.
import { type CommandRunner, skippingRunner, spawnRunner } from "./apply/commands";
import { isRealRoot, rootFromEnv } from "./host/root";

/** Set to 1 to run update-grub / update-initramfs / modprobe even under a non-`/` root: the
 * integration tests put recording fakes of those programs on PATH and check they ran. */
export const RUN_COMMANDS_ENV = "PCI_PASSTHROUGH_RUN_COMMANDS";

export interface RuntimeEnv {
  root: string;
  runner: CommandRunner;
}

/** The root and the command runner for this dispatch. */
export function runtimeEnv(
  log: (message: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): RuntimeEnv {
  const root = rootFromEnv(env);
  const run = isRealRoot(root) || env[RUN_COMMANDS_ENV] === "1";
  return { root, runner: run ? spawnRunner : skippingRunner(log) };
}
