// PCI in Placement (issue 25): a devices entry's resource-class/traits, checked by nova's rules
// and passed into device_spec; pci-report-in-placement sends [pci] report_in_placement = True
// from nova 26 on and, once sent, for good (nova refuses to start with it turned off again).
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config";
import { customName } from "../../src/config/placement";
import type { NovaRelease } from "../../src/host/facts";
import { novaFeatures, novaRelationData, SUBORDINATE_CONFIGURATION_KEY } from "../../src/plan/nova";
import { bound } from "../support/bound-devices";

const release = (major: number): NovaRelease => ({
  package: "nova-common",
  version: `2:${major}.0.0-1`,
  upstream: [major, 0, 0],
});

function devicesOf(devices: unknown) {
  return parseConfig({ devices: JSON.stringify(devices), "pci-report-in-placement": true });
}

describe("resource-class and traits in devices", () => {
  it("take custom names as nova normalises them (upper case, CUSTOM_)", () => {
    expect(customName("gpu_p5000")).toBe("CUSTOM_GPU_P5000");
    expect(customName("CUSTOM_HBM2")).toBe("CUSTOM_HBM2");
    expect(customName("has space")).toBeNull();
    expect(customName("x".repeat(250))).toBeNull();
    const parsed = devicesOf([
      { address: "0000:83:00.0", "resource-class": "gpu_p5000", traits: "hbm2, fast_link" },
    ]);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.config.reportInPlacement).toBe(true);
    expect(parsed.config.devices[0]).toMatchObject({
      resourceClass: "CUSTOM_GPU_P5000",
      traits: ["CUSTOM_HBM2", "CUSTOM_FAST_LINK"],
    });
  });

  it("refuse what Placement would not take, and Placement fields on neutron VFs", () => {
    const bad = devicesOf([{ address: "0000:83:00.0", "resource-class": "gpu-p5000" }]);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors[0]!.problem).toContain('has resource-class "gpu-p5000"');
    const vfs = devicesOf([
      { address: "0000:3b:00.0", vfs: 4, "physical-network": "physnet1", traits: ["fast"] },
    ]);
    expect(vfs.ok).toBe(false);
    if (!vfs.ok)
      expect(vfs.errors[0]!.problem).toContain("nova does not report VFs for neutron ports");
  });
});

describe("what nova-compute is sent", () => {
  const gpu = bound("0000:83:00.0", "10de:1bb0", "gpu", {
    resourceClass: "CUSTOM_GPU_P5000",
    traits: ["CUSTOM_HBM2"],
  });
  const pairs = (major: number, placement: boolean) =>
    JSON.parse(
      novaRelationData(
        [gpu],
        () => true,
        "device_spec",
        undefined,
        novaFeatures(release(major), placement),
      ).data[SUBORDINATE_CONFIGURATION_KEY]!,
    ).nova["/etc/nova/nova.conf"].sections.pci as [string, string][];

  it("nova 26 with the option: report_in_placement first, the spec with its class and traits", () => {
    const p = pairs(26, true);
    expect(p[0]).toEqual(["report_in_placement", "True"]);
    expect(JSON.parse(p[1]![1])).toEqual({
      vendor_id: "10de",
      product_id: "1bb0",
      address: "0000:83:00.0",
      resource_class: "CUSTOM_GPU_P5000",
      traits: "CUSTOM_HBM2",
    });
  });

  it("without the option, or before nova 26: nothing of Placement", () => {
    for (const p of [pairs(29, false), pairs(25, true)]) {
      expect(p.map(([k]) => k)).toEqual(["device_spec", "alias"]);
      expect(JSON.parse(p[0]![1]).resource_class).toBeUndefined();
    }
  });

  it("nova 31: managed and Placement together", () => {
    expect(JSON.parse(pairs(31, true)[1]![1])).toMatchObject({
      managed: "no",
      resource_class: "CUSTOM_GPU_P5000",
    });
  });
});
