// Reads PCI functions and IOMMU groups from sysfs under the root. A host is allowed to be hostile:
// a device can vanish between the listing and the read (hot-unplug, VFs torn down), a `driver`
// link can point at a driver that is unloading, an attribute can fail to read. None of that may
// crash a hook: each becomes a HostReadProblem naming the path, and the read goes on.

import {
  compareAddresses,
  isBridgeClass,
  isPciAddress,
  normaliseHex,
  parseModalias,
  parseUevent,
  synthModalias,
  vfAddresses,
} from "../pci-vocabulary";
import { listOf } from "../text";
import type { HostReadProblem, IommuGroupsDir, PciFunction } from "./facts";
import { existsSync, MAX_RECORDED_READS, markVolatile, readdirSync, readlinkSync } from "./fs";
import { errnoCode, listDir, readAttrFile } from "./read-files";
import { READ, under } from "./root";

/** Thrown inside one device's read when its directory is gone: the device is skipped. */
class DeviceVanished extends Error {}

/** The result of reading the PCI bus: what could be read, and what could not (never thrown). */
export interface PciReadResult {
  /** Sorted by address. */
  functions: PciFunction[];
  problems: HostReadProblem[];
}

/** What a caller needs read now. "all": every attribute, each one that cannot be read a problem
 * (the actions show them all). "plan": what the plan decides from; `driver_override` and
 * `numa_node`, which only the actions show, are read on first use, as an announced VF's override
 * is (a hook reads two files fewer per function, and its quiet-hook memo replays two fewer). */
export type PciDetail = "all" | "plan";

/** Reads every function under /sys/bus/pci/devices; unreadable or vanishing ones become problems. */
export function readPciFunctions(root: string, detail: PciDetail = "all"): PciReadResult {
  const problems: HostReadProblem[] = [];
  const names = listDir(root, READ.pciDevices, problems);
  if (names === null) {
    problems.push({
      kind: "unreadable",
      path: READ.pciDevices,
      address: null,
      message: `${READ.pciDevices} does not exist: no PCI bus is visible here (a container, or /sys not mounted); no devices listed`,
    });
    return { functions: [], problems };
  }
  // A few reads per function: a host this large would pass MAX_RECORDED_READS anyway, so its
  // hooks stop recording now instead of paying for thousands of reads first (src/quiet/).
  if (names.length > MAX_RECORDED_READS / 2.5) {
    markVolatile(
      `a host of ${names.length} PCI functions (replaying its reads costs what reading does)`,
    );
  }
  const before = problems.length;
  const listed = listDir(root, READ.pciDrivers, problems);
  const drivers: DriverCheck = {
    registered: listed === null ? null : new Set(listed),
    dangling: new Map(),
  };
  if (listed === null && problems.length === before) {
    problems.push({
      kind: "unreadable",
      path: READ.pciDrivers,
      address: null,
      message: `${READ.pciDrivers} does not exist (a partial copy of /sys?); each device's driver is taken from its driver link`,
    });
  }
  const functions: PciFunction[] = [];
  // VFs their PF announced (sriov_offset/sriov_stride): read the short way. In address order a PF
  // always comes before its VFs (their routing ids follow the PF's).
  const announced = new Map<string, PciFunction>();
  const bus = under(root, READ.pciDevices);
  for (const name of names.sort()) {
    const address = name.toLowerCase();
    if (!isPciAddress(address)) continue;
    try {
      const pf = announced.get(address);
      const fn =
        (pf ? readAnnouncedVf(`${bus}/${name}`, address, pf, drivers, detail) : null) ??
        readOneFunction(root, name, address, drivers, problems, detail);
      if (fn) functions.push(fn);
      const sriov = fn?.sriov;
      if (fn && sriov && sriov.numVfs > 0 && sriov.offset && sriov.stride) {
        const vfs = vfAddresses(address, sriov.offset, sriov.stride, sriov.numVfs) ?? [];
        // The PF's first and last virtfn links name what offset and stride computed: then the
        // kernel's formula holds (its VFs are there and nothing else is), and no VF's physfn
        // link need be read. Otherwise each is read the full way.
        const pfDir = `${bus}/${name}`;
        if (
          vfs.length > 0 &&
          linkName(`${pfDir}/virtfn0`) === vfs[0] &&
          linkName(`${pfDir}/virtfn${vfs.length - 1}`) === vfs[vfs.length - 1]
        ) {
          for (const vf of vfs) announced.set(vf, fn);
        }
      }
    } catch (error) {
      if (!(error instanceof DeviceVanished)) throw error;
      problems.push({
        kind: "vanished",
        path: `${READ.pciDevices}/${name}`,
        address,
        message: `PCI device ${address} disappeared while it was being read (${READ.pciDevices}/${name} is gone: hot-unplugged, or a VF removed); skipped — run the action again to see the current devices`,
      });
    }
  }
  functions.sort((a, b) => compareAddresses(a.address, b.address));
  for (const [driver, addresses] of [...drivers.dangling].sort(([a], [b]) => (a < b ? -1 : 1))) {
    addresses.sort(compareAddresses);
    const link = (a: string) => `${READ.pciDevices}/${a}/driver`;
    const one = addresses.length === 1 ? addresses[0]! : null;
    const links =
      one !== null
        ? `the driver link ${link(one)} names`
        : `the driver links of ${addresses.length} devices (${listOf(addresses.map(link), 3, ", ")}) name`;
    problems.push({
      kind: "malformed",
      path: one !== null ? link(one) : `${READ.pciDrivers}/${driver}`,
      address: one,
      message: `${links} driver "${driver}", but ${READ.pciDrivers}/${driver} does not exist (the driver unloading right now, or a partial copy of /sys?); ${one ?? "they"} treated as unbound — read it again in a moment`,
    });
  }
  return { functions, problems };
}

/** The registered drivers (null when /sys/bus/pci/drivers could not be listed: each driver link is
 * then believed), and the devices whose link names a driver that is not there, by driver: one
 * read problem per driver, not one per device. */
interface DriverCheck {
  registered: Set<string> | null;
  dangling: Map<string, string[]>;
}

/** The basename of a symlink's target; null when it cannot be read. */
function linkName(path: string): string | null {
  try {
    const target = readlinkSync(path);
    return target.slice(target.lastIndexOf("/") + 1);
  } catch {
    return null;
  }
}

/**
 * A VF its PF announced (its virtfn links agree with offset and stride), read the short way: its
 * `uevent` (ids, class, driver, modalias in one read) and its iommu_group link, as the read-only
 * floor reads every function; no directory listing and none of the attributes a VF cannot have
 * (boot_vga, sriov_*, device links); its NUMA node is its PF's. What few callers ask of a VF —
 * its `driver_override` and its `net/` interfaces — is read on first use (rebind, sriov-vfs,
 * list-devices each-vf=true), not for every VF: with thousands of VFs those two reads would be as
 * many system calls as the rest. Null when anything is not as expected (an unreadable file, no
 * uevent): the full read then runs and says what is wrong.
 */
function readAnnouncedVf(
  dir: string,
  address: string,
  pf: PciFunction,
  drivers: DriverCheck,
  detail: PciDetail,
): PciFunction | null {
  let group: string | undefined;
  let uevent: ReturnType<typeof parseUevent>;
  try {
    uevent = parseUevent(readAttrFile(`${dir}/uevent`));
    if (!uevent) return null;
  } catch {
    return null;
  }
  try {
    const target = readlinkSync(`${dir}/iommu_group`);
    group = target.slice(target.lastIndexOf("/") + 1);
    if (!DIGITS.test(group)) return null;
  } catch (error) {
    if (errnoCode(error) !== "ENOENT") return null;
  }
  const driver = checkedDriver(dir, address, uevent.driver, drivers);
  return announcedVf(dir, address, pf, uevent, driver, group, detail);
}

const DIGITS = /^\d+$/;

/** The PciFunction of an announced VF, its override and interfaces read on first use (and its
 * NUMA node, its PF's, taken on first use too when the PF's is). A test or a plan may set them
 * (the setters), as on any other function. */
function announcedVf(
  dir: string,
  address: string,
  pf: PciFunction,
  ids: NonNullable<ReturnType<typeof parseUevent>>,
  driver: string | null,
  group: string | undefined,
  detail: PciDetail,
): PciFunction {
  const fn = {
    address,
    vendorId: ids.vendorId,
    deviceId: ids.deviceId,
    subsystemVendorId: ids.subsystemVendorId,
    subsystemDeviceId: ids.subsystemDeviceId,
    classCode: ids.classCode,
    driver,
    iommuGroup: group === undefined ? null : Number(group),
    // With "plan" detail an accessor replaces it below: the PF's is read only when asked.
    numaNode: detail === "all" ? pf.numaNode : null,
    bootVga: false,
    modalias: ids.modalias,
    isBridge: false,
    sriov: null,
    physfn: pf.address,
    consumers: [],
  } as Omit<PciFunction, "driverOverride" | "netInterfaces"> as PciFunction;
  // One shared getter and setter for every VF (per-object accessors would make 10,000 VFs
  // 10,000 shapes); what each has read, or was given, lives beside it.
  lazyState.set(fn, { dir, override: undefined, net: undefined, numa: undefined, pf });
  return Object.defineProperties(fn, detail === "all" ? LAZY_VF : LAZY_VF_PLAN);
}

/** What a function read on first use, or was given. */
interface LazyState {
  dir: string;
  override: string | null | undefined;
  net: string[] | undefined;
  numa: number | null | undefined;
  /** An announced VF's PF: its NUMA node is the PF's. */
  pf: PciFunction | null;
}

const lazyState = new WeakMap<PciFunction, LazyState>();

const LAZY_ATTRIBUTE: Record<"driverOverride" | "netInterfaces" | "numaNode", PropertyDescriptor> =
  {
    driverOverride: {
      enumerable: true,
      configurable: true,
      get(this: PciFunction): string | null {
        const state = lazyState.get(this)!;
        if (state.override === undefined) state.override = readOverrideNow(state.dir);
        return state.override;
      },
      set(this: PciFunction, value: string | null) {
        lazyState.get(this)!.override = value;
      },
    },
    netInterfaces: {
      enumerable: true,
      configurable: true,
      get(this: PciFunction): string[] {
        const state = lazyState.get(this)!;
        if (state.net === undefined) state.net = readNetNow(state.dir);
        return state.net;
      },
      set(this: PciFunction, value: string[]) {
        lazyState.get(this)!.net = value;
      },
    },
    numaNode: {
      enumerable: true,
      configurable: true,
      get(this: PciFunction): number | null {
        const state = lazyState.get(this)!;
        if (state.numa === undefined) {
          state.numa = state.pf ? state.pf.numaNode : readNumaNow(state.dir);
        }
        return state.numa;
      },
      set(this: PciFunction, value: number | null) {
        lazyState.get(this)!.numa = value;
      },
    },
  };

/** An announced VF's lazy attributes; with "plan" detail its NUMA node too. */
const LAZY_VF: PropertyDescriptorMap = {
  driverOverride: LAZY_ATTRIBUTE.driverOverride,
  netInterfaces: LAZY_ATTRIBUTE.netInterfaces,
};
const LAZY_VF_PLAN: PropertyDescriptorMap = { ...LAZY_VF, numaNode: LAZY_ATTRIBUTE.numaNode };
/** A function read the full way, with "plan" detail (its interfaces come with its listing). */
const LAZY_FUNCTION_PLAN: PropertyDescriptorMap = {
  driverOverride: LAZY_ATTRIBUTE.driverOverride,
  numaNode: LAZY_ATTRIBUTE.numaNode,
};

/** `numa_node` read when first asked: null for -1 (no affinity), gone or unreadable. */
function readNumaNow(dir: string): number | null {
  try {
    return numaFrom(readAttrFile(`${dir}/numa_node`).trim());
  } catch {
    return null;
  }
}

/** `driver_override` read when first asked: null when empty, `(null)`, gone or unreadable. */
function readOverrideNow(dir: string): string | null {
  try {
    const raw = readAttrFile(`${dir}/driver_override`).trim();
    return raw === "" || raw === "(null)" ? null : raw;
  } catch {
    return null;
  }
}

/** The interfaces under `net/` read when first asked: none when it is absent or unreadable. */
function readNetNow(dir: string): string[] {
  try {
    return readdirSync(`${dir}/net`).sort();
  } catch {
    return [];
  }
}

/** One device, read top-down: its directory, its identity (ids and class), then everything else.
 * Returns null (with a problem) when its identity cannot be read. */
function readOneFunction(
  root: string,
  name: string,
  address: string,
  drivers: DriverCheck,
  problems: HostReadProblem[],
  detail: PciDetail,
): PciFunction | null {
  const dev = openDevice(root, name, address, problems);
  if (dev === null) return null;
  const uevent = readUevent(dev);
  const ids = uevent ?? readIds(dev);
  if (ids === null) return null;
  const { vendorId, deviceId, classCode, subsystemVendorId, subsystemDeviceId } = ids;
  const fn = {
    address,
    vendorId,
    deviceId,
    subsystemVendorId,
    subsystemDeviceId,
    classCode,
    driver: uevent
      ? checkedDriver(dev.dir, address, uevent.driver, drivers)
      : readDriver(dev, drivers),
    // With "plan" detail accessors replace these two below: read when first asked.
    driverOverride: detail === "all" ? readDriverOverride(dev) : null,
    iommuGroup: readIommuGroup(dev),
    numaNode: detail === "all" ? readNumaNode(dev) : null,
    bootVga: dev.attr("boot_vga", "treated as not the boot VGA") === "1",
    modalias:
      ids.modalias ??
      synthModalias(vendorId, deviceId, subsystemVendorId, subsystemDeviceId, classCode),
    isBridge: isBridgeClass(classCode),
    sriov: readSriov(dev),
    physfn: readPhysfn(dev),
    netInterfaces: dev.entries.has("net")
      ? (listDir(root, `${dev.hostDir}/net`, problems, address) ?? []).sort()
      : [],
    consumers: readConsumers(dev),
  };
  if (detail === "all") return fn;
  lazyState.set(fn, {
    dir: dev.dir,
    override: undefined,
    net: undefined,
    numa: undefined,
    pf: null,
  });
  return Object.defineProperties(fn, LAZY_FUNCTION_PLAN);
}

/** One device's directory while it is read: its entries, listed once, and readers of them that
 * record what they could not read. */
interface DeviceDir {
  address: string;
  /** `/sys/bus/pci/devices/<name>`, as on the host (for messages). */
  hostDir: string;
  /** The same under the root (for reading). */
  dir: string;
  entries: Set<string>;
  problems: HostReadProblem[];
  /** An attribute's trimmed text; undefined when the device has no such attribute; null when it
   * exists but could not be read (a problem was recorded saying what the reader `assumed`). */
  attr(file: string, assumed: string): string | null | undefined;
  /** Basename of a symlink in the device dir; undefined when absent, null when unreadable. */
  link(file: string): string | null | undefined;
}

/** Lists the device's directory; null (with a problem) when it cannot; throws DeviceVanished
 * when it is gone. */
function openDevice(
  root: string,
  name: string,
  address: string,
  problems: HostReadProblem[],
): DeviceDir | null {
  const hostDir = `${READ.pciDevices}/${name}`;
  const dir = under(root, hostDir);
  let entries: Set<string>;
  try {
    entries = new Set(readdirSync(dir));
  } catch (error) {
    const code = errnoCode(error);
    // The bus entry is a symlink into /sys/devices; ENOENT means its target went away.
    if (code === "ENOENT" || code === "ENOTDIR") throw new DeviceVanished();
    problems.push({
      kind: "unreadable",
      path: hostDir,
      address,
      message: `cannot list ${hostDir} (${code}); device ${address} left out of the device list — check it with \`lspci -vvv -s ${address}\``,
    });
    return null;
  }

  /** Reads one entry of the device dir. A missing entry is undefined; one that went missing since
   * the listing is the device vanishing, or a file that came and went; any other failure is a
   * problem (`unreadable` says what the reader assumed) and null. */
  const readEntry = <T>(
    file: string,
    read: (path: string) => T,
    unreadable: (code: string) => string,
  ): T | null | undefined => {
    if (!entries.has(file)) return undefined;
    try {
      return read(`${dir}/${file}`);
    } catch (error) {
      const code = errnoCode(error);
      if (code === "ENOENT") {
        if (!existsSync(dir)) throw new DeviceVanished();
        return undefined;
      }
      problems.push({
        kind: "unreadable",
        path: `${hostDir}/${file}`,
        address,
        message: unreadable(code),
      });
      return null;
    }
  };

  return {
    address,
    hostDir,
    dir,
    entries,
    problems,
    attr: (file, assumed) =>
      readEntry(
        file,
        (path) => readAttrFile(path).trim(),
        (code) => `cannot read ${hostDir}/${file} (${code}); ${assumed}`,
      ),
    link: (file) =>
      readEntry(
        file,
        (path) => {
          const target = readlinkSync(path);
          return target.slice(target.lastIndexOf("/") + 1);
        },
        (code) => `cannot read the link ${hostDir}/${file} (${code}); treated as absent`,
      ),
  };
}

/** The ids and class that make a function what it is, and the modalias when the kernel's could be
 * read. Null (with a problem) when the vendor, device or class cannot be read. */
interface FunctionIds {
  vendorId: string;
  deviceId: string;
  classCode: string;
  subsystemVendorId: string | null;
  subsystemDeviceId: string | null;
  modalias: string | null;
}

/** The function's `uevent`: ids, class, modalias and driver in one read. Null when the function
 * has none (recordings of /sys made without it) or it is unreadable or not in the kernel's
 * format: readIds and the driver link then say the same the slow way. */
function readUevent(dev: DeviceDir): (FunctionIds & { driver: string | null }) | null {
  const text = dev.attr(
    "uevent",
    "ids and driver read from modalias, the attributes and the driver link instead",
  );
  return text ? parseUevent(text) : null;
}

/** Without `uevent`: the modalias carries vendor, device, subsystem ids and class (the kernel
 * prints it from the same fields as the separate attributes): one read instead of six. The
 * attributes are read only when the modalias is unreadable or not in the kernel's format. */
function readIds(dev: DeviceDir): FunctionIds | null {
  const modalias = dev.attr("modalias", "ids read from the separate attributes instead");
  const fromModalias = modalias ? parseModalias(modalias) : null;
  if (fromModalias) return { ...fromModalias, modalias: modalias ?? null };
  const vendorId = hexAttr(dev, "vendor", 4, true);
  const deviceId = hexAttr(dev, "device", 4, true);
  const classCode = hexAttr(dev, "class", 6, true);
  if (vendorId === null || deviceId === null || classCode === null) return null;
  return {
    vendorId,
    deviceId,
    classCode,
    subsystemVendorId: hexAttr(dev, "subsystem_vendor", 4, false),
    subsystemDeviceId: hexAttr(dev, "subsystem_device", 4, false),
    modalias: modalias || null,
  };
}

/** A hex id attribute (`0x10de`), normalised; null when absent, unreadable or not hex (each a
 * problem when the device cannot be listed without it). */
function hexAttr(dev: DeviceDir, file: string, digits: number, required: boolean): string | null {
  const { address, hostDir, problems } = dev;
  const skipped = `device ${address} left out of the device list — check it with \`lspci -vvv -s ${address}\` and dmesg`;
  const raw = dev.attr(file, required ? skipped : "shown as unknown");
  if (raw === undefined || raw === null) {
    if (raw === undefined && required) {
      problems.push({
        kind: "malformed",
        path: `${hostDir}/${file}`,
        address,
        message: `${hostDir}/${file} is missing; ${skipped}`,
      });
    }
    return null;
  }
  const value = normaliseHex(raw, digits);
  if (value === null) {
    problems.push({
      kind: "malformed",
      path: `${hostDir}/${file}`,
      address,
      message: `${hostDir}/${file} holds ${JSON.stringify(raw)}, not a hex id; ${required ? skipped : "shown as unknown"}`,
    });
  }
  return value;
}

/** `driver_override`; null when empty or `(null)` (the kernel's word for none). */
function readDriverOverride(dev: DeviceDir): string | null {
  const raw = dev.attr("driver_override", "treated as no override");
  return raw === undefined || raw === null || raw === "" || raw === "(null)" ? null : raw;
}

/** The `iommu_group` link's group number; null without one (a problem when it is not a number). */
function readIommuGroup(dev: DeviceDir): number | null {
  const groupName = dev.link("iommu_group");
  if (groupName === undefined || groupName === null) return null;
  if (/^\d+$/.test(groupName)) return Number(groupName);
  dev.problems.push({
    kind: "malformed",
    path: `${dev.hostDir}/iommu_group`,
    address: dev.address,
    message: `${dev.hostDir}/iommu_group points to ${JSON.stringify(groupName)}, not a group number; treated as no IOMMU group`,
  });
  return null;
}

/** `numa_node`; null for -1 (no affinity), absent or unreadable. */
function readNumaNode(dev: DeviceDir): number | null {
  return numaFrom(dev.attr("numa_node", "NUMA node shown as unknown"));
}

/** A NUMA node from `numa_node`'s text; null for -1 (no affinity) and anything not a node. */
function numaFrom(raw: string | null | undefined): number | null {
  const numa = raw ? Number.parseInt(raw, 10) : Number.NaN;
  return Number.isInteger(numa) && numa >= 0 ? numa : null;
}

/** SR-IOV capability (`sriov_totalvfs`) and the VFs enabled now; null when not SR-IOV capable. */
function readSriov(dev: DeviceDir): PciFunction["sriov"] {
  const totalRaw = dev.attr("sriov_totalvfs", "treated as not SR-IOV capable");
  if (!totalRaw) return null;
  const totalVfs = Number.parseInt(totalRaw, 10);
  const numRaw = dev.attr("sriov_numvfs", "VFs enabled counted as 0");
  const numVfs = numRaw ? Number.parseInt(numRaw, 10) : 0;
  if (!Number.isInteger(totalVfs)) return null;
  const sriov: NonNullable<PciFunction["sriov"]> = {
    totalVfs,
    numVfs: Number.isInteger(numVfs) ? numVfs : 0,
  };
  // Where the VFs will appear and what they will be (Linux 5.0+): read only when present, so
  // older kernels and recordings keep the two fields above alone.
  const int = (file: string): number | null => {
    const raw = dev.attr(file, "treated as unknown");
    const n = raw ? Number.parseInt(raw, 10) : Number.NaN;
    return Number.isInteger(n) && n >= 0 ? n : null;
  };
  if (dev.entries.has("sriov_offset")) sriov.offset = int("sriov_offset");
  if (dev.entries.has("sriov_stride")) sriov.stride = int("sriov_stride");
  if (dev.entries.has("sriov_vf_device")) {
    const raw = dev.attr("sriov_vf_device", "VF device id treated as unknown");
    sriov.vfDeviceId = raw ? normaliseHex(raw, 4) : null;
  }
  if (dev.entries.has("sriov_drivers_autoprobe")) {
    const raw = dev.attr("sriov_drivers_autoprobe", "treated as unknown");
    sriov.driversAutoprobe = raw === "1" ? true : raw === "0" ? false : null;
  }
  return sriov;
}

/** For a VF: its PF's address (the `physfn` link); null otherwise. */
function readPhysfn(dev: DeviceDir): string | null {
  const physfn = dev.link("physfn");
  return physfn && isPciAddress(physfn) ? physfn : null;
}

/** Addresses from the `consumer:pci:<address>` device links (a GPU's USB-C or audio). */
function readConsumers(dev: DeviceDir): string[] {
  const consumers: string[] = [];
  for (const entry of dev.entries) {
    if (!entry.startsWith("consumer:pci:")) continue;
    const consumer = entry.slice("consumer:pci:".length);
    if (isPciAddress(consumer)) consumers.push(consumer);
  }
  return consumers.sort(compareAddresses);
}

/** The bound driver's name from the `driver` link (when there is no uevent), or null when
 * unbound or when the link points at no driver. */
function readDriver(dev: DeviceDir, drivers: DriverCheck): string | null {
  return checkedDriver(dev.dir, dev.address, dev.link("driver"), drivers);
}

/** The driver `uevent` or the link names, or null when none does or it is not really there. */
function checkedDriver(
  dir: string,
  address: string,
  name: string | null | undefined,
  drivers: DriverCheck,
): string | null {
  if (name === undefined || name === null) return null;
  // The cheap check: a registered driver by that name. Otherwise follow the link for real, so a
  // link into nowhere (a driver mid-unload, a damaged tree) reads as unbound, not as a driver.
  if (drivers.registered === null || drivers.registered.has(name)) return name;
  if (existsSync(`${dir}/driver`)) return name;
  const addresses = drivers.dangling.get(name);
  if (addresses) addresses.push(address);
  else drivers.dangling.set(name, [address]);
  return null;
}

/** IOMMU state: groups and their members, hardware units, and which groups have a VFIO node. */
export interface IommuReadResult {
  /** Group number → member addresses (sorted); ascending by group. Empty when the IOMMU is off. */
  groups: Map<number, string[]>;
  /** Whether /sys/kernel/iommu_groups itself exists (absent: no IOMMU support at all). */
  groupsDir: IommuGroupsDir;
  /** `/sys/class/iommu` entries (`dmar0`, `ivhd0`), in natural order. */
  units: string[];
  /** Groups that have `/dev/vfio/<n>`. */
  vfioDevices: Set<number>;
  problems: HostReadProblem[];
}

/** Reads /sys/kernel/iommu_groups, /sys/class/iommu and /dev/vfio under the root.
 *
 * With `known` (a PCI read just done), members come from each function's `iommu_group` link
 * instead of one directory listing per group — the same kernel data, and on a host with 10,000
 * VFs in 10,000 groups it saves a quarter of the read. Functions that could not be read are still
 * placed in their group (their link is read directly), so a group is never shown smaller than it
 * is; a group with no known member is listed the slow way. */
export function readIommu(root: string, known?: PciReadResult): IommuReadResult {
  const problems: HostReadProblem[] = [];
  const before = problems.length;
  const listing = listDir(root, READ.iommuGroups, problems);
  const groupsDir: IommuGroupsDir =
    listing !== null ? "present" : problems.length > before ? "unreadable" : "absent";
  const groupNumbers = (listing ?? [])
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
  const derived = new Map<number, string[]>();
  if (known) {
    const add = (group: number, address: string): void => {
      const members = derived.get(group);
      if (!members) derived.set(group, [address]);
      else if (!members.includes(address)) members.push(address);
    };
    for (const fn of known.functions) if (fn.iommuGroup !== null) add(fn.iommuGroup, fn.address);
    for (const problem of known.problems) {
      if (problem.address === null || problem.kind === "vanished") continue;
      try {
        const target = readlinkSync(
          under(root, `${READ.pciDevices}/${problem.address}/iommu_group`),
        );
        const group = target.slice(target.lastIndexOf("/") + 1);
        if (/^\d+$/.test(group)) add(Number(group), problem.address);
      } catch {
        // No group link either: nothing more to know about it.
      }
    }
  }
  const groups = new Map<number, string[]>();
  for (const group of groupNumbers) {
    let members = derived.get(group);
    if (!members) {
      // A group whose devices dir is gone was torn down while we read (its last member left).
      const listed = listDir(root, `${READ.iommuGroups}/${group}/devices`, problems);
      if (listed === null) continue;
      members = listed.map((m) => m.toLowerCase()).filter(isPciAddress);
    }
    groups.set(group, members.sort(compareAddresses));
  }
  // Devices whose iommu_group link names a group the listing lacks: the links are the kernel's
  // own word, so the groups are kept (never "IOMMU off" next to "group 3, viable"), and the
  // contradiction is said once.
  const orphans = [...derived.keys()].filter((g) => !groups.has(g)).sort((a, b) => a - b);
  if (orphans.length > 0) {
    for (const group of orphans) groups.set(group, derived.get(group)!.sort(compareAddresses));
    const sorted = new Map([...groups].sort(([a], [b]) => a - b));
    groups.clear();
    for (const [g, m] of sorted) groups.set(g, m);
    const shown = listOf(orphans.map(String), 5, ", ");
    problems.push({
      kind: "malformed",
      path: READ.iommuGroups,
      address: null,
      message:
        `devices' iommu_group links name group${orphans.length === 1 ? "" : "s"} ${shown}, which ` +
        `${READ.iommuGroups} ${groupsDir === "present" ? "does not list" : "cannot show (it is not readable or not there)"}; ` +
        "the groups are taken from the links — a damaged or partial copy of /sys?",
    });
  }
  const units = (listDir(root, READ.iommuUnits, problems) ?? []).sort(naturalCompare);
  const vfioDevices = new Set(
    (listDir(root, READ.devVfio, problems) ?? []).filter((n) => /^\d+$/.test(n)).map(Number),
  );
  return { groups, groupsDir, units, vfioDevices, problems };
}

/** dmar2 before dmar10. By hand: localeCompare with `numeric` loads ICU, ~10 ms on every hook. */
function naturalCompare(a: string, b: string): number {
  const [, aName = a, aNum = ""] = /^(.*?)(\d*)$/.exec(a) ?? [];
  const [, bName = b, bNum = ""] = /^(.*?)(\d*)$/.exec(b) ?? [];
  if (aName !== bName) return aName < bName ? -1 : 1;
  return Number(aNum || -1) - Number(bNum || -1);
}
