// The verify-iommu action, pure: "will passthrough work on this host, and if not, why". Checks
// the IOMMU is on, the running command line carries every planned parameter, interrupt remapping
// (arm64: MSI isolation by the GIC ITS) or the unsafe opt-in, vfio-pci exists, and for each selected function: present with its ids,
// on vfio-pci, in a group, the group viable, its other members, /dev/vfio/<group>, and that the
// group holds nothing the host uses. Reads facts only; never changes the host. Selected SR-IOV
// VFs are checked one by one as any function, then shown summarised under their PF (each-vf: one
// by one): thousands of result keys and problem lines are more than Juju keeps well or anyone reads.
import { validateActionVerifyIommu } from "../generated/validators.js";
import type { HostFacts, HostUsage, PciFunction } from "../host/facts";
import type { InterruptRemapping } from "../host/interrupt-remapping";
import { READ } from "../host/root";
import { kernelParamName } from "../kernel-param-vocabulary";
import { type HostSafety, hostSafety, vfGroupShare } from "../plan/host-safety";
import { functionIndex, groupMates, isHarmlessMember, isVfioDriver } from "../plan/iommu-groups";
import type { PlannedPf } from "../plan/sriov";
import { iommuOffReason, NO_GRUB, withheldMessage } from "../plan/status";
import type { BoundDevice, WithheldFunction } from "../plan/types";
import { driverWords, listOf, thousands } from "../text";
import { type Checked, validateParams } from "./params";
import { addressKey, listResult, type ResultTree, yesNo } from "./results";

export type VerifyCheck =
  | "iommu"
  | "cmdline"
  | "interrupt-remapping"
  | "msi-isolation"
  | "vfio-pci"
  | "present"
  | "ids"
  | "driver"
  | "group"
  | "viability"
  | "vfio-device"
  | "host-use"
  | "sriov";

export interface VerifyProblem {
  check: VerifyCheck;
  /** The function concerned, or null for host-wide problems. */
  device: string | null;
  message: string;
}

export interface GroupMember {
  address: string;
  driver: string | null;
  /** Does not stop the group from going to a VM (vfio, pci-stub, no driver, bridge/port). */
  harmless: boolean;
  selected: boolean;
}

export interface DeviceCheck {
  address: string;
  present: boolean;
  ids: string | null;
  driver: string | null;
  group: number | null;
  /** The other members of its IOMMU group (not the `companions` of the devices option, which are
   * the card's own functions that follow a selected one). */
  groupMembers: GroupMember[];
  viable: boolean;
  vfioDevice: boolean;
  ok: boolean;
}

export interface VerifyIommuInput {
  facts: HostFacts;
  /** Parameters the grub drop-in adds (plan.kernelParams). */
  plannedCmdline: string[];
  selection: BoundDevice[];
  /** Selected functions the plan leaves with the host (plan/host-safety.ts); absent: none. */
  withheld?: WithheldFunction[];
  usage: HostUsage;
  /** From readInterruptRemapping; null when not read (reported as unknown). */
  interruptRemapping: InterruptRemapping | null;
  /** The hooks found no update-grub on this host: the drop-in never reaches the boot loader, so a
   * reboot alone adds nothing; the parameters are the operator's to add by hand. */
  noGrub?: boolean;
  /** PFs the plan gives VFs (plan/sriov.ts): their VFs are checked per PF, not one by one. */
  sriov?: PlannedPf[];
  /** Show each selected VF on its own (the each-vf param); absent: summarised under its PF. */
  eachVf?: boolean;
}

/** One PF's VFs against the plan. */
export interface SriovCheck {
  pf: string;
  planned: number;
  /** sriov_numvfs now; null when the PF is not on this host. */
  now: number | null;
  vfDriver: PlannedPf["vfDriver"];
  /** Driver → VFs on it. */
  drivers: Array<[string, number]>;
  /** VFs not on their planned driver (vfio-pci for a flavor alias). */
  offPlan: string[];
  /** VFs whose IOMMU group also holds their PF (no ACS between them). */
  withPf: string[];
  /** VFs whose IOMMU group holds other VFs (no ACS between VFs): one VM takes them all. */
  sharing: string[];
  ok: boolean;
}

/** A PF's selected VFs in a few words: what verify-iommu shows instead of one entry per VF. */
export interface VfChecksSummary {
  pf: string;
  count: number;
  first: string;
  last: string;
  ok: number;
  /** Driver (or "no driver") → how many of these VFs sit on it, most first. */
  drivers: Array<[string, number]>;
  noGroup: number;
  /** In an IOMMU group that is not viable (VFs without a group are counted in noGroup). */
  notViable: number;
  /** In a group whose /dev/vfio/<group> is missing. */
  noVfioDevice: number;
  /** The first failing VFs by address (at most FAILING_SHOWN), each with its first problem. */
  failing: Array<{ address: string; problem: string }>;
  /** How many more fail than `failing` shows. */
  moreFailing: number;
}

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

function normalisedParam(param: string): string {
  const eq = param.indexOf("=");
  return eq < 0
    ? kernelParamName(param)
    : `${kernelParamName(param)}=${param.slice(eq + 1).replace(/^"|"$/g, "")}`;
}

/** Splits a command line into parameters, honouring double quotes as the kernel does. */
export function splitCmdline(cmdline: string): string[] {
  return (cmdline.match(/(?:[^\s"]+|"[^"]*")+/g) ?? []).map((t) => t.replace(/"/g, ""));
}

/** Compares the planned parameters with the running command line. */
export function compareCmdline(
  running: string,
  planned: string[],
  noGrub = false,
): { missing: string[]; problems: VerifyProblem[] } {
  const fix = noGrub
    ? `${NO_GRUB}: add it to the boot loader's command line by hand, then reboot`
    : "reboot so the charm's grub drop-in takes effect";
  const tokens = splitCmdline(running);
  const have = new Set(tokens.map(normalisedParam));
  const missing: string[] = [];
  const problems: VerifyProblem[] = [];
  for (const p of planned) {
    if (have.has(normalisedParam(p))) continue;
    missing.push(p);
    const other = tokens.filter((t) => kernelParamName(t) === kernelParamName(p));
    const found = other.length > 0 ? ` (it has ${other.join(" ")} instead)` : "";
    problems.push({
      check: "cmdline",
      device: null,
      message: `the running kernel was not booted with ${p}${found}; ${fix}`,
    });
  }
  return { missing, problems };
}

/** Is this address selected? Asked only of a group's other members, so the set of 10,000
 * selected VFs (each alone in its group) is built only when some group has company. */
type IsSelected = (address: string) => boolean;

/** Checks one selected function (`fn`: its facts, absent when it is not on this host). */
function checkDevice(
  b: BoundDevice,
  fn: PciFunction | undefined,
  input: VerifyIommuInput,
  isSelected: IsSelected,
  safety: HostSafety,
  problems: VerifyProblem[],
): DeviceCheck {
  const { facts } = input;
  const problem = (check: VerifyCheck, said: string) =>
    problems.push({ check, device: b.address, message: `${b.address}: ${said}` });
  if (!fn) {
    problem("present", "selected but not present on this host (removed, or hidden by firmware)");
    return {
      address: b.address,
      present: false,
      ids: null,
      driver: null,
      group: null,
      groupMembers: [],
      viable: false,
      vfioDevice: false,
      ok: false,
    };
  }
  const before = problems.length;
  const ids = `${fn.vendorId}:${fn.deviceId}`;
  if (fn.vendorId !== b.vendorId || fn.deviceId !== b.deviceId) {
    problem(
      "ids",
      `has ids ${ids}, expected ${b.vendorId}:${b.deviceId} (another card in that slot?)`,
    );
  }
  if (!isVfioDriver(fn.driver)) problem("driver", notOnVfio(fn.driver));
  // Most functions (every VF behind ACS) are alone in their group: nothing more to judge there.
  const mateFunctions = groupMates(facts, fn);
  const groupMembers: GroupMember[] =
    mateFunctions.length === 0
      ? []
      : mateFunctions.map((m) => ({
          address: m.address,
          driver: m.driver,
          harmless: isHarmlessMember(m),
          selected: isSelected(m.address),
        }));
  if (fn.iommuGroup === null) {
    problem("group", "has no IOMMU group: the IOMMU is off or does not cover it");
  }
  const offenders =
    groupMembers.length === 0 ? groupMembers : groupMembers.filter((c) => !c.harmless);
  if (offenders.length > 0) {
    problem(
      "viability",
      `IOMMU group ${fn.iommuGroup} is not viable: ${viabilityAdvice(fn, offenders, mateFunctions, safety)}`,
    );
  }
  const vfioDevice = fn.iommuGroup !== null && facts.vfioDevices.has(fn.iommuGroup);
  if (fn.iommuGroup !== null && !vfioDevice) {
    problem(
      "vfio-device",
      `${READ.devVfio}/${fn.iommuGroup} is missing (it appears once a group member is on vfio-pci)`,
    );
  }
  const own = safety.uses(fn);
  if (own.length > 0) problem("host-use", `the host uses it: ${own.join("; ")}`);
  if (mateFunctions.length > 0) {
    for (const { mate, uses } of safety.groupMatesInUse(fn)) {
      problem(
        "host-use",
        `IOMMU group ${fn.iommuGroup} also holds ${mate.address}, which the host uses (${uses.join("; ")})`,
      );
    }
  }
  return {
    address: fn.address,
    present: true,
    ids,
    driver: fn.driver,
    group: fn.iommuGroup,
    groupMembers,
    viable: fn.iommuGroup !== null && offenders.length === 0,
    vfioDevice,
    ok: problems.length === before,
  };
}

const notOnVfioSaid = new Map<string | null, string>();

/** What the driver check says of a function on `driver`: one string per driver, not one per VF
 * (10,000 VFs on two drivers say two things). */
function notOnVfio(driver: string | null): string {
  let said = notOnVfioSaid.get(driver);
  if (said === undefined) {
    said = `is on ${driverWords(driver)}, not vfio-pci; reboot, or run the rebind action to move it now`;
    notOnVfioSaid.set(driver, said);
  }
  return said;
}

/** Each member that keeps the group from being viable gets the one piece of advice that fits it:
 * a selected one waits for the reboot (or rebind), a chipset function can never go, one the host
 * uses is a host-use problem (said apart), and only the rest are worth selecting too. */
function viabilityAdvice(
  fn: PciFunction,
  offenders: GroupMember[],
  mateFunctions: PciFunction[],
  safety: HostSafety,
): string {
  const mates = new Map(mateFunctions.map((m) => [m.address, m]));
  const waiting = offenders.filter((o) => o.selected);
  const chipsetMembers = new Set(
    safety
      .groupHazards(fn)
      .filter((h) => h.kind === "chipset")
      .map((h) => h.fn.address),
  );
  const chipset = offenders.filter((o) => !o.selected && chipsetMembers.has(o.address));
  const used = offenders.filter(
    (o) => !o.selected && !chipset.includes(o) && safety.uses(mates.get(o.address)!).length > 0,
  );
  const unselected = offenders.filter(
    (o) => !waiting.includes(o) && !chipset.includes(o) && !used.includes(o),
  );
  const onDriver = (list: GroupMember[]) =>
    list.map((o) => `${o.address} on ${driverWords(o.driver)}`).join(", ");
  const advice: string[] = [];
  if (chipset.length > 0) {
    advice.push(
      `${onDriver(chipset)}: chipset functions the host keeps, so the group can never be viable; move the card to a slot with its own group`,
    );
  }
  if (used.length > 0)
    advice.push(
      `${onDriver(used)}: the host uses ${used.length === 1 ? "it" : "them"} (see below)`,
    );
  if (unselected.length > 0) {
    advice.push(
      `${onDriver(unselected)} must be on vfio-pci, pci-stub or no driver; select ${unselected.length === 1 ? "it" : "them"} too (or move the card to a slot with its own group)`,
    );
  }
  if (waiting.length > 0) {
    advice.push(
      `${onDriver(waiting)}: selected, not on vfio-pci yet; reboot, or run the rebind action`,
    );
  }
  return advice.join("; ");
}

/** Checks each selected function (bar the VFs the charm creates: checkSriov), in the selection's
 * order, its problems added to `problems`. */
function checkSelection(input: VerifyIommuInput, problems: VerifyProblem[]): Judged[] {
  const { facts } = input;
  let selectedSet: Set<string> | undefined;
  const isSelected: IsSelected = (address) => {
    selectedSet ??= new Set(input.selection.map((b) => b.address));
    return selectedSet.has(address);
  };
  // One safety judgement for the whole check: built per device, it made 5,000 selected VFs cost
  // 5,000 passes over 10,000 functions.
  const safety = hostSafety(facts, input.usage);
  // The VFs the charm creates are checked per PF (checkSriov): thousands of lines otherwise.
  const planned = new Set((input.sriov ?? []).map((pf) => pf.address));
  // Folding is presentation only: every VF is checked, `ok` is theirs. Each check keeps where its
  // problems sit in `problems` and the PF it is shown under, so showing them looks nothing up;
  // the plan's selection is in address order, so the folds and summaries are too (else sorted).
  const index = functionIndex(facts);
  const judged: Judged[] = [];
  // Indexed loops where every selected VF passes (here and below): they run once, so in V8's
  // interpreter, where a for-of pays for an iterator step per item (docs/ARCHITECTURE.md).
  for (let i = 0; i < input.selection.length; i++) {
    const b = input.selection[i]!;
    if (b.physfn !== undefined && planned.has(b.physfn)) continue;
    const fn = index.get(b.address);
    const from = problems.length;
    const device = checkDevice(b, fn, input, isSelected, safety, problems);
    // Shown under its PF when that PF is on this host; a VF whose PF is not (a guest given the
    // VF alone) stays on its own.
    const pf = input.eachVf || !fn?.physfn || !index.has(fn.physfn) ? undefined : fn.physfn;
    judged.push({ device, pf, from, to: problems.length });
  }
  return judged;
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

/** Problem lines the action-fail message shows; the rest are named by count (all are in the
 * results): `juju run` prints the message whole. */
const MESSAGE_LINES = 5;

function messageLines(lines: string[]): string {
  if (lines.length <= MESSAGE_LINES) return lines.join("; ");
  const more = lines.length - MESSAGE_LINES;
  return `${lines.slice(0, MESSAGE_LINES).join("; ")}; and ${more} more problem${more === 1 ? "" : "s"} (see \`problems\` in the results)`;
}

/** Failing VFs a PF's summary names, each with its first problem; each-vf shows all. */
const FAILING_SHOWN = 8;

/** One selected function as checked: its problems are `problems[from..to)`; `pf` is the PF it
 * is shown under (absent with each-vf, and for anything but a VF of a PF on this host). */
interface Judged {
  device: DeviceCheck;
  pf: string | undefined;
  from: number;
  to: number;
}

/** What a folded line says when the VFs' messages differ (a driver or a group number each). */
const FOLDED_CHECK_WORDS: Partial<Record<VerifyCheck, string>> = {
  ids: "have other ids than selected",
  driver: "are not on vfio-pci",
  group: "have no IOMMU group",
  viability: "are in IOMMU groups that are not viable",
  "vfio-device": `have no ${READ.devVfio}/<group>`,
  "host-use": "are used by the host or share an IOMMU group with something it uses",
};

/** The problem lines to show: a check's lines on several VFs of one PF become one line, where the
 * first of them stood, naming how many, their address range and the first one's problem. Lines of
 * one VF, of a function that is not a VF, and host-wide lines are as they are. */
function foldProblemLines(problems: VerifyProblem[], judged: Judged[], ordered: boolean): string[] {
  // PF → check → its fold: nothing looked up or built per problem but the fold it joins.
  const folds = new Map<string, Map<VerifyCheck, Fold>>();
  const order: Array<string | Fold> = [];
  let next = 0;
  for (let i = 0; i < judged.length; i++) {
    const j = judged[i]!;
    for (; next < j.from; next++) order.push(problems[next]!.message);
    if (j.pf === undefined) continue;
    let byCheck = folds.get(j.pf);
    if (!byCheck) {
      byCheck = new Map();
      folds.set(j.pf, byCheck);
    }
    for (; next < j.to; next++) {
      const p = problems[next]!;
      let fold = byCheck.get(p.check);
      if (!fold) {
        fold = { pf: j.pf, check: p.check, problems: [], devices: [] };
        byCheck.set(p.check, fold);
        order.push(fold);
      }
      fold.problems.push(p);
      if (fold.devices[fold.devices.length - 1] !== j.device) fold.devices.push(j.device);
    }
  }
  for (; next < problems.length; next++) order.push(problems[next]!.message);
  return order.flatMap((o) => (typeof o === "string" ? [o] : foldedLines(o, ordered)));
}

/** One check's problems on VFs of one PF, and those VFs (in the order checked). */
interface Fold {
  pf: string;
  check: VerifyCheck;
  problems: VerifyProblem[];
  devices: DeviceCheck[];
}

function foldedLines(fold: Fold, ordered: boolean): string[] {
  if (fold.devices.length === 1) return fold.problems.map((p) => p.message);
  const vfs = inAddressOrder(fold.devices, ordered, (d) => d.address);
  const firstVf = vfs[0]!.address;
  const first = fold.problems.find((p) => p.device === firstVf)!;
  const what = `${thousands(vfs.length)} VFs of ${fold.pf} (${firstVf} - ${vfs[vfs.length - 1]!.address})`;
  // Each message starts with its VF's address: the rest is what it says of that VF.
  const said = first.message.slice(firstVf.length + 2);
  const same = fold.problems.every(
    (p) => p.message.length - p.device!.length - 2 === said.length && p.message.endsWith(said),
  );
  if (same) return [`${what}: ${said}`];
  let words = FOLDED_CHECK_WORDS[fold.check] ?? `fail the ${fold.check} check`;
  if (fold.check === "driver") {
    const tally = driverTally(vfs.map((d) => d.driver));
    words += ` (${tally.map(([d, n]) => `${d} x${thousands(n)}`).join(", ")})`;
  }
  return [`${what} ${words}; the first: ${first.message}`];
}

/** `list` in address order: as it is when the selection was (the plan's is in bus order, and
 * these lists keep its order), else sorted. */
function inAddressOrder<T>(list: T[], ordered: boolean, address: (item: T) => string): T[] {
  return ordered ? list : [...list].sort((a, b) => (address(a) < address(b) ? -1 : 1));
}

function isInAddressOrder(selection: BoundDevice[]): boolean {
  for (let i = 1; i < selection.length; i++) {
    if (selection[i - 1]!.address > selection[i]!.address) return false;
  }
  return true;
}

/** Driver (or "no driver") → how many, most first. */
function driverTally(drivers: Array<string | null>): Array<[string, number]> {
  const counts = new Map<string | null, number>();
  for (let i = 0; i < drivers.length; i++) {
    const d = drivers[i]!;
    counts.set(d, (counts.get(d) ?? 0) + 1);
  }
  const byWords = new Map<string, number>();
  for (const [d, n] of counts) byWords.set(driverWords(d), (byWords.get(driverWords(d)) ?? 0) + n);
  return [...byWords].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

/** One summary per PF of the selected VFs shown under it, in the PFs' address order. */
function summariseVfChecks(
  judged: Judged[],
  problems: VerifyProblem[],
  ordered: boolean,
): VfChecksSummary[] {
  const byPf = new Map<string, Judged[]>();
  for (let i = 0; i < judged.length; i++) {
    const j = judged[i]!;
    if (j.pf === undefined) continue;
    const list = byPf.get(j.pf);
    if (list) list.push(j);
    else byPf.set(j.pf, [j]);
  }
  return [...byPf]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([pf, list]) => summariseVfs(pf, list, problems, ordered));
}

/** One PF's selected VFs counted in one pass. */
function summariseVfs(
  pf: string,
  list: Judged[],
  problems: VerifyProblem[],
  ordered: boolean,
): VfChecksSummary {
  const sorted = inAddressOrder(list, ordered, (j) => j.device.address);
  const vfs = sorted.map((j) => j.device);
  const failing: VfChecksSummary["failing"] = [];
  let failed = 0;
  let noGroup = 0;
  let notViable = 0;
  let noVfioDevice = 0;
  for (let i = 0; i < sorted.length; i++) {
    const { device: d, from, to } = sorted[i]!;
    if (!d.ok) {
      failed++;
      if (failing.length < FAILING_SHOWN) {
        failing.push({ address: d.address, problem: to > from ? problems[from]!.message : "" });
      }
    }
    if (d.group === null) noGroup++;
    else {
      if (!d.viable) notViable++;
      if (!d.vfioDevice) noVfioDevice++;
    }
  }
  return {
    pf,
    count: vfs.length,
    first: vfs[0]!.address,
    last: vfs[vfs.length - 1]!.address,
    ok: vfs.length - failed,
    drivers: driverTally(vfs.map((d) => d.driver)),
    noGroup,
    notViable,
    noVfioDevice,
    failing,
    moreFailing: Math.max(0, failed - FAILING_SHOWN),
  };
}

function renderVfSummaries(summaries: VfChecksSummary[]): ResultTree {
  const out: ResultTree = {};
  for (const v of summaries) {
    const entry: ResultTree = {
      pf: v.pf,
      ok: yesNo(v.ok === v.count),
      count: String(v.count),
      addresses: v.count === 1 ? v.first : `${v.first} - ${v.last}`,
      "vfs-ok": String(v.ok),
      drivers: v.drivers.map(([d, n]) => `${d} x${n}`).join(", "),
      "without-iommu-group": String(v.noGroup),
      "not-viable": String(v.notViable),
      "without-vfio-device": String(v.noVfioDevice),
    };
    if (v.failing.length > 0) entry.failing = listResult(v.failing, (f) => f.problem);
    if (v.moreFailing > 0)
      entry["failing-more"] = `${thousands(v.moreFailing)} more: run with each-vf=true`;
    out[addressKey(v.pf)] = entry;
  }
  return out;
}

/** One PF's VFs against the plan: how many, on which driver, and whether their IOMMU groups let
 * each go to a different VM (a group holding the PF, or several VFs, has no ACS between them). */
function checkSriov(pf: PlannedPf, facts: HostFacts, problems: VerifyProblem[]): SriovCheck {
  const fn = functionIndex(facts).get(pf.address);
  const before = problems.length;
  const problem = (message: string) =>
    problems.push({ check: "sriov", device: pf.address, message: `${pf.address}: ${message}` });
  const vfs = facts.functions.filter((f) => f.physfn === pf.address);
  const now = fn?.sriov ? fn.sriov.numVfs : null;
  if (!fn) problem("the PF is not on this host");
  else if (now !== pf.numVfs) {
    problem(
      `has ${now ?? 0} VFs, ${pf.numVfs} planned: reboot, or run the sriov-vfs action to apply it now`,
    );
  }
  const drivers = new Map<string, number>();
  const offPlan: string[] = [];
  const withPf: string[] = [];
  const sharing: string[] = [];
  for (const vf of vfs) {
    const d = driverWords(vf.driver);
    drivers.set(d, (drivers.get(d) ?? 0) + 1);
    if (pf.vfDriver === "vfio-pci" && !isVfioDriver(vf.driver)) offPlan.push(vf.address);
    // The one group judgement (host-safety.ts), as the plan makes it for nova.
    const share = vfGroupShare(facts, vf);
    if (share?.withPf) withPf.push(vf.address);
    else if (share && share.vfs.length > 0) sharing.push(vf.address);
  }
  if (offPlan.length > 0) {
    const sample = vfs.find((v) => v.address === offPlan[0]);
    problem(
      `${offPlan.length} of ${vfs.length} VFs are not on vfio-pci (${offPlan[0]} is on ${driverWords(sample?.driver ?? null)}): reboot, or run the sriov-vfs action`,
    );
  }
  if (withPf.length > 0) {
    problem(
      `${withPf.length} VFs share an IOMMU group with their PF (no ACS between them: ${listOf(withPf, 3, ", ")}): ` +
        "none of them can go to a VM while the PF stays with the host; the platform or card gives no isolation here",
    );
  }
  if (sharing.length > 0) {
    problem(
      `${sharing.length} VFs share IOMMU groups with other VFs (no ACS between VFs: ${listOf(sharing, 3, ", ")}): ` +
        "a VM takes a whole group, so nova giving them to different VMs fails; use a card or slot with ACS",
    );
  }
  return {
    pf: pf.address,
    planned: pf.numVfs,
    now,
    vfDriver: pf.vfDriver,
    drivers: [...drivers].sort((a, b) => b[1] - a[1]),
    offPlan,
    withPf,
    sharing,
    ok: problems.length === before,
  };
}

function renderSriov(checks: SriovCheck[]): ResultTree {
  const out: ResultTree = {};
  for (const c of checks) {
    out[addressKey(c.pf)] = {
      pf: c.pf,
      ok: yesNo(c.ok),
      "vfs-planned": String(c.planned),
      "vfs-now": c.now === null ? "PF not present" : String(c.now),
      "vf-driver-planned": c.vfDriver === "vfio-pci" ? "vfio-pci" : "host VF driver (neutron)",
      drivers: c.drivers.length > 0 ? c.drivers.map(([d, n]) => `${d} x${n}`).join(", ") : "none",
      "off-plan": String(c.offPlan.length),
      "sharing-group-with-pf": String(c.withPf.length),
      "sharing-group-with-vfs": String(c.sharing.length),
    };
  }
  return out;
}

/** What the results show of the checks: devices not summarised, lines as folded. */
interface Shown {
  devices: DeviceCheck[];
  problemLines: string[];
  vfSummaries: VfChecksSummary[];
}

function renderResults(
  input: VerifyIommuInput,
  ok: boolean,
  notes: string[],
  missing: string[],
  ir: InterruptRemapping,
  unsafeAllowed: boolean,
  shown: Shown,
): ResultTree {
  const { devices, problemLines, vfSummaries } = shown;
  const { facts } = input;
  const out: ResultTree = {
    ok: yesNo(ok),
    iommu: {
      enabled:
        facts.iommuGroups.size === 0 && facts.iommuGroupsDir === "unreadable"
          ? "unknown"
          : yesNo(facts.iommuGroups.size > 0),
      groups: String(facts.iommuGroups.size),
      units: facts.iommuUnits.length > 0 ? facts.iommuUnits.join(", ") : "none",
    },
    cmdline: {
      running: facts.cmdline ?? "unknown (/proc/cmdline unreadable)",
      planned: input.plannedCmdline.join(" "),
      missing: missing.length > 0 ? missing.join(" ") : "none",
    },
    // arm64 says it in its own terms: MSIs isolated by the GIC ITS, not interrupt remapping.
    [facts.arch === "arm64" ? "msi-isolation" : "interrupt-remapping"]: {
      state: ir.state,
      ...(facts.arch === "arm64" ? { by: "GIC ITS" } : {}),
      evidence: ir.evidence,
      "unsafe-interrupts-allowed": yesNo(unsafeAllowed),
    },
    "vfio-pci": facts.vfioPci,
  };
  const devs: ResultTree = {};
  for (const d of devices) {
    const entry: ResultTree = {
      address: d.address,
      present: yesNo(d.present),
      ok: yesNo(d.ok),
    };
    if (d.present) {
      entry.ids = d.ids ?? "";
      entry.driver = driverWords(d.driver);
      entry["iommu-group"] = d.group === null ? "none" : String(d.group);
      entry.viable = yesNo(d.viable);
      entry["vfio-device"] = yesNo(d.vfioDevice);
      if (d.groupMembers.length > 0) {
        entry["group-members"] = listResult(d.groupMembers, (c) => ({
          address: c.address,
          driver: driverWords(c.driver),
          selected: yesNo(c.selected),
          "blocks-group": yesNo(!c.harmless),
        }));
      }
    }
    devs[addressKey(d.address)] = entry;
  }
  if (devices.length > 0) out.devices = devs;
  if (vfSummaries.length > 0) {
    out["selected-vfs"] = renderVfSummaries(vfSummaries);
    const n = vfSummaries.reduce((sum, v) => sum + v.count, 0);
    out["vfs-summarised"] =
      `${thousands(n)} selected SR-IOV VF${n === 1 ? " is" : "s are"} summarised under ${n === 1 ? "its" : "their"} PF (selected-vfs), and so are ${n === 1 ? "its" : "their"} problems; each-vf=true lists them one by one`;
  }
  if (problemLines.length > 0) out.problems = listResult(problemLines, (p) => p);
  if (notes.length > 0) out.notes = listResult(notes, (n) => n);
  return out;
}
