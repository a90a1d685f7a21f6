// devices: which functions go to VMs. Text (short forms or YAML/JSON) → entries → the schema per
// entry (generated from src/schemas/devices.schema.json) → the rules a schema cannot say.
import type { ErrorObject } from "ajv";
import type { Node } from "yaml";
// Generated from src/schemas/devices.schema.json by `npm run gen` (run by npm ci and every build).
import { type Devices, validateDevices } from "../generated/validators.js";
import {
  type AddressPattern,
  idPairProblem,
  parseAddressPattern,
  parseIdPair,
  splitDeviceList,
} from "../pci-vocabulary";
import { clip } from "../text";
import { isString } from "./option-values";
import { checkPlacement } from "./placement";
import type { ConfigError, DeviceSelector } from "./types";

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
  "resource-class",
  "traits",
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
  resource_class: "resource-class",
  resourceclass: "resource-class",
  trait: "traits",
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

/** One entry of `devices` as the schema (src/schemas/devices.schema.json) accepts it. */
type DeviceEntry = Devices[number];

interface RawEntry {
  index: number;
  /** What the operator typed for this entry, for messages. */
  source: string;
  /** Plain values; hex ids and other string keys hold the typed text even when YAML saw a number. */
  values: Record<string, unknown>;
}

/** The `devices` value as entries: a YAML/JSON list (or single mapping), or short forms. */
export function parseDevices(value: unknown, errors: ConfigError[]): DeviceSelector[] {
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
    // The schema's type guard: past it the entry is typed (generated from the schema), no casts.
    const list: unknown = [normaliseEntry(entry.values)];
    if (!validateDevices(list)) {
      for (const e of validateDevices.errors ?? []) reportSchemaError(entry, e, err);
      continue;
    }
    const values = list[0]!;
    const selected = checkSelection(entry, values, err);
    const sriov = checkSriov(values, err);
    const placement = checkPlacement(values, err);
    if (selected === null || errors.length > before) continue;
    const clash = clashWithEarlier(selected, entry, seen, aliasByAddress);
    if (clash !== null) {
      err(clash.problem, clash.fix);
      continue;
    }
    selectors.push({
      index: entry.index,
      ...selected,
      companions: values.companions ?? true,
      force: values.force ?? false,
      numaPolicy: values["numa-policy"] ?? null,
      ...sriov,
      // Only when set: selectors built elsewhere (tests, plans) need not name them.
      ...(placement.resourceClass !== null ? { resourceClass: placement.resourceClass } : {}),
      ...(placement.traits.length > 0 ? { traits: placement.traits } : {}),
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
  values: DeviceEntry,
  err: EntryError,
): Pick<DeviceSelector, "vendorId" | "productId" | "address" | "alias"> | null {
  const vendorId = values["vendor-id"] ?? null;
  const productId = values["product-id"] ?? null;
  const alias = values.alias ?? null;
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
  values: DeviceEntry,
  err: EntryError,
): Pick<DeviceSelector, "vfs" | "physicalNetwork"> {
  const vfs = values.vfs ?? null;
  const physicalNetwork = values["physical-network"] ?? null;
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
