// Is interrupt remapping on? VFIO (type1) refuses to attach a group without it unless
// vfio_iommu_type1.allow_unsafe_interrupts=1. Without dmesg, two sources say something:
//   - /proc/interrupts: the kernel names an interrupt chip `IR-PCI-MSI…` / `IR-IO-APIC` only when
//     its interrupts go through the remapping table (Intel and AMD alike). Any IR- chip = on; MSI
//     or IO-APIC chips without the prefix = off. This is the running state, so it wins.
//   - /sys/class/iommu/dmar*/intel-iommu/ecap: bit 3 (IR) says the Intel unit *supports* it. Only
//     consulted when /proc/interrupts says nothing, and only ever reported as "supported".
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { READ, under } from "./root";

const PROC_INTERRUPTS = READ.procInterrupts;
/** Intel VT-d extended capability register (hex) of a DMAR unit. */
const intelEcap = (unit: string) => `${READ.iommuUnits}/${unit}/intel-iommu/ecap`;

export type InterruptRemappingState = "enabled" | "disabled" | "supported" | "unknown";

export interface InterruptRemapping {
  state: InterruptRemappingState;
  /** What the state was read from, for the result. */
  evidence: string;
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

/** Reads /proc/interrupts and the Intel units' ecap under the root; never throws. */
export function readInterruptRemapping(root: string): InterruptRemapping {
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
