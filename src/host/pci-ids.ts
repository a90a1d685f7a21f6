// Human names for PCI ids from the host's own pci.ids (the pci.ids / hwdata packages), the way
// lspci names devices. Only list-devices needs names, so nothing reads the file until it asks.
//
// Format (https://pci-ids.ucw.cz): `vvvv  Vendor` at column 0, `\tdddd  Device` under it,
// `\t\tssss ssss  Subsystem` under that; then `C cc  Class`, `\tss  Subclass`, `\t\tpp  Prog-if`.
import { readFileSync } from "node:fs";
import { READ, under } from "./root";

/** Names for ids; every answer is null when the host has no pci.ids or does not know the id. */
export interface PciIdNames {
  /** Where the names came from (host path), null when no pci.ids was found. */
  source: string | null;
  vendorName(vendorId: string): string | null;
  deviceName(vendorId: string, deviceId: string): string | null;
  /** The most precise name for a 6-digit class code: prog-if, else subclass, else class. */
  className(classCode: string): string | null;
}

/** Loads the first pci.ids found under the root (lazily: call it only when names are wanted). */
export function loadPciIds(root: string): PciIdNames {
  for (const hostPath of READ.pciIds) {
    let text: string;
    try {
      text = readFileSync(under(root, hostPath), "utf8");
    } catch {
      continue;
    }
    return parsePciIds(text, hostPath);
  }
  return parsePciIds("", null);
}

/** Parses pci.ids text (vendor, device and class names; subsystem names are not kept). */
export function parsePciIds(text: string, source: string | null): PciIdNames {
  const vendors = new Map<string, string>();
  // `vvvvdddd` → name: one flat map is cheaper than a map per vendor for ~40k devices.
  const devices = new Map<string, string>();
  const classes = new Map<string, string>();
  let vendor: string | null = null;
  let cls: string | null = null;
  let subclass: string | null = null;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("\t\t")) {
      // Subsystems are skipped; prog-ifs are kept under their class.
      if (cls !== null && subclass !== null) {
        const m = /^\t\t([0-9a-fA-F]{2})\s+(.+)$/.exec(line);
        if (m) classes.set(cls + subclass + m[1]!.toLowerCase(), m[2]!.trim());
      }
    } else if (line.startsWith("\t")) {
      const m = /^\t([0-9a-fA-F]+)\s+(.+)$/.exec(line);
      if (!m) continue;
      const id = m[1]!.toLowerCase();
      if (cls !== null && id.length === 2) {
        subclass = id;
        classes.set(cls + subclass, m[2]!.trim());
      } else if (vendor !== null && id.length === 4) {
        devices.set(vendor + id, m[2]!.trim());
      }
    } else if (line.startsWith("C ")) {
      const m = /^C ([0-9a-fA-F]{2})\s+(.+)$/.exec(line);
      vendor = null;
      subclass = null;
      cls = m ? m[1]!.toLowerCase() : null;
      if (m) classes.set(cls!, m[2]!.trim());
    } else {
      const m = /^([0-9a-fA-F]{4})\s+(.+)$/.exec(line);
      cls = null;
      subclass = null;
      vendor = m ? m[1]!.toLowerCase() : null;
      if (m) vendors.set(vendor!, m[2]!.trim());
    }
  }
  return {
    source,
    vendorName: (vendorId) => vendors.get(vendorId.toLowerCase()) ?? null,
    deviceName: (vendorId, deviceId) =>
      devices.get(vendorId.toLowerCase() + deviceId.toLowerCase()) ?? null,
    className: (classCode) => {
      const code = classCode.toLowerCase();
      return (
        classes.get(code) ?? classes.get(code.slice(0, 4)) ?? classes.get(code.slice(0, 2)) ?? null
      );
    },
  };
}
