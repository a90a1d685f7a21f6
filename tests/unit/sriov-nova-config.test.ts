// nova-config for SR-IOV: the one compact spec per PF, the type-VF alias for nova-cloud-controller
// and the flavor line (flavor-alias VFs), the neutron SR-IOV agent mapping and port lines
// (physical-network VFs); the PF spec is sent before its VFs exist (nova's own rule: sriov_totalvfs).
import { describe, expect, it } from "vitest";
import { novaConfig } from "../../src/actions/nova-config";
import type { ResultTree } from "../../src/actions/results";
import type { PciFunction } from "../../src/host/facts";
import { vfAddresses } from "../../src/pci-vocabulary";
import { selectForHost, sriovReady } from "../../src/plan/sriov";
import { fn, host, sel } from "../support/host-facts";

function pfWithVfs(pf: string, n: number, vfDriver: string | null): PciFunction[] {
  return [
    fn(pf, "8086:1592", "020000", {
      driver: "ice",
      iommuGroup: 30,
      netInterfaces: ["enp59s0f0"],
      sriov: {
        totalVfs: 64,
        numVfs: vfDriver === null ? 0 : n,
        offset: 16,
        stride: 1,
        vfDeviceId: "1889",
      },
    }),
    ...(vfDriver === null
      ? []
      : vfAddresses(pf, 16, 1, n)!.map((a, i) =>
          fn(a, "8086:1889", "020000", { driver: vfDriver, physfn: pf, iommuGroup: 100 + i }),
        )),
  ];
}

function reply(functions: PciFunction[], physicalNetwork: string | null = null) {
  const facts = host(functions);
  const s = selectForHost(
    [sel({ address: "0000:3b:00.0", vfs: 4, physicalNetwork, alias: "fast-nic", source: "x" })],
    facts,
  );
  return novaConfig({
    bound: s.bind,
    onVfio: (a) => facts.functions.find((f) => f.address === a)?.driver === "vfio-pci",
    setting: "device_spec",
    installed: null,
    related: true,
    sriov: {
      pfs: s.sriov.pfs,
      ready: (pf) => sriovReady(pf, facts),
      netdev: (pf) =>
        facts.functions.find((f) => f.address === pf.address)?.netInterfaces[0] ?? null,
    },
  });
}

describe("nova-config with SR-IOV", () => {
  it("flavor alias: one compact spec, the type-VF alias for the controller, the flavor line", () => {
    const r = reply(pfWithVfs("0000:3b:00.0", 4, "vfio-pci"));
    expect(r.ok).toBe(true);
    expect(r.results["device-spec"]).toEqual({
      "1": '{"vendor_id":"8086","product_id":"1889","address":"0000:3b:00.0"}',
    });
    const controller = r.results.controller as ResultTree;
    expect(controller["pci-alias"]).toBe(
      `juju config nova-cloud-controller pci-alias='[{"name":"fast-nic","vendor_id":"8086","product_id":"1889","device_type":"type-VF"}]'`,
    );
    expect((r.results.flavor as ResultTree)["1"]).toBe(
      'openstack flavor set <flavor> --property "pci_passthrough:alias"="fast-nic:1"',
    );
    expect(String((r.results.flavor as ResultTree).note)).toContain("4 × fast-nic");
    expect(r.results.neutron).toBeUndefined();
  });

  it("neutron ports: the agent's mapping with the PF's interface, the charms' options, the port", () => {
    const r = reply(pfWithVfs("0000:3b:00.0", 4, "iavf"), "physnet1");
    expect(r.results["device-spec"]).toEqual({
      "1": '{"vendor_id":"8086","product_id":"1889","address":"0000:3b:00.0","physical_network":"physnet1"}',
    });
    expect(r.results.alias).toBeUndefined();
    const neutron = r.results.neutron as ResultTree;
    expect(neutron["sriov-agent"]).toBe(
      "/etc/neutron/plugins/ml2/sriov_agent.ini: [sriov_nic] physical_device_mappings = physnet1:enp59s0f0",
    );
    expect(neutron.charms).toContain("sriov-device-mappings='physnet1:enp59s0f0'");
    expect(neutron.charms).toContain("Set their sriov-numvfs as vf-counts says");
    expect(neutron.port).toBe(
      "openstack port create --network <network on physnet1> --vnic-type direct <port>",
    );
  });

  it("before the boot: the compact PF spec is sent already, and no PF waits (issue 21.2)", () => {
    const r = reply(pfWithVfs("0000:3b:00.0", 4, null));
    expect(r.results["device-spec"]).toEqual({
      "1": '{"vendor_id":"8086","product_id":"1889","address":"0000:3b:00.0"}',
    });
    expect(r.results.waiting).toBeUndefined();
  });
});
