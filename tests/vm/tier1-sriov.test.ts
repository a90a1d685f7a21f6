/**
 * Tier 1, SR-IOV (Intel IOMMU): QEMU's SR-IOV NVMe controller on the real kernel (topology
 * TWINS_SRIOV, one guest for every step).
 *
 * First the kernel's own behaviour the charm's SR-IOV support is built on, by hand, so a kernel
 * that behaves otherwise fails here by name rather than somewhere inside a charm run: a fresh VF
 * is grabbed by the host's driver unless `sriov_drivers_autoprobe` is 0; with it 0, each VF waits
 * driverless in an IOMMU group of its own until `driver_override` + `drivers_probe` put it on
 * vfio-pci; and holding a VF's group open does NOT stop `sriov_numvfs` = 0 from destroying the VF
 * under its holder — which is why the charm itself must refuse to resize while a group is open.
 *
 * Then the packed charm on the same guest, with `vfs: 2` on the PF: the sriov-vfs action creates
 * the VFs now (dry-run first), each on vfio-pci by its own address; rebind moves one VF back to the
 * host and onto vfio-pci again; verify-iommu and list-devices report the VFs under their PF;
 * resizing to 3 is refused while a VF's group is held open, with nothing changed; held the way QEMU
 * holds a VF (group, container, device fd), `sriov-vfs force=true` and `rebind to=host force=true`
 * both refuse too (the kernel would wait for the holder forever); done once it is released; rebind
 * to=host gives every VF back. Every check reads the guest's sysfs.
 */
import { expect, it } from "vitest";
import { key, results, sub } from "./lib/action-results";
import type { Guest } from "./lib/guest";
import { deployCharmInGuest, type GuestCharm } from "./lib/guest-charm";
import { checkVmBed, describeVm } from "./lib/require-tools";
import { bindByHand, driverOf, exists, groupOf, guestStateSnapshot, list } from "./lib/sysfs";
import { device, sriovVfAddress, TWINS_SRIOV } from "./lib/topologies";
import { useBedGuest } from "./lib/use-guest";

const bed = checkVmBed(1);
const pf = device(TWINS_SRIOV, "sriovPf").address;
const vf1 = sriovVfAddress(1);
const vf2 = sriovVfAddress(2);
const vf3 = sriovVfAddress(3);
const pfDir = `/sys/bus/pci/devices/${pf}`;
/** The devices option with `vfs` VFs on the PF (a flavor alias: the VFs go to vfio-pci). */
const devicesWithVfs = (vfs: number) => `- {address: "${pf}", vfs: ${vfs}}`;

/** The VF addresses the PF's virtfn* links name, sorted. */
async function vfsOf(g: Guest): Promise<string[]> {
  const out = await g.exec(
    `for l in ${pfDir}/virtfn*; do [ -e "$l" ] && basename "$(readlink "$l")"; done; true`,
  );
  return out.split("\n").filter(Boolean).sort();
}

/** Writes a sysfs attribute of the PF; returns the shell's exit code and message. */
async function writePf(g: Guest, attribute: string, value: string) {
  return g.run(`echo ${value} > ${pfDir}/${attribute}`);
}

/**
 * Starts a process in the guest that holds `file` open until `stop` is called (setsid: it
 * outlives the command that started it). Resolves with its pid.
 */
async function holdOpen(
  g: Guest,
  file: string,
): Promise<{ pid: string; stop: () => Promise<void> }> {
  const pid = (
    await g.exec(
      `setsid sh -c 'exec sleep 3600 9<"$0"' ${file} </dev/null >/dev/null 2>&1 & echo $!`,
    )
  ).trim();
  // Held once the holder's descriptor 9 names the file (the agent's own descriptors are
  // inherited until the redirection happens, so "fd 9 exists" alone proves nothing).
  await g.exec(
    `for i in $(seq 100); do [ "$(readlink /proc/${pid}/fd/9)" = ${file} ] && exit 0; sleep 0.1; done; exit 1`,
  );
  return { pid, stop: async () => void (await g.run(`kill ${pid}; true`)) };
}

/**
 * A stand-in guest holding a VF the way QEMU does (../shared/reference/qemu-iommu-recipe.md): the
 * group, a type1v2 container and the device's own fd. With the device fd open, the kernel's
 * removal of the VF (sriov_numvfs) or unbind from vfio-pci waits for this process to let go.
 */
const VFIO_HOLDER = `import fcntl, os, struct, sys, time
group, address, ready = sys.argv[1], sys.argv[2], sys.argv[3]
c = os.open('/dev/vfio/vfio', os.O_RDWR)
g = os.open('/dev/vfio/' + group, os.O_RDWR)
fcntl.ioctl(g, 0x3b68, struct.pack('i', c))  # VFIO_GROUP_SET_CONTAINER
fcntl.ioctl(c, 0x3b66, 3)  # VFIO_SET_IOMMU, type1v2
fd = fcntl.ioctl(g, 0x3b6a, bytearray(address.encode() + b'\\0'), True)  # VFIO_GROUP_GET_DEVICE_FD
open(ready, 'w').write(str(fd))
time.sleep(3600)
`;

/** Starts VFIO_HOLDER on `vf` (setsid: it outlives the command); resolves once it holds the
 * device fd, with its pid. */
async function holdLikeQemu(
  g: Guest,
  vf: string,
): Promise<{ pid: string; stop: () => Promise<void> }> {
  const group = await groupOf(g, vf);
  await g.writeFile("/var/tmp/vfio-holder.py", VFIO_HOLDER);
  await g.exec("rm -f /var/tmp/vfio-holder.ready");
  const pid = (
    await g.exec(
      `setsid /usr/bin/python3 /var/tmp/vfio-holder.py ${group} ${vf} /var/tmp/vfio-holder.ready </dev/null >/var/tmp/vfio-holder.log 2>&1 & echo $!`,
    )
  ).trim();
  const held = await g.run(
    `for i in $(seq 300); do [ -s /var/tmp/vfio-holder.ready ] && exit 0; kill -0 ${pid} || exit 2; sleep 0.1; done; exit 1`,
  );
  if (held.exitCode !== 0) {
    throw new Error(
      `the vfio holder did not get ${vf}'s device fd: ${await g.readFile("/var/tmp/vfio-holder.log")}`,
    );
  }
  // It shows as QEMU does: the group and an anonymous vfio-device fd.
  const fds = await g.exec(`ls -l /proc/${pid}/fd`);
  expect(fds).toContain(`/dev/vfio/${group}`);
  expect(fds).toContain("vfio-device");
  return { pid, stop: async () => void (await g.run(`kill ${pid}; true`)) };
}

describeVm("tier 1 (SR-IOV NVMe, Intel IOMMU): the kernel, then the charm", bed, (kernel) => {
  const { share, guest } = useBedGuest(kernel, "tier1-sriov", TWINS_SRIOV, "intel");
  let charm: GuestCharm;

  it("the PF is on nvme, offers 3 VFs at offset 1, stride 1, and has none yet", async () => {
    // The bed's init loads only what it needs itself; a host's udev would load nvme at boot.
    await guest().exec("modprobe nvme");
    expect(await driverOf(guest(), pf)).toBe("nvme");
    const sriov = await guest().exec(
      `cd ${pfDir} && cat sriov_totalvfs sriov_numvfs sriov_offset sriov_stride sriov_drivers_autoprobe`,
    );
    expect(sriov.split("\n").filter(Boolean)).toEqual(["3", "0", "1", "1", "1"]);
    expect(await vfsOf(guest())).toEqual([]);
  });

  it("with sriov_drivers_autoprobe on (the default), the host's nvme takes a new VF at once", async () => {
    const g = guest();
    await g.exec("dmesg -C");
    expect((await writePf(g, "sriov_numvfs", "1")).exitCode).toBe(0);
    expect(await vfsOf(g)).toEqual([vf1]);
    // nvme probes the VF before anything in userland could act (QEMU's VF then fails to start,
    // as it has no NVMe resources assigned; a NIC's VF would stay on its VF driver).
    expect(await g.exec("dmesg")).toContain(`pci function ${vf1}`);
    expect((await writePf(g, "sriov_numvfs", "0")).exitCode).toBe(0);
    expect(await vfsOf(g)).toEqual([]);
  });

  it("with sriov_drivers_autoprobe 0, VFs appear with no driver, each in its own IOMMU group", async () => {
    const g = guest();
    await g.exec("dmesg -C");
    expect((await writePf(g, "sriov_drivers_autoprobe", "0")).exitCode).toBe(0);
    expect((await writePf(g, "sriov_numvfs", "2")).exitCode).toBe(0);
    expect(await vfsOf(g)).toEqual([vf1, vf2]);
    expect(await driverOf(g, vf1)).toBe("");
    expect(await driverOf(g, vf2)).toBe("");
    expect(await g.exec("dmesg")).not.toMatch(/pci function 0000:01:00\.[1-3]/);
    expect(await driverOf(g, pf)).toBe("nvme");
    const groups = [await groupOf(g, pf), await groupOf(g, vf1), await groupOf(g, vf2)];
    expect(new Set(groups).size).toBe(3);
    expect(await list(g, `/sys/kernel/iommu_groups/${groups[1]}/devices`)).toEqual([vf1]);
  });

  it("N cannot change without passing through 0; the same N again is accepted", async () => {
    const g = guest();
    expect((await writePf(g, "sriov_numvfs", "2")).exitCode).toBe(0);
    await g.exec("dmesg -C");
    expect((await writePf(g, "sriov_numvfs", "3")).exitCode).not.toBe(0);
    expect(await g.exec("dmesg")).toContain("2 VFs already enabled. Disable before enabling 3 VFs");
    expect(await vfsOf(g)).toEqual([vf1, vf2]);
  });

  it("driver_override + drivers_probe put a VF on vfio-pci even with autoprobe off", async () => {
    const g = guest();
    const group = await groupOf(g, vf1);
    await bindByHand(g, vf1, "vfio-pci");
    expect(await driverOf(g, vf1)).toBe("vfio-pci");
    expect(await exists(g, `/dev/vfio/${group}`)).toBe(true);
    expect(await driverOf(g, vf2)).toBe("");
  });

  it("a VF's group held open: a second open is refused, yet sriov_numvfs=0 still destroys the VF", async () => {
    const g = guest();
    const group = await groupOf(g, vf1);
    const holder = await holdOpen(g, `/dev/vfio/${group}`);
    try {
      const second = await g.run(`exec 4</dev/vfio/${group}`);
      expect(second.exitCode).not.toBe(0);
      expect(second.stderr).toMatch(/busy/i);
      // The kernel does not protect the holder: the VF goes from under it. The charm's resize
      // must therefore check for open groups itself (and tier 1's charm steps prove it does).
      expect((await writePf(g, "sriov_numvfs", "0")).exitCode).toBe(0);
      expect(await vfsOf(g)).toEqual([]);
      expect(await exists(g, `/sys/bus/pci/devices/${vf1}`)).toBe(false);
    } finally {
      await holder.stop();
      // The charm's steps below start from a PF with no VF and autoprobe on.
      await writePf(g, "sriov_numvfs", "0");
      await writePf(g, "sriov_drivers_autoprobe", "1");
    }
  });

  it("the charm: install with vfs: 2 plans the VFs for the next boot and creates none now", async () => {
    charm = await deployCharmInGuest({
      guest: guest(),
      share,
      config: { devices: devicesWithVfs(2) },
      recordedCommands: ["update-grub", "update-initramfs"],
    });
    const install = await charm.dispatch("install");
    expect(install.exitCode, charm.explain(install)).toBe(0);
    expect(charm.status().message).toContain(`${pf} has 0 VFs, 2 planned`);
    const rule = await guest().readFile("/etc/udev/rules.d/40-pci-passthrough-sriov.rules");
    expect(rule).toContain(`KERNEL=="${pf}"`);
    expect(rule).toContain(" 2 vfio-pci 1b36:0010");
    expect(await vfsOf(guest())).toEqual([]);
    expect(await driverOf(guest(), pf)).toBe("nvme");
  });

  it("sriov-vfs dry-run lists the writes in order and changes nothing", async () => {
    const before = await guestStateSnapshot(guest());
    const run = await charm.action("sriov-vfs", { "dry-run": true });
    expect(run.action.failureMessage).toBeNull();
    // "path <- value (why)", keyed 01, 02… in order.
    const writes = Object.entries(sub(results(run), "pfs", key(pf), "writes"))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, w]) => String(w).replace(/ \(.*$/, ""));
    expect(writes).toEqual([
      `${pfDir}/sriov_drivers_autoprobe <- 0`,
      `${pfDir}/sriov_numvfs <- 2`,
      `/sys/bus/pci/devices/${vf1}/driver_override <- vfio-pci`,
      `/sys/bus/pci/drivers_probe <- ${vf1}`,
      `/sys/bus/pci/devices/${vf2}/driver_override <- vfio-pci`,
      `/sys/bus/pci/drivers_probe <- ${vf2}`,
      `${pfDir}/sriov_drivers_autoprobe <- 1`,
    ]);
    expect(await guestStateSnapshot(guest())).toBe(before);
  });

  it("sriov-vfs creates 2 VFs now, each on vfio-pci by its own address; the PF stays on nvme", async () => {
    const g = guest();
    await g.exec("dmesg -C");
    const run = await charm.action("sriov-vfs");
    expect(run.action.failureMessage).toBeNull();
    expect(await vfsOf(g)).toEqual([vf1, vf2]);
    for (const vf of [vf1, vf2]) {
      expect(await driverOf(g, vf)).toBe("vfio-pci");
      expect((await g.readFile(`/sys/bus/pci/devices/${vf}/driver_override`)).trim()).toBe(
        "vfio-pci",
      );
      expect(await exists(g, `/dev/vfio/${await groupOf(g, vf)}`)).toBe(true);
    }
    expect(await driverOf(g, pf)).toBe("nvme");
    expect((await g.readFile(`${pfDir}/sriov_drivers_autoprobe`)).trim()).toBe("1");
    // No host VF driver touched them on the way.
    expect(await g.exec("dmesg")).not.toMatch(/pci function 0000:01:00\.[1-3]/);
  });

  it("update-status with the VFs now there writes nothing and regenerates nothing", async () => {
    const before = await guestStateSnapshot(guest());
    const commands = charm.commands().length;
    const run = await charm.dispatch("update-status");
    expect(run.exitCode, charm.explain(run)).toBe(0);
    expect(charm.commands().slice(commands)).toEqual([]);
    expect(await guestStateSnapshot(guest())).toBe(before);
    expect(charm.status().message).not.toMatch(/VFs, 2 planned/);
  });

  it("rebind gives one VF back to the host and takes it again; verify-iommu says which is off plan", async () => {
    const g = guest();
    const back = await charm.action("rebind", { devices: vf2, to: "host" });
    expect(back.action.failureMessage).toBeNull();
    expect(await driverOf(g, vf2)).not.toBe("vfio-pci");
    expect((await g.readFile(`/sys/bus/pci/devices/${vf2}/driver_override`)).trim()).toBe("(null)");
    expect(await driverOf(g, vf1)).toBe("vfio-pci");

    const off = await charm.action("verify-iommu");
    expect(off.action.failed).toBe(true);
    expect(off.action.failureMessage).toContain(vf2);

    const again = await charm.action("rebind", { devices: vf2 });
    expect(again.action.failureMessage).toBeNull();
    expect(await driverOf(g, vf2)).toBe("vfio-pci");
  });

  it("verify-iommu passes: 2 VFs as planned, on vfio-pci, none sharing a group", async () => {
    const run = await charm.action("verify-iommu");
    expect(run.action.failureMessage).toBeNull();
    expect(results(run).ok).toBe("yes");
    expect(sub(results(run), "sriov", key(pf))).toMatchObject({
      ok: "yes",
      "vfs-planned": "2",
      "vfs-now": "2",
      drivers: "vfio-pci x2",
      "off-plan": "0",
      "sharing-group-with-pf": "0",
      "sharing-group-with-vfs": "0",
    });
  });

  it("list-devices summarises the VFs under their PF; each-vf lists them one by one", async () => {
    const summary = await charm.action("list-devices");
    console.log(
      `[vm] list-devices PF row: ${JSON.stringify(sub(results(summary), "devices", key(pf)))}`,
    );
    expect(summary.action.failed).toBe(false);
    const devices = sub(results(summary), "devices");
    expect(Object.keys(devices)).not.toContain(key(vf1));
    expect(JSON.stringify(devices[key(pf)])).toContain(vf1);

    const each = await charm.action("list-devices", { "each-vf": true });
    const rows = sub(results(each), "devices");
    expect(sub(rows, key(vf1)).driver).toBe("vfio-pci");
    expect(sub(rows, key(vf2)).driver).toBe("vfio-pci");
    expect(sub(rows, key(vf1), "sriov")).toMatchObject({ role: "vf", pf });
  });

  it("resizing is refused while a VF's group is held open, with nothing changed; done once released", async () => {
    const g = guest();
    const group = await groupOf(g, vf1);
    charm.setConfig({ devices: devicesWithVfs(3) });
    const changed = await charm.dispatch("config-changed");
    expect(changed.exitCode, charm.explain(changed)).toBe(0);
    const holder = await holdOpen(g, `/dev/vfio/${group}`);
    try {
      const before = await guestStateSnapshot(g);
      const refused = await charm.action("sriov-vfs");
      expect(refused.action.failed).toBe(true);
      expect(refused.action.failureMessage).toContain(vf1);
      expect(refused.action.failureMessage).toContain(`IOMMU group ${group}`);
      expect(refused.action.failureMessage).toContain(holder.pid);
      expect(await guestStateSnapshot(g)).toBe(before);
      expect(await vfsOf(g)).toEqual([vf1, vf2]);
    } finally {
      await holder.stop();
    }
  });

  it("held as QEMU holds a VF (group, container, device fd): sriov-vfs force=true and rebind to=host force=true both refuse at once, nothing moved (issue 21.1)", async () => {
    const g = guest();
    const holder = await holdLikeQemu(g, vf1);
    try {
      const before = await guestStateSnapshot(g);
      // Today's code would write sriov_numvfs and wait for the holder forever (the action's own
      // timeout then fails this case); the charm must refuse without touching sysfs.
      const resize = await charm.action("sriov-vfs", { force: true });
      expect(resize.action.failed).toBe(true);
      expect(resize.action.failureMessage).toContain(`pid ${holder.pid}`);
      expect(resize.action.failureMessage).toContain("python3");
      expect(resize.action.failureMessage).toContain("force does not override this");
      const rebind = await charm.action("rebind", { devices: vf1, to: "host", force: true });
      expect(rebind.action.failed).toBe(true);
      expect(rebind.action.failureMessage).toContain(`pid ${holder.pid}`);
      expect(rebind.action.failureMessage).toContain("force does not override this");
      expect(await guestStateSnapshot(g)).toBe(before);
      expect(await vfsOf(g)).toEqual([vf1, vf2]);
      expect(await driverOf(g, vf1)).toBe("vfio-pci");
      // The holder still has its VF.
      expect((await g.run(`kill -0 ${holder.pid}`)).exitCode).toBe(0);
    } finally {
      await holder.stop();
    }
  });

  it("resized once the holder is gone", async () => {
    const g = guest();
    const resized = await charm.action("sriov-vfs");
    expect(resized.action.failureMessage).toBeNull();
    expect(await vfsOf(g)).toEqual([vf1, vf2, vf3]);
    for (const vf of [vf1, vf2, vf3]) expect(await driverOf(g, vf)).toBe("vfio-pci");
  });

  it("rebind to=host gives every VF back to the host; the PF never left nvme", async () => {
    const g = guest();
    const groups = [await groupOf(g, vf1), await groupOf(g, vf2), await groupOf(g, vf3)];
    const run = await charm.action("rebind", { to: "host" });
    expect(run.action.failureMessage).toBeNull();
    for (const vf of [vf1, vf2, vf3]) {
      expect(await driverOf(g, vf)).not.toBe("vfio-pci");
      expect((await g.readFile(`/sys/bus/pci/devices/${vf}/driver_override`)).trim()).toBe(
        "(null)",
      );
    }
    for (const group of groups) expect(await exists(g, `/dev/vfio/${group}`)).toBe(false);
    expect(await driverOf(g, pf)).toBe("nvme");
  });
});
