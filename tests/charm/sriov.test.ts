// SR-IOV through the real charm (Scenario style: state in, event, state out) on a host tree after
// the boot that created the VFs: the nova relation carries one compact spec per PF and a type-VF
// alias, the status counts the VFs, list-devices summarises them under their PF and verify-iommu
// reports VFs that share an IOMMU group with their PF (no ACS).
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ResultTree } from "../../src/actions/results";
import { vfAddresses } from "../../src/pci-vocabulary";
import { useCleanups } from "../support/cleanups";
import { type HostSpec, makeTempHost, type PciSpec } from "../support/hosts/build-host";
import { amdHost } from "../support/hosts/presets";
import { novaComputeRelation } from "../support/relations";
import { charmContext, useRoot } from "../support/scenario";

const PF = "0000:41:00.1";
const BOOTED =
  "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/nvme0n1p2 ro iommu=pt modprobe.blacklist=iavf";
const DEVICES = `- {address: "${PF}", vfs: 4, alias: fast-nic}`;

/** amdHost after the boot: the X710's second port has 4 VFs (offset 79) on `vfDriver`; with
 * `sharedGroup` they sit in the PF's IOMMU group (a platform without ACS). */
function booted(vfDriver: string, sharedGroup = false): HostSpec {
  const spec = amdHost();
  const pf = spec.pci!.find((p) => p.address === PF)!;
  const vfs: PciSpec[] = vfAddresses(PF, 79, 1, 4)!.map((address, i) => ({
    address,
    parent: pf.parent,
    vendor: "8086",
    device: "154c",
    subsystemVendor: "8086",
    subsystemDevice: "0000",
    class: "020000",
    driver: vfDriver,
    driverOverride: vfDriver === "vfio-pci" ? "vfio-pci" : null,
    physfn: PF,
    iommuGroup: sharedGroup ? pf.iommuGroup! : 200 + i,
    numaNode: 0,
  }));
  return {
    ...spec,
    cmdline: BOOTED,
    pci: [
      ...spec.pci!.map((p) => (p.address === PF ? { ...p, sriov: { ...p.sriov!, numVfs: 4 } } : p)),
      ...vfs,
    ],
  };
}

const cleanups = useCleanups();
afterEach(() => {
  vi.unstubAllEnvs();
});

function on(spec: HostSpec) {
  const host = makeTempHost(spec);
  cleanups.push(host.cleanup);
  useRoot(host.root);
}

describe("SR-IOV through the charm", () => {
  it("after the boot: one compact spec for the PF, a type-VF alias, and the VFs counted", () => {
    on(booted("vfio-pci"));
    const out = charmContext().run("nova-compute-relation-joined", {
      config: { devices: DEVICES },
      relations: [novaComputeRelation()],
    });
    const raw = out.relations[0]!.localUnitData.subordinate_configuration!;
    const pairs = JSON.parse(raw).nova["/etc/nova/nova.conf"].sections.pci as [string, string][];
    expect(pairs.map(([k, v]) => [k, JSON.parse(v)])).toEqual([
      [expect.any(String), { vendor_id: "8086", product_id: "154c", address: PF }],
      [
        "alias",
        { name: "fast-nic", vendor_id: "8086", product_id: "154c", device_type: "type-VF" },
      ],
    ]);
    expect(out.unitStatus.message).toMatch(/4 devices \(fast-nic x4\) on vfio-pci/);
  });

  it("before the boot: the PF spec is offered already (nova's PF rule), the status says what the boot brings", () => {
    on(amdHost());
    const out = charmContext().run("nova-compute-relation-joined", {
      config: { devices: DEVICES },
      relations: [novaComputeRelation()],
    });
    const raw = out.relations[0]!.localUnitData.subordinate_configuration!;
    const pairs = JSON.parse(raw).nova["/etc/nova/nova.conf"].sections.pci as [string, string][];
    expect(pairs.map(([, v]) => JSON.parse(v).address ?? JSON.parse(v).name)).toEqual([
      PF,
      "fast-nic",
    ]);
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toContain(`${PF} has 0 VFs, 4 planned`);
  });

  it("list-devices: the VFs under their PF, and what every boot creates", () => {
    on(booted("vfio-pci"));
    const out = charmContext().run(
      { name: "list-devices-action", params: { class: "network" } },
      { config: { devices: DEVICES } },
    );
    const devices = out.actionResults!.devices as ResultTree;
    const pf = devices["0000-41-00-1"] as ResultTree;
    expect(pf.sriov).toEqual({
      role: "pf",
      numvfs: "4",
      totalvfs: "64",
      vfs: {
        count: "4",
        addresses: "0000:41:0a.0 - 0000:41:0a.3",
        drivers: "vfio-pci x4",
        "iommu-groups": "4 (200-203)",
        "sharing-a-group": "0",
        selected: "4",
      },
      planned: "4 VFs at every boot, on vfio-pci (nova alias fast-nic)",
    });
    expect(devices["0000-41-0a-0"]).toBeUndefined();
  });

  it("verify-iommu: VFs in their PF's IOMMU group are reported (no ACS), per PF", () => {
    on(booted("vfio-pci", true));
    const out = charmContext().run(
      { name: "verify-iommu-action", params: {} },
      { config: { devices: DEVICES } },
    );
    expect(out.actionFailure).toMatch(
      /0000:41:00.1: 4 VFs share an IOMMU group with their PF \(no ACS between them: 0000:41:0a.0, 0000:41:0a.1, 0000:41:0a.2 and 1 more\)/,
    );
    const sriov = (out.actionResults!.sriov as ResultTree)["0000-41-00-1"] as ResultTree;
    expect(sriov).toMatchObject({
      ok: "no",
      "vfs-planned": "4",
      "vfs-now": "4",
      drivers: "vfio-pci x4",
      "sharing-group-with-pf": "4",
    });
    // The VFs are checked per PF, not one device entry each.
    expect(JSON.stringify(out.actionResults!.devices ?? {})).not.toContain("0000:41:0a");
  });

  it("verify-iommu: VFs selected by their ids are summarised under their PF unless each-vf", () => {
    // amdHost's PF 0 has 4 VFs on iavf already (41:02.x); PF 1 gets 4 more (41:0a.x), made by
    // the operator (no `vfs:` entry), also on iavf. `8086:154c` selects all eight.
    on(booted("iavf"));
    const config = { devices: "8086:154c" };
    const folded = charmContext().run({ name: "verify-iommu-action", params: {} }, { config });
    const each = charmContext().run(
      { name: "verify-iommu-action", params: { "each-vf": true } },
      { config },
    );
    const vfs = [...vfAddresses("0000:41:00.0", 16, 1, 4)!, ...vfAddresses(PF, 79, 1, 4)!];
    // Failed either way (folding is how it is shown): one line per PF and check, or per VF.
    expect(folded.actionFailure).toBe(
      [
        `passthrough not ready: 4 VFs of 0000:41:00.0 (${vfs[0]} - ${vfs[3]}): is on iavf, not vfio-pci; reboot, or run the rebind action to move it now`,
        `4 VFs of 0000:41:00.0 (${vfs[0]} - ${vfs[3]}) have no /dev/vfio/<group>; the first: ${vfs[0]}: /dev/vfio/60 is missing (it appears once a group member is on vfio-pci)`,
        `4 VFs of ${PF} (${vfs[4]} - ${vfs[7]}): is on iavf, not vfio-pci; reboot, or run the rebind action to move it now`,
        `4 VFs of ${PF} (${vfs[4]} - ${vfs[7]}) have no /dev/vfio/<group>; the first: ${vfs[4]}: /dev/vfio/200 is missing (it appears once a group member is on vfio-pci)`,
      ].join("; "),
    );
    expect(each.actionFailure).toMatch(
      new RegExp(
        `^passthrough not ready: ${vfs[0]}: is on iavf, not vfio-pci; .*; and 11 more problems`,
      ),
    );
    const summary = folded.actionResults!["selected-vfs"] as ResultTree;
    expect(Object.keys(summary)).toEqual(["0000-41-00-0", "0000-41-00-1"]);
    expect(summary["0000-41-00-1"]).toMatchObject({
      count: "4",
      "vfs-ok": "0",
      drivers: "iavf x4",
    });
    expect(folded.actionResults!.devices).toBeUndefined();
    const devices = each.actionResults!.devices as ResultTree;
    expect(Object.keys(devices).sort()).toEqual(vfs.map((a) => a.replace(/[:.]/g, "-")));
    expect(each.actionResults!["selected-vfs"]).toBeUndefined();
  });
});
