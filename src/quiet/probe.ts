// Runs before the charm is loaded, on every hook (dist/charm.js holds it and runs it first: see
// scripts/build.mjs). If this hook's memo (memo.ts) has the same key and every read it recorded
// answers as before, the hook would change nothing: the dispatch ends without loading the charm.
// Otherwise it hands what it read of stdin to the charm, which runs as usual and records.
//
// This file and what it imports are the whole cost of a quiet hook: keep them small.
import { readFileSync } from "node:fs";
import { replayRead } from "../host/fs";
import { AUDIT_ENV, handOff, memoHook, memoKey, memoReads } from "./memo";

/** True when the hook is known to change nothing (the caller exits 0); `distDir` holds the
 * bundles, `charmId` names the charm's code and declarations (a new charm has no memo). */
export function quietHook(distDir: string, charmId: string): boolean {
  const env = process.env;
  const hook = memoHook(env.JUJU_DISPATCH_PATH);
  // Without the prefetched config and state the key cannot be known (the charm reads them itself).
  if (hook === null || env.OPS_TS_PREFETCHED !== "stdin") return false;
  let prefetched = "";
  try {
    prefetched = readFileSync(0, "utf8");
  } catch {}
  const key = memoKey(charmId, hook, env, prefetched);
  const path = `${distDir}/../.quiet-hooks/${hook}`;
  let text: string | null = null;
  try {
    text = readFileSync(path, "utf8");
  } catch {}
  const reads = text === null ? null : memoReads(text, key);
  const matched = reads?.every(replayRead) === true;
  const audit = env[AUDIT_ENV] === "1";
  if (matched && !audit) return true;
  handOff({
    prefetched,
    key,
    path,
    stale: text !== null && !matched,
    audited: matched ? text : null,
  });
  return false;
}
