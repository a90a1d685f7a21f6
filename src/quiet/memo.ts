// The quiet-hook memo: what a hook that changed nothing depended on, so the next dispatch of the
// same hook with the same inputs can be known to change nothing without loading the charm.
//
// A hook's work is a function of its inputs: the event and Juju's environment, the config and
// stored state (prefetched by dispatch), the charm's code and the host's files it read (every one
// through host/fs.ts, which records them). A dispatch that changed nothing (no file, no sysfs
// write, no hook tool or command started) and read nothing it cannot read again is kept as a memo:
// its key and its reads with their digests. The next dispatch of that hook with the same key
// replays the reads (quiet/probe.ts); if every one answers as before, the full run would read the
// same, decide the same and again change nothing, so the dispatch ends there.
import { digest, type ReadRecord } from "../host/fs";

const HEADER = "pci-passthrough quiet-hook 1";

/** Juju's variables that differ between two dispatches of the same hook without saying anything
 * about it (the uniter's id of this run). Every other variable is part of the key. */
const PER_RUN_ENV = new Set(["JUJU_CONTEXT_ID"]);

/** The hook a memo may stand for (`hooks/<name>`); null for an action or an odd path. */
export function memoHook(dispatchPath: string | undefined): string | null {
  return /^hooks\/([a-z0-9][a-z0-9-]*)$/.exec(dispatchPath ?? "")?.[1] ?? null;
}

/** The digest of everything but the host's files a hook's work depends on. */
export function memoKey(
  bundleId: string,
  hook: string,
  env: NodeJS.ProcessEnv,
  prefetched: string,
): string {
  const vars: string[] = [];
  for (const name in env) {
    if (!PER_RUN_ENV.has(name)) vars.push(`${name}=${env[name]}`);
  }
  // The order Juju (or a shell) lists them in says nothing.
  vars.sort();
  return digest(`${bundleId}\n${hook}\n${vars.join("\0")}\n${prefetched}`);
}

/** A memo file's text. */
export function renderMemo(key: string, reads: readonly ReadRecord[]): string {
  let text = `${HEADER} ${key}\n`;
  for (const [op, path, outcome] of reads) text += `${op}\t${path}\t${outcome}\n`;
  return text;
}

/** The reads of a memo file if it is one for `key`; null otherwise (another key, another format,
 * a torn file). */
export function memoReads(text: string, key: string): ReadRecord[] | null {
  const lines = text.split("\n");
  if (lines[0] !== `${HEADER} ${key}` || lines[lines.length - 1] !== "") return null;
  const reads: ReadRecord[] = [];
  for (let i = 1; i < lines.length - 1; i++) {
    const parts = lines[i]!.split("\t");
    if (parts.length !== 3) return null;
    reads.push(parts as unknown as ReadRecord);
  }
  return reads;
}

/** Set to 1 (the integration tests do) to run the full hook even when its memo matches and fail
 * the hook if that run was not quiet or read otherwise: every test that repeats a hook then checks
 * that the memo skips only what really changes nothing. */
export const AUDIT_ENV = "PCI_PASSTHROUGH_QUIET_AUDIT";

/** What the probe (before the charm loads) hands the charm's entry, in the process's global
 * symbol registry: the two are separate bundles. */
export interface QuietHandoff {
  /** The dispatch script's prefetched lines: the probe read stdin, so the shim takes them here. */
  prefetched: string;
  key: string;
  /** The memo file of this hook. */
  path: string;
  /** A memo is there but does not stand for this dispatch: removed unless this run replaces it. */
  stale: boolean;
  /** Audit mode with a memo that matched: the memo's text, which this run must reproduce. */
  audited: string | null;
}

const HANDOFF = Symbol.for("pci-passthrough.quiet-hook");

export function handOff(handoff: QuietHandoff): void {
  (globalThis as Record<symbol, unknown>)[HANDOFF] = handoff;
}

/** The probe's handoff, once (null when the charm was loaded without it: an action, a test). */
export function takeHandoff(): QuietHandoff | null {
  const registry = globalThis as Record<symbol, unknown>;
  const handoff = (registry[HANDOFF] as QuietHandoff | undefined) ?? null;
  delete registry[HANDOFF];
  return handoff;
}
