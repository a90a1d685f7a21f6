// The nova-config action, pure: what nova needs for this unit's devices. The [pci] lines this charm
// sends nova-compute (and why that option name), plus what a subordinate on a compute host cannot
// set itself: nova-cloud-controller's pci-alias and scheduler filters, and a flavor that asks for
// the devices.

import type { NovaPciOption } from "../config";
import { REPORT_IN_PLACEMENT_WARNING } from "../config/placement";
import { validateActionNovaConfig } from "../generated/validators.js";
import type { HostFacts, NovaRelease } from "../host/facts";
import type { VfCountClaim, VfCountOwner } from "../host/vf-count-owners";
import {
  chooseOptionName,
  describeNovaRelease,
  novaEntryProblems,
  novaFeatures,
  novaJson,
  novaOffer,
  novaPciEntries,
  offeredToNova,
  openstackReleaseName,
  renderPciSection,
  type SriovReadiness,
} from "../plan/nova";
import type { PlannedPf } from "../plan/sriov";
import type { BoundDevice } from "../plan/types";
import { ownerFixLine, vfCountDisagreements, vfCountProblems } from "../plan/vf-count-owners";
import { type Checked, validateParams } from "./params";
import { type ActionReply, addressKey, listResult, type ResultTree } from "./results";

export interface NovaConfigParams {
  /** `cloud`: the merged answer for nova-cloud-controller (actions/fleet-config.ts); `host`:
   * this unit's own [pci] entries. */
  scope: "cloud" | "host";
}

/** nova-config's one parameter, `scope` (unknown ones are refused with the usual message). */
export function parseNovaConfigParams(raw: unknown): Checked<NovaConfigParams> {
  const checked = validateParams("nova-config", validateActionNovaConfig, raw);
  if (!checked.ok) return checked;
  const scope = (checked.params as { scope?: string }).scope === "host" ? "host" : "cloud";
  return { ok: true, params: { scope } };
}

export interface NovaConfigInput {
  /** The functions the plan binds to vfio-pci (selected and companions), sorted by address. */
  bound: BoundDevice[];
  /** Whether a function is on vfio-pci now (only those are sent to nova-compute). */
  onVfio: (address: string) => boolean;
  /** The `nova-pci-option` setting. */
  setting: NovaPciOption;
  /** The `pci-report-in-placement` setting. */
  reportInPlacement?: boolean;
  /** The nova installed on this host (host/nova-release.ts), or null. */
  installed: NovaRelease | null;
  /** Whether the `nova-compute` relation exists (there is someone to send the lines to). */
  related: boolean;
  /** PFs the plan gives VFs, whether each has them all on their driver now, and each PF's
   * network interface (for neutron's physical_device_mappings). */
  sriov?: SriovReadiness & { netdev: (pf: PlannedPf) => string | null };
  /** What the host's other owners of VF counts set at boot (host/vf-count-owners.ts), and the
   * facts to match them to the PFs. */
  vfCounts?: { claims: VfCountClaim[]; facts: HostFacts };
}

// nova-cloud-controller's scheduler filters when `scheduler-default-filters` is unset
// (charm-nova-cloud-controller hooks/nova_cc_context.py default_enabled_filters, by release).
// Setting the option replaces this list, so the line we print is the default plus our filter.
const NCC_FILTERS_BOBCAT = [
  "ComputeFilter",
  "ComputeCapabilitiesFilter",
  "ImagePropertiesFilter",
  "ServerGroupAntiAffinityFilter",
  "ServerGroupAffinityFilter",
  "DifferentHostFilter",
  "SameHostFilter",
];
const NCC_FILTERS_VICTORIA = ["AvailabilityZoneFilter", ...NCC_FILTERS_BOBCAT];
const NCC_FILTERS_PIKE = ["RetryFilter", ...NCC_FILTERS_VICTORIA];
/** nova major → the list for that release and later (28 = 2023.2 Bobcat, 22 = Victoria, 16 = Pike). */
const NCC_DEFAULT_FILTERS: [number, string[]][] = [
  [28, NCC_FILTERS_BOBCAT],
  [22, NCC_FILTERS_VICTORIA],
  [16, NCC_FILTERS_PIKE],
];

/** nova-cloud-controller's default filter list for a nova major (unknown → the newest list). */
export function controllerDefaultFilters(major: number | null): string[] {
  if (major === null) return NCC_FILTERS_BOBCAT;
  for (const [since, filters] of NCC_DEFAULT_FILTERS) if (major >= since) return filters;
  return NCC_FILTERS_PIKE;
}

/** The ready-to-paste lines for nova-cloud-controller and a flavor, with the caveats. */
function controllerResults(
  bound: BoundDevice[],
  installed: NovaRelease | null,
  pfs: PlannedPf[],
): ResultTree {
  const aliases = novaPciEntries(bound, pfs).aliases;
  const major = installed?.upstream[0] ?? null;
  const filters = [...controllerDefaultFilters(major), "PciPassthroughFilter"].join(",");
  const releaseWords =
    major === null
      ? "the default for 2023.2 (Bobcat) and later (this host's nova version is unknown)"
      : `the default for ${openstackReleaseName(major) ?? `nova ${major}`} (this host's nova; the controller should run the same release)`;
  const out: ResultTree = {
    "scheduler-filters": `juju config nova-cloud-controller scheduler-default-filters='${filters}'`,
    "scheduler-filters-note":
      "Setting scheduler-default-filters replaces nova-cloud-controller's release default; this " +
      `line is ${releaseWords} plus PciPassthroughFilter. If you have set the option already, ` +
      "append ,PciPassthroughFilter to your value instead (`juju config nova-cloud-controller " +
      "scheduler-default-filters` prints it). With neutron-api enable-sriov or " +
      "enable-hardware-offload, nova-cloud-controller adds PciPassthroughFilter itself.",
  };
  if (aliases.length > 0) {
    out["pci-alias"] = `juju config nova-cloud-controller pci-alias='${JSON.stringify(aliases)}'`;
    out["pci-alias-note"] =
      "pci-alias is one setting for the whole cloud: these are this host's aliases only; " +
      "nova-config without scope=host prints the line merged from every host. This charm " +
      "already sends the same aliases to nova-compute on this host (needed for resize and " +
      "migration).";
  }
  return out;
}

/** One flavor example per alias name, asking for one device. */
function flavorResults(bound: BoundDevice[]): ResultTree | null {
  const perName = new Map<string, number>();
  for (const a of novaPciEntries(bound).aliases) perName.set(a.name, 0);
  for (const d of bound) if (perName.has(d.alias)) perName.set(d.alias, perName.get(d.alias)! + 1);
  if (perName.size === 0) return null;
  const names = [...perName.keys()];
  const out = listResult(
    names,
    (name) => `openstack flavor set <flavor> --property "pci_passthrough:alias"="${name}:1"`,
  );
  out.note =
    "Replace <flavor> with your flavor's name. Ask for several aliases with a comma " +
    `("${names.map((n) => `${n}:1`).join(",")}") and for more devices with a higher count; this ` +
    `host offers ${names.map((n) => `${perName.get(n)} × ${n}`).join(", ")}.`;
  return out;
}

/**
 * What neutron needs for VFs that back `vnic_type direct` ports: the SR-IOV agent's mapping of each
 * physical network to its PF's interface, the ML2 mechanism driver, and a port for a server. With
 * the OpenStack charms: neutron-api and ovn-chassis (or neutron-openvswitch) enable-sriov and
 * sriov-device-mappings, and their sriov-numvfs set to agree with `vfs` (vfCountResults).
 */
function neutronResults(
  pfs: PlannedPf[],
  netdev: (pf: PlannedPf) => string | null,
): ResultTree | null {
  const ported = pfs.filter((pf) => pf.physicalNetwork !== null);
  if (ported.length === 0) return null;
  const mappings = ported.map(
    (pf) => `${pf.physicalNetwork}:${netdev(pf) ?? `<interface of ${pf.address}>`}`,
  );
  const networks = [...new Set(ported.map((pf) => pf.physicalNetwork!))];
  return {
    "sriov-agent": `/etc/neutron/plugins/ml2/sriov_agent.ini: [sriov_nic] physical_device_mappings = ${mappings.join(",")}`,
    ml2: "ml2_conf.ini: [ml2] mechanism_drivers = <yours>,sriovnicswitch",
    charms:
      `juju config neutron-api enable-sriov=true; juju config ovn-chassis enable-sriov=true ` +
      `sriov-device-mappings='${mappings.join(" ")}' (neutron-openvswitch takes the same two options). ` +
      "Set their sriov-numvfs as vf-counts says: its default, auto, gives every SR-IOV PF " +
      "sriov_totalvfs VFs at every boot and fights this charm over the count.",
    port: `openstack port create --network <network on ${networks.join(" or ")}> --vnic-type direct <port>`,
    server: "openstack server create --flavor <flavor> --image <image> --port <port> <name>",
    note:
      "These VFs stay on the host VF driver until a VM takes one (libvirt moves it to vfio-pci and " +
      "back): neutron's SR-IOV agent counts a VF without a network interface as in use. No alias " +
      "is published for them: neutron ports ask for them, not flavors.",
  };
}

/**
 * The exact sriov-numvfs for the networking charms that also set VF counts at every boot
 * (ovn-chassis through netplan, neutron-openvswitch through sriov-netplan-shim): explicit, naming
 * every planned PF's interface with this charm's count, so `auto` (= sriov_totalvfs) never fights
 * `vfs`. What this host's files say now is kept for the interfaces the plan does not touch.
 */
function vfCountResults(
  pfs: PlannedPf[],
  netdev: (pf: PlannedPf) => string | null,
  vfCounts: NovaConfigInput["vfCounts"],
): ResultTree | null {
  if (pfs.length === 0) return null;
  const claims = vfCounts?.claims ?? [];
  const wanted = new Map<string, number>();
  for (const pf of pfs) wanted.set(netdev(pf) ?? `<interface of ${pf.address}>`, pf.numVfs);
  const out: ResultTree = {};
  const owners: VfCountOwner[] = ["ovn-chassis", "neutron-openvswitch"];
  for (const owner of owners) out[owner] = ownerFixLine(owner, claims, wanted)!;
  out.note =
    "sriov-numvfs is one setting for the whole application: these lines assume every host it " +
    "runs on names these PFs' interfaces the same way (merge them with your other hosts' if not). " +
    "Set it on whichever of the two you run, before or with `vfs`; without it their default, auto, " +
    "gives each SR-IOV PF sriov_totalvfs VFs at every boot and this unit blocks.";
  if (vfCounts) {
    const found = vfCountProblems(vfCountDisagreements(pfs, vfCounts.facts, claims), claims);
    if (found.length > 0) out.disagree = listResult(found, (p) => p.message);
  }
  return out;
}

/** Builds the nova-config action's reply from the plan's bound set and the installed nova. */
export function novaConfig(input: NovaConfigInput): ActionReply {
  const { bound, onVfio, setting, installed, related } = input;
  const choice = chooseOptionName(setting, installed);
  const sriov = input.sriov ?? { pfs: [], ready: () => false, netdev: () => null };
  const features = novaFeatures(installed, input.reportInPlacement ?? false);
  // Exactly what the nova-compute relation sends (plan/nova.ts novaOffer).
  const { published, offered, entries } = novaOffer(bound, onVfio, sriov, features);
  const taken = new Set(offered.map((d) => d.address));
  // Companions are not sent to nova-compute, so they are not waiting for it either. VFs wait per
  // PF (said once per PF below), not one line each.
  const waiting = bound.filter(
    (d) => offeredToNova(d) && !taken.has(d.address) && d.physfn === undefined,
  );
  const waitingPfs = sriov.pfs.filter((pf) => !published.includes(pf));

  const option: ResultTree = { name: choice.name, setting, reason: choice.reason };
  if (input.reportInPlacement) {
    option.placement = features.placement
      ? `[pci] report_in_placement = True: nova-compute reports these devices to Placement. ${REPORT_IN_PLACEMENT_WARNING}`
      : `pci-report-in-placement=true, but ${installed ? describeNovaRelease(installed) : "no installed nova"} predates Zed (26.0.0), which brought PCI in Placement: nothing is sent for it.`;
  }
  if (choice.warning) option.warning = choice.warning;

  const results: ResultTree = {
    option,
    "nova-compute": related
      ? {
          related: "yes",
          sends: `${entries.deviceSpecs.length} device_spec, ${entries.aliases.length} alias`,
        }
      : {
          related: "no",
          note:
            "No nova-compute relation: nothing is sent. Run `juju integrate nova-compute " +
            "pci-passthrough:nova-compute`.",
        },
    offered: String(offered.filter(offeredToNova).length),
    "nova-conf": renderPciSection(entries, choice.name).trimEnd(),
  };
  if (entries.deviceSpecs.length > 0) {
    results["device-spec"] = listResult(entries.deviceSpecs, novaJson);
  }
  if (entries.aliases.length > 0) results.alias = listResult(entries.aliases, novaJson);
  const companions = bound.filter((d) => !offeredToNova(d));
  if (companions.length > 0) {
    results.companions = listResult(
      companions,
      (d) =>
        `${d.address} ${d.vendorId}:${d.deviceId} follows ${d.follows ?? "its card"} onto vfio-pci ` +
        "(its IOMMU group needs it there) but is not offered to nova: a VM takes the whole group, " +
        "so nova must not hand it to a second instance",
    );
  }
  if (waiting.length > 0) {
    const w: ResultTree = {};
    for (const d of waiting) {
      w[addressKey(d.address)] =
        `${d.address} ${d.vendorId}:${d.deviceId} (${d.alias}) is not on vfio-pci yet: reboot, or ` +
        "run the rebind action, and it is sent to nova-compute";
    }
    results.waiting = w;
  }
  if (waitingPfs.length > 0) {
    const w = (results.waiting as ResultTree | undefined) ?? {};
    for (const pf of waitingPfs) {
      w[addressKey(pf.address)] =
        `${pf.address}: its ${pf.numVfs} VFs are not all there on ${pf.vfDriver === "vfio-pci" ? "vfio-pci" : "their driver"} yet: reboot, or run the sriov-vfs action, and its device_spec is sent to nova-compute`;
    }
    results.waiting = w;
  }
  const neutron = neutronResults(sriov.pfs, sriov.netdev);
  if (neutron) results.neutron = neutron;
  const counts = vfCountResults(sriov.pfs, sriov.netdev, input.vfCounts);
  if (counts) results["vf-counts"] = counts;
  const problems = novaEntryProblems(bound, sriov.pfs);
  if (problems.length > 0) results.problems = listResult(problems, (p) => p.message);

  if (bound.length === 0 && sriov.pfs.length === 0) {
    results.note =
      "The devices option selects nothing on this host, so there is nothing for nova; set " +
      "`devices` (see `juju run pci-passthrough/N list-devices`).";
  } else {
    // Controller and flavor lines cover every bound function, waiting ones too: they are set once.
    results.controller = controllerResults(bound, installed, sriov.pfs);
    const flavor = flavorResults(bound);
    if (flavor) results.flavor = flavor;
  }

  const summary =
    bound.length === 0 && sriov.pfs.length === 0
      ? "nothing selected"
      : `${offered.filter(offeredToNova).length} of ${bound.filter(offeredToNova).length} functions offered to nova as [pci] ${choice.name}` +
        (waiting.length > 0 ? ` (${waiting.length} waiting for vfio-pci)` : "");
  return { ok: true, message: summary, results };
}
