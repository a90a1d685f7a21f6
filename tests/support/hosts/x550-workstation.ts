// The workstation of issue 24: a two-port Intel X550 (8086:1563, ixgbe) whose functions expose no
// ACS, the host's network on port 0, the IOMMU still off (first install). Constructed, not
// recorded: no public sysfs recording of such a machine was found (the real-host corpus holds
// Debian's test recordings, none with an X550), so it is built from real shapes:
// - ids, class, driver: the X550T as `lspci -nn` and `dpkg-devbind` show it on public hosts
//   ("Ethernet Controller 10G X550T [8086:1563] (rev 01)", two functions at <bus>:00.0/.1, ixgbe);
//   the modules.alias lines are Debian 6.1's (depmod output: `pci:v00008086d00001563… ixgbe`);
// - config space: the X550's capability list as public `lspci -vvv` listings of the X540/X550
//   family show it — Power Management [40], MSI [50], MSI-X [70], PCI Express v2 Endpoint [a0],
//   VPD [e0]; extended AER [100], Device Serial Number [140], ARI [150], SR-IOV [160] — with no
//   ACS capability, as the workstation had; the header type's multi-function bit set;
// - the root port above it is a Xeon W / Scalable CPU root port (8086:2030) with ACS, so the only
//   thing that merges the two ports is the NIC's own missing ACS (variants below change that).
// Only the registers the charm reads are filled in (tests/support/pci-config-space.ts).
import {
  acsCapability,
  type ConfigSpaceSpec,
  configSpace,
  PCIE_TYPE,
  pcieCapability,
} from "../pci-config-space";
import type { HostSpec, PciSpec } from "./build-host";

export interface X550Options {
  /** Give the X550's functions an ACS capability (at [1d0]): they get a group each. */
  nicAcs?: boolean;
  /** Take the ACS capability away from the root port: everything below it shares its group. */
  rootPortWithoutAcs?: boolean;
  /** The IOMMU on, with the groups the kernel makes for this topology (after the reboot). */
  iommuOn?: boolean;
  /** Driver of port 1 (the one the operator selects); default ixgbe. */
  port1Driver?: string;
  /** Port 0 down with no address: the host does not use it (its network is elsewhere). */
  port0Free?: boolean;
}

/** The X550's config space (one function): multi-function, an endpoint, ACS only if asked. */
export function x550Config(withAcs: boolean): Uint8Array {
  const spec: ConfigSpaceSpec = {
    vendor: 0x8086,
    device: 0x1563,
    classCode: 0x020000,
    revision: 0x01,
    multifunction: true,
    capabilities: [
      { at: 0x40, id: 0x01 },
      { at: 0x50, id: 0x05 },
      { at: 0x70, id: 0x11 },
      pcieCapability(0xa0, PCIE_TYPE.endpoint),
      { at: 0xe0, id: 0x03 },
    ],
    extended: [
      { at: 0x100, id: 0x0001, version: 2 },
      { at: 0x140, id: 0x0003 },
      { at: 0x150, id: 0x000e },
      { at: 0x160, id: 0x0010 },
      ...(withAcs ? [acsCapability(0x1d0)] : []),
    ],
  };
  return configSpace(spec);
}

/** A CPU root port (8086:2030): a bridge header, PCI Express root port, ACS unless told not. */
export function rootPortConfig(withAcs: boolean): Uint8Array {
  return configSpace({
    vendor: 0x8086,
    device: 0x2030,
    classCode: 0x060400,
    headerType: 1,
    capabilities: [pcieCapability(0x40, PCIE_TYPE.rootPort), { at: 0x80, id: 0x01 }],
    extended: [
      { at: 0x100, id: 0x0001, version: 2 },
      ...(withAcs ? [acsCapability(0x110, 0x005f)] : []),
    ],
  });
}

/** A single-function root-complex integrated endpoint (the chipset's AHCI, the host bridge). */
function integratedConfig(device: number, classCode: number): Uint8Array {
  return configSpace({
    vendor: 0x8086,
    device,
    classCode,
    capabilities: [pcieCapability(0x40, 9)],
  });
}

export function x550WorkstationHost(options: X550Options = {}): HostSpec {
  const release = "6.1.0-57-amd64";
  const group = (n: number) => (options.iommuOn ? n : null);
  const nicGroup = (fnIndex: number) =>
    !options.iommuOn ? null : options.rootPortWithoutAcs ? 2 : options.nicAcs ? 3 + fnIndex : 3;
  const port = (fnIndex: number, driver: string): PciSpec => ({
    address: `0000:18:00.${fnIndex}`,
    parent: "0000:17:00.0",
    vendor: "8086",
    device: "1563",
    subsystemVendor: "8086",
    subsystemDevice: "001d",
    class: "020000",
    revision: "01",
    driver,
    iommuGroup: nicGroup(fnIndex),
    config: x550Config(options.nicAcs ?? false),
  });
  const pci: PciSpec[] = [
    {
      address: "0000:00:00.0",
      vendor: "8086",
      device: "2020",
      class: "060000",
      iommuGroup: group(0),
      config: integratedConfig(0x2020, 0x060000),
    },
    {
      address: "0000:00:17.0",
      vendor: "8086",
      device: "a182",
      class: "010601",
      driver: "ahci",
      iommuGroup: group(1),
      config: integratedConfig(0xa182, 0x010601),
    },
    {
      address: "0000:17:00.0",
      vendor: "8086",
      device: "2030",
      class: "060400",
      driver: "pcieport",
      iommuGroup: group(2),
      config: rootPortConfig(!options.rootPortWithoutAcs),
    },
    port(0, "ixgbe"),
    port(1, options.port1Driver ?? "ixgbe"),
  ];
  return {
    cpu: "intel",
    kernelRelease: release,
    cmdline: options.iommuOn
      ? `BOOT_IMAGE=/vmlinuz-${release} root=/dev/sda1 ro intel_iommu=on iommu=pt`
      : `BOOT_IMAGE=/vmlinuz-${release} root=/dev/sda1 ro`,
    pci,
    ...(options.iommuOn ? { iommuUnits: [{ name: "dmar0", ecap: "19ed008c40f0df" }] } : {}),
    net: [
      options.port0Free
        ? { name: "eno1", pci: "0000:18:00.0", up: false, mac: "3c:ec:ef:10:00:10" }
        : {
            name: "eno1",
            pci: "0000:18:00.0",
            up: true,
            mac: "3c:ec:ef:10:00:10",
            ipv4: ["192.168.1.20/24"],
            gateway4: "192.168.1.1",
          },
      ...(options.port1Driver && options.port1Driver !== "ixgbe"
        ? []
        : [{ name: "eno2", pci: "0000:18:00.1", up: false, mac: "3c:ec:ef:10:00:11" }]),
    ],
    block: [{ name: "sda", pci: "0000:00:17.0", partitions: ["sda1"] }],
    mounts: [{ device: "/dev/sda1", mountpoint: "/" }],
    modules: {
      alias: [
        "alias pci:v00008086d00001563sv*sd*bc*sc*i* ixgbe",
        "alias pci:v*d*sv*sd*bc01sc06i01* ahci",
      ],
    },
    vfioPci: "module",
    vfioLoaded: options.port1Driver === "vfio-pci",
    files: {
      "/etc/default/grub": [
        "GRUB_DEFAULT=0",
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet"',
        'GRUB_CMDLINE_LINUX=""',
        "",
      ].join("\n"),
    },
  };
}
