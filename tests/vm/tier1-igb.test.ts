/**
 * Tier 1, SR-IOV NICs with netdev VFs (issue 21, item 9): QEMU 10's `igb` (Intel 82576) on the real
 * kernel, Intel IOMMU, one boot. QEMU 10 comes from Debian's bookworm-backports, unpacked for this
 * tier alone (scripts/vm/qemu10.sh); the other tiers keep bookworm's QEMU 7.2.
 *
 * Two igb PFs (tests/vm/lib/topologies.ts IGB). NIC A carries the host's address and gives 2 VFs to
 * neutron ports (`physical-network: physnet1`); NIC B gives 2 VFs to VMs through a flavor alias.
 * The packed charm's sriov-vfs makes them now: A's VFs keep their netdevs on igbvf, B's go to
 * vfio-pci by their own address, both PFs stay on igb and A keeps the host's address. Then Debian's
 * own neutron SR-IOV agent code (python3-neutron's eswitch_manager, the host's Python run inside
 * the guest against its real sysfs) discovers physnet1 on A's interface: it manages both VFs and
 * counts none as assigned to a VM — free for ports — while it would count B's VFs (no netdev) as
 * assigned.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { expect, it } from "vitest";
import type { BootOptions } from "./lib/guest";
import { deployCharmInGuest, type GuestCharm } from "./lib/guest-charm";
import { SCRIPTS, VM_CACHE } from "./lib/paths";
import { type BedStatus, checkVmBed, describeVm } from "./lib/require-tools";
import { driverOf, exists, groupOf, netInterfaces } from "./lib/sysfs";
import { device, IGB, igbVfAddress } from "./lib/topologies";
import { useBedGuest } from "./lib/use-guest";

const pfA = device(IGB, "igbA").address;
const pfB = device(IGB, "igbB").address;
const vfsA = [igbVfAddress(1, 0), igbVfAddress(1, 1)];
const vfsB = [igbVfAddress(2, 0), igbVfAddress(2, 1)];
const HOST_ADDRESS = "192.0.2.10/24";
const DEVICES = [
  `- {address: "${pfA}", vfs: 2, physical-network: physnet1}`,
  `- {address: "${pfB}", vfs: 2, alias: igb-vf}`,
].join("\n");

// The bed, and QEMU 10 on top: a machine without it fails here by name, never skips.
let qemu10: BootOptions["qemu"];
function igbBed(): BedStatus {
  const bed = checkVmBed(1);
  if (!bed.ok) return bed;
  const r = spawnSync("bash", [path.join(SCRIPTS, "qemu10.sh")], {
    encoding: "utf8",
    env: { ...process.env, VM_CACHE_DIR: VM_CACHE },
  });
  if (r.status !== 0) {
    return {
      ok: false,
      reason: `scripts/vm/qemu10.sh failed: ${r.stderr.trim().split("\n").pop()}`,
    };
  }
  qemu10 = JSON.parse(readFileSync(path.join(VM_CACHE, "qemu10.json"), "utf8"));
  return bed;
}

/** neutron's SR-IOV agent, as Debian packages it: what it makes of a PF interface's VFs. */
const NEUTRON = `
import json, sys
from neutron.plugins.ml2.drivers.mech_sriov.agent import eswitch_manager as em
pf = sys.argv[1]
vfs = em.PciOsWrapper.scan_vf_devices(pf)
out = {"numvfs": em.PciOsWrapper.get_numvfs(pf),
       "vfs": sorted([[slot, idx, em.PciOsWrapper.is_assigned_vf_direct(pf, idx)] for slot, idx in vfs])}
if len(sys.argv) > 2:
    m = em.ESwitchManager()
    m.discover_devices({sys.argv[2]: [pf]}, {})
    out["managed"] = sorted(m.pci_slot_map.keys())
    out["assigned"] = [d.pci_slot for d in m.get_assigned_devices_info(sys.argv[2])]
print(json.dumps(out))
`;

describeVm("tier 1 (igb SR-IOV NICs, QEMU 10, Intel IOMMU): netdev VFs", igbBed(), (kernel) => {
  const { share, guest } = useBedGuest(kernel, "tier1-igb", IGB, "intel", {
    qemu: qemu10,
    memoryMb: 1536,
  });
  let charm: GuestCharm;
  let ifA = "";

  it("both igb PFs are up on igb, 7 VFs each at offset 128 stride 2; A carries the host's address", async () => {
    const g = guest();
    // The bed has no udev: a host's udev loads igb for the PFs and igbvf for the VFs, and the
    // charm's boot files load vfio-pci.
    await g.exec("modprobe igb && modprobe igbvf && modprobe vfio-pci");
    for (const pf of [pfA, pfB]) {
      expect(await driverOf(g, pf)).toBe("igb");
      const sriov = await g.exec(
        `cd /sys/bus/pci/devices/${pf} && cat sriov_totalvfs sriov_numvfs sriov_offset sriov_stride`,
      );
      expect(sriov.split("\n").filter(Boolean)).toEqual(["7", "0", "128", "2"]);
    }
    ifA = (await netInterfaces(g, pfA))[0] ?? "";
    expect(ifA).toBeTruthy();
    await g.exec(`ip link set ${ifA} up && ip addr add ${HOST_ADDRESS} dev ${ifA}`);
    expect(await g.exec(`ip -4 -o addr show dev ${ifA}`)).toContain(HOST_ADDRESS);
  });

  it("the charm: sriov-vfs makes physnet1's VFs on igbvf with netdevs, the flavor's on vfio-pci", async () => {
    const g = guest();
    charm = await deployCharmInGuest({
      guest: g,
      share,
      config: { devices: DEVICES },
      recordedCommands: ["update-grub", "update-initramfs"],
    });
    const install = await charm.dispatch("install");
    expect(install.exitCode, charm.explain(install)).toBe(0);
    // force: A carries the host's address (its link resets when its VFs are made).
    const run = await charm.action("sriov-vfs", { force: true });
    expect(run.action.failureMessage).toBeNull();
    for (const vf of vfsA) {
      expect(await driverOf(g, vf)).toBe("igbvf");
      expect((await netInterfaces(g, vf)).length).toBe(1);
    }
    for (const vf of vfsB) {
      expect(await driverOf(g, vf)).toBe("vfio-pci");
      expect(await exists(g, `/dev/vfio/${await groupOf(g, vf)}`)).toBe(true);
      expect(await netInterfaces(g, vf)).toEqual([]);
    }
    // Each VF in an IOMMU group of its own.
    const groups = await Promise.all([...vfsA, ...vfsB].map((vf) => groupOf(g, vf)));
    expect(new Set(groups).size).toBe(4);
  });

  it("both PFs stay on igb, and A keeps the host's address", async () => {
    const g = guest();
    expect(await driverOf(g, pfA)).toBe("igb");
    expect(await driverOf(g, pfB)).toBe("igb");
    expect(await netInterfaces(g, pfA)).toEqual([ifA]);
    expect(await g.exec(`ip -4 -o addr show dev ${ifA}`)).toContain(HOST_ADDRESS);
  });

  it("Debian's neutron SR-IOV agent code sees physnet1's VFs as free, the flavor VFs as taken", async () => {
    const g = guest();
    // The host's Debian Python and python3-neutron, inside the guest, on the guest's sysfs.
    const script = path.join(share, "neutron-eswitch.py");
    await g.exec(`cat > ${script} <<'EOT'\n${NEUTRON}\nEOT`);
    const a = JSON.parse(
      await g.exec(`/usr/bin/python3 ${script} ${ifA} physnet1`, { timeoutMs: 300_000 }),
    );
    expect(a.numvfs).toBe(2);
    expect(a.vfs).toEqual([
      [vfsA[0], 0, false],
      [vfsA[1], 1, false],
    ]);
    expect(a.managed).toEqual(vfsA);
    expect(a.assigned).toEqual([]);
    // B's VFs have no netdev: the agent would take each for one a VM holds.
    const [ifB] = await netInterfaces(g, pfB);
    const b = JSON.parse(await g.exec(`/usr/bin/python3 ${script} ${ifB}`, { timeoutMs: 300_000 }));
    expect(b.vfs).toEqual([
      [vfsB[0], 0, true],
      [vfsB[1], 1, true],
    ]);
  });

  it("list-devices and verify-iommu agree with the guest", async () => {
    const verify = await charm.action("verify-iommu");
    const sriov = (verify.action.results as Record<string, Record<string, Record<string, string>>>)
      .sriov!;
    expect(sriov[pfA.replace(/[:.]/g, "-")]).toMatchObject({ "vfs-now": "2" });
    expect(sriov[pfB.replace(/[:.]/g, "-")]).toMatchObject({
      "vfs-now": "2",
      drivers: "vfio-pci x2",
    });
  });
});
