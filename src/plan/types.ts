// The plan: what the host should look like, computed from config + facts without touching it.

/** A file the charm wants on the host, with exact bytes. `path` is a host path (`/etc/…`). */
export interface FileSpec {
  path: string;
  content: string;
  /** e.g. 0o644, 0o755 for scripts. */
  mode: number;
}

export type NovaDeviceType = "type-PCI" | "type-PF" | "type-VF";

/** A function vfio-pci should claim (at boot, and now via the rebind action). */
export interface BoundDevice {
  address: string;
  vendorId: string;
  deviceId: string;
  classCode: string;
  /** nova alias name. */
  alias: string;
  deviceType: NovaDeviceType;
  numaPolicy: string | null;
  /** Why it is in the set: chosen by the operator, or following a chosen one. */
  reason: "selected" | "companion";
  /** For companions: the address it follows. */
  follows: string | null;
  /** For a VF the charm creates (plan/sriov.ts): its PF, through which nova matches it. */
  physfn?: string;
  /** PCI in Placement: its entry's custom resource class and traits (config/placement.ts). */
  resourceClass?: string;
  traits?: string[];
}

/** A selected function the plan leaves with the host (the charm does not bind it nor blacklist its
 * drivers; it may still sit on vfio-pci from an earlier boot: `driver` says). */
export interface WithheldFunction {
  address: string;
  vendorId: string;
  deviceId: string;
  /** The entry that selected it, as messages name entries: `devices entry #1 "8086:10d3"`. */
  entry: string;
  /** The nova alias it would have had (the fleet view counts it under that alias). */
  alias?: string;
  /** Operator words: what the host uses it for, or what its IOMMU group holds. */
  reasons: string[];
  /** True when `force: true` on a devices entry that selects it would take it anyway; false when
   * no override can (its group holds chipset functions: it can never be made viable). */
  forceable: boolean;
  /** The driver it sits on now (null: none). A withheld function can still be on vfio-pci, bound
   * at an earlier boot: messages then say where it is and what returns it, never "not bound". */
  driver?: string | null;
}

/** Something that stops the plan from being applied; the charm goes blocked with `message`. */
export interface PlanProblem {
  /** The config option at fault, when there is one. */
  option: string | null;
  message: string;
}

/** Which regeneration a file feeds: grub (update-grub) or the initramfs (update-initramfs -u). */
export type Regenerate = "grub" | "initramfs";

/** What the plan decides (plan-host.ts decideHost): everything but the bytes of the files that
 * carry it. Actions show this; hooks apply it rendered (HostPlan). */
export interface HostDecisions {
  /** Parameters our grub drop-in appends, in order. */
  kernelParams: string[];
  /** Modules kept off the host. */
  blacklist: string[];
  /** Modules whose drivers wait for vfio-pci at boot (`softdep <m> pre: vfio-pci`). */
  softdeps: string[];
  /** Functions vfio-pci should own, sorted by address. */
  bind: BoundDevice[];
  /** Selected functions left with the host for its own safety, sorted by address. */
  withheld: WithheldFunction[];
  /** PFs given VFs at boot (plan/sriov.ts), sorted by address. */
  sriov: PlannedPf[];
  /** Blocking problems: nothing may be written while this is non-empty. */
  problems: PlanProblem[];
  /** Facts worth a status line but not blocking (unsafe interrupts on, nothing matched…). */
  notes: string[];
}

/** The decisions with every owned file rendered: what a hook applies. */
export interface HostPlan extends HostDecisions {
  /** Every owned file the host should have. Owned files not listed here should be absent. */
  files: FileSpec[];
  /** Which regeneration each owned path feeds (a change to the file triggers it). */
  feeds: Record<string, Regenerate[]>;
}

/** Where a PF's VFs sit at boot. */
export type VfDriverPlan = "vfio-pci" | "host";

/** A PF the plan gives VFs to. */
export interface PlannedPf {
  address: string;
  vendorId: string;
  deviceId: string;
  classCode: string;
  /** The VFs' device id (`sriov_vf_device`, else an existing VF's); null when neither is known. */
  vfDeviceId: string | null;
  /** `sriov_vf_device` alone: what the boot rule checks the VFs against. Known before the VFs
   * exist, so the rule is the same bytes before and after the boot that creates them. */
  announcedVfDeviceId: string | null;
  /** VFs to create at every boot. */
  numVfs: number;
  totalVfs: number;
  /** VFs enabled right now (sriov_numvfs): a difference is applied at the next boot or by the
   * sriov-vfs action. */
  currentVfs: number;
  /** The VFs' addresses (from sriov_offset / sriov_stride, which the kernel knows before the VFs
   * exist; else the existing VFs when there are exactly numVfs); empty when neither is known. */
  vfAddresses: string[];
  vfDriver: VfDriverPlan;
  /** neutron physical network (`physical_network` in nova's device_spec); null: flavor alias. */
  physicalNetwork: string | null;
  alias: string;
  numaPolicy: string | null;
  /** The entry that asked for it, as messages name entries. */
  entry: string;
  /** Its VFs (existing now) whose IOMMU group holds anything else: never offered to nova, each
   * with why (host-safety.ts vfGroupShare). They stay where the plan puts VFs. */
  sharedGroupVfs?: Array<{ address: string; why: string }>;
}
