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
}

/** A selected function the plan leaves with the host (not bound, its drivers not blacklisted). */
export interface WithheldFunction {
  address: string;
  vendorId: string;
  deviceId: string;
  /** The entry that selected it, as messages name entries: `devices entry #1 "8086:10d3"`. */
  entry: string;
  /** Operator words: what the host uses it for, or what its IOMMU group holds. */
  reasons: string[];
  /** True when `force: true` on a devices entry that selects it would take it anyway; false when
   * no override can (its group holds chipset functions: it can never be made viable). */
  forceable: boolean;
}

/** Something that stops the plan from being applied; the charm goes blocked with `message`. */
export interface PlanProblem {
  /** The config option at fault, when there is one. */
  option: string | null;
  message: string;
}

/** Which regeneration a file feeds: grub (update-grub) or the initramfs (update-initramfs -u). */
export type Regenerate = "grub" | "initramfs";

export interface HostPlan {
  /** Every owned file the host should have. Owned files not listed here should be absent. */
  files: FileSpec[];
  /** Which regeneration each owned path feeds (a change to the file triggers it). */
  feeds: Record<string, Regenerate[]>;
  /** Parameters our grub drop-in appends, in order. */
  kernelParams: string[];
  /** Modules kept off the host. */
  blacklist: string[];
  /** Functions vfio-pci should own, sorted by address. */
  bind: BoundDevice[];
  /** Selected functions left with the host for its own safety, sorted by address. */
  withheld: WithheldFunction[];
  /** Blocking problems: nothing may be written while this is non-empty. */
  problems: PlanProblem[];
  /** Facts worth a status line but not blocking (unsafe interrupts on, nothing matched…). */
  notes: string[];
}
