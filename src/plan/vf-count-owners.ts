// Living beside the other owners of a PF's VF count. ovn-chassis and neutron-openvswitch default
// `sriov-numvfs` to `auto` (every SR-IOV PF gets sriov_totalvfs VFs) and write it at every boot
// (netplan's udev rule, sriov-netplan-shim.service): if they disagree with `vfs`, the two fight
// over the count at each boot, the unit says "reboot required" forever and recreated VFs land on
// the host driver. Pure: the planned PFs, the host facts and what the others' files say in; the
// disagreements, each with the exact setting that makes the owner agree, out.
import type { HostFacts } from "../host/facts";
import type { VfCountClaim, VfCountOwner } from "../host/vf-count-owners";
import { byAddress } from "../pci-vocabulary";
import type { PlannedPf, PlanProblem } from "./types";

/** A planned PF whose count another owner sets differently. */
export interface VfCountDisagreement {
  pf: PlannedPf;
  /** The PF's network interface, as the owner names it. */
  interface: string;
  claim: VfCountClaim;
}

/** Whether a netplan `match.name` (shell glob: `*`, `?`, `[...]`) selects `name`. */
function globMatches(pattern: string, name: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(name);
}

/** The claims that speak for `pf`: by its PCI address, or by one of its network interfaces. For
 * netplan only the merged view counts (the reader gives one claim per netplan id). */
export function claimsFor(
  pf: { address: string },
  netInterfaces: string[],
  claims: VfCountClaim[],
): Array<{ claim: VfCountClaim; interface: string }> {
  const out: Array<{ claim: VfCountClaim; interface: string }> = [];
  for (const claim of claims) {
    if (claim.pciAddress !== null) {
      if (claim.pciAddress === pf.address) out.push({ claim, interface: claim.interface });
      continue;
    }
    const name = netInterfaces.find(
      (n) => n === claim.interface || claim.matchNames.some((m) => globMatches(m, n)),
    );
    if (name !== undefined) out.push({ claim, interface: name });
  }
  return out;
}

/** Every planned PF whose VF count another owner on the host sets differently, by PF address. */
export function vfCountDisagreements(
  pfs: PlannedPf[],
  facts: HostFacts,
  claims: VfCountClaim[],
): VfCountDisagreement[] {
  if (claims.length === 0) return [];
  const byAddr = new Map(facts.functions.map((f) => [f.address, f]));
  const out: VfCountDisagreement[] = [];
  for (const pf of [...pfs].sort(byAddress)) {
    const names = byAddr.get(pf.address)?.netInterfaces ?? [];
    for (const { claim, interface: name } of claimsFor(pf, names, claims)) {
      if (claim.count !== pf.numVfs) out.push({ pf, interface: name, claim });
    }
  }
  return out;
}

/** The charms' option, set in its explicit form so `auto` (= sriov_totalvfs) no longer applies:
 * every interface the owner's file lists keeps its count, the disagreeing ones take the plan's.
 * `sriov-numvfs` is one setting for the whole application (every host it runs on). */
export function ownerFixLine(
  owner: VfCountOwner,
  claims: VfCountClaim[],
  wanted: Map<string, number>,
): string | null {
  if (owner === "netplan") return null;
  const listed = claims.filter((c) => c.owner === owner);
  const pairs = new Map<string, number>();
  for (const c of listed) pairs.set(c.interface, wanted.get(c.interface) ?? c.count);
  for (const [name, n] of wanted) if (!pairs.has(name)) pairs.set(name, n);
  const value = [...pairs].map(([name, n]) => `${name}:${n}`).join(" ");
  return `juju config ${owner} sriov-numvfs="${value}"`;
}

const WHERE: Record<VfCountOwner, string> = {
  "ovn-chassis": "its sriov-numvfs option",
  "neutron-openvswitch": "its sriov-numvfs option",
  netplan: "netplan",
};

/** One blocking problem per owner that disagrees, naming each PF, both counts, the file, and the
 * exact line that makes the owner agree (or the plan's alternative: take the owner's count). */
export function vfCountProblems(
  disagreements: VfCountDisagreement[],
  claims: VfCountClaim[],
): PlanProblem[] {
  const owners = [...new Set(disagreements.map((d) => d.claim.owner))];
  return owners.map((owner) => {
    const mine = disagreements.filter((d) => d.claim.owner === owner);
    const wanted = new Map(mine.map((d) => [d.interface, d.pf.numVfs]));
    const each = mine
      .map(
        (d) =>
          `${d.pf.address} (${d.interface}) gets ${d.pf.numVfs} VFs from ${d.pf.entry}, but ${owner} sets ` +
          `${d.claim.count} (${d.claim.key} in ${d.claim.path})`,
      )
      .join("; ");
    const line = ownerFixLine(owner, claims, wanted);
    const fix =
      line !== null
        ? `make ${owner} agree: ${line}`
        : `make netplan agree: set virtual-function-count: ${mine.map((d) => `${d.pf.numVfs} under ${d.interface}`).join(", ")} in ${[...new Set(mine.map((d) => d.claim.path))].join(", ")}`;
    const theirs = mine.map((d) => `vfs: ${d.claim.count} for ${d.pf.address}`).join(", ");
    return {
      option: "devices",
      message:
        `${each}. ${owner} writes its count at every boot (${WHERE[owner]}), so the two would fight ` +
        `over the VFs: nothing was written. Either ${fix}; or take ${owner}'s count (${theirs}).`,
    };
  });
}
