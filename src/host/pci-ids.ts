// Human names for PCI ids from the host's own pci.ids (the pci.ids / hwdata packages), the way
// lspci names devices. Only list-devices needs names, so nothing reads the file until it asks.
//
// Format (https://pci-ids.ucw.cz): `vvvv  Vendor` at column 0, `\tdddd  Device` under it,
// `\t\tssss ssss  Subsystem` under that; then `C cc  Class`, `\tss  Subclass`, `\t\tpp  Prog-if`.
import { readFileSync } from "./fs";
import { READ, under } from "./root";

/** Names for ids; every answer is null when the host has no pci.ids or does not know the id. */
export interface PciIdNames {
  /** Where the names came from (host path), null when no pci.ids was found. */
  source: string | null;
  vendorName(vendorId: string): string | null;
  deviceName(vendorId: string, deviceId: string): string | null;
  /** The class of a 6-digit class code as lspci names it: the subclass ("PCI bridge", "USB
   * controller"), else the base class. Never the prog-if ("Normal decode", "XHCI"): that says how
   * the device is programmed, not what it is. */
  className(classCode: string): string | null;
}

/** Loads the first pci.ids found under the root (lazily: call it only when names are wanted). */
export function loadPciIds(root: string): PciIdNames {
  for (const hostPath of READ.pciIds) {
    let bytes: Buffer;
    try {
      // Bytes, not text: decoding all 1.3 MB as UTF-8 costs ~15 ms; only the blocks asked for are.
      bytes = readFileSync(under(root, hostPath));
    } catch {
      continue;
    }
    return parsePciIds(bytes, hostPath);
  }
  return parsePciIds("", null);
}

/** Names from pci.ids. A host lists a handful of distinct ids, even with 10,000 VFs, so the file
 * is not parsed: each vendor's (or class's) block is found by its line at column 0 and read on
 * first use. That keeps list-devices from paying ~35 ms for 40,000 lines it never asks about.
 * Vendor and class lines are unique in the file; ids are lowercase hex there, as in sysfs. */
export function parsePciIds(text: Buffer | string, source: string | null): PciIdNames {
  const body = typeof text === "string" ? Buffer.from(text, "utf8") : text;
  const vendors = new Map<string, Block | null>();
  const classes = new Map<string, Block | null>();
  const block = (cache: Map<string, Block | null>, head: string): Block | null => {
    let found = cache.get(head);
    if (found === undefined) {
      found = readBlock(body, head);
      cache.set(head, found);
    }
    return found;
  };
  const vendor = (id: string) => block(vendors, `${id.toLowerCase()}  `);
  const cls = (id: string) => block(classes, `C ${id}  `);
  return {
    source,
    vendorName: (vendorId) => vendor(vendorId)?.name ?? null,
    deviceName: (vendorId, deviceId) =>
      vendor(vendorId)?.children.get(deviceId.toLowerCase())?.name ?? null,
    className: (classCode) => {
      const code = classCode.toLowerCase();
      const c = cls(code.slice(0, 2));
      return c?.children.get(code.slice(2, 4))?.name ?? c?.name ?? null;
    },
  };
}

/** A device (its subsystems are not kept) or a subclass (with its prog-ifs, unused today). */
interface Entry {
  name: string;
  children: Map<string, string>;
}

/** One vendor (its devices) or one class (its subclasses). */
interface Block {
  name: string;
  children: Map<string, Entry>;
}

/** The block whose column-0 line starts with `head`, up to the next line at column 0. Device
 * subsystems (`\t\tssss ssss  name`) are skipped; a class's `\t\tpp  name` are its prog-ifs. */
function readBlock(body: Buffer, head: string): Block | null {
  const start = body.subarray(0, head.length).toString("latin1") === head ? 0 : lineAt(body, head);
  if (start < 0) return null;
  let end = start;
  do {
    const newline = body.indexOf(NEWLINE, end);
    end = newline < 0 ? body.length : newline + 1;
  } while (end < body.length && (body[end] === TAB || body[end] === HASH));
  const [first = "", ...lines] = body.subarray(start, end).toString("utf8").split("\n");
  const block: Block = { name: first.slice(head.length).trim(), children: new Map() };
  let parent: Entry | null = null;
  for (const line of lines) {
    const m = /^(\t\t?)([0-9a-fA-F]+)\s+(.+)$/.exec(line);
    if (!m) continue;
    const id = m[2]!.toLowerCase();
    if (m[1] === "\t") {
      parent = { name: m[3]!.trim(), children: new Map() };
      block.children.set(id, parent);
    } else if (parent !== null && id.length === 2) {
      parent.children.set(id, m[3]!.trim());
    }
  }
  return block;
}

const NEWLINE = 0x0a;
const TAB = 0x09;
const HASH = 0x23;

/** Offset of the line (after a newline) that starts with `head`, or -1. */
function lineAt(body: Buffer, head: string): number {
  const at = body.indexOf(`\n${head}`, 0, "latin1");
  return at < 0 ? -1 : at + 1;
}
