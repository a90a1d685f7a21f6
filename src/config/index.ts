// The charm's configuration, validated. The raw values come from `config-get --format=json`; the
// parser (parseConfig) turns them into the Config shape (config/types.ts) or into ConfigErrors
// that name the option. One module an option: devices.ts, blacklist-drivers.ts,
// extra-kernel-params.ts; the plain enums and booleans in option-values.ts.
import { clip } from "../text";
import { parseBlacklist } from "./blacklist-drivers";
import { parseDevices } from "./devices";
import { parseKernelParams } from "./extra-kernel-params";
import { parseBool, parseEnum } from "./option-values";
import { parseReportInPlacement } from "./placement";
import { parseRebootPolicy, REBOOT_DEFAULTS } from "./reboot";
import type { ConfigError, ParseResult } from "./types";

export type {
  BlacklistSetting,
  Config,
  ConfigError,
  DeviceSelector,
  IommuMode,
  NovaPciOption,
  NumaPolicy,
  ParseResult,
} from "./types";

// parseConfig: raw `config-get --format=json --all` values → Config, or every error at once.

/** The defaults of config.yaml (a test keeps the two in step). Used when Juju sends null. */
export const CONFIG_DEFAULTS = {
  devices: "",
  iommu: "auto",
  "iommu-passthrough-mode": true,
  "allow-unsafe-interrupts": false,
  "blacklist-drivers": "auto",
  "extra-kernel-params": "",
  "nova-pci-option": "auto",
  "pci-report-in-placement": false,
  // Parsed on its own by exporter-port.ts (the exporter's option; not part of Config).
  "exporter-port": 9847,
  ...REBOOT_DEFAULTS,
} as const;

/** Validates every option the charm reads; collects all errors rather than stopping at the first. */
export function parseConfig(raw: Record<string, unknown>): ParseResult {
  const errors: ConfigError[] = [];
  const get = <K extends keyof typeof CONFIG_DEFAULTS>(key: K): unknown =>
    raw[key] === null || raw[key] === undefined ? CONFIG_DEFAULTS[key] : raw[key];

  const devices = parseDevices(get("devices"), errors);
  const iommu = parseEnum(
    "iommu",
    get("iommu"),
    ["auto", "intel", "amd", "arm", "off"] as const,
    errors,
  );
  const iommuPassthroughMode = parseBool(
    "iommu-passthrough-mode",
    get("iommu-passthrough-mode"),
    errors,
  );
  const allowUnsafeInterrupts = parseBool(
    "allow-unsafe-interrupts",
    get("allow-unsafe-interrupts"),
    errors,
  );
  const blacklistDrivers = parseBlacklist(get("blacklist-drivers"), errors);
  const extraKernelParams = parseKernelParams(get("extra-kernel-params"), errors);
  const novaPciOption = parseEnum(
    "nova-pci-option",
    get("nova-pci-option"),
    ["auto", "device_spec", "passthrough_whitelist"] as const,
    errors,
  );
  const reboot = parseRebootPolicy(raw, errors);

  const reportInPlacement = parseReportInPlacement(get("pci-report-in-placement"), errors);

  if (iommu === "off" && devices.length > 0) {
    errors.push({
      option: "iommu",
      value: "off",
      problem: `turns the IOMMU off while \`devices\` selects ${devices.length} entr${devices.length === 1 ? "y" : "ies"} (${clip(devices.map((d) => d.source).join(", "), 40)}): vfio-pci needs the IOMMU`,
      fix: "set iommu to auto (or intel/amd/arm), or empty the devices option",
    });
  }

  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    config: {
      devices,
      iommu: iommu!,
      iommuPassthroughMode: iommuPassthroughMode!,
      allowUnsafeInterrupts: allowUnsafeInterrupts!,
      blacklistDrivers: blacklistDrivers!,
      extraKernelParams: extraKernelParams!,
      novaPciOption: novaPciOption!,
      reboot: reboot!,
      // Only when on: configs built elsewhere (tests) need not name it.
      ...(reportInPlacement ? { reportInPlacement } : {}),
    },
  };
}
