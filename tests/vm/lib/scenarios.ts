/** Steps the tier-1 suites of every architecture share, each checked the same way everywhere. */
import { expect } from "vitest";
import { key, results, sub, type Tree } from "./action-results";
import type { Guest } from "./guest";
import type { GuestCharm } from "./guest-charm";
import { driverOf, exists, groupOf, guestStateSnapshot, list, netInterfaces } from "./sysfs";
import type { Topology } from "./topologies";

/**
 * Gives a NIC an address and sets it up, as a host using it would; a rebind of it must then be
 * refused, naming the function and its interface, with nothing in the guest changed and the NIC
 * still on `driver`. Returns the interface name.
 */
export async function expectInUseNicRefused(
  guest: Guest,
  charm: GuestCharm,
  address: string,
  driver: string,
): Promise<string> {
  const [ifname] = await netInterfaces(guest, address);
  if (!ifname) throw new Error(`${address} has no network interface`);
  await guest.exec(`ip addr add 192.0.2.10/24 dev ${ifname} && ip link set ${ifname} up`);
  const before = await guestStateSnapshot(guest);
  const run = await charm.action("rebind", { devices: address });
  expect(run.action.failed).toBe(true);
  expect(run.action.failureMessage).toContain(address);
  expect(run.action.failureMessage).toContain(ifname);
  expect(await guestStateSnapshot(guest)).toBe(before);
  expect(await driverOf(guest, address)).toBe(driver);
  return ifname;
}

/**
 * Runs list-devices and checks it against the guest's sysfs: every function listed once (and
 * counted), and for each device of the topology its ids, driver and IOMMU group as sysfs says.
 * Returns the listed rows by result key.
 */
export async function expectListDevicesMatchesSysfs(
  guest: Guest,
  charm: GuestCharm,
  topology: Topology,
): Promise<Tree> {
  const run = await charm.action("list-devices");
  expect(run.action.failed).toBe(false);
  const listed = sub(results(run), "devices");
  const inSysfs = await list(guest, "/sys/bus/pci/devices");
  expect(Number(results(run).count)).toBe(inSysfs.length);
  expect(Object.keys(listed).sort()).toEqual(inSysfs.map(key).sort());
  for (const d of topology.devices) {
    const row = sub(listed, key(d.address));
    expect(row.ids, d.key).toBe(d.ids);
    expect(row.driver, d.key).toBe((await driverOf(guest, d.address)) || "no driver");
    expect(row["iommu-group"], d.key).toBe(String(await groupOf(guest, d.address)));
  }
  return listed;
}

/**
 * Selects `address` and runs rebind: it and `mate` (a function of its IOMMU group, or of its card)
 * must both land on vfio-pci and the group's /dev/vfio node appear. Returns the group.
 */
export async function expectRebindTakesMate(
  guest: Guest,
  charm: GuestCharm,
  address: string,
  mate: string,
): Promise<number | undefined> {
  const group = await groupOf(guest, address);
  charm.setConfig({ devices: address });
  const moved = await charm.action("rebind");
  expect(moved.action.failureMessage).toBeNull();
  expect(await driverOf(guest, address)).toBe("vfio-pci");
  expect(await driverOf(guest, mate)).toBe("vfio-pci"); // pulled along as a group member
  expect(await exists(guest, `/dev/vfio/${group}`)).toBe(true);
  return group;
}

/**
 * After expectRebindTakesMate on a shared group: rebind to host gives both functions back to
 * `hostDriver`, and verify-iommu then calls the group not viable for `address` alone, naming `mate`.
 */
export async function expectGroupBackNotViable(
  guest: Guest,
  charm: GuestCharm,
  address: string,
  mate: string,
  hostDriver: string,
): Promise<void> {
  const back = await charm.action("rebind", { to: "host" });
  expect(back.action.failureMessage).toBeNull();
  expect(await driverOf(guest, address)).toBe(hostDriver);
  expect(await driverOf(guest, mate)).toBe(hostDriver);
  const verify = await charm.action("verify-iommu");
  expect(verify.action.failed).toBe(true);
  expect(sub(results(verify), "devices", key(address)).viable).toBe("no");
  expect(verify.action.failureMessage).toContain(mate);
}
