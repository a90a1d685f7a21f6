/**
 * Tier 1, no IOMMU (QEMU without an IOMMU device): verify-iommu says so and fails; rebind refuses
 * instead of leaving a device with no driver, and the guest is unchanged afterwards; list-devices
 * says, before the reboot, the group each function will have once the IOMMU is on (the same FULL
 * topology as tier1-intel, which checks those groups against the kernel's).
 */
import { expect, it } from "vitest";
import { results, sub } from "./lib/action-results";
import { deployCharmInGuest, type GuestCharm } from "./lib/guest-charm";
import { groupsOfKeys } from "./lib/predicted-groups";
import { checkVmBed, describeVm } from "./lib/require-tools";
import { driverOf, guestStateSnapshot, list } from "./lib/sysfs";
import { device, FULL, GROUPING_GROUPS } from "./lib/topologies";
import { bootBedGuest, useGuest, useShare } from "./lib/use-guest";

const bed = checkVmBed(1);
const twinA = device(FULL, "twinA").address;
type Tree = { [k: string]: string | Tree };

describeVm("tier 1 (IOMMU off): charm actions on a real kernel", bed, (kernel) => {
  const share = useShare("tier1-off");
  const guest = useGuest(() =>
    bootBedGuest(kernel, { topology: FULL, iommu: "none", name: "tier1-off", share }),
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

  it("list-devices predicts from config space the groups the kernel will make once it is on", async () => {
    const run = await charm.action("list-devices");
    expect(run.action.failed).toBe(false);
    const rows = Object.values(sub(results(run), "devices")) as Tree[];
    const groups = new Set<string>();
    for (const row of rows) {
      const said = String(row["iommu-group-after-reboot"]);
      const address = String(row.address);
      const shared = /^shared with (.*?) \(predicted/.exec(said);
      expect(shared !== null || said.startsWith("its own"), `${address}: ${said}`).toBe(true);
      const members = [address, ...(shared ? shared[1]!.split(", ") : [])].sort();
      groups.add(members.join(" "));
    }
    // Each case of the kernel's rules, as tier1-intel sees the kernel make it.
    for (const g of groupsOfKeys(FULL.devices, GROUPING_GROUPS)) expect([...groups]).toContain(g);
    const cardA1 = rows.find((r) => r.address === device(FULL, "cardA1").address)!;
    expect(cardA1["iommu-group-after-reboot"]).toContain("without ACS");
  });
});
