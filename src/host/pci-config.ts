// What a function's config space says about its isolation: the three facts the kernel's grouping
// (drivers/iommu/iommu.c pci_device_group, drivers/pci/pci.c pci_acs_enabled) looks at, and where
// the function sits in the tree. Read only while the IOMMU is off: then the kernel has no groups
// yet and the charm predicts them (plan/iommu-groups.ts) from these facts.

import { isPciAddress } from "../pci-vocabulary";
import type { HostReadProblem, PciFunction, PciIsolation } from "./facts";
import { readFileSync, readlinkSync } from "./fs";
import { errnoCode } from "./read-files";
import { READ, under } from "./root";

const PCI_STATUS = 0x06;
const PCI_STATUS_CAP_LIST = 0x10;
const PCI_HEADER_TYPE = 0x0e;
const PCI_CAPABILITY_LIST = 0x34;
const PCI_CB_CAPABILITY_LIST = 0x14;
const PCI_CAP_ID_EXP = 0x10;
const PCI_EXT_CAP_ID_ACS = 0x000d;
/** The standard header; a reader without CAP_SYS_ADMIN sees only these 64 bytes. */
const STANDARD_HEADER = 64;
const CONFIG_SPACE = 256;
const EXTENDED_CONFIG_SPACE = 4096;

/**
 * Parses config space bytes (sysfs `config`): the multi-function bit, the PCI Express port type
 * and the ACS capability register. Null when less than the whole 256-byte space was readable
 * (a reader that is not root gets 64 bytes): nothing can then be said. A PCI Express function
 * whose file stops at 256 bytes has no extended space the kernel could read either, so no ACS.
 */
export function parseIsolation(config: Uint8Array): PciIsolation | null {
  if (config.length < CONFIG_SPACE) return null;
  const u8 = (at: number): number => config[at] ?? 0;
  const u16 = (at: number): number => u8(at) | (u8(at + 1) << 8);
  const u32 = (at: number): number => (u16(at) | (u16(at + 2) << 16)) >>> 0;
  const headerType = u8(PCI_HEADER_TYPE);
  const multifunction = (headerType & 0x80) !== 0;
  let pcieType: number | null = null;
  if ((u16(PCI_STATUS) & PCI_STATUS_CAP_LIST) !== 0) {
    let pos = u8((headerType & 0x7f) === 2 ? PCI_CB_CAPABILITY_LIST : PCI_CAPABILITY_LIST);
    // 48 capabilities at most fit in the space after the header: a loop guard, as the kernel's.
    for (let ttl = 48; ttl > 0 && pos >= STANDARD_HEADER; ttl--) {
      pos &= ~3;
      const id = u8(pos);
      if (id === 0xff) break;
      if (id === PCI_CAP_ID_EXP) {
        pcieType = (u16(pos + 2) >> 4) & 0xf;
        break;
      }
      pos = u8(pos + 1);
    }
  }
  let acsCapability: number | null = null;
  let acsControl: number | null = null;
  if (pcieType !== null && config.length >= EXTENDED_CONFIG_SPACE) {
    let pos = CONFIG_SPACE;
    for (let ttl = (EXTENDED_CONFIG_SPACE - CONFIG_SPACE) / 8; ttl > 0; ttl--) {
      const header = u32(pos);
      if (header === 0 || header === 0xffffffff) break;
      if ((header & 0xffff) === PCI_EXT_CAP_ID_ACS) {
        acsCapability = u16(pos + 4);
        acsControl = u16(pos + 6);
        break;
      }
      pos = (header >>> 20) & 0xffc;
      if (pos < CONFIG_SPACE) break;
    }
  }
  return { multifunction, pcieType, acsCapability, acsControl };
}

/**
 * Adds `upstream` (the parent bridge, from where sysfs puts the device) and `isolation` (from its
 * `config`) to each function. Only for the prediction of IOMMU groups while the IOMMU is off: one
 * 4 KiB read per function. A config space that cannot be read whole gives `isolation: null` (the
 * prediction then assumes no ACS, the kernel's own default, and says so); a read error is also a
 * problem.
 */
export function readIsolation(
  root: string,
  functions: PciFunction[],
  problems: HostReadProblem[],
): void {
  for (const fn of functions) {
    const hostDir = `${READ.pciDevices}/${fn.address}`;
    const dir = under(root, hostDir);
    let upstream: string | null = null;
    try {
      const parts = readlinkSync(dir).split("/");
      const parent = parts[parts.length - 2]?.toLowerCase() ?? "";
      upstream = isPciAddress(parent) ? parent : null;
    } catch {
      upstream = null;
    }
    // A VF sits beside its PF in /sys/devices; it has no header of its own worth reading (the
    // kernel treats a VF as a single-function endpoint).
    if (fn.physfn !== null) {
      fn.upstream = upstream;
      fn.isolation = { multifunction: false, pcieType: 0, acsCapability: null, acsControl: null };
      continue;
    }
    let isolation: PciIsolation | null = null;
    try {
      // Short (a copy of /sys, a reader that is not root): null, and the prediction says so.
      isolation = parseIsolation(readFileSync(`${dir}/config`));
    } catch (error) {
      const code = errnoCode(error);
      if (code === "ENOENT") {
        fn.upstream = upstream;
        fn.isolation = null;
        continue;
      }
      problems.push({
        kind: "unreadable",
        path: `${hostDir}/config`,
        address: fn.address,
        message: `cannot read ${hostDir}/config (${code}); the IOMMU group ${fn.address} gets after the reboot is predicted as if it had no ACS`,
      });
    }
    fn.upstream = upstream;
    fn.isolation = isolation;
  }
}
