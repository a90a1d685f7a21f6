// extra-kernel-params: parameters the operator adds to the kernel command line. Refused: what the
// shell reading the grub drop-in would interpret, what the charm sets itself from other options,
// and IOMMU driver options that turn the IOMMU off.
import { isSafeKernelParam, kernelParamName, shellCharIn } from "../kernel-param-vocabulary";
import { clip } from "../text";
import { isString } from "./option-values";
import type { ConfigError } from "./types";

/** Parameters the charm sets itself, by name (kernel param names treat - and _ alike). */
const OWNED_PARAMS: Record<string, string> = {
  iommu: "iommu-passthrough-mode",
  "iommu.passthrough": "iommu-passthrough-mode",
  "vfio_iommu_type1.allow_unsafe_interrupts": "allow-unsafe-interrupts",
  "modprobe.blacklist": "blacklist-drivers",
  "vfio_pci.ids": "devices",
};
/** The IOMMU drivers' own options (Documentation/admin-guide/kernel-parameters.txt), comma
 * separated. The charm writes only `intel_iommu=on`; the tuning options beside it are the
 * operator's (`intel_iommu=on,igfx_off`, `sm_on`, `amd_iommu=force_isolation`). Turning the IOMMU
 * off is the one real conflict: vfio-pci needs it. */
const IOMMU_DRIVER_OPTIONS: Record<string, { known: string[]; off: string[] }> = {
  intel_iommu: {
    known: ["on", "igfx_off", "forcedac", "strict", "sp_off", "sm_on", "sm_off", "tboot_noforce"],
    off: ["off"],
  },
  amd_iommu: {
    known: [
      "fullflush",
      "force_isolation",
      "force_enable",
      "pgtbl_v1",
      "pgtbl_v2",
      "irtcachedis",
      "nohugepages",
      "v2_pgsizes_only",
    ],
    off: ["off"],
  },
};

/** What is wrong with an `intel_iommu=` / `amd_iommu=` value, or null when the kernel takes it
 * and it leaves the IOMMU on. */
function iommuDriverConflict(name: string, value: string): { problem: string; fix: string } | null {
  const driver = IOMMU_DRIVER_OPTIONS[name]!;
  const options = value.split(",").filter((o) => o.length > 0);
  if (options.length === 0) {
    return {
      problem: "has no value",
      fix: `give ${name} its options, e.g. ${name}=${driver.known[0]}`,
    };
  }
  if (name === "intel_iommu" && options.every((o) => o === "on")) {
    return {
      problem: "is set by the charm itself from the iommu option",
      fix: "remove it from extra-kernel-params and set option iommu instead (intel_iommu=on,<options> adds options)",
    };
  }
  for (const option of options) {
    if (driver.off.includes(option)) {
      return {
        problem: `turns the IOMMU off (${name}=${option}), which vfio-pci needs`,
        fix: `remove it; to keep the charm from switching the IOMMU on, set iommu=off (with devices empty)`,
      };
    }
    if (name === "amd_iommu" && option === "on") {
      return {
        problem:
          'is not a value the kernel knows (AMD-Vi is on by default; the kernel logs "Unknown option")',
        fix: "remove amd_iommu=on; keep only the options you need, e.g. amd_iommu=force_isolation",
      };
    }
    if (!driver.known.includes(option)) {
      return {
        problem: `has the option "${option}", which ${name} does not know`,
        fix: `use ${driver.known.join(", ")} (comma separated)`,
      };
    }
  }
  return null;
}

const MAX_EXTRA_PARAMS = 1024;

/** `extra-kernel-params`: the operator's own kernel parameters, minus those the charm sets. */
export function parseKernelParams(value: unknown, errors: ConfigError[]): string[] | null {
  const option = "extra-kernel-params";
  if (
    !isString(
      option,
      value,
      errors,
      'set it to space separated parameters, e.g. "pcie_acs_override=downstream"',
    )
  )
    return null;
  if (/[\r\n]/.test(value.trim())) {
    errors.push({
      option,
      value: clip(value),
      problem: "contains a line break, which would end the line in the grub drop-in",
      fix: "put every parameter on one line, separated by spaces",
    });
    return null;
  }
  if (value.length > MAX_EXTRA_PARAMS) {
    errors.push({
      option,
      value: clip(value),
      problem: `is ${value.length} characters long; the kernel command line holds 2048 in all`,
      fix: `keep extra-kernel-params under ${MAX_EXTRA_PARAMS} characters`,
    });
    return null;
  }
  const params: string[] = [];
  let ok = true;
  for (const token of value.split(/[ \t]+/).filter((t) => t.length > 0)) {
    const fail = (problem: string, fix: string) => {
      errors.push({ option, value: clip(token), problem, fix });
      ok = false;
    };
    const shell = shellCharIn(token);
    if (shell) {
      fail(
        `contains ${shell}, which the shell that reads the grub drop-in would interpret`,
        "use only letters, digits and . _ , : = / + - (no quoting is needed or allowed)",
      );
      continue;
    }
    if (!isSafeKernelParam(token)) {
      fail(
        "is not a kernel parameter of the form name or name=value (letters, digits, . _ , : = / + -)",
        "fix or remove that parameter",
      );
      continue;
    }
    const name = kernelParamName(token);
    if (IOMMU_DRIVER_OPTIONS[name]) {
      const conflict = iommuDriverConflict(name, token.slice(name.length + 1));
      if (conflict) fail(conflict.problem, conflict.fix);
      else params.push(token);
      continue;
    }
    const owner = OWNED_PARAMS[name];
    if (owner) {
      fail(
        `is set by the charm itself from the ${owner} option`,
        `remove it from extra-kernel-params and set option ${owner} instead`,
      );
      continue;
    }
    params.push(token);
  }
  return ok ? params : null;
}
