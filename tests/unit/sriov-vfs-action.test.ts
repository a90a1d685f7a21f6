// The sriov-vfs action: applies the planned number of VFs now, through 0, in the boot helper's
// order; dry-run prints the writes; a VF whose IOMMU group a process holds open (a running VM)
// stops it unless forced. The sysfs writer here records writes and answers like a kernel that did
// what it was told (the real kernel's answers are the VM tiers' job).
import { describe, expect, it } from "vitest";
import type { ResultTree } from "../../src/actions/results";
import { parseSriovVfsParams, sriovVfsAction } from "../../src/actions/sriov-vfs";
import type { SysfsWriter } from "../../src/apply/sysfs";
import type { PciFunction } from "../../src/host/facts";
import type { VfioGroupUser } from "../../src/host/vfio-users";
import { vfAddresses } from "../../src/pci-vocabulary";
import { selectForHost } from "../../src/plan/sriov";
import { fn, host, sel } from "../support/host-facts";

const PF = "0000:3b:00.0";

function e810(numVfs: number): PciFunction {
  return fn(PF, "8086:1592", "020000", {
    driver: "ice",
    iommuGroup: 30,
    sriov: { totalVfs: 64, numVfs, offset: 16, stride: 1, vfDeviceId: "1889" },
  });
}

function facts(numVfs: number) {
  const vfs = vfAddresses(PF, 16, 1, numVfs)!.map((a, i) =>
    fn(a, "8086:1889", "020000", { driver: "vfio-pci", physfn: PF, iommuGroup: 100 + i }),
  );
  return host([e810(numVfs), ...vfs]);
}

function recorder(vfDriver: string | null = "vfio-pci") {
  const writes: string[] = [];
  const sysfs: SysfsWriter = {
    root: "/nonexistent",
    writeAttr: (path, value) => {
      writes.push(`${path} <- ${value}`);
    },
    readDriver: () => vfDriver,
    driverRegistered: () => true,
  };
  return { sysfs, writes };
}

function run(
  params: Record<string, unknown>,
  now: number,
  planned: number,
  users: Map<number, VfioGroupUser[]> = new Map(),
  physicalNetwork: string | null = null,
) {
  const f = facts(now);
  const plan = selectForHost([sel({ address: PF, vfs: planned, physicalNetwork, source: "x" })], f);
  const rec = recorder();
  const checked = parseSriovVfsParams(params);
  if (!checked.ok) throw new Error(JSON.stringify(checked.errors));
  const reply = sriovVfsAction({
    params: checked.params,
    facts: f,
    sriov: plan.sriov.pfs,
    groupUsers: () => users,
    sysfs: rec.sysfs,
  });
  return { reply, writes: rec.writes };
}

/** The writes as listed, in key order (`01`, `02`… as Juju sorts them; JS objects put `10` first). */
const writesOf = (results: ResultTree) =>
  Object.entries(((results.pfs as ResultTree)["0000-3b-00-0"] as ResultTree).writes as ResultTree)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, v]) => v);

describe("sriov-vfs", () => {
  it("dry-run shows every write, in the boot helper's order, and writes nothing", () => {
    const { reply, writes } = run({ "dry-run": true }, 2, 3);
    expect(reply.ok).toBe(true);
    expect(writes).toEqual([]);
    expect(writesOf(reply.results)).toEqual([
      "/sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs <- 0 (remove its 2 VFs (a count changes through 0))",
      "/sys/bus/pci/devices/0000:3b:00.0/sriov_drivers_autoprobe <- 0 (no driver probes the new VFs while they appear)",
      "/sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs <- 3 (create 3 VFs)",
      "/sys/bus/pci/devices/0000:3b:02.0/driver_override <- vfio-pci (this VF goes to vfio-pci, by its own address)",
      "/sys/bus/pci/drivers_probe <- 0000:3b:02.0 (probe it: vfio-pci takes it)",
      "/sys/bus/pci/devices/0000:3b:02.1/driver_override <- vfio-pci (this VF goes to vfio-pci, by its own address)",
      "/sys/bus/pci/drivers_probe <- 0000:3b:02.1 (probe it: vfio-pci takes it)",
      "/sys/bus/pci/devices/0000:3b:02.2/driver_override <- vfio-pci (this VF goes to vfio-pci, by its own address)",
      "/sys/bus/pci/drivers_probe <- 0000:3b:02.2 (probe it: vfio-pci takes it)",
      "/sys/bus/pci/devices/0000:3b:00.0/sriov_drivers_autoprobe <- 1 (back to the default)",
    ]);
  });

  it("applies them, and says what changed", () => {
    const { reply, writes } = run({}, 0, 2);
    expect(reply.ok).toBe(true);
    expect(writes[0]).toBe("/sys/bus/pci/devices/0000:3b:00.0/sriov_drivers_autoprobe <- 0");
    expect(writes[1]).toBe("/sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs <- 2");
    expect(reply.message).toBe("0000:3b:00.0: 0 → 2 VFs, each on vfio-pci");
  });

  it("neutron ports: only the count is written (the host VF driver takes the VFs)", () => {
    const { reply, writes } = run({}, 0, 2, new Map(), "physnet1");
    expect(reply.ok).toBe(true);
    expect(writes).toEqual(["/sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs <- 2"]);
  });

  it("refuses while a VM holds a VF's group open, naming the instance; force does not override it (issue 21.1)", () => {
    const users = new Map([
      [
        101,
        [
          {
            pid: 4242,
            command: "qemu-system-x86_64 -name guest=instance-0000002a",
            instance: "instance-0000002a",
          },
        ],
      ],
    ]);
    const refused = run({}, 2, 4, users);
    expect(refused.reply.ok).toBe(false);
    expect(refused.writes).toEqual([]);
    expect(refused.reply.message).toMatch(
      /^sriov-vfs refused: 0000:3b:02.1 \(IOMMU group 101 open by pid 4242 .*instance instance-0000002a\).*machine lock.*force does not override this.*Nothing was changed/,
    );
    // force=true: the kernel would wait for the guest forever, holding Juju's machine lock.
    for (const params of [{ force: true }, { force: true, "dry-run": true }]) {
      const forced = run(params, 2, 4, users);
      expect(forced.reply.ok).toBe(false);
      expect(forced.writes).toEqual([]);
      expect(forced.reply.message).toContain("pid 4242");
      expect(forced.reply.message).toContain("force does not override this");
    }
  });

  it("does nothing when the PF already has its planned VFs", () => {
    const { reply, writes } = run({}, 2, 2);
    expect(reply.ok).toBe(true);
    expect(writes).toEqual([]);
    expect(reply.message).toMatch(/already has its planned VFs/);
  });

  it("refuses a PF the plan does not give VFs, and a malformed pf", () => {
    expect(run({ pf: "0000:3c:00.0" }, 0, 2).reply.message).toMatch(
      /gives 0000:3c:00.0 no VFs \(planned: 0000:3b:00.0\)/,
    );
    const bad = parseSriovVfsParams({ pf: "3b:00" });
    expect(bad.ok).toBe(false);
    // One grammar with the option and rebind: a VMD domain and 0x-less upper case are read alike;
    // a glob is refused (by actions.yaml's pattern), since a change of VF count destroys every VF of each PF it names.
    expect(parseSriovVfsParams({ pf: "10000:01:00.0" })).toMatchObject({
      params: { pf: "10000:01:00.0" },
    });
    expect(parseSriovVfsParams({ pf: "0000:3B:00.0" })).toMatchObject({ params: { pf: PF } });
    expect(parseSriovVfsParams({ pf: "0000:3b:00.*" }).ok).toBe(false);
    expect(parseSriovVfsParams({ pf: "3b:00.0" })).toEqual({
      ok: true,
      params: { pf: PF, dryRun: false, force: false },
    });
    expect(parseSriovVfsParams({ vfs: 3 }).ok).toBe(false);
  });
});
