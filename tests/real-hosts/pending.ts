// Invariants that fail on today's code, each with the finding behind it. They are reported as
// "todo" (named in the test output, not run) until the fix lands; whoever fixes one removes its
// line, and the test then runs and must pass. REAL_HOSTS_RUN_PENDING=1 runs them all anyway, to
// see which of them a change fixed.

const P1 = "issue 12 point 1: a hook binds or blacklists what the host uses";
const P3 = "issue 12 point 3: a driver's name is written as a module name";
const P6 = "issue 12 point 6: missing or absent facts read as false, or said once per device";
const DOMAIN = "PCI domains of five digits (10000:, as Intel VMD numbers them) are not read";

/** Finding → the "host id | devices value | invariant" it keeps pending (devices is empty for a
 * per-host test, `raw` for the recording with nothing added). */
const PENDING: Array<[string, string[]]> = [
  [
    P1,
    [
      "lenovo-thinkpad-t60p | 0000:01:00.0 | nothing the host uses is bound to vfio-pci at boot",
      "lenovo-thinkpad-t60p | 0000:01:00.0 | no driver of a function the host uses is blacklisted",
      "lenovo-thinkpad-t60p |  | list-devices says the host uses each function it uses",
    ],
  ],
  [
    P3,
    [
      "dell-dcs8000z-xeon-phi | 8086:225c | every module name written exists in the kernel's modules.dep or modules.builtin",
      "lenovo-thinkpad-t60p | 0000:00:1b.0 | config-changed runs without a crash or a hook error",
      "lenovo-thinkpad-t60p | 0000:00:1b.0 | verify-iommu runs without a crash",
      "supermicro-sys-4029gp-sx-aurora | 1bcf:001c | every module name written exists in the kernel's modules.dep or modules.builtin",
    ],
  ],
  [
    P6,
    [
      "cloudstack-kvm-guest-pci-domain-10000 | 1af4:1000 | an absent /sys/kernel/iommu_groups is not called empty",
      "cloudstack-kvm-guest-pci-domain-10000 | 0000:00:03.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "cloudstack-kvm-guest-pci-domain-10000 | 0000:00:02.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "cloudstack-kvm-guest-pci-domain-10000 | 0000:00:01.3 | an absent /sys/kernel/iommu_groups is not called empty",
      "cloudstack-kvm-guest-pci-domain-10000 | 1af4:1001 | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-dcs8000z-xeon-phi | 8086:1521 | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-dcs8000z-xeon-phi | 0000:02:00.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-dcs8000z-xeon-phi | 0000:05:00.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-dcs8000z-xeon-phi | 8086:225c | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-dcs8000z-xeon-phi | 0000:00:1f.2 | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-dcs8000z-xeon-phi | 0000:00:04.* | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-poweredge-r910 | 14e4:1639 | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-poweredge-r910 | 0000:02:00.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-poweredge-r910 | 0000:03:00.* | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-poweredge-r910 | 0000:09:03.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-poweredge-r910 | 0000:00:1f.2 | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-poweredge-r910 | 0000:00:1d.* | an absent /sys/kernel/iommu_groups is not called empty",
      "ibm-power9-six-gpus | 0006:00:00.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "ibm-power9-six-gpus | 0035:0?:00.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "ibm-power9-six-gpus | 10de:1db1 | an absent /sys/kernel/iommu_groups is not called empty",
      "lenovo-thinkpad-t60p | 0000:01:00.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "lenovo-thinkpad-t60p | 8086:109a | an absent /sys/kernel/iommu_groups is not called empty",
      "lenovo-thinkpad-t60p | 0000:00:1f.1 | an absent /sys/kernel/iommu_groups is not called empty",
      "lenovo-thinkpad-t60p | 0000:00:1d.* | an absent /sys/kernel/iommu_groups is not called empty",
      "supermicro-sys-4029gp-sx-aurora | 8086:37d2 | an absent /sys/kernel/iommu_groups is not called empty",
      "supermicro-sys-4029gp-sx-aurora | 0000:60:00.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "supermicro-sys-4029gp-sx-aurora | 0000:60:00.1 | an absent /sys/kernel/iommu_groups is not called empty",
      "supermicro-sys-4029gp-sx-aurora | 1bcf:001c | an absent /sys/kernel/iommu_groups is not called empty",
      "supermicro-sys-4029gp-sx-aurora | 0000:1?:00.0 | an absent /sys/kernel/iommu_groups is not called empty",
      "cloudstack-kvm-guest-pci-domain-10000 | raw | a missing /proc/cmdline reads as unknown, not as not booted with",
      "cloudstack-kvm-guest-pci-domain-10000 | raw | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-dcs8000z-xeon-phi | raw | a missing osrelease does not read as a kernel with an empty name",
      "dell-dcs8000z-xeon-phi | raw | a missing /proc/cmdline reads as unknown, not as not booted with",
      "dell-dcs8000z-xeon-phi | raw | driver links into missing driver directories are stated once, not per device",
      "dell-dcs8000z-xeon-phi | raw | an absent /sys/kernel/iommu_groups is not called empty",
      "dell-poweredge-r910 | raw | a missing osrelease does not read as a kernel with an empty name",
      "dell-poweredge-r910 | raw | a missing /proc/cmdline reads as unknown, not as not booted with",
      "dell-poweredge-r910 | raw | driver links into missing driver directories are stated once, not per device",
      "dell-poweredge-r910 | raw | an absent /sys/kernel/iommu_groups is not called empty",
      "ibm-power9-six-gpus | raw | an absent /sys/kernel/iommu_groups is not called empty",
      "lenovo-thinkpad-t60p | raw | a missing osrelease does not read as a kernel with an empty name",
      "lenovo-thinkpad-t60p | raw | a missing /proc/cmdline reads as unknown, not as not booted with",
      "lenovo-thinkpad-t60p | raw | an absent /sys/kernel/iommu_groups is not called empty",
      "supermicro-sys-4029gp-sx-aurora | raw | a missing osrelease does not read as a kernel with an empty name",
      "supermicro-sys-4029gp-sx-aurora | raw | driver links into missing driver directories are stated once, not per device",
      "supermicro-sys-4029gp-sx-aurora | raw | an absent /sys/kernel/iommu_groups is not called empty",
    ],
  ],
  [
    DOMAIN,
    [
      "cloudstack-kvm-guest-pci-domain-10000 | 1af4:1001 | the status names each selected function the host keeps, and the override",
      "cloudstack-kvm-guest-pci-domain-10000 |  | list-devices lists every recorded function whose ids are readable",
      "cloudstack-kvm-guest-pci-domain-10000 |  | list-devices says the host uses each function it uses",
    ],
  ],
];

/** The finding that keeps this invariant pending on this host and selection, or null. */
export function pendingFinding(hostId: string, devices: string, title: string): string | null {
  if (process.env["REAL_HOSTS_RUN_PENDING"] === "1") return null;
  const key = `${hostId} | ${devices} | ${title}`;
  return PENDING.find(([, keys]) => keys.includes(key))?.[0] ?? null;
}
