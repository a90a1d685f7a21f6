// Invariants that fail on today's code, each with the finding behind it. They are reported as
// "todo" (named in the test output, not run) until the fix lands; whoever fixes one removes its
// line, and the test then runs and must pass. REAL_HOSTS_RUN_PENDING=1 runs them all anyway, to
// see which of them a change fixed.

const P1 = "issue 12 point 1: a hook binds or blacklists what the host uses";
const P2 = "issue 12 point 2: chipset functions follow a selection as companions";
const P3 = "issue 12 point 3: a driver's name is written as a module name";
const DOMAIN = "PCI domains of five digits (10000:, as Intel VMD numbers them) are not read";

/** Finding → the "host id | devices value | invariant" it keeps pending (devices is empty for a
 * per-host test). */
const PENDING: Array<[string, string[]]> = [
  [
    P1,
    [
      "cloudstack-kvm-guest-pci-domain-10000 | 1af4:1000 | nothing the host uses is bound to vfio-pci at boot",
      "cloudstack-kvm-guest-pci-domain-10000 | 1af4:1000 | no driver of a function the host uses is blacklisted",
      "cloudstack-kvm-guest-pci-domain-10000 | 0000:00:03.0 | nothing the host uses is bound to vfio-pci at boot",
      "cloudstack-kvm-guest-pci-domain-10000 | 0000:00:03.0 | no driver of a function the host uses is blacklisted",
      "dell-dcs8000z-xeon-phi | 8086:1521 | nothing the host uses is bound to vfio-pci at boot",
      "dell-dcs8000z-xeon-phi | 8086:1521 | no driver of a function the host uses is blacklisted",
      "dell-dcs8000z-xeon-phi | 0000:02:00.0 | nothing the host uses is bound to vfio-pci at boot",
      "dell-dcs8000z-xeon-phi | 0000:00:1f.2 | nothing the host uses is bound to vfio-pci at boot",
      "dell-dcs8000z-xeon-phi | 0000:00:1f.2 | no driver of a function the host uses is blacklisted",
      "dell-poweredge-r910 | 14e4:1639 | nothing the host uses is bound to vfio-pci at boot",
      "dell-poweredge-r910 | 14e4:1639 | no driver of a function the host uses is blacklisted",
      "dell-poweredge-r910 | 0000:02:00.0 | nothing the host uses is bound to vfio-pci at boot",
      "lenovo-thinkpad-t60p | 0000:01:00.0 | nothing the host uses is bound to vfio-pci at boot",
      "lenovo-thinkpad-t60p | 0000:01:00.0 | no driver of a function the host uses is blacklisted",
      "lenovo-thinkpad-t60p | 8086:109a | nothing the host uses is bound to vfio-pci at boot",
      "lenovo-thinkpad-t60p | 8086:109a | no driver of a function the host uses is blacklisted",
      "lenovo-thinkpad-t60p | 0000:00:1f.1 | nothing the host uses is bound to vfio-pci at boot",
      "lenovo-thinkpad-t60p | 0000:00:1f.1 | no driver of a function the host uses is blacklisted",
      "lenovo-thinkpad-t60p |  | list-devices says the host uses each function it uses",
      "supermicro-sys-4029gp-sx-aurora | 8086:37d2 | nothing the host uses is bound to vfio-pci at boot",
      "supermicro-sys-4029gp-sx-aurora | 8086:37d2 | no driver of a function the host uses is blacklisted",
      "supermicro-sys-4029gp-sx-aurora | 0000:60:00.0 | nothing the host uses is bound to vfio-pci at boot",
    ],
  ],
  [
    P2,
    [
      "cloudstack-kvm-guest-pci-domain-10000 | 0000:00:01.3 | no host bridge, ISA/LPC bridge or SMBus is dragged along as a companion",
      "dell-dcs8000z-xeon-phi | 0000:00:1f.2 | no host bridge, ISA/LPC bridge or SMBus is dragged along as a companion",
      "dell-poweredge-r910 | 0000:00:1f.2 | no host bridge, ISA/LPC bridge or SMBus is dragged along as a companion",
      "lenovo-thinkpad-t60p | 0000:00:1f.1 | no host bridge, ISA/LPC bridge or SMBus is dragged along as a companion",
    ],
  ],
  [
    P3,
    [
      "cloudstack-kvm-guest-pci-domain-10000 | 0000:00:01.3 | every module name written exists in the kernel's modules.dep or modules.builtin",
      "dell-dcs8000z-xeon-phi | 8086:225c | every module name written exists in the kernel's modules.dep or modules.builtin",
      "lenovo-thinkpad-t60p | 0000:00:1b.0 | config-changed runs without a crash or a hook error",
      "lenovo-thinkpad-t60p | 0000:00:1b.0 | verify-iommu runs without a crash",
      "supermicro-sys-4029gp-sx-aurora | 1bcf:001c | every module name written exists in the kernel's modules.dep or modules.builtin",
    ],
  ],
  [
    DOMAIN,
    [
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
