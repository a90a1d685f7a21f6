// A scrape's exposition text, a chunk at a time (about CHUNK_BYTES each), from what readHost read.
// The per-function families are written straight from the typed arrays of the reading: no sample
// is kept, and the server sends each chunk before the next is made. Pure.
//
// Each line is encoded into the chunk's buffer as soon as it is made, so no string lives longer
// than its line: a chunk built as a string (a tree of 300 lines) lived across young-generation
// collections and was promoted, 0.5 MB of old space a scrape at 10,000 functions.
import { type HostReading, indexOfGroup } from "./collect";
import { type MetricFamily, renderFamily, sampleText } from "./text-format";

/** About this many bytes a chunk: a dozen socket writes a scrape at 1,000 functions (400 KB),
 * ~125 at 10,000, and little text alive at any time. */
export const CHUNK_BYTES = 32 * 1024;

/** A chunk buffer's size: CHUNK_BYTES and room for the line that fills it. */
const CHUNK_CAPACITY = CHUNK_BYTES + 8 * 1024;

/** Chunk buffers, given back once the socket has written them: a scrape at 10,000 functions
 * reuses a few instead of allocating 125, which a slow reader kept across young collections into
 * the old generation (6 MB of buffers alive until the next full collection). */
export class ChunkBuffers {
  private free: ArrayBuffer[] = [];

  take(): Buffer {
    const kept = this.free.pop();
    return kept ? Buffer.from(kept) : Buffer.allocUnsafe(CHUNK_CAPACITY);
  }

  /** A chunk renderScrape yielded, once nothing reads it any more. */
  give(chunk: Buffer): void {
    const whole = chunk.buffer;
    if (
      whole instanceof ArrayBuffer &&
      chunk.byteOffset === 0 &&
      whole.byteLength === CHUNK_CAPACITY &&
      this.free.length < 8
    ) {
      this.free.push(whole);
    }
  }
}

/** The chunk being filled: UTF-8 bytes in a buffer of its own. */
class Chunk {
  private buf: Buffer;
  private used = 0;

  constructor(private readonly buffers: ChunkBuffers) {
    this.buf = buffers.take();
  }

  /** True once the chunk holds CHUNK_BYTES or more: time to take() it. */
  get full(): boolean {
    return this.used >= CHUNK_BYTES;
  }

  add(text: string): void {
    // UTF-8 takes at most 3 bytes a UTF-16 unit.
    this.room(text.length * 3);
    this.used += this.buf.write(text, this.used);
  }

  /** A non-negative integer's decimal digits, written byte by byte: `${n}` would go through V8's
   * number-to-string cache, which keeps each new string (10,000 group numbers) alive until it is
   * promoted to the old generation. */
  addUint(n: number): void {
    let digits = 1;
    for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
    this.room(digits);
    for (let at = this.used + digits - 1, m = n; at >= this.used; at--, m = Math.floor(m / 10)) {
      this.buf[at] = 48 + (m % 10);
    }
    this.used += digits;
  }

  private room(bytes: number): void {
    if (this.used + bytes <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + bytes));
    this.buf.copy(bigger, 0, 0, this.used);
    this.buf = bigger;
  }

  /** The bytes so far; the next add starts a new chunk. */
  take(): Buffer {
    const bytes = this.finish();
    this.buf = this.buffers.take();
    this.used = 0;
    return bytes;
  }

  /** The bytes so far, the last chunk. */
  finish(): Buffer {
    return this.buf.subarray(0, this.used);
  }
}

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
 * exporter's own counters and the scrape's duration), asked for once everything else is out.
 * Chunks come from `buffers`: whoever gives one back there must be done with it. */
export function* renderScrape(
  reading: HostReading,
  tail: () => MetricFamily[],
  buffers: ChunkBuffers = new ChunkBuffers(),
): Generator<Buffer, void, void> {
  const prepared = reading.prepared;
  const plan = prepared?.plan ?? null;
  const out = new Chunk(buffers);

  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_plan_loaded",
        "1 when the exporter has the charm's plan (written by its last successful hook), 0 when not: every other pci_passthrough metric about functions is then absent.",
        [{ value: plan ? 1 : 0 }],
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_plan_timestamp_seconds",
        "When the charm last changed the plan the exporter compares the host with (Unix time).",
        reading.writtenAt === null ? [] : [{ value: reading.writtenAt }],
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_iommu_enabled",
        "1 when the running kernel has IOMMU groups (the IOMMU is on), else 0.",
        [{ value: reading.iommuGroups > 0 ? 1 : 0 }],
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge("pci_passthrough_iommu_groups", "IOMMU groups the running kernel made.", [
        { value: reading.iommuGroups },
      ]),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_iommu_units",
        "IOMMU hardware units the kernel registered (/sys/class/iommu: dmar, ivhd, smmu).",
        [{ value: reading.iommuUnits }],
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_kernel_params_planned",
        "Kernel parameters the charm's grub drop-in adds.",
        plan ? [{ value: plan.kernelParams.length }] : [],
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_kernel_param_missing",
        "1 for each parameter the charm wrote that the running kernel was not booted with (a reboot is pending).",
        reading.missingParams.map((param) => ({ labels: { param }, value: 1 })),
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_reboot_pending",
        "1 when the running kernel lacks parameters the charm wrote: the host waits for a reboot.",
        plan ? [{ value: reading.missingParams.length > 0 ? 1 : 0 }] : [],
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_reboot_pending_since_timestamp_seconds",
        "When the charm wrote the kernel parameters the running kernel still lacks (the grub drop-in's modification time, Unix time); absent when no reboot is pending.",
        reading.rebootPendingSince === null ? [] : [{ value: reading.rebootPendingSince }],
      ),
    ),
  );

  // Per function: three families, each a pass over the typed arrays.
  const n = prepared?.count ?? 0;
  const { driverOf, driverNames, driverIsVfio, groupOf, used, groups, groupViable } = reading;
  const onDriver = (i: number): boolean => driverIsVfio[driverOf[i]!]!;
  /** Whether function i's group is viable. */
  const viable = (i: number): boolean => groupViable[indexOfGroup(groups, groupOf[i]!)] === 1;

  out.add(
    header(
      ON_PLANNED_DRIVER,
      'A function the charm planned for VMs: 1 when on its planned driver now, else 0; driver is the one it is on ("none": unbound, "absent": not on the bus).',
    ),
  );
  for (let i = 0; i < n; i++) {
    out.add(
      `${ON_PLANNED_DRIVER}{${prepared!.labels(i)},driver="${driverNames[driverOf[i]!]}",planned_driver="vfio-pci"} ${onDriver(i) ? 1 : 0}\n`,
    );
    if (out.full) yield out.take();
  }
  out.add(
    header(
      IN_USE,
      "1 when a process (a VM) holds the function's /dev/vfio/<group> open, 0 when it is free.",
    ),
  );
  for (let i = 0; i < n; i++) {
    const g = groupOf[i]!;
    out.add(`${IN_USE}{${prepared!.labels(i)},iommu_group="`);
    if (g < 0) out.add("none");
    else out.addUint(g);
    out.add(`"} ${used[i]}\n`);
    if (out.full) yield out.take();
  }
  out.add(
    header(
      AVAILABLE,
      "1 when the function can be given to a VM now: on its planned driver, its IOMMU group viable, nobody holding it.",
    ),
  );
  for (let i = 0; i < n; i++) {
    const free = onDriver(i) && groupOf[i]! >= 0 && viable(i) && used[i] === 0;
    out.add(`${AVAILABLE}{${prepared!.labels(i)}} ${free ? 1 : 0}\n`);
    if (out.full) yield out.take();
  }

  out.add(
    header(
      "pci_passthrough_iommu_group_viable",
      "1 when an IOMMU group holding planned functions can be given to a VM (every member on vfio-pci, pci-stub, no driver, or a bridge), else 0.",
    ),
  );
  for (let k = 0; k < groups.length; k++) {
    out.add('pci_passthrough_iommu_group_viable{iommu_group="');
    out.addUint(groups[k]!);
    out.add(`"} ${groupViable[k]}\n`);
    if (out.full) yield out.take();
  }
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_iommu_group_blocker_info",
        "A member that keeps its group from being viable, with the driver that holds it.",
        reading.blockers,
      ),
    ),
  );

  // SR-IOV PFs: VFs planned, enabled now, and on the planned driver.
  const pfs = plan?.pfs ?? [];
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_sriov_vfs_planned",
        "VFs the charm creates on the PF at every boot.",
        pfs.map((pf) =>
          sampleText({ pf: pf.a, ids: pf.ids, alias: pf.alias, vf_driver: pf.vfDriver }, pf.vfs),
        ),
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_sriov_vfs_present",
        "VFs the PF has enabled now (sriov_numvfs).",
        pfs.map((pf, k) => sampleText({ pf: pf.a }, reading.vfsPresent[k]!)),
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_sriov_vfs_on_planned_driver",
        "The PF's planned VFs that are on their planned driver now (vfio-pci, or the host VF driver for neutron ports).",
        pfs.map((pf, k) => sampleText({ pf: pf.a }, reading.vfsOnPlanned[k]!)),
      ),
    ),
  );
  out.add(
    renderFamily(
      gauge(
        "pci_passthrough_function_withheld",
        "1 for each selected function the charm left with the host (the host uses it); the unit's status says why.",
        (plan?.withheld ?? []).map((w) => sampleText({ address: w.a, ids: w.ids }, 1)),
      ),
    ),
  );
  for (const family of tail()) out.add(renderFamily(family));
  yield out.finish();
}
