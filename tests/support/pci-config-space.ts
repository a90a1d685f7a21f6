// PCI config space as bytes, the way sysfs `config` gives it to root: the standard header, the
// capability list and the extended capability list, each capability where the test puts it.
// Only the registers the charm reads are filled; the rest is zero, as on many real devices.

/** A standard capability: its ID at `at`, its bytes after the ID/next pair. */
export interface StdCapability {
  at: number;
  id: number;
  /** Bytes from offset +2 on (e.g. the PCI Express capability's flags). */
  body?: number[];
}

/** An extended capability: its 16-bit ID (version 1), its bytes from offset +4 on. */
export interface ExtCapability {
  at: number;
  id: number;
  version?: number;
  body?: number[];
}

export interface ConfigSpaceSpec {
  vendor: number;
  device: number;
  /** 24-bit class code, e.g. 0x020000. */
  classCode: number;
  revision?: number;
  /** Header layout: 0 device, 1 PCI-to-PCI bridge. */
  headerType?: 0 | 1;
  multifunction?: boolean;
  capabilities?: StdCapability[];
  extended?: ExtCapability[];
  /** 256 (no extended space) or 4096 (PCI Express with ECAM); default 4096. */
  size?: 256 | 4096;
}

/** The config space bytes for `spec`; capabilities are chained in the order given. */
export function configSpace(spec: ConfigSpaceSpec): Uint8Array {
  const b = new Uint8Array(spec.size ?? 4096);
  const put16 = (at: number, v: number) => {
    b[at] = v & 0xff;
    b[at + 1] = (v >> 8) & 0xff;
  };
  const put32 = (at: number, v: number) => {
    put16(at, v & 0xffff);
    put16(at + 2, (v >>> 16) & 0xffff);
  };
  put16(0x00, spec.vendor);
  put16(0x02, spec.device);
  b[0x08] = spec.revision ?? 0;
  b[0x09] = spec.classCode & 0xff;
  b[0x0a] = (spec.classCode >> 8) & 0xff;
  b[0x0b] = (spec.classCode >> 16) & 0xff;
  b[0x0e] = (spec.headerType ?? 0) | (spec.multifunction ? 0x80 : 0);
  const caps = spec.capabilities ?? [];
  if (caps.length > 0) {
    put16(0x06, 0x0010); // status: capabilities list
    b[0x34] = caps[0]!.at;
    caps.forEach((cap, i) => {
      b[cap.at] = cap.id;
      b[cap.at + 1] = caps[i + 1]?.at ?? 0;
      (cap.body ?? []).forEach((v, j) => {
        b[cap.at + 2 + j] = v;
      });
    });
  }
  const ext = spec.extended ?? [];
  ext.forEach((cap, i) => {
    const next = ext[i + 1]?.at ?? 0;
    put32(cap.at, (cap.id & 0xffff) | ((cap.version ?? 1) << 16) | (next << 20));
    (cap.body ?? []).forEach((v, j) => {
      b[cap.at + 4 + j] = v;
    });
  });
  return b;
}

/** The PCI Express capability body for a device/port type (flags: version 2, `type` in bits 7:4). */
export function pcieCapability(at: number, type: number): StdCapability {
  return { at, id: 0x10, body: [0x02 | ((type & 0xf) << 4), 0x00] };
}

/** The ACS extended capability, offering `cap` (SV 0x01, TB 0x02, RR 0x04, CR 0x08, UF 0x10…);
 * its control register 0 as firmware leaves it before the kernel enables it. */
export function acsCapability(at: number, cap = 0x001f): ExtCapability {
  return { at, id: 0x000d, body: [cap & 0xff, (cap >> 8) & 0xff, 0, 0] };
}

export const PCIE_TYPE = {
  endpoint: 0,
  rootPort: 4,
  upstream: 5,
  downstream: 6,
  pcieToPciBridge: 7,
} as const;
