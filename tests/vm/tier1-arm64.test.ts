/**
 * Tier 1 on arm64: Debian's arm64 kernel under qemu-system-aarch64 (virt, SMMUv3, GICv3 with its
 * ITS), and the arm64 .charm with its own arm64 Node.js running inside it against the guest's real
 * sysfs. One boot serves every case (tests/vm/lib/topologies.ts ARM64): identical twins, one
 * selected by address, list-devices, verify-iommu, rebind to vfio-pci and back, the NIC in use
 * refused, a shared group handled. Every assertion after an action reads the guest's sysfs itself.
 */
import { expect, it } from "vitest";
import { key, results, sub } from "./lib/action-results";
import { deployCharmInGuest, type GuestCharm, JUJU_CHARM_DIR } from "./lib/guest-charm";
import { checkVmBed, describeVm } from "./lib/require-tools";
import {
  expectGroupBackNotViable,
  expectInUseNicRefused,
  expectListDevicesMatchesSysfs,
  expectRebindTakesMate,
} from "./lib/scenarios";
import { driverOf, exists, groupOf, list, netInterfaces } from "./lib/sysfs";
import { ARM64, device } from "./lib/topologies";
import { useBedGuest } from "./lib/use-guest";

const bed = checkVmBed(1, "arm64");
const twinA = device(ARM64, "twinA").address;
const twinB = device(ARM64, "twinB").address;
const DROP_IN = "/etc/default/grub.d/99-pci-passthrough.cfg";

describeVm("tier 1 (arm64, SMMUv3): the arm64 charm on a real arm64 kernel", bed, (kernel) => {
  // iommu.passthrough=1 (as the charm's drop-in sets it on arm64), 2 GiB: the charm's Node.js
  // needs the room (the x86 guests run with 1 GiB).
  const { share, guest } = useBedGuest(kernel, "tier1-arm64", ARM64, "smmuv3", { memoryMb: 2048 });
  let charm: GuestCharm;
  const deployed = () => charm;

  it("boots an aarch64 kernel with the SMMUv3 on and the twins in groups of their own", async () => {
    expect(kernel.arch).toBe("arm64");
    expect((await guest().exec("uname -m")).trim()).toBe("aarch64");
    expect(await list(guest(), "/sys/class/iommu")).toEqual(["smmu3.0x0000000009050000"]);
    const groups = [await groupOf(guest(), twinA), await groupOf(guest(), twinB)];
    expect(groups.every((g) => g !== undefined)).toBe(true);
    expect(groups[0]).not.toBe(groups[1]);
  });

  it("install: the arm64 charm runs on its own arm64 Node.js and plans arm64's parameters", async () => {
    charm = await deployCharmInGuest({
      guest: guest(),
      share,
      arch: "arm64",
      config: { devices: twinA },
      recordedCommands: ["update-grub", "update-initramfs"],
    });
    const node = `${JUJU_CHARM_DIR}/runtime/bin/node`;
    expect((await guest().exec(`${node} -p process.arch`)).trim()).toBe("arm64");
    const run = await charm.dispatch("install");
    expect(charm.sim.readState().logs.filter((l) => l.level === "ERROR")).toEqual([]);
    expect(run.exitCode, charm.explain(run)).toBe(0);
    // dispatch found its runtime for this machine, not a node on PATH (there is none here).
    expect(run.stderr).not.toMatch(/bundled runtime is for/);
    expect(charm.commands()).toEqual(["update-initramfs -u -k all", "update-grub"]);
    const dropIn = await guest().readFile(`/run/vmbed/upper${DROP_IN}`);
    expect(dropIn).toContain("iommu.passthrough=1");
    expect(dropIn).not.toMatch(/intel_iommu|amd_iommu|iommu=pt/);
    // The guest booted with iommu.passthrough=1 already: only the twin's binding is pending.
    expect(charm.status().message).toMatch(/reboot required/);
    expect(charm.status().message).toContain(twinA);
    expect(charm.status().message).not.toContain("iommu.passthrough=1");
  });

  it("config-changed: iommu=intel on arm64 is refused, naming the option; auto again is active", async () => {
    deployed().setConfig({ iommu: "intel" });
    const refused = await deployed().dispatch("config-changed");
    expect(refused.exitCode).toBe(0);
    expect(deployed().status()).toMatchObject({ status: "blocked" });
    expect(deployed().status().message).toMatch(
      /^iommu: iommu=intel names the Intel VT-d IOMMU of x86 hosts, but this host runs a aarch64 kernel/,
    );
    // Refused before anything was written: the drop-in is still arm64's.
    expect(await guest().readFile(`/run/vmbed/upper${DROP_IN}`)).toContain("iommu.passthrough=1");
    deployed().setConfig({ iommu: "auto" });
    expect((await deployed().dispatch("config-changed")).exitCode).toBe(0);
    expect(deployed().status().message).toMatch(/reboot required/);
  });

  it("list-devices reports what the guest's sysfs says, selecting only the chosen twin", async () => {
    const listed = await expectListDevicesMatchesSysfs(guest(), deployed(), ARM64);
    expect(sub(listed, key(twinA)).selected).toBe("yes");
    expect(sub(listed, key(twinB)).selected).toBe("no");
  });

  it("verify-iommu: SMMUv3, MSIs isolated by the GIC ITS, the twin not on vfio-pci yet", async () => {
    const run = await deployed().action("verify-iommu");
    expect(run.action.failed).toBe(true);
    const r = results(run);
    expect(sub(r, "iommu")).toMatchObject({ enabled: "yes", units: "smmu3.0x0000000009050000" });
    expect(sub(r, "cmdline")).toMatchObject({ planned: "iommu.passthrough=1", missing: "none" });
    expect(sub(r, "msi-isolation")).toMatchObject({ state: "enabled", by: "GIC ITS" });
    expect(r["interrupt-remapping"]).toBeUndefined();
    expect(sub(r, "devices", key(twinA))).toMatchObject({ driver: "e1000e", viable: "yes" });
    expect(run.action.failureMessage).toContain(twinA);
  });

  it("rebind moves the selected twin to vfio-pci and back; the other twin never moves", async () => {
    const group = await groupOf(guest(), twinA);
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(false);
    const moved = await deployed().action("rebind");
    expect(moved.action.failureMessage).toBeNull();
    expect(await driverOf(guest(), twinA)).toBe("vfio-pci");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(true);
    expect(await driverOf(guest(), twinB)).toBe("e1000e");
    const verify = await deployed().action("verify-iommu");
    expect(verify.action.failureMessage).toBeNull();
    expect(results(verify).ok).toBe("yes");

    const back = await deployed().action("rebind", { to: "host" });
    expect(back.action.failureMessage).toBeNull();
    expect(await driverOf(guest(), twinA)).toBe("e1000e");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(false);
    expect(await driverOf(guest(), twinB)).toBe("e1000e");
    expect((await netInterfaces(guest(), twinA)).length).toBe(1);
  });

  it("refuses the NIC the host uses and changes nothing", async () => {
    await expectInUseNicRefused(guest(), deployed(), device(ARM64, "uplink").address, "e1000");
  });

  it("a shared group: rebind takes the whole group and gives it back; verify names the mate", async () => {
    const sharedA = device(ARM64, "sharedA").address;
    const sharedB = device(ARM64, "sharedB").address;
    const group = await groupOf(guest(), sharedA);
    expect(group).toBeDefined();
    expect(await groupOf(guest(), sharedB)).toBe(group);
    // The root port above them is in the group too (QEMU's has no ACS); bridges may stay.
    const port = device(ARM64, "rootPort").address;
    expect(await groupOf(guest(), port)).toBe(group);

    expect(await expectRebindTakesMate(guest(), deployed(), sharedA, sharedB)).toBe(group);
    expect(await driverOf(guest(), port)).toBe("pcieport"); // bridges stay as they are

    await expectGroupBackNotViable(guest(), deployed(), sharedA, sharedB, "e1000e");
  });
});
