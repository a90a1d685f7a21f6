// Who holds a vfio group open, read from /proc/<pid>/fd under a root (src/host/vfio-users.ts).
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { describeUser, qemuName, readVfioGroupUsers } from "../../src/host/vfio-users";
import { useCleanups } from "../support/cleanups";
import { tempDir } from "../support/tree";

const cleanups = useCleanups();

describe("readVfioGroupUsers", () => {
  it("finds each process holding an asked group, with its command and nova instance", () => {
    const { dir, cleanup } = tempDir("pci-vfio-users-");
    cleanups.push(cleanup);
    const proc = (pid: number, argv: string[], fds: Record<string, string>) => {
      fs.mkdirSync(path.join(dir, "proc", String(pid), "fd"), { recursive: true });
      fs.writeFileSync(path.join(dir, "proc", String(pid), "cmdline"), `${argv.join("\0")}\0`);
      for (const [fd, target] of Object.entries(fds))
        fs.symlinkSync(target, path.join(dir, "proc", String(pid), "fd", fd));
    };
    proc(10, ["qemu-system-x86_64", "-name", "guest=instance-0000000a,debug-threads=on"], {
      "20": "/dev/vfio/12",
      "21": "/dev/vfio/13",
    });
    proc(11, ["/usr/bin/my-dpdk-app"], { "3": "/dev/vfio/12" });
    proc(12, ["bash"], { "0": "/dev/pts/0", "1": "/dev/vfio/vfio" });
    fs.mkdirSync(path.join(dir, "proc", "self"), { recursive: true }); // not a pid
    const users = readVfioGroupUsers(dir, new Set([12, 14]));
    expect([...users.keys()]).toEqual([12]);
    expect(users.get(12)!.map(describeUser).sort()).toEqual([
      "pid 10 (qemu-system-x86_64 -name guest=instance-0000000a,debug-threads=on), instance instance-0000000a",
      "pid 11 (/usr/bin/my-dpdk-app)",
    ]);
    expect(readVfioGroupUsers(path.join(dir, "nowhere"), new Set([12])).size).toBe(0);
  });

  it("reads QEMU's -name in both spellings", () => {
    expect(qemuName(["qemu", "-name", "guest=instance-1,debug-threads=on"])).toBe("instance-1");
    expect(qemuName(["qemu", "-name", "instance-2"])).toBe("instance-2");
    expect(qemuName(["qemu", "-name", "process=x"])).toBeNull();
    expect(qemuName(["dpdk-testpmd", "-l", "0-3"])).toBeNull();
  });
});
