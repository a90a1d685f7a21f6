// Is interrupt remapping on? VFIO (type1) refuses to attach a group without it unless
// vfio_iommu_type1.allow_unsafe_interrupts=1. Without dmesg, two sources say something:
//   - /proc/interrupts: the kernel names an interrupt chip `IR-PCI-MSI…` / `IR-IO-APIC` only when
//     its interrupts go through the remapping table (Intel and AMD alike). Any IR- chip = on; MSI
//     or IO-APIC chips without the prefix = off. This is the running state, so it wins.
//   - /sys/class/iommu/dmar*/intel-iommu/ecap: bit 3 (IR) says the Intel unit *supports* it. Only
//     consulted when /proc/interrupts says nothing, and only ever reported as "supported".
// arm64 has no interrupt remapping: MSIs are isolated by the GICv3 ITS, which tags every MSI with
// the device that wrote it (VFIO asks the MSI domain for IRQ_DOMAIN_FLAG_ISOLATED_MSI, which the
// ITS sets and GICv2m does not). Its chips show in /proc/interrupts as `ITS-MSI`, `ITS-pMSI`,
// `ITS-fMSI` (or `ITS-PCI-MSIX-<device>` on newer kernels): any of them = MSIs isolated.

import { join } from "node:path";
import type { HostArch } from "./facts";
import { readdirSync, readFileSync } from "./fs";
import { READ, under } from "./root";

const PROC_INTERRUPTS = READ.procInterrupts;
/** Intel VT-d extended capability register (hex) of a DMAR unit. */
const intelEcap = (unit: string) => `${READ.iommuUnits}/${unit}/intel-iommu/ecap`;

export type InterruptRemappingState = "enabled" | "disabled" | "supported" | "unknown";

export interface InterruptRemapping {
  state: InterruptRemappingState;
  /** What the state was read from, for the result. */
  evidence: string;
  /** What isolates MSIs: absent for x86 interrupt remapping; `gic-its` on arm64 (state then says
   * whether MSIs are isolated by an ITS). */
  mechanism?: "gic-its";
}

/** arm64: are MSIs isolated, i.e. do they go through a GICv3 ITS? Pure. */
export function interpretArmMsiIsolation(procInterrupts: string | null): InterruptRemapping {
  const mechanism = "gic-its";
  const its =
    procInterrupts === null
      ? null
      : /\b(ITS-(?:[A-Za-z]+-)?[A-Za-z]*MSI[A-Za-z]*)/.exec(procInterrupts);
  if (its) {
    return {
      state: "enabled",
      evidence: `${PROC_INTERRUPTS} lists GIC ITS interrupt chips (${its[1]}): MSIs are isolated per device`,
      mechanism,
    };
  }
  if (procInterrupts !== null && /\b(?:GICv2m\S*|\S*PCI-MSI\S*|MSI)\s/.test(procInterrupts)) {
    return {
      state: "disabled",
      evidence: `${PROC_INTERRUPTS} lists MSIs that do not go through a GIC ITS (GICv2m or another MSI controller)`,
      mechanism,
    };
  }
  return {
    state: "unknown",
    evidence: `${PROC_INTERRUPTS} lists no MSI interrupt chip`,
    mechanism,
  };
}

/** Decides the state from the text of /proc/interrupts and the units' ecap values. Pure. */
export function interpretInterruptRemapping(
  procInterrupts: string | null,
  ecaps: Map<string, string>,
): InterruptRemapping {
  if (procInterrupts !== null) {
    if (/\bIR-[A-Z]/.test(procInterrupts)) {
      return {
        state: "enabled",
        evidence: `${PROC_INTERRUPTS} lists remapped (IR-) interrupt chips`,
      };
    }
    if (/\b(?:PCI-MSI|PCI-MSIX|IO-APIC)\b/.test(procInterrupts)) {
      return {
        state: "disabled",
        evidence: `${PROC_INTERRUPTS} lists MSI/IO-APIC interrupts without the IR- prefix`,
      };
    }
  }
  for (const [unit, hex] of ecaps) {
    const value = Number.parseInt(hex.trim(), 16);
    // Bit 3 of the VT-d ECAP register: IR (interrupt remapping support).
    if (Number.isFinite(value) && (value & 0x8) !== 0) {
      return {
        state: "supported",
        evidence: `${intelEcap(unit)} has the IR bit (hardware support)`,
      };
    }
  }
  return { state: "unknown", evidence: `neither ${PROC_INTERRUPTS} nor the IOMMU units say` };
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, "latin1");
  } catch {
    return null;
  }
}

/** Reads /proc/interrupts and the Intel units' ecap under the root (arm64: the GIC ITS, from
 * /proc/interrupts); never throws. */
export function readInterruptRemapping(root: string, arch: HostArch = "x86"): InterruptRemapping {
  if (arch === "arm64") return interpretArmMsiIsolation(readOrNull(under(root, PROC_INTERRUPTS)));
  const ecaps = new Map<string, string>();
  let units: string[] = [];
  try {
    units = readdirSync(under(root, READ.iommuUnits)).filter((u) => u.startsWith("dmar"));
  } catch {
    units = [];
  }
  for (const unit of units.sort()) {
    const text = readOrNull(join(under(root, intelEcap(unit))));
    if (text !== null) ecaps.set(unit, text);
  }
  return interpretInterruptRemapping(readOrNull(under(root, PROC_INTERRUPTS)), ecaps);
}
