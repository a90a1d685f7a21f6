// The reboot options (issue 24): whether the charm reboots the host itself (`reboot`), when
// (`reboot-window`, the host's local time), whether Juju containers on the machine may be stopped
// by it (`reboot-with-juju-containers`), and how many units may be down for it at once
// (`reboot-max-unavailable`). Parsed here, apart from the host-preparation options.
import { clip } from "../text";
import { parseBool, parseEnum } from "./option-values";
import type { ConfigError, RebootPolicy, RebootWindow } from "./types";

export type { RebootMode, RebootPolicy, RebootWindow } from "./types";

/** config.yaml's defaults of these options (a test keeps the two in step). */
export const REBOOT_DEFAULTS = {
  reboot: "manual",
  "reboot-window": "",
  "reboot-with-juju-containers": false,
  "reboot-max-unavailable": 1,
} as const;

const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
const WINDOW_EXAMPLE = '"Sat,Sun 01:00-05:00" or "Mon-Fri 02:00-04:00; Sun 00:00-06:00"';

/** The reboot options, or null with every error recorded. */
export function parseRebootPolicy(
  raw: Record<string, unknown>,
  errors: ConfigError[],
): RebootPolicy | null {
  const get = <K extends keyof typeof REBOOT_DEFAULTS>(key: K): unknown =>
    raw[key] === null || raw[key] === undefined ? REBOOT_DEFAULTS[key] : raw[key];
  const before = errors.length;
  const mode = parseEnum("reboot", get("reboot"), ["manual", "when-idle"] as const, errors);
  const windowValue = get("reboot-window");
  const windowText = typeof windowValue === "string" ? windowValue.trim() : "";
  const windows = parseWindows(windowValue, errors);
  const allowJujuContainers = parseBool(
    "reboot-with-juju-containers",
    get("reboot-with-juju-containers"),
    errors,
  );
  const max = get("reboot-max-unavailable");
  if (typeof max !== "number" || !Number.isInteger(max) || max < 1) {
    errors.push({
      option: "reboot-max-unavailable",
      value: clip(JSON.stringify(max)),
      problem: "is not a whole number of at least 1",
      fix: "set reboot-max-unavailable to 1 (one host at a time) or more; the charm never reboots every unit at once",
    });
  }
  if (errors.length > before || mode === null || windows === null || allowJujuContainers === null)
    return null;
  return { mode, windows, windowText, allowJujuContainers, maxUnavailable: max as number };
}

/** `[DAYS] HH:MM-HH:MM`, several separated by `;`; DAYS is `Sat,Sun`, `Mon-Fri` or a mix. */
function parseWindows(value: unknown, errors: ConfigError[]): RebootWindow[] | null {
  const fail = (problem: string): null => {
    errors.push({
      option: "reboot-window",
      value: clip(typeof value === "string" ? value : JSON.stringify(value)),
      problem,
      fix: `write the host's local time as [days] HH:MM-HH:MM, e.g. ${WINDOW_EXAMPLE}, or leave it empty for any time`,
    });
    return null;
  };
  if (typeof value !== "string") return fail("is not a string");
  const windows: RebootWindow[] = [];
  for (const part of value
    .split(";")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(?:([A-Za-z,\- ]+?)\s+)?(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$/.exec(part);
    if (!m) return fail(`"${part}" is not [days] HH:MM-HH:MM`);
    const days = m[1] === undefined ? [0, 1, 2, 3, 4, 5, 6] : parseDays(m[1]);
    if (typeof days === "string") return fail(days);
    const start = Number(m[2]) * 60 + Number(m[3]);
    let end = Number(m[4]) * 60 + Number(m[5]);
    if (Number(m[3]) > 59 || Number(m[5]) > 59 || start >= 24 * 60 || end > 24 * 60)
      return fail(`"${part}" has a time outside 00:00-24:00`);
    if (end === start) return fail(`"${part}" is empty (it ends when it starts)`);
    if (end < start) end += 24 * 60; // runs past midnight into the next day
    windows.push({ days, start, end });
  }
  return windows;
}

/** "Sat,Sun" or "Mon-Fri" (a range may wrap: "Fri-Mon") → day numbers; a message if invalid. */
function parseDays(text: string): number[] | string {
  const out = new Set<number>();
  for (const token of text
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean)) {
    const [from, to, ...rest] = token.split("-").map((t) => t.trim().slice(0, 3));
    const a = DAYS.indexOf(from as (typeof DAYS)[number]);
    const b = to === undefined ? a : DAYS.indexOf(to as (typeof DAYS)[number]);
    if (a < 0 || b < 0 || rest.length > 0 || (to !== undefined && to.length === 0))
      return `"${token}" is not a day or a range of days (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`;
    for (let d = a; ; d = (d + 1) % 7) {
      out.add(d);
      if (d === b) break;
    }
  }
  if (out.size === 0) return "names no day";
  return [...out].sort((x, y) => x - y);
}

/** Whether the local time (day 0 = Sunday, minutes since midnight) is inside a window; true
 * when no window is set. */
export function insideWindow(
  windows: readonly RebootWindow[],
  now: { day: number; minutes: number },
): boolean {
  if (windows.length === 0) return true;
  const yesterday = (now.day + 6) % 7;
  return windows.some(
    (w) =>
      (w.days.includes(now.day) && now.minutes >= w.start && now.minutes < w.end) ||
      (w.end > 24 * 60 && w.days.includes(yesterday) && now.minutes < w.end - 24 * 60),
  );
}
