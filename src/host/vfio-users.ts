// Who holds an IOMMU group open: the processes with /dev/vfio/<group> among their open files.
// A running VM (QEMU under libvirt, started by nova) keeps its groups open for its whole life;
// taking a device away from vfio-pci then pulls it out of the guest. Read from /proc/<pid>/fd
// under the root (the charm runs as root, so it can read every process's fds).

import { join } from "node:path";
import { readdirSync, readFileSync, readlinkSync } from "./fs";
import { READ, under } from "./root";

/** One process with a vfio group open. */
export interface VfioGroupUser {
  pid: number;
  /** The program and its first arguments, as `ps` would show them (shortened). */
  command: string;
  /** The libvirt/nova domain from QEMU's `-name guest=instance-…`, or null for other programs. */
  instance: string | null;
}

/** Processes holding each asked group open; groups nobody holds are absent. */
export function readVfioGroupUsers(
  root: string,
  groups: Pick<ReadonlySet<number>, "has" | "size">,
): Map<number, VfioGroupUser[]> {
  const found = new Map<number, VfioGroupUser[]>();
  if (groups.size === 0) return found;
  const proc = under(root, READ.proc);
  let pids: string[];
  try {
    pids = readdirSync(proc).filter((name) => /^\d+$/.test(name));
  } catch {
    return found;
  }
  const prefix = `${READ.devVfio}/`;
  for (const pid of pids) {
    let fds: string[];
    try {
      // Plain concatenation, not path.join: the names are digits, and a scan reads thousands.
      fds = readdirSync(`${proc}/${pid}/fd`);
    } catch {
      continue; // gone since the listing, or not ours to read
    }
    const held = new Set<number>();
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`${proc}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!target.startsWith(prefix)) continue;
      const group = Number(target.slice(prefix.length));
      if (Number.isInteger(group) && groups.has(group)) held.add(group);
    }
    if (held.size === 0) continue;
    const user = describeProcess(proc, Number(pid));
    for (const group of held) {
      const list = found.get(group) ?? [];
      list.push(user);
      found.set(group, list);
    }
  }
  return found;
}

function describeProcess(proc: string, pid: number): VfioGroupUser {
  let argv: string[] = [];
  try {
    argv = readFileSync(join(proc, String(pid), "cmdline"), "latin1")
      .split("\0")
      .filter(Boolean);
  } catch {
    // exited meanwhile: still name the pid
  }
  const shown = argv.slice(0, 3).join(" ");
  return {
    pid,
    command: shown.length > 80 ? `${shown.slice(0, 77)}...` : shown || "(unknown command)",
    instance: qemuName(argv),
  };
}

/** The guest name from QEMU's `-name guest=NAME,debug-threads=on` (or the older `-name NAME`). */
export function qemuName(argv: readonly string[]): string | null {
  const i = argv.findIndex((a) => a === "-name" || a === "--name");
  const value = i >= 0 ? argv[i + 1] : undefined;
  if (!value) return null;
  // QEMU's option syntax doubles a comma to escape it; names nova gives never carry one.
  for (const part of value.split(",")) {
    if (part.startsWith("guest=")) return part.slice("guest=".length) || null;
  }
  const first = value.split(",")[0]!;
  return first.includes("=") ? null : first || null;
}

/** "pid 4242 (qemu-system-x86_64 -name guest=instance-0000002a,…), instance instance-0000002a". */
export function describeUser(user: VfioGroupUser): string {
  const who = `pid ${user.pid} (${user.command})`;
  return user.instance ? `${who}, instance ${user.instance}` : who;
}
