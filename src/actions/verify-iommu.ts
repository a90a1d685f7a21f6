// The verify-iommu action, pure: "will passthrough work on this host, and if not, why". Here: its
// params and the verdict, with the host-wide checks (the IOMMU is on, the running command line
// carries every planned parameter, interrupt remapping (arm64: MSI isolation by the GIC ITS) or
// the unsafe opt-in, vfio-pci exists). Each selected function's checks and the command line's
// are verify-iommu-checks.ts; what is shown of them (selected SR-IOV VFs summarised under their
// PF, each-vf: one by one) is verify-iommu-results.ts. Reads facts only; never changes the host.
import { validateActionVerifyIommu } from "../generated/validators.js";
import { iommuOffReason, NO_GRUB, withheldMessage } from "../plan/status";
import { type Checked, validateParams } from "./params";
import type { ResultTree } from "./results";
import {
  checkSelection,
  checkSriov,
  compareCmdline,
  type DeviceCheck,
  normalisedParam,
  splitCmdline,
  type VerifyIommuInput,
  type VerifyProblem,
} from "./verify-iommu-checks";
import {
  foldProblemLines,
  isInAddressOrder,
  messageLines,
  renderResults,
  renderSriov,
  summariseVfChecks,
  type VfChecksSummary,
} from "./verify-iommu-results";

export type {
  DeviceCheck,
  GroupMember,
  SriovCheck,
  VerifyCheck,
  VerifyIommuInput,
  VerifyProblem,
} from "./verify-iommu-checks";
export { compareCmdline, splitCmdline } from "./verify-iommu-checks";
export type { VfChecksSummary } from "./verify-iommu-results";

export interface VerifyIommuResult {
  ok: boolean;
  /** The judgement: every problem of every check, one per function (VFs included). */
  problems: VerifyProblem[];
  /** The problems as shown (results and message): without each-vf, the lines of one check on
   * several VFs of one PF are one line. */
  problemLines: string[];
  /** Selected VFs summarised under their PF; empty with each-vf. */
  vfSummaries: VfChecksSummary[];
  /** Worth knowing, not a failure. */
  notes: string[];
  /** Planned kernel parameters the running kernel was not booted with. */
  missingParams: string[];
  devices: DeviceCheck[];
  /** One line for action-fail / the log. */
  message: string;
  results: ResultTree;
}

export interface VerifyIommuParams {
  /** Show every selected SR-IOV VF on its own; by default they are summarised under their PF (as
   * list-devices does), and so are their problem lines. */
  eachVf: boolean;
}

/** Checks raw verify-iommu params (schema from actions.yaml: `each-vf`, nothing else). */
export function parseVerifyIommuParams(raw: unknown): Checked<VerifyIommuParams> {
  const checked = validateParams("verify-iommu", validateActionVerifyIommu, raw);
  return checked.ok
    ? { ok: true, params: { eachVf: checked.params["each-vf"] === true } }
    : checked;
}

/** Answers whether passthrough will work here and why not. Pure: facts in, verdict out. */
export function verifyIommu(input: VerifyIommuInput): VerifyIommuResult {
  const { facts } = input;
  const problems: VerifyProblem[] = [];
  const notes: string[] = [];

  const arm = facts.arch === "arm64";
  const iommuOn = facts.iommuGroups.size > 0;
  if (!iommuOn) {
    problems.push({
      check: "iommu",
      device: null,
      // Firmware, a kernel without IOMMU support, or an unknown: said as what it is. Otherwise
      // the command line lacks the switch, and the reboot it asks for turns the IOMMU on.
      message:
        iommuOffReason(input.plannedCmdline, facts) ??
        (input.noGrub
          ? `the IOMMU is off: /sys/kernel/iommu_groups is empty; ${NO_GRUB}: add the charm's kernel parameters to the boot loader's command line by hand, then reboot: ${input.plannedCmdline.join(" ")}`
          : "the IOMMU is off: /sys/kernel/iommu_groups is empty; reboot with the charm's kernel parameters"),
    });
  }
  if (iommuOn && facts.iommuUnits.length === 0) {
    notes.push(
      "IOMMU groups exist but /sys/class/iommu lists no unit (a virtual IOMMU such as virtio-iommu?)",
    );
  }
  if (facts.container) {
    notes.push("running in a container: these are the host's facts as the container sees them");
  }

  const cmdline =
    facts.cmdline === null
      ? { missing: [], problems: [] }
      : compareCmdline(facts.cmdline, input.plannedCmdline, input.noGrub);
  problems.push(...cmdline.problems);
  if (facts.cmdline === null && input.plannedCmdline.length > 0) {
    problems.push({
      check: "cmdline",
      device: null,
      message: `the kernel command line is unknown (/proc/cmdline unreadable): cannot tell whether the running kernel has ${input.plannedCmdline.join(" ")}`,
    });
  }

  const ir = input.interruptRemapping ?? { state: "unknown", evidence: "not read" };
  const unsafeAllowed = splitCmdline(facts.cmdline ?? "").some(
    (t) => normalisedParam(t) === "vfio_iommu_type1.allow_unsafe_interrupts=1",
  );
  if (ir.state === "disabled") {
    if (unsafeAllowed) {
      notes.push(
        arm
          ? "MSIs are not isolated (no GIC ITS) and vfio_iommu_type1.allow_unsafe_interrupts=1 is set: passthrough works with weaker isolation between guests"
          : "interrupt remapping is off and vfio_iommu_type1.allow_unsafe_interrupts=1 is set: passthrough works with weaker isolation between guests",
      );
    } else if (arm) {
      problems.push({
        check: "msi-isolation",
        device: null,
        message:
          "MSIs are not isolated: they do not go through a GIC ITS (GICv2m or another MSI controller), so VFIO refuses to attach devices; use a GICv3 with its ITS enabled in the firmware, or set allow-unsafe-interrupts=true (weakens isolation)",
      });
    } else {
      problems.push({
        check: "interrupt-remapping",
        device: null,
        message:
          "interrupt remapping is off, so VFIO refuses to attach devices; enable it in the firmware (VT-d/AMD-Vi interrupt remapping, x2APIC) or set allow-unsafe-interrupts=true (weakens isolation)",
      });
    }
  } else if (ir.state !== "enabled") {
    notes.push(
      `${arm ? "MSI isolation (GIC ITS)" : "interrupt remapping"}: ${ir.state} (${ir.evidence})`,
    );
  }

  if (facts.vfioPci === "unknown" && input.selection.length > 0) {
    notes.push(
      "the kernel release is unknown (/proc/sys/kernel/osrelease unreadable) and no vfio-pci driver is registered: whether this kernel has vfio-pci is unknown",
    );
  }
  if (facts.vfioPci === "missing" && input.selection.length > 0) {
    problems.push({
      check: "vfio-pci",
      device: null,
      message: `the running kernel (${facts.kernelRelease}) has no vfio-pci; install linux-modules-extra-${facts.kernelRelease}`,
    });
  }

  const judged = checkSelection(input, problems);
  const devices = judged.map((j) => j.device);
  const sriov = (input.sriov ?? []).map((pf) => checkSriov(pf, facts, problems));
  // What the selection matched but the host keeps: a refusal (chipset group) fails the check, a
  // function kept for the host's use is worth knowing (the status says the same).
  const withheld = input.withheld ?? [];
  const refused = withheld.filter((w) => !w.forceable);
  if (refused.length > 0) {
    problems.push({ check: "group", device: null, message: withheldMessage(refused) });
  }
  const kept = withheld.filter((w) => w.forceable);
  if (kept.length > 0) notes.push(withheldMessage(kept));
  if (input.selection.length === 0) {
    notes.push("the `devices` option selects nothing: only the IOMMU was checked");
  }

  const ok = problems.length === 0;
  const ordered = isInAddressOrder(input.selection);
  const problemLines = foldProblemLines(problems, judged, ordered);
  const vfSummaries = summariseVfChecks(judged, problems, ordered);
  const message = ok
    ? `passthrough ready: IOMMU on (${facts.iommuUnits.join(", ") || "no units listed"}), ${devices.length} selected function${devices.length === 1 ? "" : "s"} on vfio-pci in viable group${devices.length === 1 ? "" : "s"}`
    : `passthrough not ready: ${messageLines(problemLines)}`;
  return {
    ok,
    problems,
    problemLines,
    vfSummaries,
    notes,
    missingParams: cmdline.missing,
    devices,
    message,
    results: {
      ...renderResults(input, ok, notes, cmdline.missing, ir, unsafeAllowed, {
        devices: judged.filter((j) => j.pf === undefined).map((j) => j.device),
        problemLines,
        vfSummaries,
      }),
      ...(sriov.length > 0 ? { sriov: renderSriov(sriov) } : {}),
    },
  };
}
