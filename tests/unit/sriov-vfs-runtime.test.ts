// Issue 21 item 5: runtime changes other agents must hear about, through the sriov-vfs action.
// - A count change on a physical-network PF: the results say exactly what to restart on this host
//   (neutron-sriov-agent), and Debian's real neutron eswitch code shows why: a running agent keeps
//   the VFs it scanned when it first mapped the PF; only a new agent sees the new ones.
// - A PF that carries the host's own network: refused without force, naming the interface and the
//   addresses that drop (the port resets on enabling and disabling VFs).
// - The count right but VFs off their planned driver: moved where the plan says, autoprobe restored.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import type { ResultTree } from "../../src/actions/results";
import { parseSriovVfsParams, sriovVfsAction } from "../../src/actions/sriov-vfs";
import type { SysfsWriter } from "../../src/apply/sysfs";
import type { HostUsage, PciFunction } from "../../src/host/facts";
import { vfAddresses } from "../../src/pci-vocabulary";
import { selectForHost } from "../../src/plan/sriov";
import { fn, host, sel } from "../support/host-facts";

const PF = "0000:41:00.0";
const PYTHON = "/usr/bin/python3";

function hostWith(numVfs: number, vfDriver: string | null, autoprobe = true) {
  const pf = fn(PF, "8086:1572", "020000", {
    driver: "i40e",
    iommuGroup: 30,
    netInterfaces: ["enp65s0f0"],
    sriov: {
      totalVfs: 64,
      numVfs,
      offset: 16,
      stride: 1,
      vfDeviceId: "154c",
      driversAutoprobe: autoprobe,
    },
  });
  const vfs: PciFunction[] = vfAddresses(PF, 16, 1, numVfs)!.map((a, i) =>
    fn(a, "8086:154c", "020000", { driver: vfDriver, physfn: PF, iommuGroup: 100 + i }),
  );
  return host([pf, ...vfs]);
}

function run(
  params: Record<string, unknown>,
  facts: ReturnType<typeof hostWith>,
  planned: number,
  physicalNetwork: string | null,
  usage: HostUsage = new Map(),
) {
  const plan = selectForHost(
    [sel({ address: PF, vfs: planned, physicalNetwork, source: "x" })],
    facts,
  );
  const writes: string[] = [];
  const sysfs: SysfsWriter = {
    root: "/nonexistent",
    writeAttr: (p, v) => void writes.push(`${p} <- ${v}`),
    readDriver: () => (physicalNetwork === null ? "vfio-pci" : "i40evf"),
    driverRegistered: () => true,
  };
  const checked = parseSriovVfsParams(params);
  if (!checked.ok) throw new Error(JSON.stringify(checked.errors));
  const reply = sriovVfsAction({
    params: checked.params,
    facts,
    sriov: plan.sriov.pfs,
    usage,
    groupUsers: () => new Map(),
    sysfs,
  });
  return { reply, writes };
}

/** What Debian's neutron SR-IOV agent's eswitch manager knows of the PF's VFs: a running agent
 * that rediscovers after the count changed (as its loop does), and a freshly started one. */
function neutronView(): { running: string[]; restarted: string[] } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "neutron-sysfs-"));
  try {
    const script = `
import json, os, sys
from neutron.plugins.ml2.drivers.mech_sriov.agent import eswitch_manager as em
root = sys.argv[1]
W = em.PciOsWrapper
W.DEVICE_PATH = root + W.DEVICE_PATH
W.PCI_PATH = root + W.PCI_PATH
W.NUMVFS_PATH = root + W.NUMVFS_PATH
dev = root + "/sys/class/net/enp65s0f0/device"
def vfs(n):
    os.makedirs(dev, exist_ok=True)
    for f in os.listdir(dev):
        if f.startswith("virtfn"):
            os.remove(os.path.join(dev, f))
    for i in range(n):
        rid = 16 + i
        os.symlink("../0000:41:%02x.%d" % (rid >> 3, rid & 7), "%s/virtfn%d" % (dev, i))
    open(dev + "/sriov_numvfs", "w").write("%d\\n" % n)
mappings = {"physnet1": ["enp65s0f0"]}
vfs(4)
agent = em.ESwitchManager()
agent.discover_devices(mappings, {})
vfs(8)  # the sriov-vfs action: 4 -> 8
agent.discover_devices(mappings, {})
running = sorted(agent.emb_switches_map["physnet1"][0].get_pci_slot_list())
del em.ESwitchManager._instance  # a new process: systemctl restart neutron-sriov-agent
fresh = em.ESwitchManager()
fresh.discover_devices(mappings, {})
restarted = sorted(fresh.emb_switches_map["physnet1"][0].get_pci_slot_list())
print(json.dumps({"running": running, "restarted": restarted}))
`;
    const r = spawnSync(PYTHON, ["-c", script, root], { encoding: "utf8" });
    if (r.status !== 0) {
      throw new Error(
        `${PYTHON} with python3-neutron failed (scripts/setup.sh installs it):\n${r.stderr}`,
      );
    }
    return JSON.parse(r.stdout);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

describe("sriov-vfs and the agents around it (issue 21 item 5)", () => {
  it("a count change on a physical-network PF names the restart; Debian's neutron shows why", () => {
    const { reply } = run({}, hostWith(4, "i40evf"), 8, "physnet1");
    expect(reply.ok).toBe(true);
    expect(reply.results.restart).toMatchObject({
      service: "neutron-sriov-agent",
      command: "systemctl restart neutron-sriov-agent",
    });
    expect(String((reply.results.restart as ResultTree).why)).toContain(`${PF} (physnet1)`);
    expect(reply.message).toContain("now run: systemctl restart neutron-sriov-agent");
    // Flavor-alias VFs: no neutron agent involved.
    expect(run({}, hostWith(4, "vfio-pci"), 8, null).reply.results.restart).toBeUndefined();

    const view = neutronView();
    const vfs = (n: number) => vfAddresses(PF, 16, 1, n)!;
    expect(view.running).toEqual(vfs(4));
    expect(view.restarted).toEqual(vfs(8));
  }, 120_000);

  it("a PF carrying the host's network: refused without force, naming interface and addresses", () => {
    // As host/usage.ts words them (it also lists the PF's VFs, which is no network use).
    const usage: HostUsage = new Map([
      [
        PF,
        [
          "network interface enp65s0f0 is up",
          "network interface enp65s0f0 has addresses 10.20.0.11/24",
          "network interface enp65s0f0 carries 2 routes",
          "SR-IOV PF with 4 VFs enabled",
        ],
      ],
    ]);
    const refused = run({}, hostWith(4, "vfio-pci"), 8, null, usage);
    expect(refused.reply.ok).toBe(false);
    expect(refused.writes).toEqual([]);
    expect(refused.reply.message).toContain(
      `${PF} carries the host's network (network interface enp65s0f0 is up; network interface enp65s0f0 has addresses 10.20.0.11/24; network interface enp65s0f0 carries 2 routes): two resets (0, then N)`,
    );
    expect(refused.reply.message).toContain("force=true");
    const forced = run({ force: true }, hostWith(4, "vfio-pci"), 8, null, usage);
    expect(forced.reply.ok).toBe(true);
    expect(forced.writes[0]).toBe(`/sys/bus/pci/devices/${PF}/sriov_numvfs <- 0`);
    expect(JSON.stringify(forced.reply.results.warnings)).toContain("enp65s0f0");
    // A PF whose only "use" is its VFs carries no host network: not refused (the real kernel's
    // tier found this).
    const vfsOnly: HostUsage = new Map([[PF, ["SR-IOV PF with 4 VFs enabled"]]]);
    expect(run({}, hostWith(4, "vfio-pci"), 8, null, vfsOnly).reply.ok).toBe(true);
    // Nothing to change, nothing refused.
    expect(run({}, hostWith(8, "vfio-pci"), 8, null, usage).reply.ok).toBe(true);
  });

  it("the count right, VFs on the wrong driver and autoprobe left off: moved per plan, autoprobe back on", () => {
    const facts = hostWith(2, "i40evf", false);
    const { reply, writes } = run({}, facts, 2, null);
    const [vf0, vf1] = vfAddresses(PF, 16, 1, 2)!;
    expect(writes).toEqual([
      `/sys/bus/pci/devices/${vf0}/driver_override <- vfio-pci`,
      `/sys/bus/pci/devices/${vf0}/driver/unbind <- ${vf0}`,
      `/sys/bus/pci/drivers_probe <- ${vf0}`,
      `/sys/bus/pci/devices/${vf1}/driver_override <- vfio-pci`,
      `/sys/bus/pci/devices/${vf1}/driver/unbind <- ${vf1}`,
      `/sys/bus/pci/drivers_probe <- ${vf1}`,
      `/sys/bus/pci/devices/${PF}/sriov_drivers_autoprobe <- 1`,
    ]);
    expect(reply.ok).toBe(true);
    expect(reply.message).toContain(`${vf0} (was on i40evf)`);
    expect(reply.message).toContain("sriov_drivers_autoprobe back on");
    // neutron-port VFs left with no driver are probed for their host driver.
    const bare = run({}, hostWith(2, null, false), 2, "physnet1");
    expect(bare.writes).toEqual([
      `/sys/bus/pci/drivers_probe <- ${vf0}`,
      `/sys/bus/pci/drivers_probe <- ${vf1}`,
      `/sys/bus/pci/devices/${PF}/sriov_drivers_autoprobe <- 1`,
    ]);
    // Everything where the plan puts it: nothing written.
    expect(run({}, hostWith(2, "vfio-pci"), 2, null).writes).toEqual([]);
  });
});
