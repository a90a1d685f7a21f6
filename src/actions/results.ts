// The shape of action results. Juju's action-set takes dotted keys whose parts are lower-case
// letters, digits and hyphens (`^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$`) and string values; PCI
// addresses contain `:` and `.`, so a device is keyed by its sanitised address (`0000:83:00.0` →
// `0000-83-00-0`, reversible and still readable) and also carries its real address as a value.
// Lists become maps keyed by 1-based, zero-padded positions (`01`, `02`…) so Juju's sorted output
// keeps their order.

/** A nested action result: every leaf is a string, every key Juju-valid. */
export interface ResultTree {
  [key: string]: string | ResultTree;
}

const KEY_RULE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
/** Top-level keys Juju keeps for itself. */
const RESERVED = new Set(["stdout", "stdout-encoding", "stderr", "stderr-encoding"]);

/** The result key of a PCI address: `0000:83:00.0` → `0000-83-00-0`. */
export function addressKey(address: string): string {
  return address.toLowerCase().replace(/[:.]/g, "-");
}

/** A list as a result map keyed `01`, `02`… (padded to the list's length so they sort in order). */
export function listResult<T>(items: T[], render: (item: T) => string | ResultTree): ResultTree {
  const width = String(items.length).length;
  const out: ResultTree = {};
  items.forEach((item, i) => {
    out[String(i + 1).padStart(width, "0")] = render(item);
  });
  return out;
}

/** "yes"/"no" for booleans in results (Juju values are strings). */
export function yesNo(value: boolean): string {
  return value ? "yes" : "no";
}

/** Every key in `tree` that Juju would refuse, as dotted paths (empty when all are valid). */
export function invalidResultKeys(tree: ResultTree, prefix = ""): string[] {
  const bad: string[] = [];
  for (const [key, value] of Object.entries(tree)) {
    const dotted = prefix ? `${prefix}.${key}` : key;
    if (!KEY_RULE.test(key) || (!prefix && RESERVED.has(key))) bad.push(dotted);
    if (typeof value !== "string") bad.push(...invalidResultKeys(value, dotted));
  }
  return bad;
}

/** What an action hands back to the charm handler: action-set `results`, and action-fail with
 * `message` when `ok` is false. */
export interface ActionReply {
  ok: boolean;
  message: string;
  results: ResultTree;
}

/** The one shape of a failed action: action-fail with `message`, and results that say the same
 * (`ok: no`, `message`) plus whatever else the operator needs (`extra`). */
export function failure(message: string, extra: ResultTree = {}): ActionReply {
  return { ok: false, message, results: { ok: "no", message, ...extra } };
}
