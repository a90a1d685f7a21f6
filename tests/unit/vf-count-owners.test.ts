// The other owners of a PF's VF count (issue 21, item 4), with the files ovn-chassis,
// neutron-openvswitch and MAAS/cloud-init really write (tests/fixtures/vf-count-owners/README.md):
// the reader finds each count, the plan blocks when one disagrees with `vfs`, names the exact
// `juju config` line that makes the owner agree, and writes nothing.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { novaConfig } from "../../src/actions/nova-config";
import type { ResultTree } from "../../src/actions/results";
import type { HostReadProblem } from "../../src/host/facts";
import { NEIGHBOURS, OWNED } from "../../src/host/root";
import { readVfCountClaims } from "../../src/host/vf-count-owners";
import { sriovReady } from "../../src/plan/sriov";
import { ownerFixLine } from "../../src/plan/vf-count-owners";
import type { HostSpec } from "../support/hosts/build-host";
import { amdHost } from "../support/hosts/presets";
import { useTempHosts } from "../support/hosts/use-temp-hosts";
import { planOnTree } from "../support/plan-on-tree";

const FIXTURES = join(__dirname, "..", "fixtures", "vf-count-owners");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const OVN = `/etc/netplan/${NEIGHBOURS.ovnChassisNetplanName}`;
const SHIM = NEIGHBOURS.sriovNetplanShim;
const PF = "0000:41:00.1";

const hosts = useTempHosts();

function withFiles(files: Record<string, string>): string {
  const spec: HostSpec = amdHost();
  return hosts({ ...spec, files: { ...(spec.files ?? {}), ...files } }).root;
}

function claims(root: string) {
  const problems: HostReadProblem[] = [];
  const found = readVfCountClaims(root, problems);
  return { found, problems };
}

/** The PF's second port given `n` VFs for neutron ports (physical network physnet1). */
const devices = (n: number) => `- {address: "${PF}", vfs: ${n}, physical-network: physnet1}`;

/** planOnTree, with the claims the hook reads. */
function plan(root: string, n: number) {
  const { found } = claims(root);
  return planOnTree(root, { devices: devices(n) }, { vfCountClaims: found });
}

describe("reading the other owners' files", () => {
  it("ovn-chassis' 150-charm-ovn.yaml: one count per interface, owned by ovn-chassis", () => {
    const { found, problems } = claims(withFiles({ [OVN]: fixture("150-charm-ovn.yaml") }));
    expect(problems).toEqual([]);
    expect(found.map((c) => [c.owner, c.interface, c.count, c.key, c.path])).toEqual([
      ["ovn-chassis", "enp65s0f0", 64, "virtual-function-count", OVN],
      ["ovn-chassis", "enp65s0f1", 64, "virtual-function-count", OVN],
    ]);
  });

  it("its hardware-offload form (switchdev keys beside the count) reads the same", () => {
    const { found } = claims(withFiles({ [OVN]: fixture("150-charm-ovn-hardware-offload.yaml") }));
    expect(found.map((c) => [c.interface, c.count])).toEqual([["enp65s0f1", 4]]);
  });

  it("sriov-netplan-shim's interfaces.yaml: neutron-openvswitch's, matched by PCI address", () => {
    const { found } = claims(withFiles({ [SHIM]: fixture("sriov-netplan-shim-interfaces.yaml") }));
    expect(found.map((c) => [c.owner, c.interface, c.pciAddress, c.count])).toEqual([
      ["neutron-openvswitch", "enp65s0f0", "0000:41:00.0", 64],
      ["neutron-openvswitch", "enp65s0f1", "0000:41:00.1", 64],
    ]);
  });

  it("netplan from MAAS: VFs declared with link: count, the PF named by set-name", () => {
    const { found } = claims(
      withFiles({ "/etc/netplan/50-cloud-init.yaml": fixture("50-cloud-init-linked-vfs.yaml") }),
    );
    expect(found).toEqual([
      expect.objectContaining({
        owner: "netplan",
        interface: "sriov-pf",
        matchNames: ["enp65s0f1"],
        count: 2,
        key: "2 VFs declared with link: sriov-pf",
      }),
    ]);
  });

  it("netplan's merge: /run hides /etc of the same name, a later file overrides a count", () => {
    const count = (n: number) =>
      `network:\n  ethernets:\n    enp65s0f1:\n      virtual-function-count: ${n}\n`;
    const root = withFiles({
      "/etc/netplan/60-a.yaml": count(8),
      "/etc/netplan/70-b.yaml": count(16),
      "/etc/netplan/80-c.yaml": count(32),
      "/run/netplan/80-c.yaml": "network:\n  ethernets:\n    eno9: {}\n",
    });
    expect(claims(root).found.map((c) => [c.count, c.path])).toEqual([
      [16, "/etc/netplan/70-b.yaml"],
    ]);
  });

  it("a file that is not YAML is a problem naming it, not a count", () => {
    const { found, problems } = claims(withFiles({ [SHIM]: "interfaces: [\n" }));
    expect(found).toEqual([]);
    expect(problems[0]!.message).toContain(SHIM);
  });
});

describe("the plan beside them", () => {
  it("ovn-chassis' auto (64) against vfs: 8: blocked, the exact line, nothing written", () => {
    const p = plan(withFiles({ [OVN]: fixture("150-charm-ovn.yaml") }), 8);
    expect(p.plan.problems).toHaveLength(1);
    const message = p.plan.problems[0]!.message;
    expect(message).toContain(
      `${PF} (enp65s0f1) gets 8 VFs from devices entry #1 ${JSON.stringify(devices(8).slice(2))}, but ovn-chassis sets 64 (virtual-function-count in ${OVN})`,
    );
    // Every interface the file lists keeps its count; ours takes the plan's.
    expect(message).toContain(
      'make ovn-chassis agree: juju config ovn-chassis sriov-numvfs="enp65s0f0:64 enp65s0f1:8"',
    );
    expect(message).toContain("or take ovn-chassis's count (vfs: 64 for 0000:41:00.1)");
    expect(p.status.name).toBe("blocked");
  });

  it("neutron-openvswitch's shim file: matched by the PF's address, its own line", () => {
    const p = plan(withFiles({ [SHIM]: fixture("sriov-netplan-shim-interfaces.yaml") }), 8);
    expect(p.plan.problems[0]!.message).toContain(
      'juju config neutron-openvswitch sriov-numvfs="enp65s0f0:64 enp65s0f1:8"',
    );
  });

  it("both at once: one problem per owner", () => {
    const p = plan(
      withFiles({
        [OVN]: fixture("150-charm-ovn.yaml"),
        [SHIM]: fixture("sriov-netplan-shim-interfaces.yaml"),
      }),
      8,
    );
    expect(p.plan.problems.map((x) => x.message.match(/make (\S+) agree/)![1])).toEqual([
      "ovn-chassis",
      "neutron-openvswitch",
    ]);
  });

  it("netplan's own file: the key to set in that file", () => {
    const p = plan(
      withFiles({ "/etc/netplan/50-cloud-init.yaml": fixture("50-cloud-init-linked-vfs.yaml") }),
      4,
    );
    expect(p.plan.problems[0]!.message).toContain(
      "make netplan agree: set virtual-function-count: 4 under enp65s0f1 in /etc/netplan/50-cloud-init.yaml",
    );
  });

  it("an owner that agrees: no problem, the SR-IOV files are planned", () => {
    const p = plan(withFiles({ [OVN]: fixture("150-charm-ovn-hardware-offload.yaml") }), 4);
    expect(p.plan.problems).toEqual([]);
    expect(p.file(OWNED.sriovRule)).toContain(PF);
  });

  it("an owner that speaks of other PFs only: no problem", () => {
    const other = "network:\n  ethernets:\n    enp65s0f0:\n      virtual-function-count: 64\n";
    expect(plan(withFiles({ [OVN]: other }), 8).plan.problems).toEqual([]);
  });
});

describe("nova-config gives the settings that agree", () => {
  function reply(files: Record<string, string>) {
    const root = withFiles(files);
    const p = plan(root, 8);
    const { found } = claims(root);
    return novaConfig({
      bound: p.plan.bind,
      onVfio: () => false,
      setting: "device_spec",
      installed: null,
      related: false,
      sriov: {
        pfs: p.plan.sriov,
        ready: (pf) => sriovReady(pf, p.facts),
        netdev: (pf) =>
          p.facts.functions.find((f) => f.address === pf.address)?.netInterfaces[0] ?? null,
      },
      vfCounts: { claims: found, facts: p.facts },
    }).results;
  }

  it("no other owner yet: the explicit line for each networking charm", () => {
    const counts = reply({})["vf-counts"] as ResultTree;
    expect(counts["ovn-chassis"]).toBe('juju config ovn-chassis sriov-numvfs="enp65s0f1:8"');
    expect(counts["neutron-openvswitch"]).toBe(
      'juju config neutron-openvswitch sriov-numvfs="enp65s0f1:8"',
    );
    expect(counts.disagree).toBeUndefined();
    const neutron = reply({}).neutron as ResultTree;
    expect(neutron.charms).not.toContain("unset");
  });

  it("ovn-chassis disagrees: its line keeps its other interfaces, and the disagreement is said", () => {
    const counts = reply({ [OVN]: fixture("150-charm-ovn.yaml") })["vf-counts"] as ResultTree;
    expect(counts["ovn-chassis"]).toBe(
      'juju config ovn-chassis sriov-numvfs="enp65s0f0:64 enp65s0f1:8"',
    );
    expect((counts.disagree as ResultTree)["1"]).toContain("ovn-chassis sets 64");
  });
});

describe("ownerFixLine", () => {
  it("names the owner's option in its explicit form; netplan has none", () => {
    const wanted = new Map([["eth1", 2]]);
    expect(ownerFixLine("ovn-chassis", [], wanted)).toBe(
      'juju config ovn-chassis sriov-numvfs="eth1:2"',
    );
    expect(ownerFixLine("netplan", [], wanted)).toBeNull();
  });
});
