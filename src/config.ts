// The charm's configuration, validated. The raw values come from `config-get --format=json`; the
// parser (parseConfig) turns them into this shape or into ConfigErrors that name the option.
import type { ErrorObject } from "ajv";
import type { Node } from "yaml";
// Generated from src/schemas/devices.schema.json by `npm run gen` (run by npm ci and every build).
import { validateDevices } from "./generated/validators.js";
import {
  type AddressPattern,
  idPairProblem,
  parseAddressPattern,
  parseIdPair,
  splitDeviceList,
} from "./pci-vocabulary";
import { clip } from "./text";

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
} as const;

export type ParseResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

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
    },
  };
}

function parseEnum<T extends string>(
  option: string,
  value: unknown,
  allowed: readonly T[],
  errors: ConfigError[],
): T | null {
  const text = typeof value === "string" ? value.trim().toLowerCase() : null;
  if (text !== null && (allowed as readonly string[]).includes(text)) return text as T;
  errors.push({
    option,
    value: clip(typeof value === "string" ? value : JSON.stringify(value)),
    problem: `is not one of ${allowed.join(", ")}`,
    fix: `set ${option} to one of ${allowed.join(", ")}`,
  });
  return null;
}

function parseBool(option: string, value: unknown, errors: ConfigError[]): boolean | null {
  if (typeof value === "boolean") return value;
  errors.push({
    option,
    value: clip(JSON.stringify(value)),
    problem: "is not a boolean",
    fix: `set ${option} to true or false`,
  });
  return null;
}

// --- blacklist-drivers ------------------------------------------------------------------------

const MODULE_NAME = /^[a-z0-9_-]+$/;

/** kmod treats `-` and `_` in module names as the same character; we store the `_` spelling,
 * which is how modules.alias and /proc/modules spell them, so comparisons just work. */
export function normaliseModule(name: string): string {
  return name.replace(/-/g, "_");
}

/** Modules the charm needs on the host: blacklisting them would break passthrough or every PCIe
 * port. (`vfio_pci`, `vfio_iommu_type1`, `vfio_pci_core`… all start with vfio.) */
export function isProtectedModule(name: string): boolean {
  const n = normaliseModule(name);
  return n.startsWith("vfio") || n === "pcieport";
}

/** True for a string; otherwise records that `option` is not one, with how to write it. */
function isString(
  option: string,
  value: unknown,
  errors: ConfigError[],
  fix: string,
): value is string {
  if (typeof value === "string") return true;
  errors.push({ option, value: clip(JSON.stringify(value)), problem: "is not a string", fix });
  return false;
}

function parseBlacklist(value: unknown, errors: ConfigError[]): BlacklistSetting | null {
  const option = "blacklist-drivers";
  if (!isString(option, value, errors, 'set it to "auto", a list of module names, or ""'))
    return null;
  const tokens = value.split(/[\s,]+/).filter((t) => t.length > 0);
  if (tokens.length === 0) return { mode: "list", modules: [] };
  if (tokens.length === 1 && tokens[0]!.toLowerCase() === "auto") return { mode: "auto" };
  const modules = new Set<string>();
  let ok = true;
  for (const token of tokens) {
    const fail = (problem: string, fix: string) => {
      errors.push({ option, value: clip(token), problem, fix });
      ok = false;
    };
    if (token.toLowerCase() === "auto") {
      fail(
        "cannot be combined with module names",
        'use "auto" alone, or list every module yourself',
      );
    } else if (!MODULE_NAME.test(token)) {
      fail(
        "is not a kernel module name (lower-case letters, digits, _ and - only)",
        "use the name lsmod or `lspci -k` prints, e.g. nouveau",
      );
    } else if (isProtectedModule(token)) {
      fail(
        "is needed for passthrough itself (vfio) or by every PCIe port (pcieport)",
        "remove it from blacklist-drivers",
      );
    } else {
      modules.add(normaliseModule(token));
    }
  }
  return ok ? { mode: "list", modules: [...modules].sort() } : null;
}

// --- extra-kernel-params ----------------------------------------------------------------------

/** `name` or `name=value`; the value keeps to characters that mean nothing to the shell (the grub
 * drop-in is sourced by grub-mkconfig as root). */
const KERNEL_PARAM = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:=[A-Za-z0-9._,:=/+-]*)?$/;
const SHELL_CHARS: [RegExp, string][] = [
  [/"/, "a double quote"],
  [/'/, "a single quote"],
  [/\$/, "a $"],
  [/`/, "a backtick"],
  [/\\/, "a backslash"],
  [/;/, "a ;"],
  [/\|/, "a |"],
  [/&/, "an &"],
  [/[<>]/, "a redirection (< or >)"],
  [/[()]/, "a parenthesis"],
  [/#/, "a #"],
];
/** Parameters the charm sets itself, by name (kernel param names treat - and _ alike). */
const OWNED_PARAMS: Record<string, string> = {
  iommu: "iommu-passthrough-mode",
  "iommu.passthrough": "iommu-passthrough-mode",
  "vfio_iommu_type1.allow_unsafe_interrupts": "allow-unsafe-interrupts",
  "modprobe.blacklist": "blacklist-drivers",
  "vfio_pci.ids": "devices",
};
/** The IOMMU drivers' own options (Documentation/admin-guide/kernel-parameters.txt), comma
 * separated. The charm writes only `intel_iommu=on`; the tuning options beside it are the
 * operator's (`intel_iommu=on,igfx_off`, `sm_on`, `amd_iommu=force_isolation`). Turning the IOMMU
 * off is the one real conflict: vfio-pci needs it. */
const IOMMU_DRIVER_OPTIONS: Record<string, { known: string[]; off: string[] }> = {
  intel_iommu: {
    known: ["on", "igfx_off", "forcedac", "strict", "sp_off", "sm_on", "sm_off", "tboot_noforce"],
    off: ["off"],
  },
  amd_iommu: {
    known: [
      "fullflush",
      "force_isolation",
      "force_enable",
      "pgtbl_v1",
      "pgtbl_v2",
      "irtcachedis",
      "nohugepages",
      "v2_pgsizes_only",
    ],
    off: ["off"],
  },
};

/** What is wrong with an `intel_iommu=` / `amd_iommu=` value, or null when the kernel takes it
 * and it leaves the IOMMU on. */
function iommuDriverConflict(name: string, value: string): { problem: string; fix: string } | null {
  const driver = IOMMU_DRIVER_OPTIONS[name]!;
  const options = value.split(",").filter((o) => o.length > 0);
  if (options.length === 0) {
    return {
      problem: "has no value",
      fix: `give ${name} its options, e.g. ${name}=${driver.known[0]}`,
    };
  }
  if (name === "intel_iommu" && options.every((o) => o === "on")) {
    return {
      problem: "is set by the charm itself from the iommu option",
      fix: "remove it from extra-kernel-params and set option iommu instead (intel_iommu=on,<options> adds options)",
    };
  }
  for (const option of options) {
    if (driver.off.includes(option)) {
      return {
        problem: `turns the IOMMU off (${name}=${option}), which vfio-pci needs`,
        fix: `remove it; to keep the charm from switching the IOMMU on, set iommu=off (with devices empty)`,
      };
    }
    if (name === "amd_iommu" && option === "on") {
      return {
        problem:
          'is not a value the kernel knows (AMD-Vi is on by default; the kernel logs "Unknown option")',
        fix: "remove amd_iommu=on; keep only the options you need, e.g. amd_iommu=force_isolation",
      };
    }
    if (!driver.known.includes(option)) {
      return {
        problem: `has the option "${option}", which ${name} does not know`,
        fix: `use ${driver.known.join(", ")} (comma separated)`,
      };
    }
  }
  return null;
}

/** True for a token that may go into the grub drop-in as is (the renderer re-checks every one). */
export function isSafeKernelParam(token: string): boolean {
  return KERNEL_PARAM.test(token);
}

/** Longer than this cannot fit a kernel command line next to root= and the rest (x86: 2048). */
const MAX_EXTRA_PARAMS = 1024;

function parseKernelParams(value: unknown, errors: ConfigError[]): string[] | null {
  const option = "extra-kernel-params";
  if (
    !isString(
      option,
      value,
      errors,
      'set it to space separated parameters, e.g. "pcie_acs_override=downstream"',
    )
  )
    return null;
  if (/[\r\n]/.test(value.trim())) {
    errors.push({
      option,
      value: clip(value),
      problem: "contains a line break, which would end the line in the grub drop-in",
      fix: "put every parameter on one line, separated by spaces",
    });
    return null;
  }
  if (value.length > MAX_EXTRA_PARAMS) {
    errors.push({
      option,
      value: clip(value),
      problem: `is ${value.length} characters long; the kernel command line holds 2048 in all`,
      fix: `keep extra-kernel-params under ${MAX_EXTRA_PARAMS} characters`,
    });
    return null;
  }
  const params: string[] = [];
  let ok = true;
  for (const token of value.split(/[ \t]+/).filter((t) => t.length > 0)) {
    const fail = (problem: string, fix: string) => {
      errors.push({ option, value: clip(token), problem, fix });
      ok = false;
    };
    const shell = SHELL_CHARS.find(([re]) => re.test(token));
    if (shell) {
      fail(
        `contains ${shell[1]}, which the shell that reads the grub drop-in would interpret`,
        "use only letters, digits and . _ , : = / + - (no quoting is needed or allowed)",
      );
      continue;
    }
    if (!KERNEL_PARAM.test(token)) {
      fail(
        "is not a kernel parameter of the form name or name=value (letters, digits, . _ , : = / + -)",
        "fix or remove that parameter",
      );
      continue;
    }
    const name = token.split("=")[0]!.replace(/-/g, "_");
    if (IOMMU_DRIVER_OPTIONS[name]) {
      const conflict = iommuDriverConflict(name, token.slice(name.length + 1));
      if (conflict) fail(conflict.problem, conflict.fix);
      else params.push(token);
      continue;
    }
    const owner = OWNED_PARAMS[name];
    if (owner) {
      fail(
        `is set by the charm itself from the ${owner} option`,
        `remove it from extra-kernel-params and set option ${owner} instead`,
      );
      continue;
    }
    params.push(token);
  }
  return ok ? params : null;
}

// --- devices ----------------------------------------------------------------------------------

const DEVICE_KEYS = [
  "vendor-id",
  "product-id",
  "address",
  "alias",
  "companions",
  "numa-policy",
  "force",
  "vfs",
  "physical-network",
];
/** Keys operators type from nova or lspci habits, and the key they meant. */
const KEY_HINTS: Record<string, string> = {
  vendor_id: "vendor-id",
  vendor: "vendor-id",
  vendorid: "vendor-id",
  product_id: "product-id",
  product: "product-id",
  device: "product-id",
  "device-id": "product-id",
  device_id: "product-id",
  productid: "product-id",
  addr: "address",
  name: "alias",
  numa_policy: "numa-policy",
  companion: "companions",
  numvfs: "vfs",
  sriov_numvfs: "vfs",
  "num-vfs": "vfs",
  physical_network: "physical-network",
  physnet: "physical-network",
};
const ID_KEYS = new Set(["vendor-id", "product-id"]);
const STRING_KEYS = new Set([
  "vendor-id",
  "product-id",
  "address",
  "alias",
  "numa-policy",
  "physical-network",
]);

interface RawEntry {
  index: number;
  /** What the operator typed for this entry, for messages. */
  source: string;
  /** Plain values; hex ids and other string keys hold the typed text even when YAML saw a number. */
  values: Record<string, unknown>;
}

/** The `devices` value as entries: a YAML/JSON list (or single mapping), or short forms. */
function parseDevices(value: unknown, errors: ConfigError[]): DeviceSelector[] {
  const option = "devices";
  if (!isString(option, value, errors, 'set it to a YAML list or short forms such as "10de:1bb0"'))
    return [];
  const text = value.trim();
  if (text.length === 0) return [];
  const entries = looksLikeYaml(text)
    ? yamlEntries(text, errors)
    : shortForms(splitDeviceList(text), 0, errors);
  if (entries === null) return [];
  return checkEntries(entries, errors);
}

/** Short forms are one line of tokens; YAML is anything with structure (list, mapping, quotes). */
function looksLikeYaml(text: string): boolean {
  return /[\r\n]/.test(text) || /^[[{\-"'#]/.test(text) || /:\s/.test(text);
}

/** `10de:1bb0` → ids; anything else must be an address (`0000:83:00.0`, `83:00.0`, globs). */
function shortForms(tokens: string[], firstIndex: number, errors: ConfigError[]): RawEntry[] {
  const out: RawEntry[] = [];
  tokens.forEach((token, i) => {
    const index = firstIndex + i;
    const ids = parseIdPair(token);
    const notIds = ids ? null : idPairProblem(token);
    if (ids) {
      out.push({
        index,
        source: token,
        values: { "vendor-id": ids.vendorId, "product-id": ids.deviceId },
      });
    } else if (notIds) {
      errors.push({
        option: "devices",
        value: clip(token),
        problem: `(entry #${index + 1}) ${notIds.problem}`,
        fix: notIds.fix,
      });
    } else {
      out.push({ index, source: token, values: { address: token } });
    }
  });
  return out;
}

/** `yaml` is half of dist/charm.js and only a `devices` value written as YAML needs it, so it is
 * required here, on first use: the bundle keeps it in a closure that runs then, not at start-up. */
function yaml(): typeof import("yaml") {
  return require("yaml");
}

function yamlEntries(text: string, errors: ConfigError[]): RawEntry[] | null {
  const { isMap, isScalar, isSeq, parseDocument } = yaml();
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    // Only the first: later ones are mostly the parser tripping over the first.
    for (const err of doc.errors.slice(0, 1)) {
      const line = err.linePos?.[0]?.line ?? 1;
      errors.push({
        option: "devices",
        value: clip(text.split(/\r?\n/)[line - 1] ?? text),
        problem: `is not valid YAML/JSON (line ${line}: ${clip(err.message.split("\n")[0] ?? "", 80)})`,
        fix: 'write a YAML list, e.g. - {vendor-id: "10de", product-id: "1bb0"}, or short forms such as "10de:1bb0"',
      });
    }
    return null;
  }
  const root = doc.contents;
  if (root === null) return [];
  if (isScalar(root) && typeof root.value === "string") {
    // A quoted string of short forms: "10de:1bb0, 0000:83:00.0".
    return shortForms(splitDeviceList(root.value), 0, errors);
  }
  const items: Node[] = isSeq(root) ? (root.items as Node[]) : [root as Node];
  const out: RawEntry[] = [];
  items.forEach((item, index) => {
    const source = item?.range ? text.slice(item.range[0], item.range[1]) : String(item);
    if (item === null || (isScalar(item) && item.value === null)) {
      out.push({ index, source: "(empty list item)", values: {} });
      return;
    }
    if (isScalar(item) && typeof item.value === "string") {
      // A list of short forms: one per item (its own index, so messages count list items).
      if (item.value.trim().length === 0) {
        out.push({ index, source, values: {} });
      } else {
        out.push(...shortForms([item.value.trim()], index, errors));
      }
      return;
    }
    if (isMap(item)) {
      const values: Record<string, unknown> = {};
      for (const pair of item.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const v = pair.value;
        if (isScalar(v)) {
          // YAML reads an unquoted 8086 as the number 8086; the operator typed the hex id "8086".
          // Take the source text for every string-typed key, never the converted number.
          values[key] =
            STRING_KEYS.has(key) && (typeof v.value === "number" || typeof v.value === "bigint")
              ? (v.source ?? String(v.value))
              : v.value;
        } else {
          values[key] = v === null ? null : (v as Node).toJSON();
        }
      }
      out.push({ index, source, values });
      return;
    }
    out.push({
      index,
      source,
      values: { __notAnEntry: item === null ? null : (item as Node).toJSON() },
    });
  });
  return out;
}

/** Schema (shape, keys, types) per entry, then the rules a schema cannot say: ids in pairs, an
 * address that names a function, and no two entries that select the same devices. */
function checkEntries(entries: RawEntry[], errors: ConfigError[]): DeviceSelector[] {
  const selectors: DeviceSelector[] = [];
  const seen = new Map<string, RawEntry>();
  const aliasByAddress = new Map<string, { entry: RawEntry; alias: string | null }>();

  for (const entry of entries) {
    const before = errors.length;
    const err = entryError(entry, errors);
    if ("__notAnEntry" in entry.values) {
      err(
        "is neither a mapping nor a short form",
        'write {vendor-id: "10de", product-id: "1bb0"}, {address: 0000:83:00.0} or "10de:1bb0"',
      );
      continue;
    }
    const values = normaliseEntry(entry.values);
    if (!validateDevices([values])) {
      for (const e of validateDevices.errors ?? []) reportSchemaError(entry, e, err);
      continue;
    }
    const selected = checkSelection(entry, values, err);
    const sriov = checkSriov(values, err);
    if (selected === null || errors.length > before) continue;
    const clash = clashWithEarlier(selected, entry, seen, aliasByAddress);
    if (clash !== null) {
      err(clash.problem, clash.fix);
      continue;
    }
    selectors.push({
      index: entry.index,
      ...selected,
      companions: (values["companions"] as boolean | undefined) ?? true,
      force: (values["force"] as boolean | undefined) ?? false,
      numaPolicy: (values["numa-policy"] as NumaPolicy | undefined) ?? null,
      ...sriov,
      source: entry.source.replace(/\s+/g, " ").trim(),
    });
  }
  return selectors;
}

/** Reports one problem of one entry: `(entry #2) <problem>`, with the fix and the value shown. */
type EntryError = (problem: string, fix: string, value?: string) => void;

function entryError(entry: RawEntry, errors: ConfigError[]): EntryError {
  const label = `(entry #${entry.index + 1})`;
  return (problem, fix, value = entry.source) =>
    errors.push({ option: "devices", value: clip(value), problem: `${label} ${problem}`, fix });
}

/** What the schema checks, normalised: hex ids lower case without 0x, enums lower case. */
function normaliseEntry(raw: Record<string, unknown>): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(raw)) {
    if (ID_KEYS.has(key) && typeof v === "string") {
      values[key] = v.trim().toLowerCase().replace(/^0x/, "");
    } else if ((key === "address" || key === "numa-policy") && typeof v === "string") {
      values[key] = v.trim().toLowerCase();
    } else {
      values[key] = v;
    }
  }
  return values;
}

/** One schema error of an entry, in operator words: which key, what it holds, what to write. */
function reportSchemaError(entry: RawEntry, e: ErrorObject, err: EntryError): void {
  const key = e.instancePath.split("/")[2] ?? "";
  const raw = key ? entry.values[key] : undefined;
  const shown =
    raw === undefined ? entry.source : typeof raw === "string" ? raw : JSON.stringify(raw);
  if (e.keyword === "additionalProperties") {
    const extra = String((e.params as { additionalProperty?: string }).additionalProperty);
    const hint = KEY_HINTS[extra.toLowerCase()];
    err(
      `has an unknown key "${extra}"`,
      hint
        ? `did you mean "${hint}"? Keys are ${DEVICE_KEYS.join(", ")}`
        : `use only ${DEVICE_KEYS.join(", ")}`,
      extra,
    );
  } else if (e.keyword === "minProperties") {
    err("is empty", "remove it, or give vendor-id + product-id and/or address");
  } else if (e.keyword === "type" && key === "") {
    err(
      "is not a mapping",
      'write {vendor-id: "10de", product-id: "1bb0"} or a short form such as "10de:1bb0"',
    );
  } else if (ID_KEYS.has(key)) {
    err(
      `has ${key} ${JSON.stringify(shown)}, which is not 4 hex digits`,
      `write the id lspci -nn shows, e.g. ${key}: "${key === "vendor-id" ? "10de" : "1bb0"}"`,
      shown,
    );
  } else if (key === "alias") {
    err(
      `has alias ${JSON.stringify(shown)}: nova alias names here are 1-64 lower-case letters, digits, _ or -, starting with a letter or digit`,
      typeof raw === "string" && /^[a-z0-9][a-z0-9_-]{0,63}$/.test(raw.toLowerCase())
        ? `write it in lower case: ${raw.toLowerCase()}`
        : "pick a name such as gpu or p5000 (flavors ask for pci_passthrough:alias=<name>:1)",
      shown,
    );
  } else if (key === "companions") {
    err(
      `has companions ${JSON.stringify(shown)}`,
      "write companions: true or companions: false",
      shown,
    );
  } else if (key === "force") {
    err(
      `has force ${JSON.stringify(shown)}`,
      "write force: true to take the entry's devices even though the host uses them, or leave it out",
      shown,
    );
  } else if (key === "vfs") {
    err(
      `has vfs ${JSON.stringify(shown)}, which is not a whole number from 1 to 65535`,
      "write the number of VFs to create on the PF, e.g. vfs: 8 (list-devices shows its totalvfs)",
      shown,
    );
  } else if (key === "physical-network") {
    err(
      `has physical-network ${JSON.stringify(shown)}: a neutron physical network name here is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
      "use the name neutron knows (ml2 network_vlan_ranges / flat_networks), e.g. physnet1",
      shown,
    );
  } else if (key === "numa-policy") {
    err(
      `has numa-policy ${JSON.stringify(shown)}`,
      "use one of legacy, preferred, required, socket",
      shown,
    );
  } else {
    err(
      `has ${key || "a value"} ${JSON.stringify(shown)} that ${e.message ?? "is invalid"}`,
      "fix the entry",
      shown,
    );
  }
}

/** What an entry selects by: ids (both or neither), an address that names a function, and at
 * least one of the two. Null when it selects nothing; other problems are reported through `err`
 * (the caller drops an entry that had any). */
function checkSelection(
  entry: RawEntry,
  values: Record<string, unknown>,
  err: EntryError,
): Pick<DeviceSelector, "vendorId" | "productId" | "address" | "alias"> | null {
  const vendorId = (values["vendor-id"] as string | undefined) ?? null;
  const productId = (values["product-id"] as string | undefined) ?? null;
  const alias = (values["alias"] as string | undefined) ?? null;
  let address: AddressPattern | null = null;
  if (vendorId !== null && productId === null) {
    err(
      `has vendor-id ${vendorId} without product-id: that would take every ${vendorId} device`,
      "add product-id (lspci -nn shows [vendor:product]), or select by address",
    );
  } else if (productId !== null && vendorId === null) {
    err(
      `has product-id ${productId} without vendor-id`,
      "add vendor-id (lspci -nn shows [vendor:product])",
    );
  }
  if (typeof values["address"] === "string") {
    const parsed = parseAddressPattern(values["address"]);
    if (typeof parsed === "string") {
      err(
        `has address ${JSON.stringify(entry.values["address"])} that ${parsed}`,
        "copy the address from lspci -D or the list-devices action; globs *, ? and [0-7] may replace bus, device or function digits",
        String(entry.values["address"]),
      );
    } else {
      address = parsed;
    }
  }
  if (vendorId === null && productId === null && values["address"] === undefined) {
    err(
      "selects nothing: it has neither vendor-id + product-id nor address",
      'add vendor-id and product-id (e.g. "10de"/"1bb0") and/or address (e.g. 0000:83:00.0)',
    );
    return null;
  }
  return { vendorId, productId, address, alias };
}

/** SR-IOV keys: `vfs` needs an address (or every PF of that model, the host's own ports too, would
 * get VFs), and `physical-network` needs `vfs` (neutron SR-IOV ports take VFs). */
function checkSriov(
  values: Record<string, unknown>,
  err: EntryError,
): Pick<DeviceSelector, "vfs" | "physicalNetwork"> {
  const vfs = (values["vfs"] as number | undefined) ?? null;
  const physicalNetwork = (values["physical-network"] as string | undefined) ?? null;
  if (vfs !== null && values["address"] === undefined) {
    err(
      `has vfs: ${vfs} but no address: VFs would be created on every PF with those ids, the host's own ports too`,
      "add the PF's address (list-devices shows it; a glob such as 0000:3b:00.* is fine)",
    );
  }
  if (physicalNetwork !== null && vfs === null) {
    err(
      `has physical-network ${physicalNetwork} without vfs: neutron SR-IOV ports take VFs`,
      "add vfs: N to create N VFs on the PF, or remove physical-network",
    );
  }
  return { vfs, physicalNetwork };
}

/** Rules across entries: one literal address gets one alias (nova would see the same device
 * under two names), and no two entries select the same devices. Records this entry when it
 * passes; returns the problem when it does not. */
function clashWithEarlier(
  selected: Pick<DeviceSelector, "vendorId" | "productId" | "address" | "alias">,
  entry: RawEntry,
  seen: Map<string, RawEntry>,
  aliasByAddress: Map<string, { entry: RawEntry; alias: string | null }>,
): { problem: string; fix: string } | null {
  const { vendorId, productId, address, alias } = selected;
  const literal = address && !address.isGlob ? address.text : null;
  const other = literal === null ? undefined : aliasByAddress.get(literal);
  if (other && other.alias !== alias) {
    return {
      problem: `gives ${literal} the alias ${alias ?? "(derived)"} while entry #${other.entry.index + 1} gives it ${other.alias ?? "(derived)"}`,
      fix: "one address gets one alias: merge the two entries",
    };
  }
  const key = `${vendorId ?? "*"}:${productId ?? "*"}@${address?.text ?? "*"}`;
  const twin = seen.get(key);
  if (twin) {
    return {
      problem: `selects the same devices as entry #${twin.index + 1} (${clip(twin.source, 40)})`,
      fix: "remove one of the two entries",
    };
  }
  seen.set(key, entry);
  if (literal !== null && !aliasByAddress.has(literal))
    aliasByAddress.set(literal, { entry, alias });
  return null;
}
