// The few live facts the exporter reads at every scrape, function by function: the driver link,
// the IOMMU group link, a PF's enabled VFs, a group's members and whether a member is a bridge.
// The full reader (pci.ts) lists and reads ~20 attributes of every function on the host; a scrape
// only needs these, for the planned functions and their group mates, so it stays within its
// budget at 10,000 functions. Same paths (root.ts), same rules: a dangling driver link is no driver.

import { isBridgeClass, isPciAddress } from "../pci-vocabulary";
import type { HostReadProblem } from "./facts";
import { existsSync, opendirSync, readFileSync, readlinkSync, statSync } from "./fs";
import { errnoCode, listDir, readAttrFile } from "./read-files";
import { READ, under } from "./root";

/** What a scrape knows of one function right now. */
export interface LiveFunction {
  address: string;
  /** False when /sys/bus/pci/devices/<address> is not there (a card gone, a VF not created). */
  present: boolean;
  /** The bound driver, null when unbound (or the link leads nowhere). */
  driver: string | null;
  /** The `iommu_group` link's number, null without one. */
  iommuGroup: number | null;
}

/** under(root, READ.pciDevices), worked out once a root: path.join costs more than the readlink
 * itself, thousands of times a scrape. */
let devicesOf = { root: "", dir: "" };
function devicesDir(root: string): string {
  if (devicesOf.root !== root) devicesOf = { root, dir: under(root, READ.pciDevices) };
  return devicesOf.dir;
}

/** The last path component a function's link (`driver`, `iommu_group`) points at; undefined when
 * there is no link, null (and a problem) when it cannot be read. */
function linkName(
  dir: string,
  address: string,
  name: string,
  problems: HostReadProblem[],
): string | null | undefined {
  try {
    const target = readlinkSync(`${dir}/${name}`);
    return target.slice(target.lastIndexOf("/") + 1);
  } catch (error) {
    const code = errnoCode(error);
    if (code === "ENOENT") return undefined;
    const hostPath = `${READ.pciDevices}/${address}/${name}`;
    problems.push({
      kind: "unreadable",
      path: hostPath,
      address,
      message: `cannot read ${hostPath} (${code})`,
    });
    return null;
  }
}

/** Reads a function's live driver and group. `registered` is the listing of
 * /sys/bus/pci/drivers (readRegisteredDrivers): a link to a name not in it is checked for real. */
export function readLiveFunction(
  root: string,
  address: string,
  registered: ReadonlySet<string> | null,
  problems: HostReadProblem[],
): LiveFunction {
  const dir = `${devicesDir(root)}/${address}`;
  const group = linkName(dir, address, "iommu_group", problems);
  let driver = linkName(dir, address, "driver", problems) ?? null;
  if (driver !== null && !(registered?.has(driver) ?? false) && !existsSync(`${dir}/driver`)) {
    driver = null;
  }
  const present = group !== undefined || driver !== null || existsSync(dir);
  return {
    address,
    present,
    driver,
    iommuGroup: group && /^\d+$/.test(group) ? Number(group) : null,
  };
}

/** The drivers registered now (/sys/bus/pci/drivers), or null when it cannot be listed. */
export function readRegisteredDrivers(
  root: string,
  problems: HostReadProblem[],
): Set<string> | null {
  const names = listDir(root, READ.pciDrivers, problems);
  return names === null ? null : new Set(names);
}

/** A PF's `sriov_numvfs` (VFs enabled now); null when absent or unreadable. */
export function readEnabledVfs(
  root: string,
  pf: string,
  problems: HostReadProblem[],
): number | null {
  const hostPath = `${READ.pciDevices}/${pf}/sriov_numvfs`;
  try {
    const n = Number.parseInt(readAttrFile(under(root, hostPath)), 10);
    return Number.isInteger(n) ? n : null;
  } catch (error) {
    const code = errnoCode(error);
    if (code !== "ENOENT") {
      problems.push({
        kind: "unreadable",
        path: hostPath,
        address: pf,
        message: `cannot read ${hostPath} (${code})`,
      });
    }
    return null;
  }
}

/** The member addresses of an IOMMU group; null when the group is not there. */
export function readGroupMembers(
  root: string,
  group: number,
  problems: HostReadProblem[],
): string[] | null {
  const listed = listDir(root, `${READ.iommuGroups}/${group}/devices`, problems);
  return listed === null ? null : listed.map((m) => m.toLowerCase()).filter(isPciAddress);
}

/** Whether a function is a bridge or port (class 0604: harmless in a group given to VMs). */
export function readIsBridge(root: string, address: string): boolean {
  try {
    const raw = readAttrFile(under(root, `${READ.pciDevices}/${address}/class`)).trim();
    return isBridgeClass(raw.replace(/^0x/i, "").toLowerCase().padStart(6, "0"));
  } catch {
    return false;
  }
}

/** Calls `visit` with each entry name of a host directory, one at a time (no array of every name:
 * /sys/kernel/iommu_groups and /dev/vfio have one entry a VF). False when the directory is not
 * there; another error is a problem, like listDir's. */
function forEachEntry(
  root: string,
  hostPath: string,
  problems: HostReadProblem[],
  visit: (name: string) => void,
): boolean {
  try {
    const dir = opendirSync(under(root, hostPath), { bufferSize: 128 });
    try {
      for (let entry = dir.readSync(); entry !== null; entry = dir.readSync()) visit(entry.name);
    } finally {
      dir.closeSync();
    }
    return true;
  } catch (error) {
    const code = errnoCode(error);
    if (code !== "ENOENT") {
      problems.push({
        kind: "unreadable",
        path: hostPath,
        address: null,
        message: `cannot list ${hostPath} (${code}); its entries are left out — check the path by hand`,
      });
    }
    return false;
  }
}

/** How many IOMMU groups there are now; null when /sys/kernel/iommu_groups is absent. */
export function readGroupCount(root: string, problems: HostReadProblem[]): number | null {
  let count = 0;
  const listed = forEachEntry(root, READ.iommuGroups, problems, (name) => {
    if (/^\d+$/.test(name)) count++;
  });
  return listed ? count : null;
}

/** IOMMU hardware units (`/sys/class/iommu`): dmar0, ivhd0, smmu3.… */
export function readIommuUnitNames(root: string, problems: HostReadProblem[]): string[] {
  return listDir(root, READ.iommuUnits, problems) ?? [];
}

/** A host file's modification time in seconds since the epoch; null when it is not there. */
export function readMtimeSeconds(root: string, hostPath: string): number | null {
  try {
    return statSync(under(root, hostPath)).mtimeMs / 1000;
  } catch {
    return null;
  }
}

/** A host file's text and a stamp that changes with it (inode, size, mtime): the exporter reads
 * its plan again only when the stamp moved. Null when the file is not there or unreadable. */
export function readStampedFile(
  root: string,
  hostPath: string,
  knownStamp: string | null,
): { stamp: string; mtimeSeconds: number; text: string | null } | null {
  try {
    const st = statSync(under(root, hostPath));
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    const text = stamp === knownStamp ? null : readFileSync(under(root, hostPath), "utf8");
    return { stamp, mtimeSeconds: st.mtimeMs / 1000, text };
  } catch {
    return null;
  }
}

/** Calls `visit` with each group number that has a /dev/vfio/<n> node (a member is on vfio-pci). */
export function forEachVfioGroupNode(
  root: string,
  problems: HostReadProblem[],
  visit: (group: number) => void,
): void {
  forEachEntry(root, READ.devVfio, problems, (name) => {
    if (/^\d+$/.test(name)) visit(Number(name));
  });
}
