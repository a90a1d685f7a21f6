// Bound functions as the planner hands them to the nova and verify-iommu code: shared by their tests.
import type { BoundDevice } from "../../src/plan/types";

/** A bound function with the given ids and alias; a GPU (class 030000) unless `extra` says else. */
export function bound(
  address: string,
  ids: string,
  alias: string,
  extra: Partial<BoundDevice> = {},
): BoundDevice {
  const [vendorId = "", deviceId = ""] = ids.split(":");
  return {
    address,
    vendorId,
    deviceId,
    classCode: "030000",
    alias,
    deviceType: "type-PCI",
    numaPolicy: null,
    reason: "selected",
    follows: null,
    ...extra,
  };
}

/** The seed host's first Quadro P5000 and its HDMI audio companion. */
export const gpu = bound("0000:83:00.0", "10de:1bb0", "gpu");
export const gpuAudio = bound("0000:83:00.1", "10de:10f0", "gpu-audio", {
  classCode: "040300",
  reason: "companion",
  follows: "0000:83:00.0",
});
/** Its identical twin. */
export const secondGpu = bound("0000:84:00.0", "10de:1bb0", "gpu");

/** The checks verify-iommu fails, in its order, for a selected function not on vfio-pci yet: its
 * driver, its group's viability and its /dev/vfio node. */
export const notOnVfioYet = (address: string): string[] => [
  `driver ${address}`,
  `viability ${address}`,
  `vfio-device ${address}`,
];
