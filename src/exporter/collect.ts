// One scrape: the hook's plan (its summary, EXPORTER_OWNED.plan) against the live host, read now.
// What is measured, metric by metric, is in README "Observability".
import type { HostReadProblem } from "../host/facts";
import { readCmdline } from "../host/kernel";
import {
  type LiveFunction,
  readEnabledVfs,
  readGroupMembers,
  readGroupNumbers,
  readIommuUnitNames,
  readIsBridge,
  readLiveFunction,
  readMtimeSeconds,
  readRegisteredDrivers,
  readVfioGroupNodes,
} from "../host/live-state";
import { OWNED } from "../host/root";
import { readVfioGroupUsers } from "../host/vfio-users";
import type { ExporterPlan } from "../plan/exporter-files";
import { isHarmlessMember, isVfioDriver } from "../plan/iommu-groups";
import { missingParams } from "../plan/status";
import { type MetricFamily, type Sample, sampleText } from "./text-format";

/** The plan as the exporter last read it, and when the hook wrote it. */
export interface LoadedPlan {
  plan: ExporterPlan | null;
  /** Modification time of the plan file (seconds); null when there is none. */
  writtenAt: number | null;
  /** Why the plan could not be used (absent, unreadable, not JSON), or null. */
  problem: string | null;
}

/** What a scrape found, before it becomes metric families. */
export interface ScrapeResult {
  families: MetricFamily[];
  problems: HostReadProblem[];
}

const NONE = "none";

/** IOMMU group membership, listed again at most once a minute: members change only when a device
 * is added or removed (their drivers, which do change, are read at every scrape). At 10,000 VFs
 * each in its own group, listing every group at every scrape would be most of the scrape. */
export class GroupMembersCache {
  private listed = new Map<number, { at: number; members: string[] }>();

  constructor(
    private readonly maxAgeMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  members(root: string, group: number, problems: HostReadProblem[]): string[] {
    const known = this.listed.get(group);
    const t = this.now();
    if (known && t - known.at < this.maxAgeMs) return known.members;
    const members = readGroupMembers(root, group, problems) ?? [];
    this.listed.set(group, { at: t, members });
    return members;
  }
}

/** Reads the host and compares it with the plan; never throws for a host read. */
export function collect(
  root: string,
  loaded: LoadedPlan,
  groups: GroupMembersCache = new GroupMembersCache(),
): ScrapeResult {
  const problems: HostReadProblem[] = [];
  const plan = loaded.plan;
  const families: MetricFamily[] = [];
  const gauge = (name: string, help: string, samples: Sample[]): void => {
    families.push({ name, help, type: "gauge", samples });
  };

  gauge(
    "pci_passthrough_plan_loaded",
    "1 when the exporter has the charm's plan (written by its last successful hook), 0 when not: every other pci_passthrough metric about functions is then absent.",
    [{ value: plan ? 1 : 0 }],
  );
  gauge(
    "pci_passthrough_plan_timestamp_seconds",
    "When the charm last changed the plan the exporter compares the host with (Unix time).",
    loaded.writtenAt === null ? [] : [{ value: loaded.writtenAt }],
  );

  // IOMMU: on when the kernel made groups (the directory exists even with the IOMMU off).
  const groupNumbers = readGroupNumbers(root, problems);
  const units = readIommuUnitNames(root, problems);
  gauge(
    "pci_passthrough_iommu_enabled",
    "1 when the running kernel has IOMMU groups (the IOMMU is on), else 0.",
    [{ value: groupNumbers !== null && groupNumbers.length > 0 ? 1 : 0 }],
  );
  gauge("pci_passthrough_iommu_groups", "IOMMU groups the running kernel made.", [
    { value: groupNumbers?.length ?? 0 },
  ]);
  gauge(
    "pci_passthrough_iommu_units",
    "IOMMU hardware units the kernel registered (/sys/class/iommu: dmar, ivhd, smmu).",
    [{ value: units.length }],
  );

  // Kernel command line: what the grub drop-in appends, and what the running kernel lacks.
  const params = plan?.kernelParams ?? [];
  const cmdline = plan ? readCmdline(root, problems) : null;
  const missing = plan ? (missingParams(params, { cmdline }) ?? []) : [];
  const pending = missing.length > 0;
  gauge(
    "pci_passthrough_kernel_params_planned",
    "Kernel parameters the charm's grub drop-in adds.",
    plan ? [{ value: params.length }] : [],
  );
  gauge(
    "pci_passthrough_kernel_param_missing",
    "1 for each parameter the charm wrote that the running kernel was not booted with (a reboot is pending).",
    missing.map((param) => ({ labels: { param }, value: 1 })),
  );
  gauge(
    "pci_passthrough_reboot_pending",
    "1 when the running kernel lacks parameters the charm wrote: the host waits for a reboot.",
    plan ? [{ value: pending ? 1 : 0 }] : [],
  );
  const since = pending ? readMtimeSeconds(root, OWNED.grubDropIn) : null;
  gauge(
    "pci_passthrough_reboot_pending_since_timestamp_seconds",
    "When the charm wrote the kernel parameters the running kernel still lacks (the grub drop-in's modification time, Unix time); absent when no reboot is pending.",
    since === null ? [] : [{ value: since }],
  );

  // Functions: each planned one, live.
  const registered =
    plan && plan.functions.length > 0 ? readRegisteredDrivers(root, problems) : null;
  const live = new Map<string, LiveFunction>();
  for (const f of plan?.functions ?? []) {
    live.set(f.a, readLiveFunction(root, f.a, registered, problems));
  }
  // Their groups: viable when every member is harmless (vfio, pci-stub, no driver, a bridge).
  const planGroups = new Set<number>();
  for (const fn of live.values()) if (fn.iommuGroup !== null) planGroups.add(fn.iommuGroup);
  const viable = new Map<number, boolean>();
  const blockers: Sample[] = [];
  for (const group of [...planGroups].sort((a, b) => a - b)) {
    const members = groups.members(root, group, problems);
    let ok = true;
    for (const address of members) {
      const member = live.get(address) ?? readLiveFunction(root, address, registered, problems);
      // A bridge is harmless on any driver: its class is read only for a member that would
      // otherwise block the group.
      const harmless =
        isHarmlessMember({ driver: member.driver, isBridge: false }) || readIsBridge(root, address);
      if (!harmless) {
        ok = false;
        blockers.push(
          sampleText({ iommu_group: String(group), address, driver: member.driver ?? NONE }, 1),
        );
      }
    }
    viable.set(group, ok);
  }
  // Only a group with /dev/vfio/<n> (a member on vfio-pci) can be held open: no node, no scan of
  // every process's fds.
  const nodes = planGroups.size > 0 ? readVfioGroupNodes(root, problems) : new Set<number>();
  const openable = new Set([...planGroups].filter((g) => nodes.has(g)));
  const users = readVfioGroupUsers(root, openable);

  const onDriver: Sample[] = [];
  const inUse: Sample[] = [];
  const available: Sample[] = [];
  for (const f of plan?.functions ?? []) {
    const fn = live.get(f.a)!;
    const ok = fn.present && isVfioDriver(fn.driver);
    const base = { address: f.a, ids: f.ids, alias: f.alias };
    const driver = fn.present ? (fn.driver ?? NONE) : "absent";
    onDriver.push(sampleText({ ...base, driver, planned_driver: "vfio-pci" }, ok ? 1 : 0));
    const used = fn.iommuGroup !== null && (users.get(fn.iommuGroup)?.length ?? 0) > 0;
    inUse.push(
      sampleText(
        { ...base, iommu_group: fn.iommuGroup === null ? NONE : String(fn.iommuGroup) },
        used ? 1 : 0,
      ),
    );
    const groupOk = fn.iommuGroup !== null && viable.get(fn.iommuGroup) === true;
    available.push(sampleText(base, ok && groupOk && !used ? 1 : 0));
  }
  gauge(
    "pci_passthrough_function_on_planned_driver",
    'A function the charm planned for VMs: 1 when on its planned driver now, else 0; driver is the one it is on ("none": unbound, "absent": not on the bus).',
    onDriver,
  );
  gauge(
    "pci_passthrough_function_in_use",
    "1 when a process (a VM) holds the function's /dev/vfio/<group> open, 0 when it is free.",
    inUse,
  );
  gauge(
    "pci_passthrough_function_available",
    "1 when the function can be given to a VM now: on its planned driver, its IOMMU group viable, nobody holding it.",
    available,
  );
  gauge(
    "pci_passthrough_iommu_group_viable",
    "1 when an IOMMU group holding planned functions can be given to a VM (every member on vfio-pci, pci-stub, no driver, or a bridge), else 0.",
    [...viable].map(([group, ok]) => sampleText({ iommu_group: String(group) }, ok ? 1 : 0)),
  );
  gauge(
    "pci_passthrough_iommu_group_blocker_info",
    "A member that keeps its group from being viable, with the driver that holds it.",
    blockers,
  );

  // SR-IOV PFs: VFs planned, enabled now, and on the planned driver.
  const planned: Sample[] = [];
  const present: Sample[] = [];
  const onPlanned: Sample[] = [];
  for (const pf of plan?.pfs ?? []) {
    const labels = { pf: pf.a, ids: pf.ids, alias: pf.alias, vf_driver: pf.vfDriver };
    planned.push({ labels, value: pf.vfs });
    const enabled = readEnabledVfs(root, pf.a, problems);
    present.push({ labels: { pf: pf.a }, value: enabled ?? 0 });
    let good = 0;
    for (const vf of pf.vfAddresses) {
      const fn = live.get(vf) ?? readLiveFunction(root, vf, registered, problems);
      if (!fn.present || fn.driver === null) continue;
      if (pf.vfDriver === "vfio-pci" ? isVfioDriver(fn.driver) : !isVfioDriver(fn.driver)) good++;
    }
    onPlanned.push({ labels: { pf: pf.a }, value: good });
  }
  gauge(
    "pci_passthrough_sriov_vfs_planned",
    "VFs the charm creates on the PF at every boot.",
    planned,
  );
  gauge("pci_passthrough_sriov_vfs_present", "VFs the PF has enabled now (sriov_numvfs).", present);
  gauge(
    "pci_passthrough_sriov_vfs_on_planned_driver",
    "The PF's planned VFs that are on their planned driver now (vfio-pci, or the host VF driver for neutron ports).",
    onPlanned,
  );

  gauge(
    "pci_passthrough_function_withheld",
    "1 for each selected function the charm left with the host (the host uses it); the unit's status says why.",
    (plan?.withheld ?? []).map((w) => ({ labels: { address: w.a, ids: w.ids }, value: 1 })),
  );
  return { families, problems };
}
