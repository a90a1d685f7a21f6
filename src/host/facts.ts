// What the charm knows about a host, read once per dispatch from sysfs/procfs under the root.
// Only types live here: the readers are in pci.ts / kernel.ts / usage.ts, the decisions in plan/.

/** One PCI function as sysfs shows it under /sys/bus/pci/devices/<address>. */
export interface PciFunction {
  /** Full address with domain, lower case: `0000:83:00.0`. */
  address: string;
  /** 4 lower-case hex digits without `0x`: `10de`. */
  vendorId: string;
  deviceId: string;
  subsystemVendorId: string | null;
  subsystemDeviceId: string | null;
  /** 6 lower-case hex digits (class, subclass, prog-if): `030000` is a VGA controller. */
  classCode: string;
  /** Basename of the `driver` link, or null when unbound (or the link points nowhere). */
  driver: string | null;
  /** Contents of `driver_override`, null when empty / `(null)`. */
  driverOverride: string | null;
  /** Basename of the `iommu_group` link; null when the IOMMU is off or the device has none. */
  iommuGroup: number | null;
  /** `numa_node`; null for -1 (no affinity) or absent. */
  numaNode: number | null;
  /** `boot_vga` = 1: the firmware console GPU. */
  bootVga: boolean;
  /** `modalias`, matched against modules.alias to find the drivers that would claim it. */
  modalias: string;
  /** PCI-to-PCI bridge or PCIe port (class 0604): allowed in a group given to VMs. */
  isBridge: boolean;
  /** SR-IOV physical function: `sriov_totalvfs` / `sriov_numvfs`; null if not SR-IOV capable. */
  sriov: SriovCapability | null;
  /** For a virtual function: the PF's address (from the `physfn` link). */
  physfn: string | null;
  /** Network interface names under `<dev>/net/`. */
  netInterfaces: string[];
  /** Addresses from `consumer:pci:<address>` links (device links: a GPU's USB-C/audio). */
  consumers: string[];
  /** The bridge or port this function sits below (its parent in /sys/devices); null on a root
   * bus. Read only while the IOMMU is off (host/pci-config.ts): absent otherwise. */
  upstream?: string | null;
  /** What its config space says about isolation, for predicting IOMMU groups before the IOMMU is
   * on; null when the config space could not be read. Absent while the IOMMU is on. */
  isolation?: PciIsolation | null;
}

/** The config-space facts the kernel's grouping (pci_device_group) looks at. */
export interface PciIsolation {
  /** Header type bit 7: the device has more functions than this one. */
  multifunction: boolean;
  /** The PCI Express capability's device/port type (0 endpoint, 1 legacy endpoint, 4 root port,
   * 5 switch upstream port, 6 switch downstream port, 7 PCIe-to-PCI bridge, 8 PCI-to-PCIe bridge,
   * 9 root-complex integrated endpoint, 10 root-complex event collector); null for conventional
   * PCI (no PCI Express capability). */
  pcieType: number | null;
  /** The ACS extended capability (ID 0x000D): its capability register; null without one. */
  acsCapability: number | null;
  /** Its control register as it is now (what firmware or the kernel enabled); null without one. */
  acsControl?: number | null;
}

/** What an SR-IOV PF's sysfs says about its VFs. The optional fields come from Linux 5.0 on
 * (`sriov_offset`, `sriov_stride`, `sriov_vf_device`) and 4.12 (`sriov_drivers_autoprobe`); absent
 * or null on older kernels and recordings. */
export interface SriovCapability {
  totalVfs: number;
  numVfs: number;
  /** Routing-id distance of the first VF from the PF, and between VFs: where VFs will appear
   * before they exist. */
  offset?: number | null;
  stride?: number | null;
  /** The VFs' device id (4 hex digits). */
  vfDeviceId?: string | null;
  /** Whether a new VF is probed by drivers at once (1, the default) or left unbound (0). */
  driversAutoprobe?: boolean | null;
}

/** A network interface and how the host uses it (for rebind refusals). */
export interface NetInterface {
  name: string;
  /** PCI address of the function behind it, if any (from the `device` link). */
  pciAddress: string | null;
  /** IFF_UP from `flags`: administratively up (a cable-less NIC is up but `operstate` down). */
  adminUp: boolean;
  operstate: string;
  /** Name of the bond/bridge/OVS master it is enslaved to (`master` link). */
  master: string | null;
  /** VLANs, macvlans, bonds and bridges stacked on it (`upper_<dev>` links); read only for an
   * interface with a PCI device (the others never make a function "in use"). */
  uppers: string[];
  /** Addresses found for it (IPv6 from if_inet6; IPv4 where readable). */
  addresses: string[];
  /** Number of routes that leave through it. */
  routes: number;
}

/** Which PCI functions the host is using for itself, by address, each with why (host words). */
export type HostUsage = Map<string, string[]>;

/** How vfio-pci is available in the running kernel; `unknown` when the release (and so its
 * /lib/modules) is unknown and no vfio-pci driver is registered. */
export type VfioPciAvailability = "builtin" | "module" | "missing" | "unknown";

/** Whether /sys/kernel/iommu_groups exists. The kernel creates it whenever it has IOMMU support
 * (CONFIG_IOMMU_API), even with the IOMMU off: absent says "no support", empty says "off". */
export type IommuGroupsDir = "present" | "absent" | "unreadable";

export type CpuVendor = "intel" | "amd" | "unknown";

/** The running kernel's architecture family, as far as the IOMMU is concerned: x86 (Intel VT-d /
 * AMD-Vi, `intel_iommu=`, `iommu=pt`), arm64 (Arm SMMU, `iommu.passthrough=`), another one, or not
 * known (no kernel answer and no x86 vendor line). */
export type HostArch = "x86" | "arm64" | "other" | "unknown";

/** Everything the planner and the actions need to know about the host. */
export interface HostFacts {
  /** Sorted by address. */
  functions: PciFunction[];
  /** IOMMU group number → member addresses (sorted). Empty when the IOMMU is off. */
  iommuGroups: Map<number, string[]>;
  iommuGroupsDir: IommuGroupsDir;
  /** `/sys/class/iommu` entries: `dmar0`, `ivhd0`, `smmu3.0x0000000009050000`, `arm-smmu.0.auto`… */
  iommuUnits: string[];
  /** `/proc/cmdline`, trimmed; null when it could not be read (unknown, not empty). */
  cmdline: string | null;
  cpuVendor: CpuVendor;
  /** The running kernel's machine (`uname -m`: `x86_64`, `aarch64`); "" when not known. */
  machine: string;
  /** The architecture the IOMMU decisions follow: from `machine`, else from an x86 `cpuVendor`. */
  arch: HostArch;
  kernelRelease: string;
  vfioPci: VfioPciAvailability;
  /** True inside LXD/systemd-nspawn/docker: host preparation needs a machine. */
  container: boolean;
  /** Group numbers that have `/dev/vfio/<n>`. */
  vfioDevices: Set<number>;
}

/** Something the readers could not read; the read goes on without it (hostile or racing hosts). */
export interface HostReadProblem {
  /** `unreadable`: the file exists but reading failed; `vanished`: the device went away while
   * being read (hot-unplug, VF teardown); `malformed`: read but not understood. */
  kind: "unreadable" | "vanished" | "malformed";
  /** The host path (as on the host, without the test root): what an operator would `cat`. */
  path: string;
  /** The PCI function concerned, when there is one. */
  address: string | null;
  /** One line an operator can act on; it names the path. */
  message: string;
}

/** modules.alias, parsed (host/modules.ts, which alone asks it): which modules would claim a
 * device (like `lspci -k`). The planner never gets this reader, only its answers (ModuleAliases). */
export interface ModuleIndex {
  /** Module names (as modules.alias spells them, e.g. `e1000e`, `snd_hda_intel`) in file order. */
  modulesFor(modalias: string): string[];
}

/** modules.alias's answers, read before planning: modalias → the module names that would claim
 * it, in file order, for every modalias of the host's functions (a modalias absent: none). */
export type ModuleAliases = ReadonlyMap<string, readonly string[]>;

/** Module names as the target kernel knows them, read before planning: a bound driver's module,
 * and the names that are modules at all. Only real module names go into modprobe.d and
 * `modprobe.blacklist=`. */
export interface ModuleNames {
  /** Driver → its module (`i801_smbus` → `i2c_i801`), `_` spelling, for every driver of the
   * host's functions; null when sysfs has no module link for it (then the modalias answers speak
   * for the device alone). */
  ofDriver: ReadonlyMap<string, string | null>;
  /** Of the modules the plan can ask about (what modules.alias answered, the drivers' modules,
   * a listed blacklist), those the kernel has (modules.dep or modules.builtin), `_` spelling;
   * null when neither file could be read. */
  known: ReadonlySet<string> | null;
}

/** The nova installed on this host, from dpkg (host/nova-release.ts). */
export interface NovaRelease {
  /** The package that said so: `nova-common` (preferred) or `python3-nova`. */
  package: string;
  /** The dpkg version as installed: `3:29.0.1-0ubuntu1`. */
  version: string;
  /** Upstream major.minor.patch, epoch, Debian revision and pre-release tags dropped: [29, 0, 1]. */
  upstream: [number, number, number];
}
