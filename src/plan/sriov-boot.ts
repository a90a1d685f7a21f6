// When the boot that should have made a PF's VFs has happened and the count is still wrong, a
// reboot will not help: the kernel refused (sriov_enable: ENOMEM "not enough MMIO resources for
// SR-IOV", "SR-IOV: bus number out of range", or the PF's driver said EBUSY/EAGAIN). Pure: the
// rule's memory (which boot wrote it), the running boot id and the kernel's own words in; what
// to tell the operator out.
import { listOf } from "../text";
import { vfCountChange } from "./sriov";
import type { FileSpec, PlannedPf } from "./types";

/** Which rule content the host has, and the boot during which the charm wrote it. */
export interface SriovRuleMemory {
  /** A digest of the rule file's bytes (the plan's FileSpec content). */
  digest: string;
  /** /proc/sys/kernel/random/boot_id when that content was written. */
  bootId: string;
}

/** The memory after this hook: kept while the rule is the same, renewed with the running boot
 * when it changed (a new plan needs a new boot); none without a rule or a boot id. */
export function rememberSriovRule(
  previous: SriovRuleMemory | undefined,
  digest: string | null,
  bootId: string | null,
): SriovRuleMemory | undefined {
  if (digest === null || bootId === null) return undefined;
  if (previous?.digest === digest) return previous;
  return { digest, bootId };
}

/** The rule file among the plan's files (its path is given: plan/ names no host paths). */
export function ruleContent(files: FileSpec[], rulePath: string): string | null {
  return files.find((f) => f.path === rulePath)?.content ?? null;
}

/** A PF whose VFs the boot should have made and did not. */
export interface SriovBootFailure {
  pf: string;
  planned: number;
  has: number;
  /** The kernel's records about it (its SR-IOV and our helper's lines), oldest first. */
  kernel: string[];
  /** What fixes it, in operator words. */
  fix: string;
}

/** Kernel records that speak of SR-IOV, VFs or our helper (others merely name the device). */
const RELEVANT = /sr-?iov|\bvfs?\b|numvfs|mmio|bus number|sriov_configure|pci-passthrough/i;

/** The PFs the last boot failed: a boot happened since the rule was written and the count is
 * still not the plan's. `kernel(pf)` gives the log records that name the PF (null: unreadable). */
export function sriovBootFailures(
  pfs: PlannedPf[],
  rule: SriovRuleMemory | undefined,
  bootId: string | null,
  kernel: (pf: string) => string[] | null,
): SriovBootFailure[] {
  if (!rule || bootId === null || rule.bootId === bootId) return [];
  const failures: SriovBootFailure[] = [];
  for (const pf of pfs) {
    if (vfCountChange(pf) === null) continue;
    const said = (kernel(pf.address) ?? []).filter((l) => RELEVANT.test(l));
    failures.push({
      pf: pf.address,
      planned: pf.numVfs,
      has: pf.currentVfs,
      kernel: said,
      fix: fixFor(said),
    });
  }
  return failures;
}

const REALLOC =
  "give the kernel room for the VFs' BARs: `juju config pci-passthrough extra-kernel-params=pci=realloc` " +
  "(added to what is there), and turn on SR-IOV and Above 4G Decoding in the firmware setup, then reboot";

/** The fix the kernel's words point at. */
function fixFor(said: string[]): string {
  const text = said.join("\n");
  if (/mmio|bus number|resource|-12\b|ENOMEM|cannot allocate/i.test(text)) return REALLOC;
  if (/EBUSY|-16\b|busy|EAGAIN|-11\b|try again/i.test(text)) {
    return (
      "the PF's driver refused to enable VFs now: update its driver and firmware, check what " +
      "holds the PF (switchdev mode, RDMA, a bond, another agent), then run the sriov-vfs action"
    );
  }
  return `the kernel log of this boot says nothing more (dmesg | grep <PF>); usually the fix is to ${REALLOC}`;
}

/** One status clause for these failures: never "reboot", since a boot already failed. */
export function describeBootFailures(failures: SriovBootFailure[]): string {
  return listOf(
    failures.map((f) => {
      const said =
        f.kernel.length > 0
          ? `the kernel said "${f.kernel.slice(-2).join('" / "')}"`
          : "the kernel log holds no reason";
      return `the boot did not create ${f.pf}'s ${f.planned} VFs (it has ${f.has}): ${said}; ${f.fix}`;
    }),
    2,
    "; ",
  );
}
