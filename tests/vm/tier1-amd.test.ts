/**
 * Tier 1, AMD IOMMU (`-cpu EPYC -device amd-iommu`): the charm sees ivhd0, plans no
 * intel_iommu=on, and moves one of two identical twins to vfio-pci and back on the real kernel.
 */
import { expect, it } from "vitest";
import { deployCharmInGuest, type GuestCharm } from "./lib/guest-charm";
import { checkVmBed, describeVm } from "./lib/require-tools";
import { driverOf, exists, groupOf } from "./lib/sysfs";
import { device, TWINS_ONLY } from "./lib/topologies";
import { useBedGuest } from "./lib/use-guest";

const bed = checkVmBed(1);
const twinA = device(TWINS_ONLY, "twinA").address;
const twinB = device(TWINS_ONLY, "twinB").address;
const key = (address: string) => address.replace(/[:.]/g, "-");
type Tree = { [k: string]: string | Tree };

describeVm("tier 1 (AMD IOMMU): charm actions on a real kernel", bed, (kernel) => {
  const { share, guest } = useBedGuest(kernel, "tier1-amd", TWINS_ONLY, "amd");
  let charm: GuestCharm;

  it("verify-iommu sees ivhd0 and plans no Intel parameter; the twin is not yet on vfio-pci", async () => {
    charm = await deployCharmInGuest({ guest: guest(), share, config: { devices: twinA } });
    const run = await charm.action("verify-iommu");
    const r = run.action.results as Tree;
    expect(r.iommu).toMatchObject({ enabled: "yes", units: "ivhd0" });
    const cmdline = r.cmdline as Tree;
    expect(cmdline.planned).toBe("iommu=pt");
    expect(cmdline.missing).toBe("none");
    expect(run.action.failed).toBe(true);
    expect((r.devices as Tree)[key(twinA)]).toMatchObject({ driver: "e1000e", viable: "yes" });
  });

  it("rebind moves the selected twin to vfio-pci and back; the other twin never moves", async () => {
    const group = await groupOf(guest(), twinA);
    const moved = await charm.action("rebind");
    expect(moved.action.failureMessage).toBeNull();
    expect(await driverOf(guest(), twinA)).toBe("vfio-pci");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(true);
    expect(await driverOf(guest(), twinB)).toBe("e1000e");
    const verify = await charm.action("verify-iommu");
    expect(verify.action.failureMessage).toBeNull();

    const back = await charm.action("rebind", { to: "host" });
    expect(back.action.failureMessage).toBeNull();
    expect(await driverOf(guest(), twinA)).toBe("e1000e");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(false);
    expect(await driverOf(guest(), twinB)).toBe("e1000e");
  });
});
