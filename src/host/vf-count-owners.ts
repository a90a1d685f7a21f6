// Who else on this host sets a PF's number of VFs at boot: netplan (any file with
// `virtual-function-count`, or VFs declared with `link:`; ovn-chassis writes its own such file)
// and sriov-netplan-shim (neutron-openvswitch). Read only: plan/vf-count-owners.ts compares what
// they say with the `vfs` the plan gives each PF. Every format here is the one those programs read:
// - netplan: `network.ethernets.<id>.virtual-function-count: N`, VFs as `ethernets.<vf>.link: <id>`;
//   the interface is the id, or `set-name`, or `match.name` (netplan's own matching);
// - sriov-netplan-shim: `interfaces.<name>: {match: {pciaddress: '<address>'}, num_vfs: N}`.
import type { HostReadProblem } from "./facts";
import { listDir, readSmallFile } from "./read-files";
import { NEIGHBOURS } from "./root";

/** The program that writes the count at boot, named as an operator knows it. */
export type VfCountOwner = "ovn-chassis" | "neutron-openvswitch" | "netplan";

/** One PF's VF count as another owner on the host sets it. */
export interface VfCountClaim {
  owner: VfCountOwner;
  /** The host path of the file that says it (the last one, for netplan's merged view). */
  path: string;
  /** The interface as the file names it (netplan id, shim key). */
  interface: string;
  /** Other names that select the same interface: netplan `set-name`, `match.name` (may be a glob). */
  matchNames: string[];
  /** The PCI address the file matches on (sriov-netplan-shim's `match.pciaddress`), else null. */
  pciAddress: string | null;
  /** The number of VFs it writes. */
  count: number;
  /** How the file says it: `virtual-function-count`, `num_vfs`, or `N VFs declared with link:`. */
  key: string;
}

/** Every PF VF count the host's other owners set at boot. Never throws: an unreadable or malformed
 * file is a problem naming its path (and says nothing about counts). */
export function readVfCountClaims(root: string, problems: HostReadProblem[]): VfCountClaim[] {
  return [...readNetplanClaims(root, problems), ...readShimClaims(root, problems)];
}

type Yaml = typeof import("yaml");
/** `yaml` is loaded on first use, as config.ts does: most hooks never read these files. */
function yaml(): Yaml {
  return require("yaml");
}

function parseYaml(text: string, path: string, problems: HostReadProblem[]): unknown {
  try {
    const doc = yaml().parseDocument(text, { prettyErrors: false });
    if (doc.errors.length > 0) throw doc.errors[0];
    return doc.toJS();
  } catch (error) {
    problems.push({
      kind: "malformed",
      path,
      address: null,
      message: `${path} is not valid YAML (${String((error as Error).message ?? error).split("\n")[0]}); the VF counts it may set are not known — check it with \`netplan get\` or by hand`,
    });
    return null;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function count(v: unknown): number | null {
  const n = typeof v === "string" && /^\d+$/.test(v.trim()) ? Number(v) : v;
  return typeof n === "number" && Number.isInteger(n) && n >= 0 ? n : null;
}

/** netplan's files in its own order: `*.yaml` of /lib, /etc and /run/netplan, a name in a later
 * directory hiding the same name in an earlier one, then sorted by file name. */
function netplanFiles(root: string, problems: HostReadProblem[]): string[] {
  const byName = new Map<string, string>();
  for (const dir of NEIGHBOURS.netplanDirs) {
    for (const name of listDir(root, dir, problems) ?? []) {
      if (name.endsWith(".yaml")) byName.set(name, `${dir}/${name}`);
    }
  }
  return [...byName.keys()].sort().map((name) => byName.get(name)!);
}

interface NetplanDef {
  path: string;
  explicit: number | null;
  link: string | null;
  setName: string | null;
  matchName: string | null;
}

/** netplan's merged view of `ethernets`: a later file's keys win for the same id. */
function readNetplanClaims(root: string, problems: HostReadProblem[]): VfCountClaim[] {
  const defs = new Map<string, NetplanDef>();
  for (const path of netplanFiles(root, problems)) {
    const text = readSmallFile(root, path, problems, "the VF counts it may set are not known");
    if (text === null) continue;
    const doc = parseYaml(text, path, problems);
    const network = isRecord(doc) ? doc.network : null;
    const ethernets = isRecord(network) ? network.ethernets : null;
    if (!isRecord(ethernets)) continue;
    for (const [id, raw] of Object.entries(ethernets)) {
      if (!isRecord(raw)) continue;
      const before = defs.get(id);
      const match = isRecord(raw.match) ? raw.match : {};
      const explicit = count(raw["virtual-function-count"]);
      defs.set(id, {
        path: explicit !== null || !before ? path : before.path,
        explicit: explicit ?? before?.explicit ?? null,
        link: typeof raw.link === "string" ? raw.link : (before?.link ?? null),
        setName: typeof raw["set-name"] === "string" ? raw["set-name"] : (before?.setName ?? null),
        matchName: typeof match.name === "string" ? match.name : (before?.matchName ?? null),
      });
    }
  }
  // netplan gives a PF as many VFs as are declared with `link: <pf>`, unless it says how many.
  const linked = new Map<string, { n: number; path: string }>();
  for (const def of defs.values()) {
    if (def.link === null) continue;
    const seen = linked.get(def.link);
    linked.set(def.link, { n: (seen?.n ?? 0) + 1, path: def.path });
  }
  const claims: VfCountClaim[] = [];
  for (const [id, def] of defs) {
    const vfs = linked.get(id);
    const n = def.explicit ?? vfs?.n ?? null;
    if (n === null) continue;
    const path = def.explicit !== null ? def.path : vfs!.path;
    claims.push({
      owner: path.endsWith(`/${NEIGHBOURS.ovnChassisNetplanName}`) ? "ovn-chassis" : "netplan",
      path,
      interface: id,
      matchNames: [def.setName, def.matchName].filter((x): x is string => x !== null),
      pciAddress: null,
      count: n,
      key: def.explicit !== null ? "virtual-function-count" : `${n} VFs declared with link: ${id}`,
    });
  }
  return claims;
}

function readShimClaims(root: string, problems: HostReadProblem[]): VfCountClaim[] {
  const path = NEIGHBOURS.sriovNetplanShim;
  const text = readSmallFile(root, path, problems, "the VF counts it may set are not known");
  if (text === null) return [];
  const doc = parseYaml(text, path, problems);
  const interfaces = isRecord(doc) ? doc.interfaces : null;
  if (!isRecord(interfaces)) return [];
  const claims: VfCountClaim[] = [];
  for (const [name, raw] of Object.entries(interfaces)) {
    if (!isRecord(raw)) continue;
    const n = count(raw.num_vfs);
    if (n === null) continue;
    const match = isRecord(raw.match) ? raw.match : {};
    const address = typeof match.pciaddress === "string" ? match.pciaddress.toLowerCase() : null;
    claims.push({
      owner: "neutron-openvswitch",
      path,
      interface: name,
      matchNames: [],
      pciAddress: address,
      count: n,
      key: "num_vfs",
    });
  }
  return claims;
}
