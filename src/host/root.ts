// The one place that knows absolute paths. Everything the charm reads or writes hangs off a root
// directory: `/` on a real host, a temp dir in tests, the demo's sandbox, or a copy of a host.
import { join, resolve } from "node:path";

/** The environment variable that moves the root away from `/` (tests, demo, dry runs on a copy). */
export const ROOT_ENV = "PCI_PASSTHROUGH_ROOT";

/** The root from the environment: PCI_PASSTHROUGH_ROOT when set and non-empty, else `/`. */
export function rootFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const value = env[ROOT_ENV];
  return value && value.length > 0 ? resolve(value) : "/";
}

/** True when the root is the real host: external commands (update-grub, modprobe…) may run. */
export function isRealRoot(root: string): boolean {
  return resolve(root) === "/";
}

/** Joins an absolute host path onto the root: `under("/tmp/x", "/sys/bus")` → `/tmp/x/sys/bus`. */
export function under(root: string, hostPath: string): string {
  return join(root, hostPath);
}

/** Paths we only read. Who writes them is the kernel (sysfs, procfs) or a package. */
export const READ = {
  /** One directory (symlink) per PCI function: vendor, device, class, driver link, iommu_group… */
  pciDevices: "/sys/bus/pci/devices",
  /** Registered PCI drivers; `vfio-pci/` exists once the module is loaded (or built in). */
  pciDrivers: "/sys/bus/pci/drivers",
  /** IOMMU groups: `<n>/devices/*` links and `<n>/type`. Empty or absent when the IOMMU is off. */
  iommuGroups: "/sys/kernel/iommu_groups",
  /** IOMMU hardware units: Intel `dmar<n>`, AMD `ivhd<n>`, Arm SMMUv3 `smmu3.0x<base>`, SMMUv2
   * `arm-smmu.<n>.auto` / `<base>.iommu`. */
  iommuUnits: "/sys/class/iommu",
  /** Network interfaces: `flags`, `operstate`, `master`, `device` link to the PCI function. */
  net: "/sys/class/net",
  /** Block devices, each a link into the device tree (finds the controller of a mount). */
  block: "/sys/class/block",
  /** Framebuffers and DRM cards: their `device` link marks the console GPU. */
  graphics: "/sys/class/graphics",
  drm: "/sys/class/drm",
  /** Group character devices that appear when a member binds to vfio-pci. */
  devVfio: "/dev/vfio",
  /** Every process's fd table (vfio-users.ts: who holds a VFIO group open) and command line
   * (reboot-facts.ts: the `[lxc monitor]` process of each running LXD container). */
  proc: "/proc",
  /** The command line the running kernel booted with. */
  cmdline: "/proc/cmdline",
  /** A random id the kernel draws at every boot: tells whether a boot happened since a hook. */
  bootId: "/proc/sys/kernel/random/boot_id",
  /** The kernel log of this boot, one record per read (root only): what the kernel said when
   * writing sriov_numvfs failed (host/kernel-log.ts). */
  kmsg: "/dev/kmsg",
  /** CPU vendor (GenuineIntel / AuthenticAMD). */
  cpuinfo: "/proc/cpuinfo",
  /** The running kernel's machine (`uname -m`: x86_64, aarch64); Linux 6.1 and later. */
  kernelArch: "/proc/sys/kernel/arch",
  /** Running kernel release, e.g. 6.8.0-45-generic (selects /lib/modules/<release>). */
  osrelease: "/proc/sys/kernel/osrelease",
  /** Mounted filesystems and active swap: a storage controller behind them is in use. */
  mounts: "/proc/mounts",
  swaps: "/proc/swaps",
  /** Loaded modules (name first on each line). */
  modules: "/proc/modules",
  /** Interrupt chips per IRQ: `IR-` names mean interrupt remapping is on (host/interrupt-remapping.ts,
   * for verify-iommu). Intel units' `intel-iommu/ecap` under iommuUnits says whether it is supported. */
  procInterrupts: "/proc/interrupts",
  /** IPv6 addresses and IPv4/IPv6 routes per interface. */
  ifInet6: "/proc/net/if_inet6",
  ipv4Routes: "/proc/net/route",
  ipv6Routes: "/proc/net/ipv6_route",
  /** IPv4 addresses: the LOCAL leaves of the FIB trie (host/usage.ts maps them to interfaces
   * through the connected routes in /proc/net/route; procfs has no per-interface IPv4 list). */
  fibTrie: "/proc/net/fib_trie",
  /** Fallback for `/dev/root` in /proc/mounts (no initramfs): major:minor of each mount, resolved
   * through /sys/dev/block/<major>:<minor> (host/usage.ts). */
  mountinfo: "/proc/self/mountinfo",
  devBlock: "/sys/dev/block",
  /** Container detection: systemd writes the container type here; LXD also shows in cgroups. */
  containerMarker: "/run/systemd/container",
  initEnviron: "/proc/1/environ",
  /** More container evidence when systemd is not PID 1 (host/kernel.ts): the LXD/Incus disk
   * hotplug dir (containers only; not /dev/lxd/sock, which LXD VMs have too), docker's marker. */
  containerFiles: ["/dev/.lxd-mounts", "/dev/.incus-mounts", "/.dockerenv"],
  /** Human names for ids, shipped by pci.ids / hwdata packages. */
  pciIds: ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"],
  /** dpkg status: the installed nova version decides device_spec vs passthrough_whitelist. */
  dpkgStatus: "/var/lib/dpkg/status",
} as const;

/** Files of the other programs that set an SR-IOV PF's number of VFs at every boot (read only, by
 * host/vf-count-owners.ts): the plan must agree with them, never write against them. */
export const NEIGHBOURS = {
  /** netplan's configuration, merged in this order (a file name in a later directory hides the same
   * name in an earlier one). netplan's udev rule runs `netplan apply --sriov-only` when a PF
   * appears and writes each `virtual-function-count`. */
  netplanDirs: ["/lib/netplan", "/etc/netplan", "/run/netplan"],
  /** The netplan file ovn-chassis (charm-layer-ovn) renders from its `sriov-numvfs` option. */
  ovnChassisNetplanName: "150-charm-ovn.yaml",
  /** Read by sriov-netplan-shim.service at boot (writes 0, then num_vfs): rendered by
   * neutron-openvswitch from its `sriov-numvfs` option (and by ovn-chassis before 2021). */
  sriovNetplanShim: "/etc/sriov-netplan-shim/interfaces.yaml",
} as const;

/** Kernel attributes the charm writes: the rebind action, and the udev helper at boot. The kernel
 * owns them: each takes one write (apply/sysfs.ts), nothing creates, renames or removes them. */
export const SYSFS_WRITES = {
  /** Write an address here to make the kernel probe drivers for it (honours driver_override). */
  pciDriversProbe: "/sys/bus/pci/drivers_probe",
} as const;

/** Host path of a function's attribute: `/sys/bus/pci/devices/<address>/<attr>` (driver_override
 * is written; the rest are read). */
export function deviceAttr(address: string, attr: string): string {
  return `${READ.pciDevices}/${address}/${attr}`;
}

/** Host path of a driver's attribute: `/sys/bus/pci/drivers/<driver>/<attr>` (unbind, bind…). */
export function driverAttr(driver: string, attr: string): string {
  return `${READ.pciDrivers}/${driver}/${attr}`;
}

/** `/lib/modules/<release>` files that say which modules claim which devices, and what is built in. */
export function moduleFiles(release: string): {
  alias: string;
  builtin: string;
  dep: string;
  dir: string;
} {
  const dir = `/lib/modules/${release}`;
  return {
    dir,
    alias: `${dir}/modules.alias`,
    builtin: `${dir}/modules.builtin`,
    /** Every loadable module, by path: what modprobe can load (and so blacklist) at all. */
    dep: `${dir}/modules.dep`,
  };
}

/** `/sys/bus/pci/drivers/<driver>/module`: a link to /sys/module/<module>, the module a driver
 * belongs to (driver `i801_smbus` is module `i2c_i801`). */
export function driverModuleLink(driver: string): string {
  return `${READ.pciDrivers}/${driver}/module`;
}

/** Files the charm owns. Each is created by the charm, carries a managed-by header, and is removed
 * on removal. Who reads each one is said beside it. */
export const OWNED = {
  /** Sourced by grub-mkconfig (update-grub) after /etc/default/grub and the other drop-ins, in
   * sorted order: the 99- prefix sorts after cloud-init's 50-cloudimg-settings.cfg and curtin's
   * 50-curtin-settings.cfg, which replace GRUB_CMDLINE_LINUX_DEFAULT; ours appends to it. */
  grubDropIn: "/etc/default/grub.d/99-pci-passthrough.cfg",
  /** Read by kmod (modprobe) and copied into the initramfs: blacklists and softdeps. */
  modprobeConf: "/etc/modprobe.d/pci-passthrough.conf",
  /** Read by udev on every PCI `add` event, before 80-drivers.rules loads native drivers: sets
   * driver_override=vfio-pci on the selected addresses (matching vendor and device too). */
  udevRule: "/etc/udev/rules.d/40-pci-passthrough.rules",
  /** Run by that udev rule: loads vfio-pci and re-probes the function if it is bound elsewhere. */
  bindHelper: "/usr/local/lib/pci-passthrough/vfio-bind",
  /** Run by update-initramfs: copies vfio-pci, the udev rule and the helper into the initramfs so
   * vfio-pci wins even when the native driver is itself in the initramfs. */
  initramfsHook: "/etc/initramfs-tools/hooks/pci-passthrough",
  /** Read by udev when an SR-IOV PF's driver binds (and on coldplug `add` once it is bound):
   * one line per PF given VFs, running sriovHelper with the PF's address and its plan. */
  sriovRule: "/etc/udev/rules.d/40-pci-passthrough-sriov.rules",
  /** Run by that rule: creates the PF's VFs (sriov_numvfs, through 0) and, for VFs given to VMs
   * through a flavor alias, steers each to vfio-pci by its own address before any driver probes it. */
  sriovHelper: "/usr/local/lib/pci-passthrough/sriov-vfs",
  /** Read by systemd at boot: a oneshot unit ordered before nova-compute and neutron-sriov-agent
   * that runs sriovBootWait (plan/render-sriov-boot.ts). */
  sriovBootUnit: "/etc/systemd/system/pci-passthrough-sriov.service",
  /** Read by systemd at boot: a drop-in of multi-user.target that wants sriovBootUnit (a plain
   * file, so no `systemctl enable` link to create or forget). */
  sriovBootWants: "/etc/systemd/system/multi-user.target.d/pci-passthrough-sriov.conf",
  /** Run by sriovBootUnit: waits, bounded, for every planned PF's VFs on their planned driver,
   * running sriovHelper once more for what udev left undone. */
  sriovBootWait: "/usr/local/lib/pci-passthrough/sriov-boot",
} as const;

/** The exporter's files (src/exporter/). Kept apart from OWNED: they feed no boot regeneration
 * and exist only while the unit is related over `cos-agent`; apply manages them like OWNED all the
 * same (written with a managed-by header, removed on removal). */
export const EXPORTER_OWNED = {
  /** Read by systemd: runs dist/exporter.js with the runtime the charm's dispatch chose. */
  unit: "/etc/systemd/system/pci-passthrough-exporter.service",
  /** Read by the exporter when it changed (a stat per scrape): the plan's summary, what each
   * function and PF should be. Beside the boot helpers, in a directory the charm already owns. */
  plan: "/usr/local/lib/pci-passthrough/exporter-plan.json",
} as const;

/** The systemd unit name of the exporter (systemctl's argument). */
export const EXPORTER_SERVICE = "pci-passthrough-exporter.service";

/** Directories the charm creates for its own files and removes, once empty, on removal. (The
 * others it writes into — /etc/udev/rules.d, /etc/modprobe.d… — belong to the system.) */
export const OWNED_DIRS = [
  "/usr/local/lib/pci-passthrough",
  // Holds only our drop-in on Ubuntu and Debian (no package ships one): removed once empty, so
  // removal leaves /etc as it found it. Another drop-in in it keeps it.
  "/etc/systemd/system/multi-user.target.d",
] as const;

/** Files shared with the system that the charm adds to and takes away from (Ubuntu convention). */
export const SHARED = {
  /** Shown by motd / landscape: "*** System restart required ***". */
  rebootRequired: "/var/run/reboot-required",
  /** One package (here: charm) name per line that asked for the reboot. */
  rebootRequiredPkgs: "/var/run/reboot-required.pkgs",
} as const;
