// SR-IOV on a real recorded server: the Supermicro SYS-4029GP's Intel X722 pair (8086:37d2, i40e,
// sriov_totalvfs 64, no VF enabled; the first port carries the host's network). The recording comes
// from a CentOS 7 kernel (3.10), which has no sriov_offset/sriov_stride/sriov_vf_device: the charm
// must plan VFs without knowing their addresses or ids yet (they are created at boot), refuse what
// the hardware cannot do, and never take the port the host uses.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { OWNED } from "../../src/host/root";
import { realHostManifests, type UnpackedHost, unpackRealHost } from "../support/real-hosts/corpus";
import { charmContext, useRoot } from "../support/scenario";
import { fileText } from "../support/tree";

const supermicro = realHostManifests().find((m) => m.id === "supermicro-sys-4029gp-sx-aurora")!;

describe("SR-IOV on the recorded Supermicro SYS-4029GP (X722, sriov_totalvfs 64)", () => {
  let host: UnpackedHost;
  beforeAll(() => {
    host = unpackRealHost(supermicro);
  });
  afterAll(() => {
    host.cleanup();
    vi.unstubAllEnvs();
  });
  const read = (hostPath: string) => fileText(host.root, hostPath);
  /** install on a fresh copy of the recorded tree's owned files: each case starts clean. */
  const install = (devices: string) => {
    for (const p of Object.values(OWNED)) fs.rmSync(path.join(host.root, p), { force: true });
    useRoot(host.root);
    return charmContext().run("install", { config: { devices } });
  };

  it("the idle port: its VFs are planned for every boot, the PF stays on i40e", () => {
    const out = install('- {address: "0000:60:00.1", vfs: 8}');
    const rule = read(OWNED.sriovRule);
    // The recording's kernel does not name the VFs' ids yet: the rule passes "-" and the helper
    // then takes every VF of the PF.
    expect(rule).toContain(
      'KERNEL=="0000:60:00.1", ATTR{vendor}=="0x8086", ATTR{device}=="0x37d2", DRIVER=="?*", DRIVER!="vfio-pci", RUN+="/usr/local/lib/pci-passthrough/sriov-vfs %k 8 vfio-pci -"',
    );
    expect(read(OWNED.udevRule)).toBe("");
    expect(out.unitStatus.message).toContain("0000:60:00.1 has 0 VFs, 8 planned");
    expect(out.unitStatus.message).not.toContain("kept for the host");
  });

  it("the port carrying the host's network keeps it: VFs beside it, the PF never taken", () => {
    const out = install('- {address: "0000:60:00.0", vfs: 4, physical-network: physnet1}');
    expect(read(OWNED.sriovRule)).toContain('KERNEL=="0000:60:00.0"');
    expect(read(OWNED.sriovRule)).toContain("%k 4 host -");
    expect(read(OWNED.udevRule)).toBe("");
    expect(read(OWNED.grubDropIn)).not.toMatch(/i40e/);
    expect(out.unitStatus.message).toContain("0000:60:00.0 has 0 VFs, 4 planned");
  });

  it("more VFs than the X722 offers, and a Vector Engine without SR-IOV: refused, nothing written", () => {
    const over = install('- {address: "0000:60:00.1", vfs: 65}');
    expect(over.unitStatus.name).toBe("blocked");
    expect(over.unitStatus.message).toMatch(
      /vfs: 65 on 0000:60:00.1 \(8086:37d2\), which offers at most 64/,
    );
    expect(read(OWNED.sriovRule)).toBe("");
    const ve = install('- {vendor-id: "1bcf", product-id: "001c", address: "0000:*:00.0", vfs: 2}');
    expect(ve.unitStatus.name).toBe("blocked");
    expect(ve.unitStatus.message).toMatch(/\(1bcf:001c\), which has no SR-IOV capability/);
    expect(read(OWNED.sriovRule)).toBe("");
  });
});
