/**
 * Proves the VM test bed itself, with no charm code: real IOMMU groups under the emulated Intel
 * and AMD IOMMUs and none without, the topologies land where tests/vm/lib/topologies.ts says, a
 * hand-made vfio-pci binding creates /dev/vfio/<group>, and Node runs inside the guest.
 */
import { expect, it } from "vitest";
import { checkVmBed, describeVm } from "./lib/require-tools";
import {
  attr,
  attrs,
  bindByHand,
  driverOf,
  exists,
  groupMembers,
  groupOf,
  list,
  netInterfaces,
} from "./lib/sysfs";
import { device, FULL, TWINS_ONLY } from "./lib/topologies";
import { bootBedGuest, useGuest } from "./lib/use-guest";

const bed = checkVmBed(1);

describeVm("VM bed smoke: Intel IOMMU", bed, (kernel) => {
  const guest = useGuest(() =>
    bootBedGuest(kernel, { topology: FULL, iommu: "intel", name: "smoke-intel" }),
  );

  it("boots the packaged kernel with dmar0 and IOMMU groups", async () => {
    expect(guest().release).toBe(kernel.release);
    expect(await list(guest(), "/sys/class/iommu")).toEqual(["dmar0"]);
    expect((await list(guest(), "/sys/kernel/iommu_groups")).length).toBeGreaterThan(5);
  });

  it("puts every topology device at its address with its ids and boot driver", async () => {
    for (const d of FULL.devices) {
      const [vendor, dev] = d.ids.split(":");
      const seen = await attrs(guest(), d.address, ["vendor", "device"]);
      expect(seen, d.key).toEqual({ vendor: `0x${vendor}`, device: `0x${dev}` });
      if (d.bootDriver) expect(await driverOf(guest(), d.address), d.key).toBe(d.bootDriver);
    }
  });

  it("marks the std VGA as the boot VGA; the secondary ones are not VGA-class at all", async () => {
    const boot = await attrs(guest(), device(FULL, "bootVga").address, ["boot_vga", "class"]);
    expect(boot).toEqual({ boot_vga: "1", class: "0x030000" });
    // The kernel only gives VGA-class (0x0300) functions a boot_vga attribute.
    for (const key of ["vgaA", "vgaB"]) {
      const seen = await attrs(guest(), device(FULL, key).address, ["boot_vga", "class"]);
      expect(seen, key).toEqual({ class: "0x038000" });
    }
  });

  it("gives the twins a group each, and groups the bridge with its NICs", async () => {
    const a = await groupOf(guest(), device(FULL, "twinA").address);
    const b = await groupOf(guest(), device(FULL, "twinB").address);
    expect(a).toBeDefined();
    expect(a).not.toBe(b);
    expect(await groupMembers(guest(), a!)).toEqual([device(FULL, "twinA").address]);

    const shared = await groupOf(guest(), device(FULL, "bridge").address);
    expect(await groupMembers(guest(), shared!)).toEqual(
      ["bridge", "sharedA", "sharedB"].map((k) => device(FULL, k).address).sort(),
    );
  });

  it("groups the two functions of the multi-function slot together", async () => {
    const gpu = device(FULL, "gpu").address;
    const audio = device(FULL, "gpuAudio").address;
    const group = await groupOf(guest(), gpu);
    expect(await groupMembers(guest(), group!)).toEqual([gpu, audio]);
    expect(await attr(guest(), audio, "class")).toBe("0x040300");
  });

  it("binds one e1000e twin to vfio-pci by hand while the other keeps e1000e, and back", async () => {
    const a = device(FULL, "twinA").address;
    const b = device(FULL, "twinB").address;
    const group = await groupOf(guest(), a);
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(false);

    await bindByHand(guest(), a, "vfio-pci");
    expect(await driverOf(guest(), a)).toBe("vfio-pci");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(true);
    expect(await driverOf(guest(), b)).toBe("e1000e");

    await bindByHand(guest(), a, "");
    expect(await driverOf(guest(), a)).toBe("e1000e");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(false);
  });

  it("lets the guest use a NIC: address and UP flag on the uplink", async () => {
    const [ifname] = await netInterfaces(guest(), device(FULL, "uplink").address);
    expect(ifname).toBeTruthy();
    await guest().exec(`ip addr add 192.0.2.10/24 dev ${ifname} && ip link set ${ifname} up`);
    const shown = await guest().exec(`ip -o addr show dev ${ifname}`);
    expect(shown).toContain("192.0.2.10/24");
    // No peer, so no carrier: the UP flag is set even though operstate stays down.
    expect(await guest().exec(`ip -o link show dev ${ifname}`)).toMatch(/<[^>]*\bUP\b/);
  });

  it("runs the host's Node inside the guest, against the guest's sysfs and a private /etc", async () => {
    const out = await guest().exec(
      `node -e 'const fs=require("fs");console.log(JSON.stringify({v:process.version,` +
        `iommu:fs.readdirSync("/sys/class/iommu"),host:fs.readFileSync("/etc/hostname","utf8").trim()}))'`,
    );
    const seen = JSON.parse(out) as { v: string; iommu: string[]; host: string };
    expect(seen.v).toMatch(/^v\d+/);
    expect(seen.iommu).toEqual(["dmar0"]);
    expect(seen.host).toBe("smoke-intel");
    // The guest writes /etc in its overlay; the host's /etc is untouched.
    await guest().exec("echo guest-only > /etc/vmbed-probe");
    expect(await guest().readFile("/etc/vmbed-probe")).toBe("guest-only\n");
  });
});

describeVm("VM bed smoke: AMD IOMMU", bed, (kernel) => {
  const guest = useGuest(() =>
    bootBedGuest(kernel, { topology: TWINS_ONLY, iommu: "amd", name: "smoke-amd" }),
  );

  it("has ivhd0, a group per twin, and vfio-pci binding", async () => {
    expect(await list(guest(), "/sys/class/iommu")).toEqual(["ivhd0"]);
    const a = device(TWINS_ONLY, "twinA").address;
    const group = await groupOf(guest(), a);
    expect(group).not.toBe(await groupOf(guest(), device(TWINS_ONLY, "twinB").address));
    await bindByHand(guest(), a, "vfio-pci");
    expect(await driverOf(guest(), a)).toBe("vfio-pci");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(true);
  });
});

describeVm("VM bed smoke: no IOMMU", bed, (kernel) => {
  const guest = useGuest(() =>
    bootBedGuest(kernel, { topology: TWINS_ONLY, iommu: "none", name: "smoke-none" }),
  );

  it("has no IOMMU unit, no groups, and vfio-pci cannot take a device", async () => {
    expect(await list(guest(), "/sys/class/iommu")).toEqual([]);
    expect(await list(guest(), "/sys/kernel/iommu_groups")).toEqual([]);
    const a = device(TWINS_ONLY, "twinA").address;
    expect(await groupOf(guest(), a)).toBeUndefined();
    await bindByHand(guest(), a, "vfio-pci");
    expect(await driverOf(guest(), a)).toBe("");
    expect(await list(guest(), "/dev/vfio")).toEqual(["vfio"]);
  });
});
