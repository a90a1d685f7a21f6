// What the reboot checks read of the host (issue 24): libvirt through `virsh -r` (a runner that
// answers as virsh does), the Juju containers from their `[lxc monitor]` processes, /dev/vfio
// holders from /proc fd links, the boot id — on real temp trees.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import type { HostReadProblem } from "../../src/host/facts";
import {
  localTimeOf,
  type RunCommand,
  readBootId,
  readGuests,
  readJujuContainers,
  readVfioHolders,
} from "../../src/host/reboot-facts";
import { useCleanups } from "../support/cleanups";
import { addLxcMonitor, setBootId } from "../support/host-boot";
import { tempDir } from "../support/tree";

const cleanups = useCleanups();
const root = (): string => {
  const { dir, cleanup } = tempDir("reboot-facts-");
  cleanups.push(cleanup);
  return dir;
};

/** virsh as it answers `list --name` (active) and `list --name --state-paused`. */
const virsh =
  (domains: Array<[string, "running" | "paused"]>): RunCommand =>
  (argv) => {
    expect(argv.slice(0, 6)).toEqual(["virsh", "-r", "-c", "qemu:///system", "list", "--name"]);
    const paused = argv.includes("--state-paused");
    const names = domains.filter(([, s]) => !paused || s === "paused").map(([n]) => n);
    return { exitCode: 0, stdout: names.map((n) => `${n}\n`).join("") + "\n", stderr: "" };
  };

describe("reboot facts", () => {
  it("asks libvirt read-only and names paused domains", () => {
    expect(readGuests(virsh([]))).toEqual({ kind: "listed", domains: [] });
    expect(
      readGuests(
        virsh([
          ["instance-1", "running"],
          ["instance-2", "paused"],
        ]),
      ),
    ).toEqual({
      kind: "listed",
      domains: [
        { name: "instance-1", state: "running" },
        { name: "instance-2", state: "paused" },
      ],
    });
  });

  it("tells no libvirt from a libvirt that does not answer, and never guesses in a sandbox", () => {
    expect(readGuests(() => ({ exitCode: 127, stdout: "", stderr: "not found" }))).toEqual({
      kind: "no-libvirt",
    });
    expect(
      readGuests(() => ({
        exitCode: 1,
        stdout: "",
        stderr: "error: failed to connect to the hypervisor\nerror: Failed to connect socket",
      })),
    ).toEqual({
      kind: "unknown",
      why: "`virsh -r -c qemu:///system list` failed (exit 1): error: failed to connect to the hypervisor | error: Failed to connect socket",
    });
    expect(readGuests(() => ({ exitCode: 0, stdout: "", stderr: "", skipped: true })).kind).toBe(
      "unknown",
    );
  });

  it("finds running Juju containers by their LXD monitor process, and only Juju's", () => {
    const r = root();
    addLxcMonitor(r, 100, "juju-3f2a6a-0-lxd-1");
    addLxcMonitor(r, 101, "juju-3f2a6a-0-lxd-0");
    addLxcMonitor(r, 102, "my-own-container");
    fs.mkdirSync(path.join(r, "proc/103"), { recursive: true });
    fs.writeFileSync(path.join(r, "proc/103/cmdline"), "/usr/sbin/sshd\0-D\0");
    fs.mkdirSync(path.join(r, "proc/sys"), { recursive: true });
    expect(readJujuContainers(r)).toEqual(["juju-3f2a6a-0-lxd-0", "juju-3f2a6a-0-lxd-1"]);
    expect(readJujuContainers(path.join(r, "nowhere"))).toBeNull();
  });

  it("names the process holding a /dev/vfio group; no /dev/vfio is nobody", () => {
    const r = root();
    expect(readVfioHolders(r)).toEqual([]);
    fs.mkdirSync(path.join(r, "dev/vfio"), { recursive: true });
    fs.writeFileSync(path.join(r, "dev/vfio/vfio"), "");
    fs.writeFileSync(path.join(r, "dev/vfio/12"), "");
    const fd = path.join(r, "proc/4242/fd");
    fs.mkdirSync(fd, { recursive: true });
    fs.symlinkSync("/dev/vfio/12", path.join(fd, "31"));
    fs.symlinkSync("/dev/null", path.join(fd, "0"));
    fs.writeFileSync(
      path.join(r, "proc/4242/cmdline"),
      "qemu-system-x86_64\0-name\0guest=instance-0000002a,debug-threads=on\0",
    );
    expect(readVfioHolders(r)).toEqual([
      {
        group: 12,
        pid: 4242,
        command: "qemu-system-x86_64 -name guest=instance-0000002a,debug-threads=on",
        instance: "instance-0000002a",
      },
    ]);
  });

  it("reads the boot id, and says when it cannot", () => {
    const r = root();
    const problems: HostReadProblem[] = [];
    expect(readBootId(r, problems)).toBeNull();
    expect(problems[0]?.message).toMatch(/^cannot read \/proc\/sys\/kernel\/random\/boot_id/);
    const id = setBootId(r);
    expect(readBootId(r)).toBe(id);
  });

  it("shows the local time as the window reads it", () => {
    const sat = new Date(2026, 11, 5, 3, 7); // Saturday 5 December 2026, 03:07 local
    expect(localTimeOf(sat)).toEqual({ day: 6, minutes: 187, text: "Sat 03:07" });
  });
});
