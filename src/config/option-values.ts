// The checks every option shares: a string, a boolean, one of a few words. Each records a
// ConfigError naming the option instead of throwing, so the operator sees every problem at once.
import { clip } from "../text";
import type { ConfigError } from "./types";

/** One of `allowed` (any case, trimmed), or null with the error recorded. */
export function parseEnum<T extends string>(
  option: string,
  value: unknown,
  allowed: readonly T[],
  errors: ConfigError[],
): T | null {
  const text = typeof value === "string" ? value.trim().toLowerCase() : null;
  if (text !== null && (allowed as readonly string[]).includes(text)) return text as T;
  errors.push({
    option,
    value: clip(typeof value === "string" ? value : JSON.stringify(value)),
    problem: `is not one of ${allowed.join(", ")}`,
    fix: `set ${option} to one of ${allowed.join(", ")}`,
  });
  return null;
}

/** A YAML boolean, or null with the error recorded. */
export function parseBool(option: string, value: unknown, errors: ConfigError[]): boolean | null {
  if (typeof value === "boolean") return value;
  errors.push({
    option,
    value: clip(JSON.stringify(value)),
    problem: "is not a boolean",
    fix: `set ${option} to true or false`,
  });
  return null;
}

/** True for a string; otherwise records that `option` is not one, with how to write it. */
export function isString(
  option: string,
  value: unknown,
  errors: ConfigError[],
  fix: string,
): value is string {
  if (typeof value === "string") return true;
  errors.push({ option, value: clip(JSON.stringify(value)), problem: "is not a string", fix });
  return false;
}
