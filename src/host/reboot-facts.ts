// What the reboot decision (plan/reboot.ts) asks of the real host, read-only: this boot's id,
// the guests libvirt runs (asked through `virsh -r`, no credentials), who holds a /dev/vfio group,
// the Juju containers running on the machine, and the local time.
//
// Juju containers: each running LXD container (snap or deb LXD alike) has a monitor process whose
// command line is `[lxc monitor] <lxd containers dir> <name>`, and Juju names its containers
// `juju-<model>-<machine>-lxd-<n>`. Reading /proc needs no LXD client, no socket and no daemon
// that answers, and sees only running containers (the ones juju-reboot would stop). Juju's agent
// directories (/var/lib/juju/agents) do not help: a container's agents live inside it, the host
// lists only its own machine and units.

import { join } from "node:path";
import type { HostReadProblem } from "./facts";
import { now as clockNow, readdirSync, readFileSync } from "./fs";
import { READ, under } from "./root";
import { readVfioGroupUsers } from "./vfio-users";

/** How the host runs a command (the charm's command runner; `skipped` under a sandbox root). */
export type RunCommand = (argv: string[]) => {
  exitCode: number;
  stdout: string;
  stderr: string;
  skipped?: boolean;
};

/** libvirt's answer about guests. */
export type GuestsAnswer =
  | { kind: "listed"; domains: Array<{ name: string; state: "running" | "paused" }> }
  | { kind: "no-libvirt" }
  | { kind: "unknown"; why: string };

export interface VfioHolder {
  group: number;
  pid: number;
  command: string;
  instance: string | null;
}

export interface RebootFacts {
  /** null when unreadable. */
  bootId: string | null;
  guests: GuestsAnswer;
  /** null when /dev/vfio or /proc could not be read. */
  vfioHolders: VfioHolder[] | null;
  /** Running Juju LXD containers by name; null when /proc could not be read. */
  jujuContainers: string[] | null;
  /** The host's local time: day 0 = Sunday, minutes since midnight, and as shown ("Sat 03:12"). */
  localTime: { day: number; minutes: number; text: string };
}

/** Where virsh looks: the system libvirt, read-only (no polkit, no credentials). */
export const VIRSH = ["virsh", "-r", "-c", "qemu:///system"] as const;
const NOT_FOUND = 127;
const JUJU_CONTAINER = /^juju-[0-9a-f]{6}-\d+-lxd-\d+$/;
const DAY_NAMES = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/** Reads every fact the reboot checks need. */
export function readRebootFacts(
  root: string,
  run: RunCommand,
  now: Date = clockNow(),
  problems: HostReadProblem[] = [],
): RebootFacts {
  return {
    bootId: readBootId(root, problems),
    guests: readGuests(run),
    vfioHolders: readVfioHolders(root),
    jujuContainers: readJujuContainers(root),
    localTime: localTimeOf(now),
  };
}

export function readBootId(root: string, problems: HostReadProblem[] = []): string | null {
  try {
    const id = readFileSync(under(root, READ.bootId), "utf8").trim();
    return id.length > 0 ? id : null;
  } catch (e) {
    problems.push({
      kind: "unreadable",
      path: READ.bootId,
      address: null,
      message: `cannot read ${READ.bootId}: ${(e as Error).message}`,
    });
    return null;
  }
}

/** Active domains (running, paused, and libvirt's other live states), paused ones named so. */
export function readGuests(run: RunCommand): GuestsAnswer {
  const list = (extra: string[]) => run([...VIRSH, "list", "--name", ...extra]);
  const active = list([]);
  if (active.skipped) return { kind: "unknown", why: "commands are not run under a sandbox root" };
  if (active.exitCode === NOT_FOUND) return { kind: "no-libvirt" };
  if (active.exitCode !== 0) {
    const tail = (active.stderr || active.stdout).trim().split("\n").slice(-2).join(" | ");
    return {
      kind: "unknown",
      why: `\`${[...VIRSH, "list"].join(" ")}\` failed (exit ${active.exitCode}): ${tail}`,
    };
  }
  const names = (out: string) =>
    out
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  const domains = names(active.stdout);
  if (domains.length === 0) return { kind: "listed", domains: [] };
  const pausedRun = list(["--state-paused"]);
  const paused = new Set(pausedRun.exitCode === 0 ? names(pausedRun.stdout) : []);
  return {
    kind: "listed",
    domains: domains.map((name) => ({ name, state: paused.has(name) ? "paused" : "running" })),
  };
}

/** Every process holding a /dev/vfio group open, or null when that cannot be read. */
export function readVfioHolders(root: string): VfioHolder[] | null {
  let groups: number[];
  try {
    groups = readdirSync(under(root, READ.devVfio))
      .filter((n) => /^\d+$/.test(n))
      .map(Number);
  } catch (e) {
    // No /dev/vfio: vfio is not loaded, so nobody holds a group.
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    return null;
  }
  const out: VfioHolder[] = [];
  for (const [group, users] of readVfioGroupUsers(root, new Set(groups)))
    for (const u of users) out.push({ group, ...u });
  return out.sort((a, b) => a.group - b.group || a.pid - b.pid);
}

/** Running Juju LXD containers (see the header), sorted; null when /proc is unreadable. */
export function readJujuContainers(root: string): string[] | null {
  const proc = under(root, READ.proc);
  let pids: string[];
  try {
    pids = readdirSync(proc).filter((n) => /^\d+$/.test(n));
  } catch {
    return null;
  }
  const found = new Set<string>();
  for (const pid of pids) {
    let cmdline: string;
    try {
      cmdline = readFileSync(join(proc, pid, "cmdline"), "latin1");
    } catch {
      continue; // gone since the listing
    }
    const m = /^\[lxc monitor\] (\S+) (\S+)/.exec(cmdline.replace(/\0+/g, " ").trim());
    if (m && JUJU_CONTAINER.test(m[2]!)) found.add(m[2]!);
  }
  return [...found].sort();
}

export function localTimeOf(now: Date): RebootFacts["localTime"] {
  const day = now.getDay();
  const minutes = now.getHours() * 60 + now.getMinutes();
  const hh = String(now.getHours()).padStart(2, "0");
  const mm = String(now.getMinutes()).padStart(2, "0");
  return { day, minutes, text: `${DAY_NAMES[day]} ${hh}:${mm}` };
}
