// What every bad input must come to, shared by the in-process and the end-to-end corpus suites.
import { expect } from "vitest";
import { EMPTY_FILES_STATE } from "../../../src/apply/host-files";
import type { ActionCase, ConfigCase } from "./corpus";

/** The text as it appears raw or inside a JSON string (logs quote values with JSON.stringify). */
export function mentions(haystack: string, needle: string): boolean {
  return haystack.includes(needle) || haystack.includes(JSON.stringify(needle).slice(1, -1));
}

/** What must hold after a bad config reached config-changed. */
export function checkBadConfig(
  c: ConfigCase,
  status: { status: string; message: string },
  errorLogs: string[],
): void {
  expect(status.status).toBe("blocked");
  expect(status.message).toContain(c.option);
  const named = errorLogs.filter((l) => l.includes(c.option));
  expect(named, errorLogs.join("\n")).not.toEqual([]);
  expect(
    named.some((l) => mentions(l, c.expect)),
    `no ERROR log names ${c.option} with ${JSON.stringify(c.expect)}:\n${errorLogs.join("\n")}`,
  ).toBe(true);
}

export const storedFor = (c: ConfigCase) =>
  c.previous ? { preparation: { files: EMPTY_FILES_STATE, boundIds: c.previous } } : {};

/** What must hold after a bad action call. */
export function checkBadAction(
  c: ActionCase,
  action: { failed: boolean; failureMessage: string | null } | null,
): void {
  expect(action).not.toBeNull();
  expect(action!.failed).toBe(true);
  expect(action!.failureMessage ?? "").toContain(c.expect);
}
