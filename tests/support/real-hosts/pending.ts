// Invariants that fail on today's code, each with the finding behind it. They are reported as
// "todo" (named in the test output, not run) until the fix lands; whoever fixes one removes its
// line, and the test then runs and must pass. REAL_HOSTS_RUN_PENDING=1 runs them all anyway, to
// see which of them a change fixed.

const P1 = "issue 12 point 1: a hook binds or blacklists what the host uses";
const P3 = "issue 12 point 3: a driver's name is written as a module name";

/** Finding → the "host id | devices value | invariant" it keeps pending (devices is empty for a
 * per-host test, `raw` for the recording with nothing added). */
const PENDING: Array<[string, string[]]> = [
  [P1, []],
  [P3, []],
];

/** The finding that keeps this invariant pending on this host and selection, or null. */
export function pendingFinding(hostId: string, devices: string, title: string): string | null {
  if (process.env["REAL_HOSTS_RUN_PENDING"] === "1") return null;
  const key = `${hostId} | ${devices} | ${title}`;
  return PENDING.find(([, keys]) => keys.includes(key))?.[0] ?? null;
}
