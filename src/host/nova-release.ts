// Which nova is installed on this host. nova-compute (the principal) shares the machine, so its
// packages are in our dpkg status; the version decides `device_spec` (Zed, 26.0.0, and later) vs
// `passthrough_whitelist` (plan/nova.ts).

import type { NovaRelease } from "./facts";
import { readFileSync } from "./fs";
import { READ, under } from "./root";

/** Packages whose version is nova's, most telling first: nova-common ships nova.conf and is what
 * the OpenStack charms themselves ask (`os_release('nova-common')`); python3-nova is the code. */
export const NOVA_PACKAGES = ["nova-common", "python3-nova"] as const;

/** dpkg `Status:` third words meaning the package's files are on disk (not removed / config-files). */
const PRESENT = new Set([
  "installed",
  "unpacked",
  "half-configured",
  "half-installed",
  "triggers-awaited",
  "triggers-pending",
]);

/**
 * The upstream version of a dpkg version, as numbers: `3:29.0.1-0ubuntu1~cloud0` → [29, 0, 1],
 * `26.0.0~rc1-0ubuntu1` → [26, 0, 0] (a pre-release of 26 is Zed already). The epoch (before the
 * first `:`) and the Debian revision (after the last `-`) are dropped; missing minor/patch are 0.
 * Null when the upstream part does not start with a number.
 */
export function upstreamVersion(dpkgVersion: string): [number, number, number] | null {
  let v = dpkgVersion.trim();
  const colon = v.indexOf(":");
  if (colon >= 0 && /^\d+$/.test(v.slice(0, colon))) v = v.slice(colon + 1);
  const dash = v.lastIndexOf("-");
  if (dash > 0) v = v.slice(0, dash);
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v);
  if (!m) return null;
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

/** Compares two upstream versions numerically (so 9.x < 26 < 100): negative, 0 or positive. */
export function compareUpstream(a: [number, number, number], b: [number, number, number]): number {
  for (let i = 0; i < 3; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The installed version of `pkg` from dpkg status text, or null when it is absent or not installed.
 * It looks only at the package's own stanza(s) (found by `Package: <name>` at a line start) rather
 * than parsing the whole file: status files run to megabytes and the hook should stay quick.
 */
export function findInstalledVersion(statusText: string, pkg: string): string | null {
  const marker = `Package: ${pkg}\n`;
  let from = 0;
  for (;;) {
    const at = statusText.indexOf(marker, from);
    if (at < 0) return null;
    from = at + marker.length;
    if (at > 0 && statusText[at - 1] !== "\n") continue;
    // The stanza runs to the next blank line (or the end of the file).
    const end = statusText.indexOf("\n\n", at);
    const stanza = statusText.slice(at, end < 0 ? undefined : end + 1);
    const status = /^Status: *\S+ +\S+ +(\S+)/m.exec(stanza)?.[1];
    const version = /^Version: *(\S+)/m.exec(stanza)?.[1];
    if (status !== undefined && PRESENT.has(status) && version !== undefined) return version;
  }
}

/** The nova release in dpkg status text (nova-common first, then python3-nova), or null. */
export function novaReleaseFromStatus(statusText: string): NovaRelease | null {
  // dpkg writes LF; a status copied through a CRLF tool must not hide the stanza.
  const text = statusText.includes("\r") ? statusText.replace(/\r\n/g, "\n") : statusText;
  for (const pkg of NOVA_PACKAGES) {
    const version = findInstalledVersion(text, pkg);
    if (version === null) continue;
    const upstream = upstreamVersion(version);
    if (upstream !== null) return { package: pkg, version, upstream };
  }
  return null;
}

/** The nova installed under `root` (from /var/lib/dpkg/status); null when there is none or the
 * file cannot be read: the caller then falls back to the option name every release accepts. */
export function readNovaRelease(root: string): NovaRelease | null {
  let text: string;
  try {
    // latin1, not utf8: every field read here is ASCII, and decoding megabytes of descriptions as
    // UTF-8 takes about twice as long.
    text = readFileSync(under(root, READ.dpkgStatus), "latin1");
  } catch {
    return null;
  }
  return novaReleaseFromStatus(text);
}
