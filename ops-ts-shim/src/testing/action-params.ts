// What Juju does with action parameters before a charm ever runs: it validates them against the
// action's JSON schema in actions.yaml (ValidateParams) and fills in the declared defaults
// (InsertDefaults) when the action is enqueued. `juju run` with invalid parameters fails and the
// charm never sees them. A small subset of JSON schema, enough for actions.yaml files: type,
// enum, required, additionalProperties: false, default (top level, as Juju inserts them).
import type { ActionsSpec } from "../metadata";

/** `juju run` refused the parameters; nothing was enqueued. */
export class ActionParamsError extends Error {
  override name = "ActionParamsError";
}

const TYPES: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === "string",
  boolean: (v) => typeof v === "boolean",
  integer: (v) => typeof v === "number" && Number.isInteger(v),
  number: (v) => typeof v === "number",
  array: (v) => Array.isArray(v),
  object: (v) => v !== null && typeof v === "object" && !Array.isArray(v),
  null: (v) => v === null,
};

const typeOf = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v;

/** The parameters the charm gets: validated, defaults inserted. Throws ActionParamsError with
 * Juju's "validation failed: …" wording (gojsonschema's per-field messages). */
export function enqueueActionParams(
  action: string,
  actions: ActionsSpec,
  params: Record<string, unknown>,
): Record<string, unknown> {
  const spec = actions[action];
  if (!spec) throw new ActionParamsError(`action "${action}" not defined`);
  const declared = (spec.params ?? {}) as Record<string, Record<string, unknown>>;
  const problems: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    const schema = declared[key];
    if (!schema) {
      if (spec.additionalProperties === false)
        problems.push(`(root) : Additional property ${key} is not allowed`);
      continue;
    }
    const types = [schema.type].flat().filter((t): t is string => typeof t === "string");
    if (types.length > 0 && !types.some((t) => TYPES[t]?.(value))) {
      problems.push(
        `${key} : Invalid type. Expected: ${types.join(", ")}, given: ${typeOf(value)}`,
      );
      continue;
    }
    const allowed = schema.enum;
    if (Array.isArray(allowed) && !allowed.some((a) => JSON.stringify(a) === JSON.stringify(value)))
      problems.push(
        `${key} : ${key} must be one of the following: ${allowed.map((a) => JSON.stringify(a)).join(", ")}`,
      );
  }
  for (const key of (spec.required as string[] | undefined) ?? [])
    if (!(key in params)) problems.push(`(root) : ${key} is required`);
  if (problems.length > 0) throw new ActionParamsError(`validation failed: ${problems.join("; ")}`);
  const out = structuredClone(params);
  for (const [key, schema] of Object.entries(declared))
    if (!(key in out) && "default" in schema) out[key] = structuredClone(schema.default);
  return out;
}
