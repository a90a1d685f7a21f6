// Issue 21 item 8: stored state at any size. Juju refuses a stored value over 64 KiB
// (quota.CheckTupleSize; the simulator enforces it in state-set). A host whose 4,096 VFs are on
// vfio-pci after its reboot, selected by ids, through the packed dispatch: every hook exits 0, every
// stored value stays within the quota (the charm stores a digest of what it publishes, never the
// value), the published value is compact (nova regex addresses, not one spec per function), and
// Debian's real nova admits every selected function and nothing else.
import { spawnSync } from "node:child_process";
import { CHARM_STATE_QUOTA } from "ops-ts-shim/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CharmUnderTest, deployPackedCharm } from "../support/charm-process";
import { makeTempHost } from "../support/hosts/build-host";
import { syntheticHost } from "../support/hosts/presets";
import { novaComputeRelation } from "../support/relations";

const PYTHON = "/usr/bin/python3";
/** 3 ConnectX-5 PFs and 4,096 VFs (syntheticHost: VFs follow their PF's routing ids). */
const SPEC = syntheticHost(4_099);
/** After the boot: every VF on vfio-pci, the IOMMU parameters on the command line. */
const REBOOTED = {
  ...SPEC,
  cmdline: `${SPEC.cmdline} amd_iommu=on`,
  pci: SPEC.pci!.map((p) => (p.physfn ? { ...p, driver: "vfio-pci" } : p)),
};
const VFS = REBOOTED.pci.filter((p) => p.physfn).map((p) => p.address);

describe("4,096 functions on vfio-pci selected by ids (issue 21 item 8)", () => {
  let host: ReturnType<typeof makeTempHost>;
  let unit: CharmUnderTest;
  beforeAll(() => {
    host = makeTempHost(REBOOTED, "pci-4096-");
    unit = deployPackedCharm(host.root, {
      config: { devices: "15b3:1018" },
      relations: [novaComputeRelation()],
    });
  }, 300_000);
  afterAll(() => {
    unit?.cleanup();
    host?.cleanup();
  });

  it("there are 4,096 VFs, all on vfio-pci", () => {
    expect(VFS).toHaveLength(4_096);
  });

  it("every hook exits 0 and every stored value is within Juju's 64 KiB quota", () => {
    const events = [
      "install",
      "config-changed",
      "start",
      { name: "nova-compute-relation-joined", relationId: 7, remoteUnit: "nova-compute/0" },
      { name: "nova-compute-relation-changed", relationId: 7, remoteUnit: "nova-compute/0" },
      "update-status",
      "update-status",
      "config-changed",
    ] as const;
    for (const event of events) {
      const r = unit.dispatch(event);
      expect(r.exitCode, `${JSON.stringify(event)}: ${r.stderr.slice(-2000)}`).toBe(0);
    }
    const stored = unit.sim.readState().stored;
    expect(Object.keys(stored).length).toBeGreaterThan(0);
    for (const [key, value] of Object.entries(stored)) {
      expect(Buffer.byteLength(value), key).toBeLessThanOrEqual(CHARM_STATE_QUOTA.maxValueSize);
    }
    expect(stored["nova-published"]).toBeUndefined();
    expect(stored["nova-published-sha256"]).toBeUndefined();
    expect(stored["nova-published-fingerprint"]).toMatch(/^"cyrb53:[0-9a-f]{14}:\d+"$/);
  }, 600_000);

  it("the published value is compact, and Debian's real nova admits every VF and nothing else", () => {
    const raw = unit.sim.readState().relations[0]!.localUnitData.subordinate_configuration!;
    // One spec per function was 549,072 bytes: now a handful of regex address sets.
    expect(raw.length).toBeLessThan(4 * 1024);
    const pairs = JSON.parse(raw).nova["/etc/nova/nova.conf"].sections.pci as [string, string][];
    const specs = pairs.filter(([k]) => k !== "alias").map(([, v]) => v);
    expect(specs.length).toBeLessThan(20);
    const devices = [
      ...REBOOTED.pci.map((p) => ({ address: p.address, product_id: p.device })),
      // Same ids, addresses nothing selected: a loose regex would admit them.
      { address: "0000:ff:1f.7", product_id: "1018" },
      { address: "0001:10:00.1", product_id: "1018" },
    ];
    const script = [
      "import json, sys",
      "from nova.pci import whitelist",
      "specs, devices = json.load(sys.stdin)",
      "wl = whitelist.Whitelist(specs)",
      "print(json.dumps(sorted(d['address'] for d in devices if wl.device_assignable(",
      "    {'vendor_id': '15b3', 'product_id': d['product_id'], 'address': d['address'], 'parent_addr': None}))))",
    ].join("\n");
    const run = spawnSync(PYTHON, ["-c", script], {
      input: JSON.stringify([specs, devices]),
      encoding: "utf8",
    });
    expect(run.status, `python3-nova (scripts/setup.sh installs it): ${run.stderr}`).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([...VFS].sort());
  }, 120_000);
});
