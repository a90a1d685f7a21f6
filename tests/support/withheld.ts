// A check of what a plan kept back from vfio-pci, shared by the host-safety and IOMMU-prediction tests.
import { expect } from "vitest";
import type { WithheldFunction } from "../../src/plan/types";

/** The reasons `plan` gives for withholding `address`, joined with "; ", after checking that it is
 * the only function withheld and that `force: true` could (or could not) override it. */
export function onlyWithheld(
  plan: { withheld: WithheldFunction[] },
  address: string,
  forceable: boolean,
): string {
  expect(plan.withheld.map((w) => [w.address, w.forceable])).toEqual([[address, forceable]]);
  return plan.withheld[0]!.reasons.join("; ");
}
