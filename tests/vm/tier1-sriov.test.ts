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
 */
import { expect, it } from "vitest";
import type { Guest } from "./lib/guest";
import { checkVmBed, describeVm } from "./lib/require-tools";
import { bindByHand, driverOf, exists, groupOf, list } from "./lib/sysfs";
import { device, sriovVfAddress, TWINS_SRIOV } from "./lib/topologies";
import { bootBedGuest, useGuest } from "./lib/use-guest";

const bed = checkVmBed(1);
const pf = device(TWINS_SRIOV, "sriovPf").address;
const vf1 = sriovVfAddress(1);
const vf2 = sriovVfAddress(2);
const pfDir = `/sys/bus/pci/devices/${pf}`;

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
      `setsid sh -c 'exec sleep 3600 3<"$0"' ${file} </dev/null >/dev/null 2>&1 & echo $!`,
    )
  ).trim();
  // The holder opened the file once /proc shows the descriptor.
  await g.exec(
    `for i in $(seq 50); do [ -e /proc/${pid}/fd/3 ] && exit 0; sleep 0.1; done; exit 1`,
  );
  return {
    pid,
    stop: async () => void (await g.run(`kill ${pid}; wait ${pid} 2>/dev/null; true`)),
  };
}

describeVm("tier 1 (SR-IOV NVMe, Intel IOMMU): the kernel's SR-IOV behaviour", bed, (kernel) => {
  const guest = useGuest(() =>
    bootBedGuest(kernel, {
      topology: TWINS_SRIOV,
      iommu: "intel",
      name: "tier1-sriov",
      append: ["iommu=pt"],
    }),
  );

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
      await writePf(g, "sriov_drivers_autoprobe", "1");
    }
  });
});
