// After a hook the probe handed over (quiet/probe.ts): keep its memo when the run changed nothing
// and read only what can be read again, drop a memo that no longer stands, and in audit mode check
// that a memo which matched told the truth.
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { startedPrograms } from "ops-ts-shim";
import { type Footprint, startRecording, stopRecording } from "../host/fs";
import { type QuietHandoff, renderMemo, takeHandoff } from "./memo";

/** The probe's handoff, with this dispatch's reads recorded from now on; null without one. */
export function beginQuietRecord(): QuietHandoff | null {
  const handoff = takeHandoff();
  if (handoff) startRecording();
  return handoff;
}

/** Why a finished run cannot stand as a memo, or null when it can. */
export function notQuiet(
  exitCode: number,
  footprint: Footprint,
  started: readonly string[],
): string | null {
  if (exitCode !== 0) return `it exited ${exitCode}`;
  if (started.length > 0) return `it started ${started.join(", ")}`;
  if (footprint.changes > 0) return `it made ${footprint.changes} changes to the host`;
  return footprint.volatile;
}

/**
 * Settles the memo of a run that had the probe's handoff; returns the exit code to end with.
 * A quiet run writes its memo when the probe's did not stand (none, another key, a read that
 * answered otherwise); one the memo would have skipped, run in audit mode, writes nothing.
 * Failing to write it costs the next hook its speed, nothing else.
 */
export function settleQuietHook(handoff: QuietHandoff, exitCode: number): number {
  const footprint = stopRecording();
  if (footprint === null) return exitCode;
  const why = notQuiet(exitCode, footprint, startedPrograms());
  const text = why === null ? renderMemo(handoff.key, footprint.reads) : null;
  if (handoff.audited !== null && text !== handoff.audited) {
    process.stderr.write(
      `quiet-hook audit: the memo at ${handoff.path} matched, so it would have skipped this hook, but the run ${
        why ?? `read otherwise: ${firstDifference(handoff.audited, text ?? "")}`
      }: an input the memo does not record\n`,
    );
    return exitCode === 0 ? 1 : exitCode;
  }
  try {
    if (text !== null && handoff.audited === null) {
      mkdirSync(dirname(handoff.path), { recursive: true, mode: 0o700 });
      const temp = `${handoff.path}.${process.pid}.tmp`;
      writeFileSync(temp, text, { mode: 0o600 });
      renameSync(temp, handoff.path);
    } else if (text === null && handoff.stale) {
      rmSync(handoff.path, { force: true });
    }
  } catch {}
  return exitCode;
}

/** The first line two memo texts differ in, for the audit's message. */
function firstDifference(a: string, b: string): string {
  const left = a.split("\n");
  const right = b.split("\n");
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    if (left[i] !== right[i])
      return `memo ${JSON.stringify(left[i] ?? "")}, run ${JSON.stringify(right[i] ?? "")}`;
  }
  return "no difference";
}
