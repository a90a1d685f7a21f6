// The PCI vocabulary: addresses, vendor/device ids and classes, as sysfs, lspci, udev and nova
// spell them. The one place that parses and formats them: the config parser, the host readers,
// the planners and the actions all ask it, so a value one of them accepts the others read alike.
// Pure: strings in, strings out.

// ---------------------------------------------------------------------------------------------
// Addresses

/**
 * A full PCI address as the kernel names a function in sysfs: `0000:83:00.0`, lower case.
 * The kernel prints the domain with %04x, so it has four hex digits or more: Intel VMD puts the
 * devices behind it in domains from 10000 up (`10000:01:00.0`). Bus 00-ff, device 00-1f,
 * function 0-7.
 */
const PCI_ADDRESS = /^(?:[0-9a-f]{4}|[1-9a-f][0-9a-f]{4,7}):[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/;

/** True for a full address as sysfs spells it (what a directory name under
 * /sys/bus/pci/devices, a `physfn` link or a `consumer:pci:` link holds). */
export function isPciAddress(text: string): boolean {
  return PCI_ADDRESS.test(text);
}

/** Orders addresses as the bus numbers them (domain, bus, device, function). Plain string order
 * is wrong once domains differ in width: `10000:…` sorts before `ffff:…` as text. */
export function compareAddresses(a: string, b: string): number {
  // Canonical domains have no leading zeros past four digits: a longer domain is a larger one.
  // (Anything shorter is no full address and keeps plain string order.)
  const widthA = a.indexOf(":");
  const widthB = b.indexOf(":");
  if (widthA !== widthB && widthA >= 4 && widthB >= 4) return widthA - widthB;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Sorts anything with an `address` by address: `list.sort(byAddress)`. */
export function byAddress(a: { address: string }, b: { address: string }): number {
  return compareAddresses(a.address, b.address);
}

/** The domain of a full address as a number (`10000:01:00.0` → 0x10000). */
export function domainOf(address: string): number {
  return Number.parseInt(address.slice(0, address.indexOf(":")), 16);
}

/** The slot (`0000:83:00`) a function sits in: its functions are one physical card or chip. */
export function slotOf(address: string): string {
  return address.slice(0, address.lastIndexOf("."));
}

/** Every PCI address (`0000:83:00.0`) among the components of a sysfs path, outermost first. */
export function pciAddressesInPath(sysfsPath: string): string[] {
  return sysfsPath.split("/").filter(isPciAddress);
}

/** An address as one number (domain, bus, device, function, most significant first), so that
 * functions one after another on the bus (a PF's VFs) are consecutive numbers; null if malformed. */
export function addressNumber(address: string): number | null {
  if (!isPciAddress(address)) return null;
  const colon = address.indexOf(":");
  const domain = Number.parseInt(address.slice(0, colon), 16);
  const bus = Number.parseInt(address.slice(colon + 1, colon + 3), 16);
  const device = Number.parseInt(address.slice(colon + 4, colon + 6), 16);
  const fn = Number(address[colon + 7]);
  return ((domain * 256 + bus) * 32 + device) * 8 + fn;
}

/** The address addressNumber() made `n` from. */
export function addressOfNumber(n: number): string {
  const fn = n % 8;
  const device = Math.floor(n / 8) % 32;
  const bus = Math.floor(n / 256) % 256;
  const domain = Math.floor(n / 65536);
  return `${hex(domain, 4)}:${hex(bus, 2)}:${hex(device, 2)}.${fn}`;
}

/**
 * The addresses of a PF's first `n` VFs, as the kernel numbers them (drivers/pci/iov.c
 * pci_iov_virtfn_bus/devfn): routing id = the PF's + offset + i × stride, the bus taking the carry.
 * Null when a VF would fall past bus ff (the kernel cannot create it either).
 */
export function vfAddresses(
  pf: string,
  offset: number,
  stride: number,
  n: number,
): string[] | null {
  const m = /^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(pf);
  if (!m) return null;
  const rid = (Number.parseInt(m[2]!, 16) << 8) | (Number.parseInt(m[3]!, 16) << 3) | Number(m[4]);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const vf = rid + offset + i * stride;
    if (vf > 0xffff) return null;
    const bus = (vf >> 8).toString(16).padStart(2, "0");
    const dev = ((vf >> 3) & 0x1f).toString(16).padStart(2, "0");
    out.push(`${m[1]}:${bus}:${dev}.${vf & 7}`);
  }
  return out;
}

/** An address or address glob as the operator wrote it, compiled once. */
export interface AddressPattern {
  /** `0000:83:00.0` or a glob such as `0000:8?:00.*`: always with its domain, lower case. */
  text: string;
  /** True when the bus, device or function holds `*`, `?` or `[…]`. */
  isGlob: boolean;
  /** Matches a full sysfs address (`0000:83:00.0`). */
  pattern: RegExp;
}

const ADDRESS_SHAPE = /^(?:([0-9a-f]{4,8}):)?([^:.]+):([^:.]+)\.([^:.]+)$/;
const GLOB_COMPONENT = /^(?:[0-9a-f?*]|\[(?:[0-9a-f](?:-[0-9a-f])?)+\])+$/;
/** Every value a component may take: bus 00–ff, device 00–1f, function 0–7 (PCI limits). */
const COMPONENT_VALUES = {
  bus: Array.from({ length: 256 }, (_, i) => hex(i, 2)),
  device: Array.from({ length: 32 }, (_, i) => hex(i, 2)),
  function: Array.from({ length: 8 }, (_, i) => i.toString(16)),
} as const;

function componentRegex(glob: string): string {
  // `*` and `?` stay inside one component: they never cross the `:` or `.` separators.
  return glob.replace(/\*/g, "[0-9a-f]*").replace(/\?/g, "[0-9a-f]");
}

/** Parses `0000:83:00.0`, `83:00.0` (domain 0000 added, as lspci prints it), `10000:01:00.0`
 * (an Intel VMD domain) or a glob over the bus/device/function; returns a message (what is
 * wrong) instead when it cannot name a function. */
export function parseAddressPattern(raw: string): AddressPattern | string {
  const text = raw.trim().toLowerCase();
  const m = ADDRESS_SHAPE.exec(text);
  if (!m) {
    return "is not a PCI address: expected domain:bus:device.function such as 0000:83:00.0";
  }
  // sysfs prints the domain as %04x: `00000` and `0000` are the same domain.
  const domain = hex(Number.parseInt(m[1] ?? "0", 16), 4);
  const parts = { bus: m[2] ?? "", device: m[3] ?? "", function: m[4] ?? "" };
  const regexes: string[] = [];
  for (const name of ["bus", "device", "function"] as const) {
    const part = parts[name];
    if (!GLOB_COMPONENT.test(part)) {
      return `has a ${name} "${part}" that is neither hex digits nor a glob (*, ?, [0-7])`;
    }
    // A plain number is looked up; only a glob is tried against every value (cold regexes cost
    // a hook more than the rest of the parse).
    const glob = /^[0-9a-f]+$/.test(part) ? null : new RegExp(`^${componentRegex(part)}$`);
    const values: readonly string[] = COMPONENT_VALUES[name];
    if (glob ? !values.some((v) => glob.test(v)) : !values.includes(part)) {
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

// ---------------------------------------------------------------------------------------------
// Vendor and device ids

/** `10de`: four lower-case hex digits, as sysfs (without its 0x), lspci -nn and nova write them. */
export function isPciId(text: string): boolean {
  return /^[0-9a-f]{4}$/.test(text);
}

/** `10de`, `0x10DE` → `10de`; null when it is not exactly four hex digits. */
export function parsePciId(text: string): string | null {
  const id = text.trim().toLowerCase().replace(/^0x/, "");
  return isPciId(id) ? id : null;
}

/** `0x10DE\n` → `10de`: a hex value as sysfs prints it, padded to `digits`; null when not hex or
 * longer than that. */
export function normaliseHex(raw: string, digits: number): string | null {
  const text = raw.trim().toLowerCase().replace(/^0x/, "");
  if (!/^[0-9a-f]+$/.test(text) || text.length > digits) return null;
  return text.padStart(digits, "0");
}

/** `10de:1bb0`: the ids as lspci -nn and nova write them. */
export function idsOf(fn: { vendorId: string; deviceId: string }): string {
  return `${fn.vendorId}:${fn.deviceId}`;
}

const ID_PAIR = /^(?:0x)?([0-9a-f]{4}):(?:0x)?([0-9a-f]{4})$/;
/** vendor:product shaped, whatever the characters (ID_PAIR is checked first). */
const ID_PAIR_SHAPE = /^(?:0x)?[0-9a-z]{4}:(?:0x)?[0-9a-z]{4}$/;

/** `10de:1bb0`, `0x10DE:0x1BB0` → the two ids; null for anything else. */
export function parseIdPair(token: string): { vendorId: string; deviceId: string } | null {
  const m = ID_PAIR.exec(token.trim().toLowerCase());
  return m ? { vendorId: m[1]!, deviceId: m[2]! } : null;
}

/** What is wrong with a token that looks like ids but is not a pair parseIdPair takes (`10de:zzzz`,
 * a lone `10de`), with the fix; null when it does not look like ids at all (an address, say). */
export function idPairProblem(token: string): { problem: string; fix: string } | null {
  const lower = token.trim().toLowerCase();
  if (ID_PAIR_SHAPE.test(lower)) {
    // Two 4-character words around one colon: vendor:product ids with a typo, never an address
    // (an address has a `.function`). Said as ids, not as "not a PCI address".
    const [vendor = "", product = ""] = lower.split(":").map((t) => t.replace(/^0x/, ""));
    const bad = isPciId(vendor) ? `product id "${product}"` : `vendor id "${vendor}"`;
    return {
      problem: `${bad} is not 4 hex digits`,
      fix: 'write the ids as lspci -nn shows them in brackets, e.g. "10de:1bb0"',
    };
  }
  if (/^(?:0x)?[0-9a-f]{4}$/.test(lower)) {
    return {
      problem: "is a lone id: a short form names vendor:product or an address",
      fix: 'write both ids, e.g. "10de:1bb0", or a full address such as 0000:83:00.0',
    };
  }
  return null;
}

/** Splits a list of short forms (`10de:1bb0, 0000:83:00.0 84:00.1`) on commas and white space. */
export function splitDeviceList(text: string): string[] {
  return text.split(/[\s,]+/).filter((t) => t.length > 0);
}

// ---------------------------------------------------------------------------------------------
// Classes and the modalias

/** PCI-to-PCI bridge or PCIe port (class 0604). */
export function isBridgeClass(classCode: string): boolean {
  return classCode.startsWith("0604");
}

/** The one vocabulary of device classes: list-devices' `class-name` and its `class` filter, the
 * default nova alias of a selected function (so the status's "network x2" is a word `class=`
 * takes), and companions' aliases (`gpu-audio`). Fine words first (a function takes the first
 * that fits), each a set of hex class-code prefixes; then the base classes. */
const FINE_CLASSES: Array<[word: string, prefixes: string[]]> = [
  // 0300 VGA, 0302 3D (datacenter GPUs), 0380 other display (some AMD Instinct cards).
  ["gpu", ["0300", "0302", "0380"]],
  ["nvme", ["0108"]],
  // 0401 multimedia audio, 0403 HD audio (a GPU's HDMI audio function).
  ["audio", ["0401", "0403"]],
  ["usb", ["0c03"]],
  // 12 processing accelerators; 0b40 co-processors (some accelerator cards say so).
  ["accelerator", ["12", "0b40"]],
];

/** Base-class words (PCI Code and ID Assignment spec, base classes 00–13, 40). */
const BASE_CLASS: Record<string, string> = {
  "00": "unclassified",
  "01": "storage",
  "02": "network",
  "03": "display",
  "04": "multimedia",
  "05": "memory",
  "06": "bridge",
  "07": "communication",
  "08": "system",
  "09": "input",
  "0a": "docking",
  "0b": "processor",
  "0c": "serial-bus",
  "0d": "wireless",
  "0e": "intelligent-io",
  "0f": "satellite",
  "10": "encryption",
  "11": "signal-processing",
  "13": "instrumentation",
  "40": "coprocessor",
};

/** Words of other tools and of this charm's earlier default aliases, accepted as input for the
 * class they mean (never printed). */
const CLASS_SYNONYMS: Record<string, string> = {
  nic: "network",
  ethernet: "network",
  vga: "gpu",
  media: "multimedia",
  serial: "serial-bus",
  accel: "accelerator",
  crypto: "encryption",
};

/** The class words the `class` filter accepts (synonyms included), each a set of hex class-code
 * prefixes. */
export const CLASS_WORDS: Record<string, string[]> = (() => {
  const words: Record<string, string[]> = Object.fromEntries(FINE_CLASSES);
  for (const [base, word] of Object.entries(BASE_CLASS)) words[word] ??= [base];
  // ff: "does not fit any defined class", what classWord calls other.
  words["other"] = ["ff"];
  for (const [synonym, word] of Object.entries(CLASS_SYNONYMS)) words[synonym] = words[word]!;
  return words;
})();

/** The class words printed anywhere, without the input-only synonyms: what error messages list. */
export const CLASS_WORD_NAMES: string[] = [
  ...FINE_CLASSES.map(([word]) => word),
  ...Object.values(BASE_CLASS).filter((w) => !FINE_CLASSES.some(([fine]) => fine === w)),
  "other",
];

/** classWord's answers, by class code as given. */
const classWords = new Map<string, string>();

/** A word for a class code: the first fine word that fits, else the base class's word. */
export function classWord(classCode: string): string {
  // Asked for every function of a host (thousands of VFs of one class): answered once per class.
  let word = classWords.get(classCode);
  if (word === undefined) {
    const code = classCode.toLowerCase();
    word = FINE_CLASSES.find(([, prefixes]) => prefixes.some((p) => code.startsWith(p)))?.[0];
    word ??= BASE_CLASS[code.slice(0, 2)] ?? "other";
    if (classWords.size < 4096) classWords.set(classCode, word);
  }
  return word;
}

/** The default nova alias for a function: its class word (gpu, network, nvme, storage, audio…),
 * the same word list-devices prints and its `class` filter takes. */
export function deriveAlias(fn: { classCode: string }): string {
  return classWord(fn.classCode);
}

/** The ids and class a PCI modalias carries. */
export interface ModaliasIds {
  vendorId: string;
  deviceId: string;
  subsystemVendorId: string;
  subsystemDeviceId: string;
  classCode: string;
}

const MODALIAS =
  /^pci:v0000([0-9A-F]{4})d0000([0-9A-F]{4})sv0000([0-9A-F]{4})sd0000([0-9A-F]{4})bc([0-9A-F]{2})sc([0-9A-F]{2})i([0-9A-F]{2})$/;

/** Ids from a kernel-format PCI modalias; null when it is not one. */
export function parseModalias(modalias: string): ModaliasIds | null {
  const m = MODALIAS.exec(modalias);
  if (!m) return null;
  return {
    vendorId: m[1]!.toLowerCase(),
    deviceId: m[2]!.toLowerCase(),
    subsystemVendorId: m[3]!.toLowerCase(),
    subsystemDeviceId: m[4]!.toLowerCase(),
    classCode: (m[5]! + m[6]! + m[7]!).toLowerCase(),
  };
}

/** What a function's `uevent` says: the kernel composes it on read (drivers/pci/pci-driver.c,
 * pci_uevent) from the same fields as the separate attributes, so one read gives them all. */
export interface PciUevent extends ModaliasIds {
  /** `DRIVER=`: the bound driver's name; null when the line is absent (unbound). */
  driver: string | null;
  modalias: string;
}

/** Parses a function's `uevent` (`DRIVER=`, `PCI_CLASS=C0300`, `PCI_ID=8086:7020`,
 * `PCI_SUBSYS_ID=1AF4:1100`, `MODALIAS=`); null when the ids, subsystem ids or class are missing or not in
 * the kernel's format (the caller then reads the separate attributes). */
export function parseUevent(text: string): PciUevent | null {
  // Read for every function of the host (10,000 VFs): the lines are walked in place, and only
  // the values of the keys wanted are cut out. The last line of a key counts, as before.
  let driver: string | null = null;
  let id: string | undefined;
  let subsys: string | undefined;
  let cls: string | undefined;
  let modalias: string | undefined;
  for (let start = 0; start <= text.length; ) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    let eq = text.indexOf("=", start);
    if (eq === -1 || eq > end) eq = -1;
    // A line without `=`: its key is all but its last character, its value the whole line.
    const keyEnd = eq === -1 ? end - 1 : eq;
    const from = eq === -1 ? start : eq + 1;
    switch (keyEnd - start) {
      case 6:
        if (text.startsWith("DRIVER", start)) driver = text.slice(from, end);
        else if (text.startsWith("PCI_ID", start)) id = text.slice(from, end);
        break;
      case 8:
        if (text.startsWith("MODALIAS", start)) modalias = text.slice(from, end);
        break;
      case 9:
        if (text.startsWith("PCI_CLASS", start)) cls = text.slice(from, end);
        break;
      case 13:
        if (text.startsWith("PCI_SUBSYS_ID", start)) subsys = text.slice(from, end);
        break;
    }
    start = end + 1;
  }
  if (id === undefined || subsys === undefined || cls === undefined) return null;
  if (!UEVENT_IDS.test(id) || !UEVENT_IDS.test(subsys)) return null;
  const classCode = classOfUevent(cls);
  if (classCode === null) return null;
  const vendorId = lowerId(id.slice(0, 4));
  const deviceId = lowerId(id.slice(5));
  const subsystemVendorId = lowerId(subsys.slice(0, 4));
  const subsystemDeviceId = lowerId(subsys.slice(5));
  return {
    driver: driver === "" ? null : driver,
    vendorId,
    deviceId,
    subsystemVendorId,
    subsystemDeviceId,
    classCode,
    modalias:
      modalias ??
      synthModalias(vendorId, deviceId, subsystemVendorId, subsystemDeviceId, classCode),
  };
}

/** Ids and classes seen in uevents, lower-cased and normalised once: thousands of VFs share a
 * few (and then share one string each). */
const lowerIds = new Map<string, string>();
const ueventClasses = new Map<string, string | null>();

function lowerId(id: string): string {
  let lower = lowerIds.get(id);
  if (lower === undefined) {
    lower = id.toLowerCase();
    if (lowerIds.size < 4096) lowerIds.set(id, lower);
  }
  return lower;
}

function classOfUevent(cls: string): string | null {
  let code = ueventClasses.get(cls);
  if (code === undefined) {
    code = normaliseHex(cls, 6);
    if (ueventClasses.size < 4096) ueventClasses.set(cls, code);
  }
  return code;
}
/** `PCI_ID` / `PCI_SUBSYS_ID`: the kernel prints them with %04X:%04X. */
const UEVENT_IDS = /^([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4})$/;

/** The modalias the kernel would print (drivers/pci/pci-sysfs.c), for when the file is unreadable. */
export function synthModalias(
  vendorId: string,
  deviceId: string,
  subsystemVendorId: string | null,
  subsystemDeviceId: string | null,
  classCode: string,
): string {
  const hex8 = (id: string | null): string => (id ?? "0").toUpperCase().padStart(8, "0");
  const cls = classCode.toUpperCase();
  return `pci:v${hex8(vendorId)}d${hex8(deviceId)}sv${hex8(subsystemVendorId)}sd${hex8(subsystemDeviceId)}bc${cls.slice(0, 2)}sc${cls.slice(2, 4)}i${cls.slice(4, 6)}`;
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}
