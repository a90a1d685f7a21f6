// Child-process entry for the SIGKILL suite (bundled with esbuild at test time). Runs one hook's
// host work, as the charm does, and kills itself with SIGKILL at the chosen point: before FsOps
// call number `killAt`, before command number `killAtCommand`, or after the hook's work returned
// (`killAtEnd`: the host is done but Juju never gets to commit the stored state).
// argv[2]: a JSON file with { root, hook, killAt, killAtCommand, killAtEnd }.
import { readFileSync } from "node:fs";
import { type HookRun, recordingRunner, runHook } from "./apply-scenarios";
import { faultyFs } from "./faulty-fs";

interface KillInput {
  root: string;
  hook: HookRun;
  killAt: number | null;
  killAtCommand: number | null;
  killAtEnd: boolean;
}

function die(): never {
  process.kill(process.pid, "SIGKILL");
  // SIGKILL is delivered on the way back from kill(2); nothing below ever runs.
  throw new Error("still alive after SIGKILL");
}

const input = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as KillInput;
const fsOps = faultyFs(input.killAt === null ? null : { at: input.killAt, run: die });
const runner = recordingRunner(
  input.killAtCommand === null ? null : { at: input.killAtCommand, run: die },
);
const result = runHook(input.hook, input.root, fsOps, runner);
if (input.killAtEnd) die();
process.stdout.write(
  `${JSON.stringify({ outcome: result.outcome.kind, calls: fsOps.calls.length, ran: runner.ran })}\n`,
);
