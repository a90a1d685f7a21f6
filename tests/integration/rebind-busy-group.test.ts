// Issue 12 point 5: rebind does not pull a device out of a running VM. A process holding
// /dev/vfio/<group> open (QEMU under libvirt, for a nova instance) makes any move of a function
// on vfio-pci in that group a refusal naming the pid, the command and the instance; force=true
// does not lift it (issue 21.1: the kernel's unbind would wait for the guest, holding Juju's
// machine lock). Through the packed dispatch.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CharmUnderTest, deployPackedCharm } from "../support/charm-process";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import { diffTrees, snapshotTree } from "../support/tree";

const GPU = "0000:83:00.0";
const QEMU = [
  "/usr/bin/qemu-system-x86_64",
  "-name",
  "guest=instance-0000002a,debug-threads=on",
  "-S",
  "-machine",
  "pc-q35-8.2,usb=off",
];

describe("rebind and a group a VM holds open (issue 12 point 5)", () => {
  let host: ReturnType<typeof makeTempHost>;
  let unit: CharmUnderTest;
  let group: string;
  beforeEach(() => {
    const spec = seedHost();
    // The GPU and its audio are already on vfio-pci (a VM was given them).
    for (const fn of spec.pci ?? [])
      if (fn.address.startsWith("0000:83:00.")) fn.driver = "vfio-pci";
    host = makeTempHost(spec, "pci-busy-");
    group = path.basename(
      fs.readlinkSync(path.join(host.root, "sys/bus/pci/devices", GPU, "iommu_group")),
    );
    unit = deployPackedCharm(host.root, { config: { devices: GPU } });
  });
  afterEach(() => {
    unit?.cleanup();
    host.cleanup();
  });

  /** A process under the root's /proc with the group open on fd 27. */
  function holdGroup(pid: number, argv: string[], target = `/dev/vfio/${group}`): void {
    const dir = path.join(host.root, "proc", String(pid));
    fs.mkdirSync(path.join(dir, "fd"), { recursive: true });
    fs.writeFileSync(path.join(dir, "cmdline"), `${argv.join("\0")}\0`);
    fs.symlinkSync("/dev/null", path.join(dir, "fd", "0"));
    fs.symlinkSync(target, path.join(dir, "fd", "27"));
  }

  it("to=host is refused while QEMU holds the group: pid, command and instance named; nothing written", () => {
    holdGroup(4242, QEMU);
    holdGroup(777, ["/usr/sbin/libvirtd", "--timeout", "120"], "/dev/vfio/vfio"); // the container fd
    const before = snapshotTree(host.root);
    const r = unit.dispatch({ name: "rebind-action", params: { devices: GPU, to: "host" } });
    expect(r.exitCode).toBe(0);
    const action = unit.sim.readState().lastAction!;
    expect(action.failed).toBe(true);
    const message = action.failureMessage!;
    expect(message).toContain(`IOMMU group ${group} is open by pid 4242`);
    expect(message).toContain("qemu-system-x86_64 -name guest=instance-0000002a");
    expect(message).toContain("instance instance-0000002a");
    expect(message).toMatch(/kernel wait.*machine lock/);
    expect(message).toMatch(/Stop or migrate instance-0000002a first/);
    expect(message).toContain("force does not override this");
    expect(message).not.toContain("777");
    expect(diffTrees(before, snapshotTree(host.root))).toEqual([]);
  });

  it("nobody holding the group: the move is not refused for it", () => {
    holdGroup(4242, QEMU, "/dev/vfio/999");
    const r = unit.dispatch({
      name: "rebind-action",
      params: { devices: GPU, to: "host", "dry-run": true },
    });
    expect(r.exitCode).toBe(0);
    expect(unit.sim.readState().lastAction!.failed).toBe(false);
  });

  it("force=true is refused too, naming the holder, with nothing written (issue 21.1)", () => {
    holdGroup(4242, QEMU);
    const before = snapshotTree(host.root);
    for (const dryRun of [true, false]) {
      const r = unit.dispatch({
        name: "rebind-action",
        params: { devices: GPU, to: "host", force: true, "dry-run": dryRun },
      });
      expect(r.exitCode).toBe(0);
      const action = unit.sim.readState().lastAction!;
      expect(action.failed).toBe(true);
      expect(action.failureMessage).toMatch(/pid 4242.*instance-0000002a.*machine lock/);
      expect(JSON.stringify(action.results.refusals)).toContain('"force-overrides":"no"');
    }
    expect(diffTrees(before, snapshotTree(host.root))).toEqual([]);
  });
});
