// How host preparation remembers which functions it bound, small enough for Juju's quotas.
// Juju refuses a state-set value over 64 KiB (quota.CheckTupleSize) and the whole unit state over
// max-charm-state-size; an address → ids map grows ~27 bytes a function (270 KB at 10,000 VFs).
// Grouped by ids, with consecutive addresses as one range (a PF's VFs are consecutive on the bus),
// 10,000 VFs of eight PFs take a few hundred bytes. Should a selection still not fit (addresses
// scattered with no run at all), only what fits is kept and the rest is counted: the identity
// check then covers fewer functions, which the hook logs, instead of Juju refusing the hook.
import { addressNumber, addressOfNumber } from "./pci-vocabulary";

/** "vendor:device" → comma-separated addresses and `first-last` ranges of consecutive ones. */
export interface PackedBindings {
  byIds: Record<string, string>;
  /** Functions left out because the rest would not fit (absent when none were). */
  dropped?: number;
}

/** What one packed value may take (a quarter of Juju's per-value quota, leaving room for the
 * rest of the memory in the same value). */
export const PACKED_BUDGET = 12 * 1024;

/** address → ids, packed. Malformed addresses (never written by the charm) are dropped. */
export function packBindings(
  bound: Record<string, string>,
  budget = PACKED_BUDGET,
): PackedBindings {
  const numbers = new Map<string, number[]>();
  for (const [address, ids] of Object.entries(bound)) {
    const n = addressNumber(address);
    if (n === null) continue;
    const list = numbers.get(ids);
    if (list) list.push(n);
    else numbers.set(ids, [n]);
  }
  const byIds: Record<string, string> = {};
  let size = 0;
  let dropped = 0;
  for (const ids of [...numbers.keys()].sort()) {
    const parts: string[] = [];
    for (const [first, last] of runs(numbers.get(ids)!.sort((a, b) => a - b))) {
      const part =
        first === last
          ? addressOfNumber(first)
          : `${addressOfNumber(first)}-${addressOfNumber(last)}`;
      if (size + part.length + ids.length + 8 > budget) {
        dropped += last - first + 1;
        continue;
      }
      size += part.length + 1;
      parts.push(part);
    }
    if (parts.length > 0) {
      byIds[ids] = parts.join(",");
      size += ids.length + 6;
    }
  }
  return dropped > 0 ? { byIds, dropped } : { byIds };
}

/** The address → ids map packBindings() packed (less what it dropped). */
export function unpackBindings(packed: PackedBindings | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [ids, list] of Object.entries(packed?.byIds ?? {})) {
    for (const part of list.split(",")) {
      const [from, to = from] = part.split("-");
      const first = addressNumber(from ?? "");
      const last = addressNumber(to ?? "");
      if (first === null || last === null || last < first) continue;
      for (let n = first; n <= last; n++) out[addressOfNumber(n)] = ids;
    }
  }
  return out;
}

/** Sorted numbers → [first, last] runs of consecutive ones. */
function runs(sorted: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const n of sorted) {
    const last = out[out.length - 1];
    if (last && n === last[1] + 1) last[1] = n;
    else if (!last || n !== last[1]) out.push([n, n]);
  }
  return out;
}
