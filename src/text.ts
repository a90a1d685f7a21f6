// Text for operators: values clipped and lists shortened so a status line or an action-fail
// message stays readable. The one place that decides how much of a long thing is shown.

/** White space clip() must fold: anything but a space, or two spaces in a row. */
const ODD_SPACE = /[^\S ]| {2}/;

/** Shortens text to at most `max` characters (runs of white space fold to one space): operators
 * need to recognise a value, not read all of it. With `restIs`, a cut also says how much was left
 * out and where the rest is ("see the results"). */
export function clip(value: string, max = 60, restIs?: string): string {
  // Only a run of spaces or another white-space character needs the rewrite: a long message
  // (verify-iommu's on 10,000 functions is megabytes) is then scanned once, not copied.
  const flat = (ODD_SPACE.test(value) ? value.replace(/\s+/g, " ") : value).trim();
  if (flat.length <= max) return flat;
  if (restIs === undefined) return `${flat.slice(0, max - 3)}...`;
  return `${flat.slice(0, max)}... (${flat.length - max} more characters: ${restIs})`;
}

/** `a; b; c and 2 more`: the first `max` items and how many others, short enough for a status
 * line. */
export function listOf(items: string[], max = 3, separator = "; "): string {
  if (items.length <= max) return items.join(separator);
  return `${items.slice(0, max).join(separator)} and ${items.length - max} more`;
}

/** "e1000e" or "no driver", for messages. */
export function driverWords(driver: string | null): string {
  return driver ?? "no driver";
}

/** 1024 → "1,024": counts of thousands of VFs, readable at a glance (no Intl: the runtime may be
 * built without it). */
export function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
