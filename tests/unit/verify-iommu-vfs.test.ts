// verify-iommu with SR-IOV VFs selected (issue 23): each VF is checked as any function, then shown
// summarised under its PF (`selected-vfs`, one problem line per PF and check), as list-devices
// shows them; each-vf=true shows every VF on its own. Folding is presentation only: `ok` and the
// problems found are the same either way.
import { beforeAll, describe, expect, it } from "vitest";
import type { ResultTree } from "../../src/actions/results";
import {
  parseVerifyIommuParams,
  type VerifyIommuInput,
  verifyIommu,
} from "../../src/actions/verify-iommu";
import { parseConfig } from "../../src/config";
import type { HostFacts } from "../../src/host/facts";
import { decideHost } from "../../src/plan/plan-host";
import type { HostDecisions } from "../../src/plan/types";
import { bound } from "../support/bound-devices";
import { fn, host, netPf, netVf } from "../support/host-facts";
import { syntheticHost } from "../support/hosts/presets";

/** Every leaf of a results tree: one action-set key each. */
function keyCount(tree: ResultTree): number {
  let n = 0;
  for (const value of Object.values(tree)) n += typeof value === "string" ? 1 : keyCount(value);
  return n;
}

const sub = (tree: ResultTree, ...keys: string[]): ResultTree =>
  keys.reduce((t, k) => t[k] as ResultTree, tree);
/** The problem lines in Juju's (sorted key) order: JS puts integer-like keys ("10") first. */
const lines = (tree: ResultTree) =>
  Object.entries((tree.problems ?? {}) as ResultTree)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, line]) => line);

describe("parseVerifyIommuParams", () => {
  it("takes each-vf (default false) and nothing else", () => {
    expect(parseVerifyIommuParams({})).toEqual({ ok: true, params: { eachVf: false } });
    expect(parseVerifyIommuParams({ "each-vf": true })).toEqual({
      ok: true,
      params: { eachVf: true },
    });
    const wrong = parseVerifyIommuParams({ "each-vf": "yes" });
    expect(wrong.ok).toBe(false);
    expect(!wrong.ok && wrong.errors[0]!.message).toBe("each-vf must be a boolean");
  });
});

// A small host in memory: a ConnectX PF with five VFs, a GPU, and a VF whose PF is not on the host.
const PF = "0000:10:00.0";
const CX = "15b3:1018";
const VF = ["0000:10:00.1", "0000:10:00.2", "0000:10:00.3", "0000:10:00.4", "0000:10:00.5"];
const LONE_VF = "0000:20:00.1";
const GPU = "0000:83:00.0";
const RUNNING = "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro intel_iommu=on iommu=pt";

function smallHost(drivers: Array<string | null>): HostFacts {
  const facts = host(
    [
      netPf(PF, "15b3:1017", "mlx5_core", 1, { numVfs: VF.length, totalVfs: 8 }),
      ...VF.map((a, i) => netVf(a, CX, drivers[i] ?? null, 10 + i, PF)),
      // Its PF was passed to a guest, or hidden: nothing to summarise it under.
      netVf(LONE_VF, CX, "mlx5_core", 30, "0000:20:00.0"),
      fn(GPU, "10de:1bb0", "030000", { driver: "nouveau", iommuGroup: 60 }),
    ],
    { cmdline: RUNNING },
  );
  // /dev/vfio/<group> exists for the VFs on vfio-pci, as the kernel makes it.
  facts.vfioDevices = new Set(
    facts.functions.filter((f) => f.driver === "vfio-pci").map((f) => f.iommuGroup!),
  );
  return facts;
}

function verifySmall(facts: HostFacts, over: Partial<VerifyIommuInput> = {}) {
  return verifyIommu({
    facts,
    plannedCmdline: ["intel_iommu=on", "iommu=pt", "vfio-pci.ids=10de:1bb0"],
    selection: [
      ...VF.map((a) => bound(a, CX, "vf", { classCode: "020000" })),
      bound(LONE_VF, CX, "vf", { classCode: "020000" }),
      bound(GPU, "10de:1bb0", "gpu"),
    ],
    usage: new Map(),
    interruptRemapping: { state: "enabled", evidence: "test" },
    ...over,
  });
}

describe("verify-iommu folds selected VFs under their PF", () => {
  it("one line per PF and check; mixed drivers counted; host-wide and other lines unchanged", () => {
    const facts = smallHost(["mlx5_core", "mlx5_core", null, "vfio-pci", "mlx5_core"]);
    const folded = verifySmall(facts);
    const each = verifySmall(facts, { eachVf: true });
    // The judgement is the same: same verdict, same problems, one per VF and check.
    expect(folded.ok).toBe(false);
    expect(folded.problems).toEqual(each.problems);
    expect(each.problemLines).toEqual(each.problems.map((p) => p.message));
    const moveNow = "not vfio-pci; reboot, or run the rebind action to move it now";
    const devVfio = "is missing (it appears once a group member is on vfio-pci)";
    expect(folded.problemLines).toEqual([
      // Host-wide: as it was.
      "the running kernel was not booted with vfio-pci.ids=10de:1bb0; reboot so the charm's grub drop-in takes effect",
      // Four VFs of one check, three drivers among them: counted, the first one's problem named.
      `4 VFs of ${PF} (0000:10:00.1 - 0000:10:00.5) are not on vfio-pci (mlx5_core x3, no driver x1); the first: 0000:10:00.1: is on mlx5_core, ${moveNow}`,
      `4 VFs of ${PF} (0000:10:00.1 - 0000:10:00.5) have no /dev/vfio/<group>; the first: 0000:10:00.1: /dev/vfio/10 ${devVfio}`,
      // A VF with no PF on the host, and a function that is no VF: line by line, as before.
      `${LONE_VF}: is on mlx5_core, ${moveNow}`,
      `${LONE_VF}: /dev/vfio/30 ${devVfio}`,
      `${GPU}: is on nouveau, ${moveNow}`,
      `${GPU}: /dev/vfio/60 ${devVfio}`,
    ]);
    expect(lines(folded.results)).toEqual(folded.problemLines);
    expect(folded.message).toBe(
      `passthrough not ready: ${folded.problemLines.slice(0, 5).join("; ")}; and 2 more problems (see \`problems\` in the results)`,
    );

    const devices = folded.results.devices as ResultTree;
    expect(Object.keys(devices).sort()).toEqual(["0000-20-00-1", "0000-83-00-0"]);
    expect(sub(folded.results, "selected-vfs", "0000-10-00-0")).toEqual({
      pf: PF,
      ok: "no",
      count: "5",
      addresses: "0000:10:00.1 - 0000:10:00.5",
      "vfs-ok": "1",
      drivers: "mlx5_core x3, no driver x1, vfio-pci x1",
      "without-iommu-group": "0",
      "not-viable": "0",
      "without-vfio-device": "4",
      failing: {
        "1": `0000:10:00.1: is on mlx5_core, ${moveNow}`,
        "2": `0000:10:00.2: is on mlx5_core, ${moveNow}`,
        "3": `0000:10:00.3: is on no driver, ${moveNow}`,
        "4": `0000:10:00.5: is on mlx5_core, ${moveNow}`,
      },
    });
    expect(folded.results["vfs-summarised"]).toBe(
      "5 selected SR-IOV VFs are summarised under their PF (selected-vfs), and so are their problems; each-vf=true lists them one by one",
    );
  });

  it("a selection out of address order folds and summarises as one in order", () => {
    const facts = smallHost(["mlx5_core", "mlx5_core", null, "vfio-pci", "mlx5_core"]);
    const vfs = VF.map((a) => bound(a, CX, "vf", { classCode: "020000" }));
    const inOrder = verifySmall(facts, { selection: vfs });
    const reversed = verifySmall(facts, { selection: [...vfs].reverse() });
    // The range, "the first" VF and the summary's failing list are by address, not by the order
    // the plan happened to give.
    expect(reversed.problemLines).toEqual(inOrder.problemLines);
    expect(reversed.vfSummaries).toEqual(inOrder.vfSummaries);
    expect(reversed.problemLines[1]).toContain("(0000:10:00.1 - 0000:10:00.5)");
  });

  it("VFs that say the same thing: the line is that thing, with the count and range", () => {
    const r = verifySmall(smallHost(VF.map(() => "mlx5_core")), {
      selection: VF.map((a) => bound(a, CX, "vf", { classCode: "020000" })),
      plannedCmdline: [],
    });
    // Each VF's /dev/vfio line names its own group: those differ, the driver lines do not.
    expect(r.problemLines[0]).toBe(
      `5 VFs of ${PF} (0000:10:00.1 - 0000:10:00.5): is on mlx5_core, not vfio-pci; reboot, or run the rebind action to move it now`,
    );
    expect(r.problemLines).toHaveLength(2);
  });

  it("a PF's VFs all ok: no problem, the summary says so", () => {
    const r = verifySmall(smallHost(VF.map(() => "vfio-pci")), {
      selection: VF.map((a) => bound(a, CX, "vf", { classCode: "020000" })),
      plannedCmdline: [],
    });
    expect(r.ok).toBe(true);
    expect(r.message).toMatch(/, 5 selected functions on vfio-pci in viable groups$/);
    expect(r.results.problems).toBeUndefined();
    expect(sub(r.results, "selected-vfs", "0000-10-00-0")).toMatchObject({
      ok: "yes",
      "vfs-ok": "5",
      drivers: "vfio-pci x5",
      "without-vfio-device": "0",
    });
    expect(sub(r.results, "selected-vfs", "0000-10-00-0").failing).toBeUndefined();
  });

  it("each-vf=true: every VF its own devices entry and lines, no summary", () => {
    const r = verifySmall(smallHost(VF.map(() => "mlx5_core")), { eachVf: true });
    const devices = r.results.devices as ResultTree;
    for (const a of VF) {
      expect(devices[a.replace(/[:.]/g, "-")]).toMatchObject({
        address: a,
        driver: "mlx5_core",
        "vfio-device": "no",
        ok: "no",
      });
    }
    expect(r.results["selected-vfs"]).toBeUndefined();
    expect(r.results["vfs-summarised"]).toBeUndefined();
    expect(lines(r.results)).toEqual(r.problems.map((p) => p.message));
  });
});

/** The scale bench's host (syntheticHost) as facts, in memory: the tree on disk takes seconds to
 * build, and the readers are not what is tested here. Half its VFs on mlx5_core, half unbound. */
function syntheticFacts(n: number): HostFacts {
  const spec = syntheticHost(n);
  return host(
    spec.pci!.map((p) =>
      fn(p.address, `${p.vendor}:${p.device}`, p.class!, {
        driver: p.driver ?? null,
        iommuGroup: p.iommuGroup ?? null,
        physfn: p.physfn ?? null,
        sriov: p.sriov ? { totalVfs: p.sriov.totalVfs, numVfs: p.sriov.numVfs } : null,
      }),
    ),
    { cmdline: spec.cmdline!, iommuUnits: ["ivhd0"], cpuVendor: "amd" },
  );
}

describe("verify-iommu at 10,000 functions, every VF selected (the scale bench's host)", () => {
  let facts: HostFacts;
  let plan: HostDecisions;
  const verifyTree = (eachVf: boolean) =>
    verifyIommu({
      facts,
      plannedCmdline: plan.kernelParams,
      selection: plan.bind,
      withheld: plan.withheld,
      usage: new Map(),
      interruptRemapping: { state: "enabled", evidence: "test" },
      sriov: plan.sriov,
      eachVf,
    });
  beforeAll(() => {
    facts = syntheticFacts(10_000);
    const config = parseConfig({ devices: "15b3:1018" });
    if (!config.ok) throw new Error(JSON.stringify(config.errors));
    // What the glue shows comes from the plan a hook would make (src/charm-actions.ts).
    plan = decideHost(config.config, facts, null, { boundIds: {} });
  });

  it("hands Juju a bounded number of keys, a line per PF and check, and a short message", () => {
    expect(facts.functions).toHaveLength(10_000);
    const vfs = facts.functions.filter((f) => f.physfn !== null);
    const pfs = [...new Set(vfs.map((f) => f.physfn!))].sort();
    expect(plan.bind).toHaveLength(vfs.length);
    expect(vfs.length).toBeGreaterThan(9_900);

    const r = verifyTree(false);
    const each = verifyTree(true);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual(each.problems);
    // Today's per-VF form was ~100,000 keys (bench/RESULTS.md); folded, a few per PF.
    expect(keyCount(each.results)).toBeGreaterThan(90_000);
    expect(keyCount(r.results)).toBeLessThanOrEqual(2_000);
    expect(r.results.devices).toBeUndefined();

    // Host-wide lines stay; every VF line folds into two per PF (driver, /dev/vfio).
    const hostWide = r.problems.filter((p) => p.device === null).map((p) => p.message);
    expect(r.problemLines.slice(0, hostWide.length)).toEqual(hostWide);
    expect(r.problemLines).toHaveLength(hostWide.length + 2 * pfs.length);
    const first = pfs[0]!;
    const mine = vfs.filter((f) => f.physfn === first).map((f) => f.address);
    const range = `${mine[0]} - ${mine[mine.length - 1]}`;
    const n = mine.length.toLocaleString("en-US");
    const half = (mine.length / 2).toLocaleString("en-US");
    expect(r.problemLines[hostWide.length]).toBe(
      `${n} VFs of ${first} (${range}) are not on vfio-pci (mlx5_core x${half}, no driver x${half}); the first: ${mine[0]}: is on mlx5_core, not vfio-pci; reboot, or run the rebind action to move it now`,
    );
    expect(r.problemLines[hostWide.length + 1]).toMatch(
      new RegExp(`^${n} VFs of ${first} \\(${range}\\) have no /dev/vfio/<group>; the first: `),
    );

    const summary = sub(r.results, "selected-vfs");
    expect(Object.keys(summary)).toHaveLength(pfs.length);
    const pf = sub(summary, first.replace(/[:.]/g, "-"));
    expect(pf).toMatchObject({
      pf: first,
      ok: "no",
      count: String(mine.length),
      addresses: range,
      "vfs-ok": "0",
      drivers: `mlx5_core x${mine.length / 2}, no driver x${mine.length / 2}`,
      "without-iommu-group": "0",
      "not-viable": "0",
      "without-vfio-device": String(mine.length),
      "failing-more": `${(mine.length - 8).toLocaleString("en-US")} more: run with each-vf=true`,
    });
    expect(Object.values(pf.failing as ResultTree)).toHaveLength(8);
    expect((pf.failing as ResultTree)["1"]).toBe(
      `${mine[0]}: is on mlx5_core, not vfio-pci; reboot, or run the rebind action to move it now`,
    );

    // The action-fail line: whole lines, the first folded one among them, the rest counted.
    expect(r.message.length).toBeLessThan(2_000);
    expect(r.message).toContain(r.problemLines[hostWide.length]!);
    expect(r.message).toMatch(/; and \d+ more problems \(see `problems` in the results\)$/);
  });
});
