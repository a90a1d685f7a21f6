// verify-iommu's checks, pure, each problem said on its own: the running command line against
// the planned parameters; each selected function (present with its ids, on vfio-pci, in a group,
// the group viable, /dev/vfio/<group>, nothing in the group the host uses); each PF's VFs against
// the SR-IOV plan. The verdict is verify-iommu.ts; what is shown of it, verify-iommu-results.ts.
import type { HostFacts, HostUsage, PciFunction } from "../host/facts";
import type { InterruptRemapping } from "../host/interrupt-remapping";
import { READ } from "../host/root";
import { kernelParamName } from "../kernel-param-vocabulary";
import { type HostSafety, hostSafety, vfGroupShare } from "../plan/host-safety";
import { functionIndex, groupMates, isHarmlessMember, isVfioDriver } from "../plan/iommu-groups";
import type { PlannedPf } from "../plan/sriov";
import { NO_GRUB } from "../plan/status";
import type { BoundDevice, WithheldFunction } from "../plan/types";
import { driverWords, listOf } from "../text";

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

/** One selected function as checked: its problems are `problems[from..to)`; `pf` is the PF it
 * is shown under (absent with each-vf, and for anything but a VF of a PF on this host). */
export interface Judged {
  device: DeviceCheck;
  pf: string | undefined;
  from: number;
  to: number;
}

export function normalisedParam(param: string): string {
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
export function checkSelection(input: VerifyIommuInput, problems: VerifyProblem[]): Judged[] {
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

/** One PF's VFs against the plan: how many, on which driver, and whether their IOMMU groups let
 * each go to a different VM (a group holding the PF, or several VFs, has no ACS between them). */
export function checkSriov(pf: PlannedPf, facts: HostFacts, problems: VerifyProblem[]): SriovCheck {
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
