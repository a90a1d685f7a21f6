// Reads PCI functions and IOMMU groups from sysfs under the root. A host is allowed to be hostile:
// a device can vanish between the listing and the read (hot-unplug, VFs torn down), a `driver`
// link can point at a driver that is unloading, an attribute can fail to read. None of that may
// crash a hook: each becomes a HostReadProblem naming the path, and the read goes on.
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
} from "node:fs";
import {
  compareAddresses,
  isBridgeClass,
  isPciAddress,
  type ModaliasIds,
  normaliseHex,
  parseModalias,
  synthModalias,
} from "../pci-vocabulary";
import type { HostReadProblem, IommuGroupsDir, PciFunction } from "./facts";
import { READ, under } from "./root";

/** The errno code of a failed fs call (`ENOENT`, `EISDIR`…), or `error` when there is none. */
export function errnoCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : "error";
}

/** Directory entries of a host path, or null when it does not exist; other errors are problems. */
export function listDir(
  root: string,
  hostPath: string,
  problems: HostReadProblem[],
  address: string | null = null,
): string[] | null {
  try {
    return readdirSync(under(root, hostPath));
  } catch (error) {
    const code = errnoCode(error);
    if (code !== "ENOENT") {
      problems.push({
        kind: "unreadable",
        path: hostPath,
        address,
        message: `cannot list ${hostPath} (${code}); its entries are left out — check the path by hand`,
      });
    }
    return null;
  }
}

/** Text of a small host file, trimmed; null when absent; other errors become a problem. */
export function readSmallFile(
  root: string,
  hostPath: string,
  problems: HostReadProblem[],
  what: string,
): string | null {
  try {
    return readFileSync(under(root, hostPath), "latin1").trim();
  } catch (error) {
    const code = errnoCode(error);
    if (code !== "ENOENT") {
      problems.push({
        kind: "unreadable",
        path: hostPath,
        address: null,
        message: `cannot read ${hostPath} (${code}); ${what}`,
      });
    }
    return null;
  }
}

// One buffer for every attribute read: sysfs attributes are at most a page. open/read/close is
// about twice as fast as readFileSync (no fstat, no allocation), which matters at 10,000 functions.
const attrBuffer = Buffer.alloc(4096);

/** A sysfs attribute's text (untrimmed); throws the fs error. Synchronous and allocation-light. */
export function readAttrFile(file: string): string {
  const fd = openSync(file, "r");
  try {
    const length = readSync(fd, attrBuffer, 0, attrBuffer.length, 0);
    return attrBuffer.toString("latin1", 0, length);
  } finally {
    closeSync(fd);
  }
}

/** Thrown inside one device's read when its directory is gone: the device is skipped. */
class DeviceVanished extends Error {}

/** The result of reading the PCI bus: what could be read, and what could not (never thrown). */
export interface PciReadResult {
  /** Sorted by address. */
  functions: PciFunction[];
  problems: HostReadProblem[];
}

/** Reads every function under /sys/bus/pci/devices; unreadable or vanishing ones become problems. */
export function readPciFunctions(root: string): PciReadResult {
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
  for (const name of names) {
    const address = name.toLowerCase();
    if (!isPciAddress(address)) continue;
    try {
      const fn = readOneFunction(root, name, address, drivers, problems);
      if (fn) functions.push(fn);
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
        : `the driver links of ${addresses.length} devices (${addresses
            .slice(0, 3)
            .map(link)
            .join(", ")}${addresses.length > 3 ? ` and ${addresses.length - 3} more` : ""}) name`;
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

/** One device. Returns null (with a problem) when its identity cannot be read. */
function readOneFunction(
  root: string,
  name: string,
  address: string,
  drivers: DriverCheck,
  problems: HostReadProblem[],
): PciFunction | null {
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

  const vanishedIfGone = (): void => {
    if (!existsSync(dir)) throw new DeviceVanished();
  };

  /** An attribute's trimmed text; undefined when the device has no such attribute; null when it
   * exists but could not be read (a problem was recorded saying what the reader assumed). */
  const attr = (file: string, assumed: string): string | null | undefined => {
    if (!entries.has(file)) return undefined;
    try {
      return readAttrFile(`${dir}/${file}`).trim();
    } catch (error) {
      const code = errnoCode(error);
      if (code === "ENOENT") {
        vanishedIfGone();
        return undefined;
      }
      problems.push({
        kind: "unreadable",
        path: `${hostDir}/${file}`,
        address,
        message: `cannot read ${hostDir}/${file} (${code}); ${assumed}`,
      });
      return null;
    }
  };

  /** Basename of a symlink in the device dir; undefined when absent, null when unreadable. */
  const link = (file: string): string | null | undefined => {
    if (!entries.has(file)) return undefined;
    try {
      const target = readlinkSync(`${dir}/${file}`);
      return target.slice(target.lastIndexOf("/") + 1);
    } catch (error) {
      const code = errnoCode(error);
      if (code === "ENOENT") {
        vanishedIfGone();
        return undefined;
      }
      problems.push({
        kind: "unreadable",
        path: `${hostDir}/${file}`,
        address,
        message: `cannot read the link ${hostDir}/${file} (${code}); treated as absent`,
      });
      return null;
    }
  };

  const skipped = `device ${address} left out of the device list — check it with \`lspci -vvv -s ${address}\` and dmesg`;
  const hexId = (file: string, digits: number, required: boolean): string | null => {
    const raw = attr(file, required ? skipped : "shown as unknown");
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
  };

  // The modalias carries vendor, device, subsystem ids and class (the kernel prints it from the
  // same fields as the separate attributes): one read instead of six. The attributes are read
  // only when the modalias is unreadable or not in the kernel's format.
  const modaliasText = attr("modalias", "ids read from the separate attributes instead");
  const fromModalias = modaliasText ? parseModalias(modaliasText) : null;
  let ids: Omit<ModaliasIds, "subsystemVendorId" | "subsystemDeviceId"> & {
    subsystemVendorId: string | null;
    subsystemDeviceId: string | null;
  };
  if (fromModalias) {
    ids = fromModalias;
  } else {
    const vendorId = hexId("vendor", 4, true);
    const deviceId = hexId("device", 4, true);
    const classCode = hexId("class", 6, true);
    if (vendorId === null || deviceId === null || classCode === null) return null;
    ids = {
      vendorId,
      deviceId,
      classCode,
      subsystemVendorId: hexId("subsystem_vendor", 4, false),
      subsystemDeviceId: hexId("subsystem_device", 4, false),
    };
  }
  const { vendorId, deviceId, classCode, subsystemVendorId, subsystemDeviceId } = ids;

  const driver = readDriver(dir, address, link("driver"), drivers);

  const overrideRaw = attr("driver_override", "treated as no override");
  const driverOverride =
    overrideRaw === undefined ||
    overrideRaw === null ||
    overrideRaw === "" ||
    overrideRaw === "(null)"
      ? null
      : overrideRaw;

  const groupName = link("iommu_group");
  let iommuGroup: number | null = null;
  if (groupName !== undefined && groupName !== null) {
    iommuGroup = /^\d+$/.test(groupName) ? Number(groupName) : null;
    if (iommuGroup === null) {
      problems.push({
        kind: "malformed",
        path: `${hostDir}/iommu_group`,
        address,
        message: `${hostDir}/iommu_group points to ${JSON.stringify(groupName)}, not a group number; treated as no IOMMU group`,
      });
    }
  }

  const numaRaw = attr("numa_node", "NUMA node shown as unknown");
  const numa = numaRaw ? Number.parseInt(numaRaw, 10) : Number.NaN;
  const numaNode = Number.isInteger(numa) && numa >= 0 ? numa : null;

  const bootVga = attr("boot_vga", "treated as not the boot VGA") === "1";

  const modalias =
    modaliasText ||
    synthModalias(vendorId, deviceId, subsystemVendorId, subsystemDeviceId, classCode);

  let sriov: PciFunction["sriov"] = null;
  const totalRaw = attr("sriov_totalvfs", "treated as not SR-IOV capable");
  if (totalRaw) {
    const totalVfs = Number.parseInt(totalRaw, 10);
    const numRaw = attr("sriov_numvfs", "VFs enabled counted as 0");
    const numVfs = numRaw ? Number.parseInt(numRaw, 10) : 0;
    if (Number.isInteger(totalVfs))
      sriov = { totalVfs, numVfs: Number.isInteger(numVfs) ? numVfs : 0 };
  }

  const physfnName = link("physfn");
  const physfn = physfnName && isPciAddress(physfnName) ? physfnName : null;

  let netInterfaces: string[] = [];
  if (entries.has("net")) {
    netInterfaces = (listDir(root, `${hostDir}/net`, problems, address) ?? []).sort();
  }

  const consumers: string[] = [];
  for (const entry of entries) {
    if (entry.startsWith("consumer:pci:")) {
      const consumer = entry.slice("consumer:pci:".length);
      if (isPciAddress(consumer)) consumers.push(consumer);
    }
  }
  consumers.sort(compareAddresses);

  return {
    address,
    vendorId,
    deviceId,
    subsystemVendorId,
    subsystemDeviceId,
    classCode,
    driver,
    driverOverride,
    iommuGroup,
    numaNode,
    bootVga,
    modalias,
    isBridge: isBridgeClass(classCode),
    sriov,
    physfn,
    netInterfaces,
    consumers,
  };
}

/** The bound driver's name, or null when unbound or when the link points at no driver. */
function readDriver(
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
    const shown =
      orphans.slice(0, 5).join(", ") +
      (orphans.length > 5 ? ` and ${orphans.length - 5} more` : "");
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
