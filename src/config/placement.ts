// PCI in Placement (nova 26 Zed and later): a `devices` entry's `resource-class` and `traits`, and
// the `pci-report-in-placement` option that turns `[pci] report_in_placement` on. Checked by
// nova's own rules (nova/compute/pci_placement_translator.py): names are upper-cased and a name
// that is neither a standard nor a custom one gets `CUSTOM_` put in front; here only custom
// names are taken (written with or without `CUSTOM_`), so what the operator reads in nova-config
// is what Placement shows. Placement's own rule for a custom name: `CUSTOM_` then A-Z, 0-9, `_`,
// at most 255 characters.
import type { ConfigError } from "./types";

/** A Placement custom name after nova's normalisation (upper case, `CUSTOM_` prefix). */
const CUSTOM_NAME = /^CUSTOM_[A-Z0-9_]+$/;
const MAX_NAME = 255;

/** What an entry says for Placement (both empty when it says nothing). */
export interface PlacementFields {
  resourceClass: string | null;
  traits: string[];
}

/** `gpu_large` or `CUSTOM_GPU_LARGE` → `CUSTOM_GPU_LARGE`; null when it cannot be a custom name. */
export function customName(raw: string): string | null {
  const upper = raw.trim().toUpperCase();
  const name = upper.startsWith("CUSTOM_") ? upper : `CUSTOM_${upper}`;
  return CUSTOM_NAME.test(name) && name.length <= MAX_NAME ? name : null;
}

type EntryError = (problem: string, fix: string, value?: string) => void;

/** An entry's `resource-class` and `traits` (a list, or one comma-separated string), checked. */
export function checkPlacement(values: Record<string, unknown>, err: EntryError): PlacementFields {
  const out: PlacementFields = { resourceClass: null, traits: [] };
  const rc = values["resource-class"];
  if (typeof rc === "string") {
    const name = customName(rc);
    if (name === null) {
      err(
        `has resource-class ${JSON.stringify(rc)}: a Placement custom resource class is letters, digits and _ (nova adds CUSTOM_), at most ${MAX_NAME} characters`,
        "write e.g. resource-class: GPU_P5000 (Placement shows CUSTOM_GPU_P5000)",
        rc,
      );
    } else out.resourceClass = name;
  }
  const raw = values.traits;
  const list = typeof raw === "string" ? raw.split(",") : Array.isArray(raw) ? raw : [];
  for (const t of list) {
    const name = typeof t === "string" ? customName(t) : null;
    if (name === null) {
      err(
        `has trait ${JSON.stringify(t)}: a Placement custom trait is letters, digits and _ (nova adds CUSTOM_), at most ${MAX_NAME} characters`,
        "write e.g. traits: [HBM2, FAST_LINK] (Placement shows CUSTOM_HBM2, CUSTOM_FAST_LINK)",
        String(t),
      );
    } else if (!out.traits.includes(name)) out.traits.push(name);
  }
  if (
    (out.resourceClass !== null || out.traits.length > 0) &&
    values["physical-network"] !== undefined
  ) {
    err(
      "has resource-class/traits with physical-network: nova does not report VFs for neutron ports to Placement (it skips devices with a physical_network)",
      "drop resource-class and traits from this entry, or its physical-network",
    );
  }
  return out;
}

/** The `pci-report-in-placement` option: a boolean. */
export function parseReportInPlacement(value: unknown, errors: ConfigError[]): boolean {
  if (typeof value === "boolean") return value;
  errors.push({
    option: "pci-report-in-placement",
    value: String(value),
    problem: "is not a boolean",
    fix: "set it to true or false",
  });
  return false;
}

/** nova's own words for the one-way door (nova/conf/pci.py, report_in_placement). */
export const REPORT_IN_PLACEMENT_WARNING =
  "Once enabled it cannot be disabled any more: nova-compute refuses to start with " +
  "[pci] report_in_placement = False after it has reported PCI devices to Placement.";
