// action-set takes flat `a.b.c=value` arguments and refuses keys Juju does not like. We check
// everything here first, so a charm bug reads as a clear message naming the key, before any
// process is started and before half of the results have been sent.

/** One segment of a result key, as Juju's action-set checks it. */
export const ACTION_KEY_SEGMENT = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

/** Keys Juju keeps for itself (it fills them from the action's own output). */
export const RESERVED_ACTION_KEYS: readonly string[] = [
  "stdout",
  "stdout-encoding",
  "stderr",
  "stderr-encoding",
];

/** An action result key that Juju would refuse, or two results that land on the same key. */
export class ActionResultKeyError extends Error {
  override name = "ActionResultKeyError";
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`action result key "${key}" ${reason}`);
  }
}

/** Why a dotted key is invalid for action-set, or null when Juju would accept it. */
export function actionKeyProblem(key: string): string | null {
  for (const segment of key.split(".")) {
    if (!ACTION_KEY_SEGMENT.test(segment)) {
      return `is invalid: segment "${segment}" must start and end with a lower-case letter or digit and contain only lower-case letters, digits and hyphens (e.g. "bound-devices.count")`;
    }
    if (RESERVED_ACTION_KEYS.includes(segment)) {
      return `uses "${segment}", which Juju reserves for the action's own output; choose another name`;
    }
  }
  return null;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" &&
  value !== null &&
  !Array.isArray(value) &&
  Object.getPrototypeOf(value) === Object.prototype;

/** Juju stores every result as a string: arrays and null become JSON, the rest String(). */
export function stringifyResult(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === null || Array.isArray(value)) return JSON.stringify(value);
  return String(value);
}

/**
 * Walks nested results depth-first in key order, checking each key name once (results repeat a
 * dozen names thousands of times: list-devices on 10,000 functions has 160,000 leaves), and hands
 * each leaf to `leaf` with its dotted key. Returns whether some key held a dot itself: only then
 * can two leaves land on one key, or a leaf be another's parent.
 */
function walkResults(
  results: Record<string, unknown>,
  leaf: (key: string, value: unknown) => void,
): boolean {
  const goodNames = new Set<string>();
  let dotted = false;
  const walk = (prefix: string, obj: Record<string, unknown>): void => {
    for (const k in obj) {
      if (!Object.hasOwn(obj, k)) continue;
      const value = obj[k];
      if (value === undefined) continue;
      const key = prefix === "" ? k : `${prefix}.${k}`;
      if (!goodNames.has(k)) {
        const problem = actionKeyProblem(k);
        if (problem) throw new ActionResultKeyError(key, problem);
        goodNames.add(k);
        if (k.includes(".")) dotted = true;
      }
      if (isPlainObject(value)) walk(key, value);
      else leaf(key, value);
    }
  };
  walk("", results);
  return dotted;
}

/**
 * Flattens nested results to the dotted keys action-set takes, validating every key and
 * refusing duplicates (`{a: {b: 1}, "a.b": 2}`) and leaf/branch clashes (`{a: 1, "a.b": 2}`),
 * which Juju would otherwise silently overwrite. Undefined values are skipped.
 */
export function flattenActionResults(results: Record<string, unknown>): Map<string, string> {
  const flat = new Map<string, string>();
  const dotted = walkResults(results, (key, value) => {
    if (flat.has(key)) {
      throw new ActionResultKeyError(key, "is set twice once nested keys are flattened");
    }
    flat.set(key, stringifyResult(value));
  });
  if (!dotted) return flat;
  // A leaf that is also a parent: look up each key's proper prefixes among the leaves. Linear in
  // the number of keys (times their depth).
  for (const key of flat.keys()) {
    for (let dot = key.indexOf("."); dot >= 0; dot = key.indexOf(".", dot + 1)) {
      const parent = key.slice(0, dot);
      if (flat.has(parent)) {
        throw new ActionResultKeyError(
          parent,
          `is both a value and the parent of "${key}"; Juju would keep only one of them`,
        );
      }
    }
  }
  return flat;
}

/**
 * action-set's `key=value` arguments for these results, in flattenActionResults' order and with
 * its checks. Without a dot inside any key no two leaves can clash, so the usual case builds the
 * arguments in one walk and no map (list-devices at 10,000 functions: ~30 ms instead of ~200).
 */
export function actionSetArguments(results: Record<string, unknown>): string[] {
  return actionSetCalls(results, Number.POSITIVE_INFINITY)[0]?.slice(1) ?? [];
}

/** Bytes one argument costs in an exec's argv budget: its UTF-8 bytes, its NUL, its pointer. */
export const argvCost = (arg: string): number => utf8Length(arg) + 1 + 8;

const NON_ASCII = /[\u0080-\uffff]/;

/** UTF-8 bytes of a string: its length when it is ASCII (a key always is; values nearly always),
 * found by a scan that, unlike Buffer.byteLength, does not first flatten a concatenated string. */
const utf8Length = (s: string): number => (NON_ASCII.test(s) ? Buffer.byteLength(s) : s.length);

/**
 * action-set's command lines for these results: `["action-set", "key=value", ...]`, each call's
 * arguments costing at most `budget` bytes of argv (argvCost; one argument alone may cost more:
 * it then goes alone), in actionSetArguments' order and with flattenActionResults' checks, all
 * made before the first call is returned. Built in one walk, without an intermediate list of the
 * arguments: verify-iommu on 10,000 functions has 100,000 of them.
 */
export function actionSetCalls(results: Record<string, unknown>, budget: number): string[][] {
  const calls: string[][] = [];
  let call = ["action-set"];
  let bytes = 0;
  const add = (key: string, value: string): void => {
    // The key is ASCII (ACTION_KEY_SEGMENT): only the value needs its UTF-8 length measured.
    const size = key.length + 1 + utf8Length(value) + 1 + 8;
    if (call.length > 1 && bytes + size > budget) {
      calls.push(call);
      call = ["action-set"];
      bytes = 0;
    }
    call.push(`${key}=${value}`);
    bytes += size;
  };
  const dotted = walkResults(results, (key, value) => add(key, stringifyResult(value)));
  if (dotted) {
    // Two leaves may land on one key: check the whole flattened set, then build again from it.
    const flat = flattenActionResults(results);
    calls.length = 0;
    call = ["action-set"];
    bytes = 0;
    for (const [key, value] of flat) add(key, value);
  }
  if (call.length > 1) calls.push(call);
  return calls;
}
