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

// ---------------------------------------------------------------------------------------------
// PCI addresses and address globs (shared by the parser and by plan/select.ts).

/** A parsed `address` value: always with its domain, lower case. */
export interface AddressSpec {
  /** `0000:83:00.0` or a glob such as `0000:8?:00.*`. */
  text: string;
  /** True when the bus, device or function holds `*`, `?` or `[…]`. */
  isGlob: boolean;
  /** Matches a full sysfs address (`0000:83:00.0`). */
  pattern: RegExp;
}

const ADDRESS_SHAPE = /^(?:([0-9a-f]{4,8}):)?([^:.]+):([^:.]+)\.([^:.]+)$/;
const GLOB_COMPONENT = /^(?:[0-9a-f?*]|\[(?:[0-9a-f](?:-[0-9a-f])?)+\])+$/;
const hex2 = (n: number) => n.toString(16).padStart(2, "0");
/** Every value a component may take: bus 00–ff, device 00–1f, function 0–7 (PCI limits). */
const COMPONENT_VALUES = {
  bus: Array.from({ length: 256 }, (_, i) => hex2(i)),
  device: Array.from({ length: 32 }, (_, i) => hex2(i)),
  function: Array.from({ length: 8 }, (_, i) => i.toString(16)),
} as const;

function componentRegex(glob: string): string {
  // `*` and `?` stay inside one component: they never cross the `:` or `.` separators.
  return glob.replace(/\*/g, "[0-9a-f]*").replace(/\?/g, "[0-9a-f]");
}

/** Parses `0000:83:00.0`, `83:00.0` (domain 0000 added, as lspci prints it) or a glob over the
 * bus/device/function; returns a message (what is wrong) instead when it cannot name a function. */
export function parseAddress(raw: string): AddressSpec | string {
  const text = raw.trim().toLowerCase();
  const m = ADDRESS_SHAPE.exec(text);
  if (!m) {
    return "is not a PCI address: expected domain:bus:device.function such as 0000:83:00.0";
  }
  // sysfs prints the domain as %04x: `00000` and `0000` are the same domain.
  const domain = Number.parseInt(m[1] ?? "0", 16)
    .toString(16)
    .padStart(4, "0");
  const parts = { bus: m[2] ?? "", device: m[3] ?? "", function: m[4] ?? "" };
  const regexes: string[] = [];
  for (const name of ["bus", "device", "function"] as const) {
    const part = parts[name];
    if (!GLOB_COMPONENT.test(part)) {
      return `has a ${name} "${part}" that is neither hex digits nor a glob (*, ?, [0-7])`;
    }
    const re = new RegExp(`^${componentRegex(part)}$`);
    if (!COMPONENT_VALUES[name].some((v) => re.test(v))) {
      const range = { bus: "00-ff", device: "00-1f", function: "0-7" }[name];
      return `has a ${name} "${part}" that no PCI ${name} number (${range}) can have`;
    }
    regexes.push(componentRegex(part));
  }
  const isGlob = /[*?[]/.test(`${parts.bus}${parts.device}${parts.function}`);
  return {
    text: `${domain}:${parts.bus}:${parts.device}.${parts.function}`,
    isGlob,
    pattern: new RegExp(`^${domain}:${regexes[0]}:${regexes[1]}\\.${regexes[2]}$`),
  };
}
