// Turns an action's raw params (action-get --format=json) into checked values: first the ajv
// validator generated from actions.yaml (types, enums, unknown keys, defaults), then each action's
// own semantic checks. Messages name the parameter, the value and what would be accepted.
import type { ErrorObject } from "ajv";
import type { Validator } from "../generated/validators.js";

/** A parameter the action refuses, in operator words. */
export interface ParamError {
  /** The parameter at fault, or null when the params as a whole are wrong. */
  param: string | null;
  message: string;
}

export type Checked<T> = { ok: true; params: T } | { ok: false; errors: ParamError[] };

function describe(action: string, err: ErrorObject): ParamError {
  const param = err.instancePath ? err.instancePath.slice(1).replace(/~1/g, "/") : null;
  switch (err.keyword) {
    case "additionalProperties": {
      const extra = String((err.params as { additionalProperty: string }).additionalProperty);
      return {
        param: extra,
        message: `there is no parameter "${extra}" (see \`juju show-action pci-passthrough ${action}\`)`,
      };
    }
    case "enum": {
      const allowed = (err.params as { allowedValues: unknown[] }).allowedValues.join(" or ");
      return { param, message: `${param} must be ${allowed}` };
    }
    case "type": {
      const type = String((err.params as { type: string }).type);
      return { param, message: `${param} must be a ${type}` };
    }
    default:
      return { param, message: `${param ?? "params"}: ${err.message ?? err.keyword}` };
  }
}

/** Runs the generated validator on a copy of `raw` (it fills defaults) and explains its errors. */
export function validateParams<P>(
  action: string,
  validator: Validator<P>,
  raw: unknown,
): Checked<P> {
  const data: unknown = raw === undefined || raw === null ? {} : structuredClone(raw);
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return {
      ok: false,
      errors: [{ param: null, message: "params must be key=value pairs (a mapping)" }],
    };
  }
  if (validator(data)) return { ok: true, params: data };
  const errors = (validator.errors ?? []).map((e) => describe(action, e));
  return { ok: false, errors };
}

/** What an action's own checks make of the schema-valid params: its typed params, or what is
 * wrong (never an empty list). */
export type Refine<P, T> = (params: P) => { params: T } | { errors: ParamError[] };

/** An action's parameter check: the schema first (types, enums, defaults), then the action's own
 * syntax on values the schema already let through; no errors means the params are ready to use. */
export function checkParams<P, T>(
  action: string,
  validator: Validator<P>,
  raw: unknown,
  refine: Refine<P, T>,
): Checked<T> {
  const checked = validateParams(action, validator, raw);
  if (!checked.ok) return checked;
  const refined = refine(checked.params);
  return "errors" in refined
    ? { ok: false, errors: refined.errors }
    : { ok: true, params: refined.params };
}

/** One line for action-fail: every param error joined. */
export function paramErrorMessage(action: string, errors: ParamError[]): string {
  return `${action}: ${errors.map((e) => e.message).join("; ")}`;
}

/** `parse`, run once per params object: the shim's validator and the action's handler are handed
 * the same object from one action-get, and the handler takes what the check made of it. */
export function parsedOnce<P>(parse: (raw: unknown) => Checked<P>): (raw: unknown) => Checked<P> {
  const parsed = new WeakMap<object, Checked<P>>();
  return (raw) => {
    if (typeof raw !== "object" || raw === null) return parse(raw);
    let checked = parsed.get(raw);
    if (checked === undefined) {
      checked = parse(raw);
      parsed.set(raw, checked);
    }
    return checked;
  };
}
