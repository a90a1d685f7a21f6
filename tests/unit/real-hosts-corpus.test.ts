// The real-host corpus itself: every manifest's recording is there (fetched by setup), unpacks,
// and gets only the additions its manifest states. The charm runs on these hosts in
// tests/integration/real-hosts.test.ts.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { readPciFunctions } from "../../src/host/pci";
import { realHostManifests, unpackRealHost } from "../real-hosts/corpus";

const manifests = realHostManifests();

describe("real-host corpus", () => {
  it("holds at least four distinct machines, one a server with SR-IOV-capable NICs", () => {
    expect(new Set(manifests.map((m) => m.id)).size).toBeGreaterThanOrEqual(4);
    expect(manifests.filter((m) => /SR-IOV/.test(m.kind)).length).toBeGreaterThanOrEqual(1);
  });

  it.each(manifests.map((m) => [m.id, m] as const))(
    "%s unpacks with the additions its manifest states",
    (_id, m) => {
      const host = unpackRealHost(m);
      try {
        const at = (p: string) => path.join(host.root, p);
        expect(fs.readFileSync(at("/proc/sys/kernel/osrelease"), "utf8").trim()).toBe(
          host.kernelRelease,
        );
        expect(fs.existsSync(at(`/lib/modules/${host.kernelRelease}/modules.alias`))).toBe(true);
        expect(fs.existsSync(at("/proc/cmdline"))).toBe(true);
        const { functions } = readPciFunctions(host.root);
        for (const address of Object.keys(m.uses)) {
          expect(fs.existsSync(at(`/sys/bus/pci/devices/${address}`)), address).toBe(true);
        }
        if (/SR-IOV/.test(m.kind)) {
          expect(functions.some((f) => f.sriov !== null && f.sriov.totalVfs > 0)).toBe(true);
        }
      } finally {
        host.cleanup();
      }
    },
  );
});
