// What nova-compute must be told about the functions this host gives to VMs: the [pci] device_spec
// and alias values, and the relation data that carries them to nova-compute.
//
// How nova-compute takes them (openstack/charm-nova-compute, hooks/nova_compute_utils.py and
// charmhelpers' SubordinateConfigContext): each container-scoped subordinate publishes the unit key
// `subordinate_configuration`, a JSON string `{"nova": {"/etc/nova/nova.conf": {"sections":
// {"pci": [[key, value], ...]}}}}`. nova-compute renders every non-DEFAULT section through
// `templates/parts/section-ephemeral` as `[pci]` then one `key = value` line per pair, after its own
// sections; oslo.config merges repeated sections and collects repeated keys of a MultiStrOpt
// (`device_spec`, `alias`) into one list. So one pair per device_spec / alias value is exactly the
// "repeat the option" form nova documents.
//
// Values must survive three parsers: jinja renders `{{ value }}` raw (no escaping); oslo.config's
// ini parser strips the value and substitutes `$name` templates; nova parses JSON and validates it
// (nova/pci/devspec.py, nova/pci/request.py). Compact JSON of lower-case hex ids and full addresses
// passes all three; alias names are checked below because they come from the operator.
import type { NovaPciOption } from "../config";
import type { NovaRelease } from "../host/facts";
import {
  byAddress,
  compareAddresses,
  domainOf,
  isPciAddress,
  normaliseHex,
} from "../pci-vocabulary";
import type { PlannedPf } from "./sriov";
import type { BoundDevice, NovaDeviceType, PlanProblem } from "./types";

/** The nova.conf [pci] option names that carry the device spec (the alias option is `alias`). */
export type NovaSpecOptionName = "device_spec" | "passthrough_whitelist";

/** One `[pci] device_spec` value: a single function pinned by address and ids, or every VF of a PF
 * (the PF's address with the VFs' product id: nova matches a VF through its parent's address). */
export interface NovaDeviceSpec {
  vendor_id: string;
  product_id: string;
  /** One address, or a set of them as nova's regex address (compactSpecs). */
  address: string | NovaAddressRegex;
  /** neutron physical network of SR-IOV VFs that back `vnic_type direct` ports. */
  physical_network?: string;
  /** nova ≥ 31: "no" = the function is pre-bound to vfio-pci (by this charm), libvirt never
   * rebinds it (withNovaFeatures). */
  managed?: "no";
  /** PCI in Placement (nova ≥ 26, `[pci] report_in_placement`): a custom resource class. */
  resource_class?: string;
  /** PCI in Placement: custom traits, comma-separated as nova reads them. */
  traits?: string;
}

/** nova's regex form of a spec's address (nova/pci/devspec.py PciAddressRegexSpec): each field is
 * a Python regex that `re.match` applies to the field as nova formats it (domain 4, bus 2, slot 2,
 * function 1 lower-case hex digits). Every alternative written here has the field's full width,
 * so the start-anchored match is exact without a `$` (which oslo.config would take for a template). */
export interface NovaAddressRegex {
  domain: string;
  bus: string;
  slot: string;
  function: string;
}

/** Above this many functions of one vendor:product, their specs are compacted into regex address
 * sets (compactSpecs); up to it each keeps its own address, which an operator can grep for. */
export const COMPACT_ABOVE = 16;

/** One `[pci] alias` value (nova/pci/request.py `_ALIAS_SCHEMA`). */
export interface NovaAlias {
  name: string;
  vendor_id: string;
  product_id: string;
  device_type: NovaDeviceType;
  /** Absent means nova's default, `legacy`. */
  numa_policy?: string;
  /** PCI in Placement, nova ≥ 27 (the fleet view sets them when every host reports there). */
  resource_class?: string;
  /** Comma-separated, as nova's alias schema takes them. */
  traits?: string;
}

export interface NovaPciEntries {
  deviceSpecs: NovaDeviceSpec[];
  aliases: NovaAlias[];
  /** Other [pci] options, sent before the specs (`report_in_placement`: withNovaFeatures). */
  options?: [string, string][];
}

/** The option name chosen for device specs, why, and a warning when the choice looks wrong. */
export interface NovaOptionChoice {
  name: NovaSpecOptionName;
  reason: string;
  /** Set when the operator forced a name the installed nova does not read. */
  warning: string | null;
}

/** The relation key nova-compute reads (charmhelpers SubordinateConfigContext). */
export const SUBORDINATE_CONFIGURATION_KEY = "subordinate_configuration";
/** The service and file keys nova-compute looks up; it asks for `nova-compute` first, then `nova`,
 * and uses only the first it finds, so exactly one (`nova`, as ceilometer-agent and the vGPU
 * charm send) is published. */
const SERVICE_KEY = "nova";
const NOVA_CONF = "/etc/nova/nova.conf";

/** nova 26.0.0 (Zed) renamed `[pci] passthrough_whitelist` to `device_spec` (nova commit
 * 14e68ac6e9, first tagged 26.0.0.0rc1); every later release still reads the old name as a
 * deprecated alias, so `passthrough_whitelist` is the one name all supported releases accept. */
const DEVICE_SPEC_SINCE_MAJOR = 26;

// nova's major version per OpenStack release (nova tags; releasenotes/source). Ubuntu packages
// carry an epoch (`2:`/`3:`) and a revision, which host/nova-release.ts strips.
const RELEASE_BY_MAJOR: Record<number, string> = {
  16: "Pike",
  17: "Queens",
  18: "Rocky",
  19: "Stein",
  20: "Train",
  21: "Ussuri",
  22: "Victoria",
  23: "Wallaby",
  24: "Xena",
  25: "Yoga",
  26: "Zed",
  27: "2023.1 Antelope",
  28: "2023.2 Bobcat",
  29: "2024.1 Caracal",
  30: "2024.2 Dalmatian",
  31: "2025.1 Epoxy",
  32: "2025.2 Flamingo",
  33: "2026.1 Gazpacho",
};

/** The OpenStack release name of a nova major version, e.g. 25 → "Yoga"; null when unknown. */
export function openstackReleaseName(major: number): string | null {
  return RELEASE_BY_MAJOR[major] ?? null;
}

/** "nova 29.0.1 (2024.1 Caracal, nova-common 3:29.0.1-0ubuntu1)": how messages name a release. */
export function describeNovaRelease(release: NovaRelease): string {
  const name = openstackReleaseName(release.upstream[0]);
  return (
    `nova ${release.upstream.join(".")} (${name ? `${name}, ` : ""}` +
    `${release.package} ${release.version})`
  );
}

/** Which [pci] option name carries the device specs, with the reason (for the action and logs). */
export function chooseOptionName(
  setting: NovaPciOption,
  installed: NovaRelease | null,
): NovaOptionChoice {
  const hasDeviceSpec = installed !== null && installed.upstream[0] >= DEVICE_SPEC_SINCE_MAJOR;
  const seen = installed
    ? `${describeNovaRelease(installed)} is installed`
    : "no installed nova-common or python3-nova was found in the dpkg status";
  if (setting === "device_spec") {
    const warning =
      installed !== null && !hasDeviceSpec
        ? `nova-pci-option=device_spec but ${seen}: releases before Zed (26.0.0) ignore ` +
          "device_spec and will offer no devices. Set nova-pci-option=auto or passthrough_whitelist."
        : null;
    return {
      name: "device_spec",
      reason: `nova-pci-option is set to device_spec (${seen})`,
      warning,
    };
  }
  if (setting === "passthrough_whitelist") {
    const note = hasDeviceSpec ? "; nova reads it as the deprecated name of device_spec" : "";
    return {
      name: "passthrough_whitelist",
      reason: `nova-pci-option is set to passthrough_whitelist (${seen}${note})`,
      warning: null,
    };
  }
  if (installed === null) {
    return {
      name: "passthrough_whitelist",
      reason:
        `nova-pci-option=auto and ${seen}: passthrough_whitelist is read by every supported ` +
        "release (deprecated name of device_spec since Zed, 26.0.0)",
      warning: null,
    };
  }
  return hasDeviceSpec
    ? {
        name: "device_spec",
        reason: `nova-pci-option=auto and ${seen}: device_spec is the option name from Zed (26.0.0) on`,
        warning: null,
      }
    : {
        name: "passthrough_whitelist",
        reason: `nova-pci-option=auto and ${seen}: releases before Zed (26.0.0) only know passthrough_whitelist`,
        warning: null,
      };
}

/** The [pci] option name for device specs (see chooseOptionName for the reason). */
export function resolveOptionName(
  setting: NovaPciOption,
  installedNova: NovaRelease | null,
): NovaSpecOptionName {
  return chooseOptionName(setting, installedNova).name;
}

/** nova checks domain ≤ ffff, bus ≤ ff, slot ≤ 1f, function ≤ 7 (nova/pci/devspec.py): the
 * domains of Intel VMD (10000 and up) are beyond what nova takes. */
const NOVA_MAX_DOMAIN = 0xffff;
/** Alias names that pass untouched through oslo.config (`$` is a template, `\$` an escape),
 * the nova.conf line (no newline), nova's schema (1–256 characters, stripped) and the flavor
 * extra spec `pci_passthrough:alias` = `name:count[,name:count…]` (no `,` or `:`); also no quotes,
 * so the `juju config` and `openstack flavor set` lines paste as printed. */
const ALIAS_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,254}[A-Za-z0-9])?$/;

/** Why nova would refuse this function's entries, or null when they are fine. */
function entryProblem(device: BoundDevice): string | null {
  const address = device.address.toLowerCase();
  if (!isPciAddress(address)) {
    return `PCI address "${device.address}" is not a full domain:bus:device.function address`;
  }
  if (domainOf(address) > NOVA_MAX_DOMAIN) {
    return `PCI address "${device.address}" is in domain ${address.slice(0, address.indexOf(":"))} (behind an Intel VMD?), beyond the ffff that nova takes`;
  }
  if (normaliseHex(device.vendorId, 4) === null || normaliseHex(device.deviceId, 4) === null) {
    return `ids "${device.vendorId}:${device.deviceId}" of ${device.address} are not 4-digit hex`;
  }
  return null;
}

function aliasKey(a: NovaAlias): string {
  return [a.name, a.vendor_id, a.product_id, a.device_type, a.numa_policy ?? ""].join("\u0000");
}

/** Whether a function bound to vfio-pci is offered to nova: the selected ones, not companions. */
export function offeredToNova(device: Pick<BoundDevice, "reason">): boolean {
  return device.reason !== "companion";
}

/**
 * The device_spec values for the VFs of one PF the charm creates. nova matches a VF through its
 * parent's address when the spec's address is a PF's (nova.pci.devspec WhitelistPciAddress, which
 * asks sysfs whether the address has `sriov_totalvfs` > 0 when nova-compute starts), so one spec with the
 * PF's address and the VFs' product id admits every VF of that PF and never the PF itself (its
 * product id differs), nor a VF of another PF. Where the VFs carry the PF's own ids (QEMU's NVMe)
 * that spec would admit the PF too: then each VF is pinned by its own address instead.
 */
export function sriovDeviceSpecs(pf: PlannedPf, vfAddresses: string[]): NovaDeviceSpec[] {
  if (pf.vfDeviceId === null) return [];
  const tag = pf.physicalNetwork === null ? {} : { physical_network: pf.physicalNetwork };
  if (compactPfSpec(pf)) {
    return [{ vendor_id: pf.vendorId, product_id: pf.vfDeviceId, address: pf.address, ...tag }];
  }
  return vfAddresses
    .filter((a) => vfOffered(pf, a))
    .map((address) => ({
      vendor_id: pf.vendorId,
      product_id: pf.vfDeviceId!,
      address,
      ...tag,
    }));
}

/** One pass over the functions: the entries nova will accept, and what was left out and why. */
function buildEntries(
  bound: BoundDevice[],
  sriov: PlannedPf[] = [],
): { entries: NovaPciEntries; problems: PlanProblem[] } {
  const deviceSpecs: NovaDeviceSpec[] = [];
  const aliases: NovaAlias[] = [];
  const problems: PlanProblem[] = [];
  const seen = new Set<string>();
  // VFs the charm creates are offered per PF (sriovDeviceSpecs), not one spec per VF.
  const pfs = new Map(sriov.map((pf) => [pf.address, pf]));
  const vfsOf = new Map<string, string[]>();
  for (const device of bound) {
    if (device.physfn === undefined || !pfs.has(device.physfn)) continue;
    const list = vfsOf.get(device.physfn);
    if (list) list.push(device.address);
    else vfsOf.set(device.physfn, [device.address]);
  }
  for (const pf of sriov) {
    const vfs = pf.physicalNetwork === null ? vfsOf.get(pf.address) : pf.vfAddresses;
    if (vfs === undefined || vfs.length === 0) continue;
    deviceSpecs.push(...sriovDeviceSpecs(pf, [...vfs].sort(compareAddresses)));
  }
  // Whole functions' specs, per vendor:product in address order (compacted after the walk).
  const wholeByIds = new Map<string, string[]>();
  // alias name → the device_type/numa_policy of its first entry: later entries must agree.
  const shapeOf = new Map<string, { shape: string; address: string }>();
  for (const device of [...bound].sort(byAddress)) {
    // A companion is on vfio-pci because its IOMMU group needs it there, not to be handed out: a
    // VM opens a group as a whole (the kernel refuses a second open), so nova giving the GPU's
    // audio to a second instance would leave that instance unable to start. nova knows no groups.
    if (!offeredToNova(device)) continue;
    const bad = entryProblem(device);
    if (bad !== null) {
      problems.push({ option: null, message: `${bad}: not offered to nova.` });
      continue;
    }
    const address = device.address.toLowerCase();
    const vendor = normaliseHex(device.vendorId, 4)!;
    const product = normaliseHex(device.deviceId, 4)!;
    if (device.physfn === undefined || !pfs.has(device.physfn)) {
      const ids = `${vendor}:${product}`;
      const list = wholeByIds.get(ids);
      if (list) list.push(address);
      else wholeByIds.set(ids, [address]);
    }

    if (!ALIAS_NAME.test(device.alias)) {
      problems.push({
        option: "devices",
        message:
          `alias ${JSON.stringify(device.alias)} of ${address} cannot be a nova alias name ` +
          "(use letters, digits, '.', '_' or '-', starting and ending with a letter or digit, at " +
          "most 256): its device_spec is offered, its alias is not. Set `alias` in `devices`.",
      });
      continue;
    }
    const alias: NovaAlias = {
      name: device.alias,
      vendor_id: vendor,
      product_id: product,
      device_type: device.deviceType,
    };
    if (device.numaPolicy !== null) alias.numa_policy = device.numaPolicy;
    const shape = `${alias.device_type}/${alias.numa_policy ?? "legacy"}`;
    const first = shapeOf.get(alias.name);
    if (first !== undefined && first.shape !== shape) {
      problems.push({
        option: "devices",
        message:
          `alias "${alias.name}" is ${first.shape} for ${first.address} but ${shape} for ` +
          `${address} (device_type/numa_policy): nova refuses an alias whose entries differ, so ` +
          `${address} is left out of it. Give one of them its own alias in \`devices\`.`,
      });
      continue;
    }
    if (first === undefined) shapeOf.set(alias.name, { shape, address });
    const key = aliasKey(alias);
    if (seen.has(key)) continue;
    seen.add(key);
    aliases.push(alias);
  }
  for (const [ids, addresses] of wholeByIds) {
    const [vendor, product] = ids.split(":") as [string, string];
    if (addresses.length <= COMPACT_ABOVE) {
      for (const address of addresses) {
        deviceSpecs.push({ vendor_id: vendor, product_id: product, address });
      }
    } else {
      for (const address of compactAddresses(addresses)) {
        deviceSpecs.push({ vendor_id: vendor, product_id: product, address });
      }
    }
  }
  return { entries: { deviceSpecs, aliases }, problems };
}

/**
 * The fewest-effort exact cover of these addresses by nova regex addresses: each one a product
 * domain × buses × slots × functions that holds only given addresses. Per domain and bus, slots
 * with the same set of functions go together; buses whose (slots, functions) pairs agree share a
 * spec. A PF's thousands of VFs, or a row of identical cards, come to a handful of specs; the
 * count is bounded by domains × buses × function patterns, never by the number of functions.
 */
export function compactAddresses(addresses: string[]): NovaAddressRegex[] {
  // domain → bus → slot → function bit mask
  const tree = new Map<string, Map<number, Map<number, number>>>();
  for (const address of addresses) {
    const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(address);
    if (!m) continue;
    const [, domain, bus, slot, fn] = m as unknown as [string, string, string, string, string];
    const buses = tree.get(domain) ?? new Map<number, Map<number, number>>();
    tree.set(domain, buses);
    const slots = buses.get(Number.parseInt(bus, 16)) ?? new Map<number, number>();
    buses.set(Number.parseInt(bus, 16), slots);
    const s = Number.parseInt(slot, 16);
    slots.set(s, (slots.get(s) ?? 0) | (1 << Number(fn)));
  }
  const out: NovaAddressRegex[] = [];
  for (const domain of [...tree.keys()].sort()) {
    // (function mask, slots) → buses
    const shapes = new Map<string, { mask: number; slots: number[]; buses: number[] }>();
    const buses = tree.get(domain)!;
    for (const bus of [...buses.keys()].sort((a, b) => a - b)) {
      const byMask = new Map<number, number[]>();
      for (const [slot, mask] of [...buses.get(bus)!].sort((a, b) => a[0] - b[0])) {
        const list = byMask.get(mask);
        if (list) list.push(slot);
        else byMask.set(mask, [slot]);
      }
      for (const [mask, slots] of byMask) {
        const key = `${mask}/${slots.join(",")}`;
        const shape = shapes.get(key);
        if (shape) shape.buses.push(bus);
        else shapes.set(key, { mask, slots, buses: [bus] });
      }
    }
    const ordered = [...shapes.values()].sort(
      (a, b) => a.buses[0]! - b.buses[0]! || a.slots[0]! - b.slots[0]!,
    );
    for (const { mask, slots, buses: set } of ordered) {
      out.push({
        domain,
        bus: hexSetRegex(set, 2),
        slot: hexSetRegex(slots, 2),
        function: hexSetRegex(
          [0, 1, 2, 3, 4, 5, 6, 7].filter((f) => mask & (1 << f)),
          1,
        ),
      });
    }
  }
  return out;
}

/** A regex matching exactly these values written as `width` lower-case hex digits (every
 * alternative full width): [3, 4, 5] width 1 → "[3-5]"; [0x10 … 0x1f, 0x20] → "(?:1[0-9a-f]|20)". */
export function hexSetRegex(values: number[], width: 1 | 2): string {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  if (width === 1) return digitClass(sorted);
  const byHigh = new Map<number, number[]>();
  for (const v of sorted) {
    const list = byHigh.get(v >> 4);
    if (list) list.push(v & 15);
    else byHigh.set(v >> 4, [v & 15]);
  }
  // High digits with the same set of low digits share one alternative: "[1-3][0-9a-f]".
  const byLows = new Map<string, number[]>();
  for (const [high, lows] of byHigh) {
    const key = lows.join(",");
    const list = byLows.get(key);
    if (list) list.push(high);
    else byLows.set(key, [high]);
  }
  const alternatives = [...byLows].map(
    ([lows, highs]) => `${digitClass(highs)}${digitClass(lows.split(",").map(Number))}`,
  );
  return alternatives.length === 1 ? alternatives[0]! : `(?:${alternatives.join("|")})`;
}

/** One hex digit out of these values: "7", or a class of runs "[0-9a-c]" ('9' and 'a' are not
 * neighbours in ASCII, so a run across them is split). */
function digitClass(values: number[]): string {
  if (values.length === 1) return values[0]!.toString(16);
  const parts: string[] = [];
  let i = 0;
  while (i < values.length) {
    let j = i;
    while (j + 1 < values.length && values[j + 1] === values[j]! + 1 && values[j]! !== 9) j++;
    const a = values[i]!.toString(16);
    const b = values[j]!.toString(16);
    parts.push(j === i ? a : j === i + 1 ? `${a}${b}` : `${a}-${b}`);
    i = j + 1;
  }
  return `[${parts.join("")}]`;
}

/**
 * The [pci] values for these functions: one device_spec per selected function, pinned by address
 * (so one of two identical cards can be offered) and by ids; one alias per distinct (name, ids,
 * device_type, numa_policy), in address order. Companions get neither (offeredToNova).
 *
 * One alias name over two vendor:product pairs is published as two alias lines: nova ORs alias
 * entries with the same name (nova/pci/request.py get_alias_from_config), as long as they share
 * device_type and numa_policy (it raises PciInvalidAlias otherwise, and, with
 * [filter_scheduler]pci_in_placement, for any name with more than one spec). Entries nova would
 * refuse are left out here and reported by novaEntryProblems: a bad line stops nova-compute.
 */
export function novaPciEntries(bound: BoundDevice[], sriov: PlannedPf[] = []): NovaPciEntries {
  return buildEntries(bound, sriov).entries;
}

/** What novaPciEntries had to leave out, and why, naming the device and what to change. */
export function novaEntryProblems(bound: BoundDevice[], sriov: PlannedPf[] = []): PlanProblem[] {
  return buildEntries(bound, sriov).problems;
}

/** The compact JSON nova.conf carries for one value (no spaces, keys in nova's documented order). */
export function novaJson(value: NovaDeviceSpec | NovaAlias): string {
  return JSON.stringify(value);
}

/** The [pci] (key, value) pairs in publishing order: every device_spec, then every alias. */
export function pciPairs(
  entries: NovaPciEntries,
  optionName: NovaSpecOptionName,
): [string, string][] {
  return [
    ...(entries.options ?? []),
    ...entries.deviceSpecs.map((s): [string, string] => [optionName, novaJson(s)]),
    ...entries.aliases.map((a): [string, string] => ["alias", novaJson(a)]),
  ];
}

/**
 * The JSON string for the relation key `subordinate_configuration`.
 *
 * With nothing to offer it still publishes an empty `pci` list rather than deleting the key:
 * nova-compute's `ephemeral-backend-relation-changed` hook only rewrites nova.conf when the
 * ceilometer/ephemeral-backend context is complete, and SubordinateConfigContext calls a context
 * with no sections incomplete. Deleting the key on a host without ceilometer-agent would leave the
 * old device_spec lines in nova.conf (nova would keep offering functions the host took back); an
 * empty `pci` list keeps the context complete, so nova-compute re-renders and the lines go (an
 * empty `[pci]` header remains, which oslo.config ignores). Within that context sections from
 * several units are merged, so ceilometer-agent's [DEFAULT] lines are kept either way.
 */
export function subordinateConfiguration(
  entries: NovaPciEntries,
  optionName: NovaSpecOptionName,
): string {
  return JSON.stringify({
    [SERVICE_KEY]: { [NOVA_CONF]: { sections: { pci: pciPairs(entries, optionName) } } },
  });
}

/** The [pci] lines exactly as nova-compute's section-ephemeral template renders our data. */
export function renderPciSection(entries: NovaPciEntries, optionName: NovaSpecOptionName): string {
  return `[pci]\n${pciPairs(entries, optionName)
    .map(([k, v]) => `${k} = ${v}\n`)
    .join("")}\n`;
}

export interface NovaRelationData {
  /** Our unit's relation data: a value to set, or null to delete the key. */
  data: Record<string, string | null>;
  /** Bound functions not on vfio-pci yet (they wait for a reboot or the rebind action). */
  waiting: BoundDevice[];
}

/** SR-IOV PFs the plan gives VFs, and whether a PF's VFs are all there and on their planned
 * driver now (only a PF whose VFs are pinned one by one waits for that: publishedPfs). */
export interface SriovReadiness {
  pfs: PlannedPf[];
  ready: (pf: PlannedPf) => boolean;
}

/**
 * Whether this PF's VFs are offered through the one compact PF spec (the PF's address, the VFs'
 * product id). nova decides that a spec's address is a PF by its own rule, `sriov_totalvfs > 0`
 * (nova/pci/utils.py is_physical_function, read when nova-compute parses the spec), never by the
 * VFs that exist: the spec means the same before, during and after a change of the VF count, and
 * admits whichever VFs exist when nova-compute looks.
 */
export function compactPfSpec(pf: PlannedPf): boolean {
  return (
    pf.totalVfs > 0 &&
    pf.vfDeviceId !== null &&
    pf.vfDeviceId !== pf.deviceId &&
    // It would admit every VF, those sharing an IOMMU group too: then each VF is pinned instead.
    (pf.sharedGroupVfs ?? []).length === 0
  );
}

/** Whether this VF is offered to nova at all (the group judgement: its group holds nothing else). */
function vfOffered(pf: PlannedPf, vf: string): boolean {
  return !(pf.sharedGroupVfs ?? []).some((v) => v.address === vf);
}

/** The PFs whose VFs are offered now: a compact PF spec always (it stays steady while the count
 * changes: withdrawing it would make nova-compute drop the free VFs it had); VFs pinned by their
 * own address (they carry the PF's ids) only once all of them are on their planned driver. */
function publishedPfs(sriov: SriovReadiness): PlannedPf[] {
  return sriov.pfs.filter((pf) => compactPfSpec(pf) || sriov.ready(pf));
}

/** The bound functions offered to nova now: a whole function once it is on vfio-pci, a VF when
 * its PF's spec is published (publishedPfs). */
function offeredNow(
  bound: BoundDevice[],
  onVfio: (address: string) => boolean,
  published: PlannedPf[],
): BoundDevice[] {
  const pfs = new Map(published.map((pf) => [pf.address, pf]));
  return bound.filter((d) => {
    if (d.physfn === undefined) return onVfio(d.address);
    const pf = pfs.get(d.physfn);
    return pf !== undefined && vfOffered(pf, d.address);
  });
}

/** What this host offers nova-compute now. */
export interface NovaOffer {
  /** The PFs whose VF specs are sent (publishedPfs). */
  published: PlannedPf[];
  /** The bound functions offered now (offeredNow; companions among them get no entry). */
  offered: BoundDevice[];
  /** The [pci] entries sent, with the installed nova's features. */
  entries: NovaPciEntries;
}

/**
 * The one "offered to nova" rule: a whole function once it is on vfio-pci, the VFs of each
 * published PF. What the nova-compute relation publishes and what the nova-config action shows
 * are its entries (novaOffer); the fleet offer counts by it (plan/fleet.ts buildOffer).
 */
export function offeredToNovaNow(
  bound: BoundDevice[],
  onVfio: (address: string) => boolean,
  sriov: SriovReadiness,
): Pick<NovaOffer, "published" | "offered"> {
  const published = publishedPfs(sriov);
  return { published, offered: offeredNow(bound, onVfio, published) };
}

/** What this host sends nova-compute: what offeredToNovaNow offers, the entries for exactly
 * those with the release's features. */
export function novaOffer(
  bound: BoundDevice[],
  onVfio: (address: string) => boolean,
  sriov: SriovReadiness,
  features: NovaFeatures,
): NovaOffer {
  const { published, offered } = offeredToNovaNow(bound, onVfio, sriov);
  const entries = withNovaFeatures(novaPciEntries(offered, published), features, offered);
  return { published, offered, entries };
}

/** This unit's data for nova-compute: novaOffer's entries under the option name. */
export function novaRelationData(
  bound: BoundDevice[],
  onVfio: (address: string) => boolean,
  optionName: NovaSpecOptionName,
  sriov: SriovReadiness = { pfs: [], ready: () => false },
  features: NovaFeatures = NO_NOVA_FEATURES,
): NovaRelationData {
  const { offered, entries } = novaOffer(bound, onVfio, sriov, features);
  const taken = new Set(offered.map((d) => d.address));
  return {
    data: {
      [SUBORDINATE_CONFIGURATION_KEY]: subordinateConfiguration(entries, optionName),
    },
    waiting: bound.filter((d) => !taken.has(d.address)),
  };
}

/** nova 31.0.0 (2025.1 Epoxy) reads `managed` in device_spec. Earlier releases do not know it:
 * they keep an unknown key as a mere tag and libvirt still manages the device, so the line would
 * say something nova does not do. It is sent only from 31 on. */
export const MANAGED_SINCE_MAJOR = 31;

/** nova 26.0.0 (Zed) reports PCI devices to Placement (`[pci] report_in_placement`) and reads
 * `resource_class` / `traits` in device_spec. */
export const PLACEMENT_SINCE_MAJOR = 26;

/** What the installed nova lets the charm say beyond the device specs themselves. */
export interface NovaFeatures {
  /** `"managed": "no"` on the specs of functions the charm binds to vfio-pci (nova ≥ 31). */
  managed: boolean;
  /** `[pci] report_in_placement = True`, and the entries' resource_class/traits (nova ≥ 26). */
  placement: boolean;
}

export const NO_NOVA_FEATURES: NovaFeatures = { managed: false, placement: false };

/** The features the installed nova understands (none when its release is unknown); placement
 * only when asked for (`pci-report-in-placement`). */
export function novaFeatures(installed: NovaRelease | null, placement = false): NovaFeatures {
  const major = installed?.upstream[0] ?? null;
  return {
    managed: major !== null && major >= MANAGED_SINCE_MAJOR,
    placement: placement && major !== null && major >= PLACEMENT_SINCE_MAJOR,
  };
}

/**
 * The entries with the release's features applied. Every spec the charm sends is for functions
 * it binds to vfio-pci itself (whole functions at boot, a flavor alias's VFs by their address),
 * except VFs for neutron ports (`physical_network`: they stay on the host's VF driver, libvirt
 * moves them): those alone keep libvirt's default, managed.
 */
export function withNovaFeatures(
  entries: NovaPciEntries,
  features: NovaFeatures,
  /** The functions the specs are for: their entries' resource class and traits, by ids. */
  bound: BoundDevice[] = [],
): NovaPciEntries {
  if (!features.managed && !features.placement) return entries;
  const placementOf = new Map<string, Pick<NovaDeviceSpec, "resource_class" | "traits">>();
  for (const d of bound) {
    if (!d.resourceClass && !d.traits?.length) continue;
    placementOf.set(`${d.vendorId.toLowerCase()}:${d.deviceId.toLowerCase()}`, {
      ...(d.resourceClass ? { resource_class: d.resourceClass } : {}),
      ...(d.traits?.length ? { traits: d.traits.join(",") } : {}),
    });
  }
  return {
    ...entries,
    deviceSpecs: entries.deviceSpecs.map((spec) => {
      const out: NovaDeviceSpec = { ...spec };
      if (features.placement)
        Object.assign(out, placementOf.get(`${spec.vendor_id}:${spec.product_id}`));
      if (features.managed && spec.physical_network === undefined) out.managed = "no";
      return out;
    }),
    ...(features.placement ? { options: [["report_in_placement", "True"]] } : {}),
  };
}

/** The data that clears our key (relation departed/broken, charm removal). */
export function clearedNovaRelationData(): Record<string, string | null> {
  return { [SUBORDINATE_CONFIGURATION_KEY]: null };
}
