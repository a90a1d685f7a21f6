// pci-report-in-placement through the real charm: the one-way door. nova-compute refuses to start
// with [pci] report_in_placement = False once it reported PCI devices to Placement, so the charm
// keeps sending True on a host where it once did, and says so in its log.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { useCleanups } from "../support/cleanups";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import { novaComputeRelation } from "../support/relations";
import { charmContext, useRoot } from "../support/scenario";

const BOOTED = "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/sda1 ro intel_iommu=on iommu=pt";
const cleanups = useCleanups();
afterEach(() => {
  vi.unstubAllEnvs();
});

function host(nova: string): void {
  const spec = seedHost();
  const h = makeTempHost({
    ...spec,
    cmdline: BOOTED,
    pci: spec.pci!.map((p) =>
      p.address.startsWith("0000:83:00.") ? { ...p, driver: "vfio-pci" } : p,
    ),
  });
  cleanups.push(h.cleanup);
  fs.mkdirSync(path.join(h.root, "var/lib/dpkg"), { recursive: true });
  fs.writeFileSync(
    path.join(h.root, "var/lib/dpkg/status"),
    `Package: nova-common\nStatus: install ok installed\nVersion: ${nova}\n\n`,
  );
  useRoot(h.root);
}

const DEVICES = JSON.stringify([
  { address: "0000:83:00.0", alias: "gpu", "resource-class": "gpu_p5000" },
]);
const sent = (out: { relations: Array<{ localUnitData: Record<string, string> }> }) =>
  (
    JSON.parse(out.relations[0]!.localUnitData.subordinate_configuration!).nova[
      "/etc/nova/nova.conf"
    ].sections.pci as [string, string][]
  ).map(([k, v]) => [k, k === "report_in_placement" ? v : JSON.parse(v)]);

describe("pci-report-in-placement", () => {
  it("on with nova 26: report_in_placement and the entry's resource class reach nova-compute", () => {
    host("2:26.2.2-1");
    const out = charmContext().run("nova-compute-relation-joined", {
      config: { devices: DEVICES, "pci-report-in-placement": true },
      relations: [novaComputeRelation()],
    });
    expect(sent(out).slice(0, 2)).toEqual([
      ["report_in_placement", "True"],
      [
        "device_spec",
        {
          vendor_id: "10de",
          product_id: "1bb0",
          address: "0000:83:00.0",
          resource_class: "CUSTOM_GPU_P5000",
        },
      ],
    ]);
    // Set back to false: still sent, and the log says why.
    const off = charmContext().run("config-changed", {
      ...out,
      config: { devices: DEVICES, "pci-report-in-placement": false },
    });
    expect(sent(off)[0]).toEqual(["report_in_placement", "True"]);
    expect(off.logs.map((l) => l.message).join("\n")).toContain(
      "pci-report-in-placement=false, but this host's nova-compute was told report_in_placement = True before",
    );
  });
});
