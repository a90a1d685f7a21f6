// A scrape's exposition text, a chunk at a time (about CHUNK_CHARS each), from what readHost read.
// The per-function families are written straight from the typed arrays of the reading: no sample
// is kept, and the server sends each chunk before the next is made. Pure.
import type { HostReading } from "./collect";
import { type MetricFamily, renderFamily, sampleText } from "./text-format";

/** About this many characters a chunk: a few socket writes a scrape at 1,000 functions (400 KB),
 * ~125 at 10,000, and little text alive at any time. */
export const CHUNK_CHARS = 32 * 1024;

const gauge = (name: string, help: string, samples: MetricFamily["samples"]): MetricFamily => ({
  name,
  help,
  type: "gauge",
  samples,
});

/** A family with no samples yet: its HELP and TYPE lines. */
const header = (name: string, help: string): string => renderFamily(gauge(name, help, []));

const ON_PLANNED_DRIVER = "pci_passthrough_function_on_planned_driver";
const IN_USE = "pci_passthrough_function_in_use";
const AVAILABLE = "pci_passthrough_function_available";

/** The exposition of one scrape, in chunks; `tail` gives the families written last (the
 * exporter's own counters and the scrape's duration), asked for once everything else is out. */
export function* renderScrape(
  reading: HostReading,
  tail: () => MetricFamily[],
): Generator<string, void, void> {
  const prepared = reading.prepared;
  const plan = prepared?.plan ?? null;
  let text = "";

  text += renderFamily(
    gauge(
      "pci_passthrough_plan_loaded",
      "1 when the exporter has the charm's plan (written by its last successful hook), 0 when not: every other pci_passthrough metric about functions is then absent.",
      [{ value: plan ? 1 : 0 }],
    ),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_plan_timestamp_seconds",
      "When the charm last changed the plan the exporter compares the host with (Unix time).",
      reading.writtenAt === null ? [] : [{ value: reading.writtenAt }],
    ),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_iommu_enabled",
      "1 when the running kernel has IOMMU groups (the IOMMU is on), else 0.",
      [{ value: reading.iommuGroups > 0 ? 1 : 0 }],
    ),
  );
  text += renderFamily(
    gauge("pci_passthrough_iommu_groups", "IOMMU groups the running kernel made.", [
      { value: reading.iommuGroups },
    ]),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_iommu_units",
      "IOMMU hardware units the kernel registered (/sys/class/iommu: dmar, ivhd, smmu).",
      [{ value: reading.iommuUnits }],
    ),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_kernel_params_planned",
      "Kernel parameters the charm's grub drop-in adds.",
      plan ? [{ value: plan.kernelParams.length }] : [],
    ),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_kernel_param_missing",
      "1 for each parameter the charm wrote that the running kernel was not booted with (a reboot is pending).",
      reading.missingParams.map((param) => ({ labels: { param }, value: 1 })),
    ),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_reboot_pending",
      "1 when the running kernel lacks parameters the charm wrote: the host waits for a reboot.",
      plan ? [{ value: reading.missingParams.length > 0 ? 1 : 0 }] : [],
    ),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_reboot_pending_since_timestamp_seconds",
      "When the charm wrote the kernel parameters the running kernel still lacks (the grub drop-in's modification time, Unix time); absent when no reboot is pending.",
      reading.rebootPendingSince === null ? [] : [{ value: reading.rebootPendingSince }],
    ),
  );

  // Per function: three families, each a pass over the typed arrays.
  const n = prepared?.count ?? 0;
  const { driverOf, driverNames, driverIsVfio, groupOf, used, groups, groupViable } = reading;
  const onDriver = (i: number): boolean => driverIsVfio[driverOf[i]!]!;
  /** Whether function i's group is viable (binary search in the ascending groups). */
  const viable = (i: number): boolean => {
    const g = groupOf[i]!;
    let lo = 0;
    let hi = groups.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const at = groups[mid]!;
      if (at === g) return groupViable[mid] === 1;
      if (at < g) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  };

  text += header(
    ON_PLANNED_DRIVER,
    'A function the charm planned for VMs: 1 when on its planned driver now, else 0; driver is the one it is on ("none": unbound, "absent": not on the bus).',
  );
  for (let i = 0; i < n; i++) {
    text += `${ON_PLANNED_DRIVER}{${prepared!.labels(i)},driver="${driverNames[driverOf[i]!]}",planned_driver="vfio-pci"} ${onDriver(i) ? 1 : 0}\n`;
    if (text.length >= CHUNK_CHARS) {
      yield text;
      text = "";
    }
  }
  text += header(
    IN_USE,
    "1 when a process (a VM) holds the function's /dev/vfio/<group> open, 0 when it is free.",
  );
  for (let i = 0; i < n; i++) {
    const g = groupOf[i]!;
    text += `${IN_USE}{${prepared!.labels(i)},iommu_group="${g < 0 ? "none" : g}"} ${used[i]}\n`;
    if (text.length >= CHUNK_CHARS) {
      yield text;
      text = "";
    }
  }
  text += header(
    AVAILABLE,
    "1 when the function can be given to a VM now: on its planned driver, its IOMMU group viable, nobody holding it.",
  );
  for (let i = 0; i < n; i++) {
    const free = onDriver(i) && groupOf[i]! >= 0 && viable(i) && used[i] === 0;
    text += `${AVAILABLE}{${prepared!.labels(i)}} ${free ? 1 : 0}\n`;
    if (text.length >= CHUNK_CHARS) {
      yield text;
      text = "";
    }
  }

  text += header(
    "pci_passthrough_iommu_group_viable",
    "1 when an IOMMU group holding planned functions can be given to a VM (every member on vfio-pci, pci-stub, no driver, or a bridge), else 0.",
  );
  for (let k = 0; k < groups.length; k++) {
    text += `pci_passthrough_iommu_group_viable{iommu_group="${groups[k]}"} ${groupViable[k]}\n`;
    if (text.length >= CHUNK_CHARS) {
      yield text;
      text = "";
    }
  }
  text += renderFamily(
    gauge(
      "pci_passthrough_iommu_group_blocker_info",
      "A member that keeps its group from being viable, with the driver that holds it.",
      reading.blockers,
    ),
  );

  // SR-IOV PFs: VFs planned, enabled now, and on the planned driver.
  const pfs = plan?.pfs ?? [];
  text += renderFamily(
    gauge(
      "pci_passthrough_sriov_vfs_planned",
      "VFs the charm creates on the PF at every boot.",
      pfs.map((pf) =>
        sampleText({ pf: pf.a, ids: pf.ids, alias: pf.alias, vf_driver: pf.vfDriver }, pf.vfs),
      ),
    ),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_sriov_vfs_present",
      "VFs the PF has enabled now (sriov_numvfs).",
      pfs.map((pf, k) => sampleText({ pf: pf.a }, reading.vfsPresent[k]!)),
    ),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_sriov_vfs_on_planned_driver",
      "The PF's planned VFs that are on their planned driver now (vfio-pci, or the host VF driver for neutron ports).",
      pfs.map((pf, k) => sampleText({ pf: pf.a }, reading.vfsOnPlanned[k]!)),
    ),
  );
  text += renderFamily(
    gauge(
      "pci_passthrough_function_withheld",
      "1 for each selected function the charm left with the host (the host uses it); the unit's status says why.",
      (plan?.withheld ?? []).map((w) => sampleText({ address: w.a, ids: w.ids }, 1)),
    ),
  );
  for (const family of tail()) text += renderFamily(family);
  yield text;
}
