// The charm's configuration, validated. The raw values come from `config-get --format=json`; the
// parser (parseConfig) turns them into this shape or into ConfigErrors that name the option.

export type IommuMode = "auto" | "intel" | "amd" | "off";
export type NumaPolicy = "legacy" | "preferred" | "required" | "socket";
export type NovaPciOption = "auto" | "device_spec" | "passthrough_whitelist";

/** One entry of the `devices` option. At least one of (vendorId+productId) or address is set. */
export interface DeviceSelector {
  /** Position in the `devices` list (0-based), for messages. */
  index: number;
  /** 4 lower-case hex digits, or null when the entry selects by address only. */
  vendorId: string | null;
  productId: string | null;
  /** `0000:83:00.0`, or a glob over bus/device/function (`0000:8?:00.*`); lower case. */
  address: string | null;
  /** nova alias name; null = derive from the device class (gpu, nic, …). */
  alias: string | null;
  /** The card's other functions in the same slot and IOMMU group follow this one. */
  companions: boolean;
  numaPolicy: NumaPolicy | null;
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
}

/** A config value the charm refuses: which option, what value, what is wrong, what to do. */
export interface ConfigError {
  option: string;
  value: string;
  problem: string;
  fix: string;
}
