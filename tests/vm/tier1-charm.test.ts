/**
 * Tier 1: the packed charm inside a real kernel with an emulated IOMMU, against the guest's real
 * sysfs and real vfio-pci. Every assertion about the host reads the GUEST's sysfs after the event,
 * not only what the charm said.
 */
import { expect, it } from "vitest";
import { deployCharmInGuest, type GuestUnit, shareDir } from "./lib/charm-in-guest";
import { bootGuest, type Guest } from "./lib/guest";
import type { IommuKind } from "./lib/qemu-args";
import type { BedKernel } from "./lib/require-tools";
import { checkVmBed, describeVm } from "./lib/require-tools";
import { driverOf, exists, groupOf, netInterfaces } from "./lib/sysfs";
import { device, FULL, type Topology, TWINS_ONLY } from "./lib/topologies";
import { useGuest } from "./lib/use-guest";

const bed = checkVmBed(1);
const twinA = device(FULL, "twinA").address;
const twinB = device(FULL, "twinB").address;

/** Boots a bed guest with a shared folder and deploys the packed charm into it. */
async function bootWithCharm(
  kernel: BedKernel,
  opts: { topology: Topology; iommu: IommuKind; name: string; append: string[] },
  config: Record<string, unknown>,
): Promise<{ guest: Guest; unit: GuestUnit }> {
  const share = shareDir(opts.name);
  const guest = await bootGuest({
    ...opts,
    kernel: kernel.kernel,
    initrd: kernel.initramfs,
    root: { kind: "bed", modules: kernel.modules },
    share,
  });
  return { guest, unit: await deployCharmInGuest(guest, share, config) };
}

/** Runs an action and returns the simulator's record of it. */
async function action(unit: GuestUnit, name: string, params: Record<string, unknown> = {}) {
  const r = await unit.dispatch({ name: `${name}-action`, params });
  expect(r.exitCode, r.stderr).toBe(0);
  return unit.sim.readState().lastAction!;
}

describeVm("tier 1 on an Intel IOMMU: one of two identical NICs", bed, (kernel) => {
  let unit: GuestUnit;
  const guest = useGuest(async () => {
    // Booted as the charm's grub drop-in would make it (iommu=pt), so verify-iommu can pass.
    const booted = await bootWithCharm(
      kernel,
      { topology: FULL, iommu: "intel", name: "tier1-intel", append: ["iommu=pt"] },
      { devices: twinA },
    );
    unit = booted.unit;
    return booted.guest;
  });

  it("install prepares /etc and says a reboot is required; the guest's devices are untouched", async () => {
    const r = await unit.dispatch("install");
    expect(r.exitCode, r.stderr).toBe(0);
    const status = unit.sim.readState().unitStatus;
    expect(status.status).toBe("blocked");
    expect(status.message).toContain(`reboot required: ${twinA} not on vfio-pci yet`);
    expect(await guest().readFile("/etc/udev/rules.d/40-pci-passthrough.rules")).toContain(
      `KERNEL=="${twinA}"`,
    );
    expect(unit.commands()).toEqual(["update-initramfs -u -k all", "update-grub"]);
    expect(await driverOf(guest(), twinA)).toBe("e1000e");
  });

  it("list-devices reports the guest's real drivers and groups", async () => {
    const a = await action(unit, "list-devices");
    const text = JSON.stringify(a.results);
    expect(text).toContain(twinA);
    expect(text).toContain("e1000e");
    expect(text).toContain(String(await groupOf(guest(), twinA)));
  });

  it("rebind dry-run leaves the guest unchanged", async () => {
    const a = await action(unit, "rebind", { "dry-run": true });
    expect(a.failed).toBe(false);
    expect(JSON.stringify(a.results)).toContain(`/sys/bus/pci/devices/${twinA}/driver_override`);
    expect(await driverOf(guest(), twinA)).toBe("e1000e");
    expect(await guest().readFile(`/sys/bus/pci/devices/${twinA}/driver_override`)).toBe(
      "(null)\n",
    );
  });

  it("rebind moves the selected twin to vfio-pci for real; the other twin keeps e1000e", async () => {
    const group = await groupOf(guest(), twinA);
    const a = await action(unit, "rebind");
    expect(a.failed, a.failureMessage ?? "").toBe(false);
    expect(await driverOf(guest(), twinA)).toBe("vfio-pci");
    expect(await driverOf(guest(), twinB)).toBe("e1000e");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(true);
  });

  it("verify-iommu passes and update-status clears the reboot requirement", async () => {
    const a = await action(unit, "verify-iommu");
    expect(a.failed, a.failureMessage ?? "").toBe(false);
    expect(JSON.stringify(a.results)).toContain("dmar0");
    const r = await unit.dispatch("update-status");
    expect(r.exitCode, r.stderr).toBe(0);
    const status = unit.sim.readState().unitStatus;
    expect(status.status).toBe("active");
    expect(status.message).toMatch(/^1 device .* on vfio-pci; IOMMU on \(dmar0\)/);
  });

  it("refuses the NIC the guest is using, naming the interface and why", async () => {
    const uplink = device(FULL, "uplink").address;
    const [ifname] = await netInterfaces(guest(), uplink);
    await guest().exec(`ip addr add 192.0.2.10/24 dev ${ifname} && ip link set ${ifname} up`);
    const a = await action(unit, "rebind", { devices: uplink });
    expect(a.failed).toBe(true);
    expect(a.failureMessage).toContain(ifname!);
    expect(await driverOf(guest(), uplink)).toBe("e1000");
  });

  it("refuses the boot VGA", async () => {
    const vga = device(FULL, "bootVga").address;
    const before = await driverOf(guest(), vga);
    const a = await action(unit, "rebind", { devices: vga });
    expect(a.failed).toBe(true);
    expect(a.failureMessage).toMatch(/boot VGA|console/i);
    expect(await driverOf(guest(), vga)).toBe(before);
  });

  it("moves a shared group together: asking for one NIC takes its group mate too, and back", async () => {
    const sharedA = device(FULL, "sharedA").address;
    const sharedB = device(FULL, "sharedB").address;
    const bridge = device(FULL, "bridge").address;
    const a = await action(unit, "rebind", { devices: sharedA });
    expect(a.failed, a.failureMessage ?? "").toBe(false);
    expect(JSON.stringify(a.results)).toContain("group-member");
    expect(await driverOf(guest(), sharedA)).toBe("vfio-pci");
    expect(await driverOf(guest(), sharedB)).toBe("vfio-pci");
    expect(await driverOf(guest(), bridge)).not.toBe("vfio-pci"); // bridges stay as they are
    const back = await action(unit, "rebind", { devices: sharedA, to: "host" });
    expect(back.failed, back.failureMessage ?? "").toBe(false);
    expect(await driverOf(guest(), sharedA)).toBe("e1000");
    expect(await driverOf(guest(), sharedB)).toBe("e1000");
  });

  it("rebind to=host gives the twin back to e1000e and /dev/vfio/N goes away", async () => {
    const group = await groupOf(guest(), twinA);
    const a = await action(unit, "rebind", { to: "host" });
    expect(a.failed, a.failureMessage ?? "").toBe(false);
    expect(await driverOf(guest(), twinA)).toBe("e1000e");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(false);
  });
});

describeVm("tier 1 on an AMD IOMMU", bed, (kernel) => {
  let unit: GuestUnit;
  const guest = useGuest(async () => {
    const booted = await bootWithCharm(
      kernel,
      { topology: TWINS_ONLY, iommu: "amd", name: "tier1-amd", append: ["iommu=pt"] },
      { devices: twinA },
    );
    unit = booted.unit;
    return booted.guest;
  });

  it("plans no amd_iommu=on, binds for real, and verifies against ivhd0", async () => {
    expect((await unit.dispatch("install")).exitCode).toBe(0);
    expect(await guest().readFile("/etc/default/grub.d/99-pci-passthrough.cfg")).not.toContain(
      "amd_iommu",
    );
    const bound = await action(unit, "rebind");
    expect(bound.failed, bound.failureMessage ?? "").toBe(false);
    expect(await driverOf(guest(), twinA)).toBe("vfio-pci");
    const verified = await action(unit, "verify-iommu");
    expect(verified.failed, verified.failureMessage ?? "").toBe(false);
    expect(JSON.stringify(verified.results)).toContain("ivhd0");
  });
});

describeVm("tier 1 with the IOMMU off", bed, (kernel) => {
  let unit: GuestUnit;
  const guest = useGuest(async () => {
    const booted = await bootWithCharm(
      kernel,
      { topology: TWINS_ONLY, iommu: "none", name: "tier1-off", append: [] },
      { devices: twinA },
    );
    unit = booted.unit;
    return booted.guest;
  });

  it("verify-iommu fails and says the IOMMU is off; rebind changes nothing", async () => {
    const verified = await action(unit, "verify-iommu");
    expect(verified.failed).toBe(true);
    expect(verified.failureMessage).toMatch(/IOMMU/);
    await action(unit, "rebind");
    expect(await driverOf(guest(), twinA)).toBe("e1000e");
  });
});
