// The charm's configuration as the rest of the charm sees it: parsed once (config/index.ts),
// then passed as data. Each option's parser lives in its own module beside this one.
import type { AddressPattern } from "../pci-vocabulary";

/** `arm`: the Arm SMMU of arm64 hosts (on by default: no enable parameter). */
export type IommuMode = "auto" | "intel" | "amd" | "arm" | "off";
export type NumaPolicy = "legacy" | "preferred" | "required" | "socket";
export type NovaPciOption = "auto" | "device_spec" | "passthrough_whitelist";

/** One entry of the `devices` option. At least one of (vendorId+productId) or address is set. */
export interface DeviceSelector {
  /** Position in the `devices` list (0-based), for messages. */
  index: number;
  /** 4 lower-case hex digits, or null when the entry selects by address only. */
  vendorId: string | null;
  productId: string | null;
  /** `0000:83:00.0`, or a glob over bus/device/function (`0000:8?:00.*`), compiled once here. */
  address: AddressPattern | null;
  /** nova alias name; null = derive from the device class (gpu, nic, …). */
  alias: string | null;
  /** The card's other functions in the same slot and IOMMU group follow this one. */
  companions: boolean;
  /** Take the functions of this entry even when the host uses them (or a member of their IOMMU
   * group): the per-entry override of plan/host-safety.ts. Never global, never the default. */
  force: boolean;
  numaPolicy: NumaPolicy | null;
  /** SR-IOV: create this many VFs on the PFs the entry selects, at every boot, and hand the VFs
   * (never the PF) to VMs (plan/sriov.ts); null: the functions themselves are passed through. */
  vfs: number | null;
  /** neutron physical network of those VFs (nova's `physical_network` tag): they back
   * `vnic_type direct` ports instead of a flavor alias. Only with `vfs`. */
  physicalNetwork: string | null;
  /** PCI in Placement (config/placement.ts): a custom resource class (`CUSTOM_…`), or null. */
  resourceClass?: string | null;
  /** PCI in Placement: custom traits (`CUSTOM_…`). */
  traits?: string[];
  /** The entry as the operator wrote it, for messages ("10de:1bb0" or its JSON). */
  source: string;
}

export type BlacklistSetting = { mode: "auto" } | { mode: "list"; modules: string[] };

export interface Config {
  devices: DeviceSelector[];
  iommu: IommuMode;
  iommuPassthroughMode: boolean;
  allowUnsafeInterrupts: boolean;
  /** `{mode: "list", modules: []}` is "no blacklist". */
  blacklistDrivers: BlacklistSetting;
  extraKernelParams: string[];
  novaPciOption: NovaPciOption;
  /** `[pci] report_in_placement` for nova-compute (config/placement.ts). */
  reportInPlacement?: boolean;
  /** Whether and when the charm reboots the host itself (config/reboot.ts). */
  reboot: RebootPolicy;
}

/** Who reboots the host for the charm's changes (config/reboot.ts parses the options). */
export type RebootMode = "manual" | "when-idle";

/** One window: the days it starts on (0 = Sunday, as Date.getDay) and its minutes from that
 * day's midnight; an end past 1440 runs into the next day ("Sat 22:00-02:00"). */
export interface RebootWindow {
  days: number[];
  start: number;
  end: number;
}

export interface RebootPolicy {
  mode: RebootMode;
  /** Empty: any time. */
  windows: RebootWindow[];
  /** The option as written ("" when unset), for messages. */
  windowText: string;
  allowJujuContainers: boolean;
  maxUnavailable: number;
}

/** A config value the charm refuses: which option, what value, what is wrong, what to do. */
export interface ConfigError {
  option: string;
  value: string;
  problem: string;
  fix: string;
}

export type ParseResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };
