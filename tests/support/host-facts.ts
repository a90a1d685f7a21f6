// Host facts for the planner's unit tests, built in code (the planner takes facts, never reads).
// The shapes follow real sysfs: modalias strings as the kernel prints them, modules.alias lines
// as depmod writes them, IOMMU groups derived from the functions.
import * as fs from "node:fs";
import * as path from "node:path";
import type { DeviceSelector } from "../../src/config";
import type { HostFacts, ModuleAliases, PciFunction } from "../../src/host/facts";
import { parseModuleAliases } from "../../src/host/modules";
import { parseAddressPattern } from "../../src/pci-vocabulary";

const hex = (s: string, width: number) => s.toUpperCase().padStart(width, "0");

/** The `modalias` the kernel writes for a function (drivers/pci/pci-sysfs.c). */
export function modaliasOf(
  vendor: string,
  device: string,
  classCode: string,
  subVendor = "0000",
  subDevice = "0000",
): string {
  return (
    `pci:v${hex(vendor, 8)}d${hex(device, 8)}sv${hex(subVendor, 8)}sd${hex(subDevice, 8)}` +
    `bc${hex(classCode.slice(0, 2), 2)}sc${hex(classCode.slice(2, 4), 2)}i${hex(classCode.slice(4, 6), 2)}`
  );
}

/** A PCI function with sensible defaults; `ids` is "vvvv:dddd". */
export function fn(
  address: string,
  ids: string,
  classCode: string,
  extra: Partial<PciFunction> = {},
): PciFunction {
  const [vendorId = "", deviceId = ""] = ids.split(":");
  return {
    address,
    vendorId,
    deviceId,
    subsystemVendorId: null,
    subsystemDeviceId: null,
    classCode,
    driver: null,
    driverOverride: null,
    iommuGroup: null,
    numaNode: null,
    bootVga: false,
    modalias: modaliasOf(vendorId, deviceId, classCode),
    isBridge: classCode.startsWith("0604"),
    sriov: null,
    physfn: null,
    netInterfaces: [],
    consumers: [],
    ...extra,
  };
}

/** A network PF on `driver` with `numVfs` of its `totalVfs` VFs enabled. */
export function netPf(
  address: string,
  ids: string,
  driver: string,
  iommuGroup: number,
  vfs: { numVfs: number; totalVfs: number },
  extra: Partial<PciFunction> = {},
): PciFunction {
  return fn(address, ids, "020000", { driver, iommuGroup, sriov: { ...vfs }, ...extra });
}

/** A network VF of the PF at `physfn`, on `driver`. */
export function netVf(
  address: string,
  ids: string,
  driver: string | null,
  iommuGroup: number,
  physfn: string,
): PciFunction {
  return fn(address, ids, "020000", { driver, iommuGroup, physfn });
}

/** Host facts around the given functions; groups come from each function's iommuGroup. */
export function host(functions: PciFunction[], extra: Partial<HostFacts> = {}): HostFacts {
  const iommuGroups = new Map<number, string[]>();
  for (const f of functions) {
    if (f.iommuGroup === null) continue;
    iommuGroups.set(f.iommuGroup, [...(iommuGroups.get(f.iommuGroup) ?? []), f.address].sort());
  }
  return {
    functions: [...functions].sort((a, b) => (a.address < b.address ? -1 : 1)),
    iommuGroups,
    iommuGroupsDir: "present",
    iommuUnits: ["dmar0", "dmar1"],
    cmdline: "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=LABEL=cloudimg-rootfs ro console=ttyS0",
    cpuVendor: "intel",
    machine: "x86_64",
    arch: "x86",
    kernelRelease: "6.8.0-45-generic",
    vfioPci: "builtin",
    container: false,
    vfioDevices: new Set(),
    ...extra,
  };
}

/** Moves the function at `address` into IOMMU group `group`, as an ACS-less slot shares one:
 * the function and both groups' member lists change (an emptied group goes). */
export function moveToGroup(facts: HostFacts, address: string, group: number): void {
  const f = facts.functions.find((x) => x.address === address);
  if (!f) throw new Error(`moveToGroup: no function ${address}`);
  if (f.iommuGroup !== null) {
    const left = (facts.iommuGroups.get(f.iommuGroup) ?? []).filter((a) => a !== address);
    if (left.length > 0) facts.iommuGroups.set(f.iommuGroup, left);
    else facts.iommuGroups.delete(f.iommuGroup);
  }
  f.iommuGroup = group;
  facts.iommuGroups.set(group, [...(facts.iommuGroups.get(group) ?? []), address].sort());
}

/** modules.alias's answers for every function of `facts`: what host/ hands the planner, read
 * before planning, matched by the host reader's own parser (src/host/modules.ts), so the
 * planner's tests match modaliases exactly as the hooks do. */
export function moduleAliases(modulesAlias: string, facts: HostFacts): ModuleAliases {
  const index = parseModuleAliases(modulesAlias);
  return new Map(facts.functions.map(({ modalias }) => [modalias, index.modulesFor(modalias)]));
}

/** modules.alias lines (6.8) for the hardware in these tests, read from
 * tests/fixtures/modules-alias/planner-hardware.alias. */
export const MODULES_ALIAS = fs.readFileSync(
  path.join(__dirname, "..", "fixtures", "modules-alias", "planner-hardware.alias"),
  "utf8",
);

/** An X722 port (8086:37d2) on i40e carrying the host's interface `nic`. */
const i40ePort = (address: string, iommuGroup: number, nic: string) =>
  fn(address, "8086:37d2", "020000", { driver: "i40e", iommuGroup, netInterfaces: [nic] });

/** A Quadro P5000 (10de:1bb0) at `<slot>.0` on nouveau and its HDMI audio (10de:10f0) at `.1`, one
 * IOMMU group, NUMA node 1. */
const p5000WithAudio = (slot: string, iommuGroup: number): PciFunction[] => [
  fn(`${slot}.0`, "10de:1bb0", "030000", { driver: "nouveau", iommuGroup, numaNode: 1 }),
  fn(`${slot}.1`, "10de:10f0", "040300", { driver: "snd_hda_intel", iommuGroup, numaNode: 1 }),
];

/**
 * The host of the manual procedure (openstack-charm-guide-pci-passthrough.txt): an Intel server
 * with two Quadro P5000 (10de:1bb0) at 83:00.0 and 84:00.0, each with its HDMI audio, behind root
 * ports; an ASPEED BMC console GPU; onboard audio, SATA and two i40e ports.
 */
export function seedHost(extra: Partial<HostFacts> = {}): HostFacts {
  return host(
    [
      fn("0000:00:00.0", "8086:2020", "060000", { iommuGroup: 0 }),
      fn("0000:00:17.0", "8086:a182", "010601", { driver: "ahci", iommuGroup: 8 }),
      fn("0000:00:1f.3", "8086:a1f0", "040300", { driver: "snd_hda_intel", iommuGroup: 9 }),
      fn("0000:02:00.0", "1a03:2000", "030000", { driver: "ast", iommuGroup: 11, bootVga: true }),
      i40ePort("0000:3d:00.0", 30, "eno1"),
      i40ePort("0000:3d:00.1", 31, "eno2"),
      fn("0000:80:02.0", "8086:2032", "060400", { driver: "pcieport", iommuGroup: 50 }),
      fn("0000:80:03.0", "8086:2033", "060400", { driver: "pcieport", iommuGroup: 51 }),
      ...p5000WithAudio("0000:83:00", 60),
      ...p5000WithAudio("0000:84:00", 61),
    ],
    extra,
  );
}

/** A selector as parseConfig would produce it; `address` is written as in the option. */
export function sel(
  partial: Omit<Partial<DeviceSelector>, "address"> & { source: string; address?: string | null },
): DeviceSelector {
  const { address = null, ...rest } = partial;
  const pattern = address === null ? null : parseAddressPattern(address);
  if (typeof pattern === "string") throw new Error(`test selector address ${address} ${pattern}`);
  return {
    index: 0,
    vendorId: null,
    productId: null,
    alias: null,
    companions: true,
    force: false,
    numaPolicy: null,
    vfs: null,
    physicalNetwork: null,
    ...rest,
    address: pattern,
  };
}
