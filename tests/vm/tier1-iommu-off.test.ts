/**
 * Tier 1, no IOMMU (QEMU without an IOMMU device): verify-iommu says so and fails; rebind refuses
 * instead of leaving a device with no driver, and the guest is unchanged afterwards.
 */
import { expect, it } from "vitest";
import { deployCharmInGuest, type GuestCharm } from "./lib/guest-charm";
import { checkVmBed, describeVm } from "./lib/require-tools";
import { driverOf, guestStateSnapshot, list } from "./lib/sysfs";
import { device, TWINS_ONLY } from "./lib/topologies";
import { bootBedGuest, useGuest, useShare } from "./lib/use-guest";

const bed = checkVmBed(1);
const twinA = device(TWINS_ONLY, "twinA").address;
type Tree = { [k: string]: string | Tree };

describeVm("tier 1 (IOMMU off): charm actions on a real kernel", bed, (kernel) => {
  const share = useShare("tier1-off");
  const guest = useGuest(() =>
    bootBedGuest(kernel, { topology: TWINS_ONLY, iommu: "none", name: "tier1-off", share }),
  );
  let charm: GuestCharm;

  it("verify-iommu fails saying the IOMMU is off", async () => {
    expect(await list(guest(), "/sys/kernel/iommu_groups")).toEqual([]);
    charm = await deployCharmInGuest({ guest: guest(), share, config: { devices: twinA } });
    const run = await charm.action("verify-iommu");
    expect(run.action.failed).toBe(true);
    expect((run.action.results as Tree).iommu).toMatchObject({ enabled: "no", units: "none" });
    expect(run.action.failureMessage).toMatch(/IOMMU is off/);
  });

  it("rebind refuses a device without an IOMMU group and changes nothing", async () => {
    const before = await guestStateSnapshot(guest());
    const run = await charm.action("rebind");
    expect(run.action.failed).toBe(true);
    expect(run.action.failureMessage).toContain(twinA);
    expect(run.action.failureMessage).toMatch(/no IOMMU group/);
    expect(await driverOf(guest(), twinA)).toBe("e1000e");
    expect(await guestStateSnapshot(guest())).toBe(before);
  });
});
