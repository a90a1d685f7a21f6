// readPciFunctions / readIommu against real sysfs-shaped trees (real dirs, relative symlinks).
//
// Unreadable files: the tests run as root, and root ignores `chmod 000`, so unreadability is made
// the way a hostile host can really show it: a DIRECTORY where an attribute file is expected
// (read fails with EISDIR), or a symlink loop (ELOOP). A vanishing device is a bus entry whose
// target directory was removed after the tree was built (what a hot-unplug between the listing and
// the read looks like).
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { type ReadRecord, startRecording, stopRecording } from "../../src/host/fs";
import { readIommu, readPciFunctions } from "../../src/host/pci";
import { parseModalias, synthModalias } from "../../src/pci-vocabulary";
import type { BuiltHost } from "../support/hosts/build-host";
import {
  amdHost,
  iommuOffHost,
  PRESETS,
  qemuQ35Host,
  seedHost,
  sharedGroupHost,
  syntheticHost,
} from "../support/hosts/presets";
import { useTempHosts } from "../support/hosts/use-temp-hosts";

const host = useTempHosts();

/** Replaces an attribute file of a function with a directory: reading it fails (EISDIR). */
function makeUnreadable(built: BuiltHost, address: string, attr: string): void {
  const file = path.join(built.deviceDirs.get(address)!, attr);
  fs.rmSync(file);
  fs.mkdirSync(file);
}

describe("readPciFunctions with 'plan' detail (the hooks)", () => {
  const hosts = { ...PRESETS, "synthetic-60 (announced VFs)": () => syntheticHost(60) };
  it.each(Object.keys(hosts))("%s: the same functions as 'all' once asked", (name) => {
    const { root } = host(hosts[name as keyof typeof hosts]!());
    const all = readPciFunctions(root, "all");
    const plan = readPciFunctions(root, "plan");
    expect(plan.problems).toEqual(all.problems);
    expect(plan.functions).toEqual(all.functions);
  });

  it("reads no numa_node or driver_override until one is asked for, then that one", () => {
    const { root } = host(syntheticHost(60));
    const attrs = (reads: readonly ReadRecord[]) =>
      reads.map(([, p]) => p).filter((p) => /\/(numa_node|driver_override)$/.test(p));
    startRecording();
    const { functions } = readPciFunctions(root, "plan");
    const read = stopRecording()!;
    expect(read.reads.length).toBeGreaterThan(60);
    expect(attrs(read.reads)).toEqual([]);
    // A VF's NUMA node is its PF's: asking the VF reads the PF's file.
    const vf = functions.find((f) => f.physfn !== null)!;
    startRecording();
    const numa = vf.numaNode;
    const override = vf.driverOverride;
    const asked = stopRecording()!;
    expect(attrs(asked.reads)).toEqual([
      `${root}/sys/bus/pci/devices/${vf.physfn}/numa_node`,
      `${root}/sys/bus/pci/devices/${vf.address}/driver_override`,
    ]);
    expect([numa, override]).toEqual([
      functions.find((f) => f.address === vf.physfn)!.numaNode,
      null,
    ]);
  });
});

describe("readPciFunctions on the seed host", () => {
  it("reads ids, class, driver, group, NUMA node and boot VGA the way sysfs shows them", () => {
    const { functions, problems } = readPciFunctions(host(seedHost()).root);
    expect(problems).toEqual([]);
    expect(functions.map((f) => f.address)).toEqual([...functions.map((f) => f.address)].sort());
    const gpu = functions.find((f) => f.address === "0000:83:00.0")!;
    expect(gpu).toEqual({
      address: "0000:83:00.0",
      vendorId: "10de",
      deviceId: "1bb0",
      subsystemVendorId: "10de",
      subsystemDeviceId: "11a3",
      classCode: "030000",
      driver: "nouveau",
      driverOverride: null,
      iommuGroup: 42,
      numaNode: 1,
      bootVga: false,
      modalias: "pci:v000010DEd00001BB0sv000010DEsd000011A3bc03sc00i00",
      isBridge: false,
      sriov: null,
      physfn: null,
      netInterfaces: [],
      consumers: [],
    });
    expect(functions.find((f) => f.address === "0000:83:00.1")).toMatchObject({
      classCode: "040300",
      driver: "snd_hda_intel",
      iommuGroup: 42,
    });
    expect(functions.find((f) => f.address === "0000:03:00.0")).toMatchObject({
      vendorId: "1a03",
      deviceId: "2000",
      driver: "ast",
      bootVga: true,
    });
    const nic = functions.find((f) => f.address === "0000:18:00.0")!;
    expect(nic.netInterfaces).toEqual(["eno1"]);
    expect(functions.find((f) => f.address === "0000:00:1c.0")!.isBridge).toBe(true);
    // The ASPEED PCI bridge has no driver bound at all.
    expect(functions.find((f) => f.address === "0000:02:00.0")!.driver).toBeNull();
  });

  it("finds the device nested under its bridges (the bus entry is a relative symlink)", () => {
    const built = host(seedHost());
    const link = fs.readlinkSync(path.join(built.root, "sys/bus/pci/devices/0000:03:00.0"));
    expect(link).toBe("../../../devices/pci0000:00/0000:00:1c.0/0000:02:00.0/0000:03:00.0");
    expect(fs.readlinkSync(path.join(built.deviceDirs.get("0000:03:00.0")!, "driver"))).toBe(
      "../../../../../bus/pci/drivers/ast",
    );
  });
});

describe("attribute formats", () => {
  it("turns driver_override `(null)` into null and keeps a real override", () => {
    const spec = qemuQ35Host();
    spec.pci = spec.pci!.map((p) =>
      p.address === "0000:00:04.0" ? { ...p, driverOverride: "vfio-pci" } : p,
    );
    const { functions } = readPciFunctions(host(spec).root);
    expect(functions.find((f) => f.address === "0000:00:03.0")!.driverOverride).toBeNull();
    expect(functions.find((f) => f.address === "0000:00:04.0")!.driverOverride).toBe("vfio-pci");
  });

  it("reads numa_node -1 as null and boot_vga only where the kernel writes it", () => {
    const { functions } = readPciFunctions(host(qemuQ35Host()).root);
    expect(functions.every((f) => f.numaNode === null)).toBe(true);
    expect(functions.filter((f) => f.bootVga).map((f) => f.address)).toEqual(["0000:00:01.0"]);
    // secondary-vga is class 0380: no boot_vga file, same ids as the boot VGA.
    expect(functions.find((f) => f.address === "0000:00:05.0")).toMatchObject({
      vendorId: "1234",
      deviceId: "1111",
      classCode: "038000",
      bootVga: false,
    });
  });

  it("reads SR-IOV state on PFs and the physfn link on VFs", () => {
    const { functions } = readPciFunctions(host(amdHost()).root);
    const pf = functions.find((f) => f.address === "0000:41:00.0")!;
    // Where the VFs go and what they are, known before they exist (Linux 5.0+ attributes).
    expect(pf.sriov).toEqual({
      totalVfs: 64,
      numVfs: 4,
      offset: 16,
      stride: 1,
      vfDeviceId: "154c",
      driversAutoprobe: true,
    });
    expect(functions.find((f) => f.address === "0000:41:00.1")!.sriov).toMatchObject({
      totalVfs: 64,
      numVfs: 0,
    });
    const vfs = functions.filter((f) => f.physfn === "0000:41:00.0");
    expect(vfs.map((f) => f.address)).toEqual([
      "0000:41:02.0",
      "0000:41:02.1",
      "0000:41:02.2",
      "0000:41:02.3",
    ]);
    expect(vfs.every((f) => f.sriov === null && f.deviceId === "154c" && f.driver === "iavf")).toBe(
      true,
    );
  });

  it("reads the VFs a PF announces the short way, and finds the same as the full read", () => {
    const root = host(amdHost()).root;
    const short = readPciFunctions(root).functions;
    // Without sriov_offset (a kernel before 5.0) nothing is announced: every VF is read in full.
    const pfDir = fs.realpathSync(path.join(root, "sys/bus/pci/devices/0000:41:00.0"));
    fs.rmSync(path.join(pfDir, "sriov_offset"));
    const full = readPciFunctions(root).functions;
    const vfs = (list: typeof short) => list.filter((f) => f.physfn === "0000:41:00.0");
    expect(vfs(short)).toHaveLength(4);
    expect(vfs(short)).toEqual(vfs(full));
  });

  it("a function where the PF announced a VF but none is falls back to the full read", () => {
    const spec = amdHost();
    // PF 41:00.0 says its VFs start one routing id on: 41:00.1, which is the second PF.
    spec.pci = spec.pci!.map((p) =>
      p.address === "0000:41:00.0" ? { ...p, sriov: { ...p.sriov!, offset: 1 } } : p,
    );
    const { functions } = readPciFunctions(host(spec).root);
    const second = functions.find((f) => f.address === "0000:41:00.1")!;
    expect(second.physfn).toBeNull();
    expect(second.sriov).toMatchObject({ totalVfs: 64, numVfs: 0 });
  });

  it("lists consumer:pci device links", () => {
    const spec = seedHost();
    spec.pci = spec.pci!.map((p) =>
      p.address === "0000:84:00.0" ? { ...p, consumers: ["0000:84:00.1", "0000:84:00.2"] } : p,
    );
    spec.pci.push({
      address: "0000:84:00.2",
      parent: "0000:80:03.0",
      vendor: "10de",
      device: "1ad8",
      class: "0c0330",
      driver: "xhci_hcd",
      iommuGroup: 43,
    });
    const { functions } = readPciFunctions(host(spec).root);
    expect(functions.find((f) => f.address === "0000:84:00.0")!.consumers).toEqual([
      "0000:84:00.1",
      "0000:84:00.2",
    ]);
  });

  it("parses modaliases of the kernel's format and rebuilds them", () => {
    const text = "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00";
    const ids = parseModalias(text)!;
    expect(ids).toEqual({
      vendorId: "8086",
      deviceId: "10d3",
      subsystemVendorId: "8086",
      subsystemDeviceId: "0000",
      classCode: "020000",
    });
    expect(
      synthModalias(
        ids.vendorId,
        ids.deviceId,
        ids.subsystemVendorId,
        ids.subsystemDeviceId,
        ids.classCode,
      ),
    ).toBe(text);
    expect(parseModalias("pci:v00008086d000010D3")).toBeNull();
  });
});

describe("hostile hosts", () => {
  it("reads a dangling driver link as unbound, with a problem naming the path", () => {
    const spec = seedHost();
    spec.pci = spec.pci!.map((p) =>
      p.address === "0000:84:00.0" ? { ...p, driver: undefined, danglingDriver: "nvidia" } : p,
    );
    const { functions, problems } = readPciFunctions(host(spec).root);
    expect(functions.find((f) => f.address === "0000:84:00.0")!.driver).toBeNull();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      kind: "malformed",
      address: "0000:84:00.0",
      path: "/sys/bus/pci/devices/0000:84:00.0/driver",
    });
    expect(problems[0]!.message).toContain("/sys/bus/pci/devices/0000:84:00.0/driver");
    expect(problems[0]!.message).toContain("nvidia");
  });

  it("states a driver missing from /sys/bus/pci/drivers once, however many links name it", () => {
    const spec = seedHost();
    spec.pci = spec.pci!.map((p) =>
      /^0000:8[34]:/.test(p.address) ? { ...p, driver: undefined, danglingDriver: "nvidia" } : p,
    );
    const { functions, problems } = readPciFunctions(host(spec).root);
    const gpus = functions.filter((f) => /^0000:8[34]:/.test(f.address));
    expect(gpus.length).toBe(4);
    expect(gpus.every((f) => f.driver === null)).toBe(true);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      kind: "malformed",
      address: null,
      path: "/sys/bus/pci/drivers/nvidia",
    });
    expect(problems[0]!.message).toContain("the driver links of 4 devices");
    expect(problems[0]!.message).toContain("and 1 more");
  });

  it("believes the driver links, with one problem, when /sys/bus/pci/drivers is not there", () => {
    const built = host(seedHost());
    fs.rmSync(path.join(built.root, "sys/bus/pci/drivers"), { recursive: true });
    const { functions, problems } = readPciFunctions(built.root);
    expect(functions.find((f) => f.address === "0000:83:00.0")!.driver).toBe("nouveau");
    expect(problems.map((p) => p.path)).toEqual(["/sys/bus/pci/drivers"]);
  });

  it("keeps a device whose numa_node cannot be read, with that field unknown and the path named", () => {
    const built = host(seedHost());
    makeUnreadable(built, "0000:83:00.0", "numa_node");
    const { functions, problems } = readPciFunctions(built.root);
    const gpu = functions.find((f) => f.address === "0000:83:00.0")!;
    expect(gpu.numaNode).toBeNull();
    expect(gpu.driver).toBe("nouveau");
    expect(problems).toEqual([
      expect.objectContaining({
        kind: "unreadable",
        address: "0000:83:00.0",
        path: "/sys/bus/pci/devices/0000:83:00.0/numa_node",
        message: expect.stringMatching(
          /cannot read \/sys\/bus\/pci\/devices\/0000:83:00\.0\/numa_node \(EISDIR\)/,
        ),
      }),
    ]);
    expect(functions).toHaveLength(15);
  });

  it("reads ids, class and driver from uevent alone when the attributes are unreadable", () => {
    const built = host(seedHost());
    for (const attr of ["modalias", "vendor", "device", "class"])
      makeUnreadable(built, "0000:83:00.0", attr);
    fs.rmSync(path.join(built.deviceDirs.get("0000:83:00.0")!, "driver"));
    const { functions, problems } = readPciFunctions(built.root);
    const gpu = functions.find((f) => f.address === "0000:83:00.0")!;
    expect([gpu.vendorId, gpu.deviceId, gpu.classCode, gpu.driver]).toEqual([
      "10de",
      "1bb0",
      "030000",
      "nouveau",
    ]);
    expect(gpu.modalias).toBe("pci:v000010DEd00001BB0sv000010DEsd000011A3bc03sc00i00");
    expect(problems).toEqual([]);
  });

  it("reads a host recorded without uevent the slow way: modalias and the driver link", () => {
    const built = host(seedHost());
    for (const dir of built.deviceDirs.values()) fs.rmSync(path.join(dir, "uevent"));
    const withUevent = readPciFunctions(host(seedHost()).root);
    expect(readPciFunctions(built.root)).toEqual(withUevent);
  });

  it("falls back to the id attributes when uevent and modalias are unreadable, and rebuilds the modalias", () => {
    const built = host(seedHost());
    makeUnreadable(built, "0000:83:00.0", "uevent");
    makeUnreadable(built, "0000:83:00.0", "modalias");
    const { functions, problems } = readPciFunctions(built.root);
    const gpu = functions.find((f) => f.address === "0000:83:00.0")!;
    expect([gpu.vendorId, gpu.deviceId, gpu.classCode]).toEqual(["10de", "1bb0", "030000"]);
    expect(gpu.modalias).toBe("pci:v000010DEd00001BB0sv000010DEsd000011A3bc03sc00i00");
    expect(problems.map((p) => p.path)).toEqual([
      "/sys/bus/pci/devices/0000:83:00.0/uevent",
      "/sys/bus/pci/devices/0000:83:00.0/modalias",
    ]);
  });

  it("leaves out a device whose identity cannot be read at all, saying which file and what to run", () => {
    const built = host(seedHost());
    makeUnreadable(built, "0000:84:00.1", "uevent");
    makeUnreadable(built, "0000:84:00.1", "modalias");
    makeUnreadable(built, "0000:84:00.1", "vendor");
    const { functions, problems } = readPciFunctions(built.root);
    expect(functions.map((f) => f.address)).not.toContain("0000:84:00.1");
    expect(functions).toHaveLength(14);
    const vendor = problems.find((p) => p.path.endsWith("/vendor"))!;
    expect(vendor.message).toContain("/sys/bus/pci/devices/0000:84:00.1/vendor");
    expect(vendor.message).toContain("lspci -vvv -s 0000:84:00.1");
  });

  it("survives a symlink loop where an attribute should be (ELOOP)", () => {
    const built = host(seedHost());
    const file = path.join(built.deviceDirs.get("0000:18:00.0")!, "driver_override");
    fs.rmSync(file);
    fs.symlinkSync("driver_override", file);
    const { functions, problems } = readPciFunctions(built.root);
    expect(functions.find((f) => f.address === "0000:18:00.0")!.driverOverride).toBeNull();
    expect(problems[0]!.message).toMatch(/driver_override \(ELOOP\)/);
  });

  it("rejects an id that is not hex as malformed", () => {
    const built = host(seedHost());
    const dir = built.deviceDirs.get("0000:00:1f.0")!;
    fs.writeFileSync(path.join(dir, "uevent"), "PCI_ID=garbage\n");
    fs.writeFileSync(path.join(dir, "modalias"), "garbage\n");
    fs.writeFileSync(path.join(dir, "vendor"), "0xzz99\n");
    const { functions, problems } = readPciFunctions(built.root);
    expect(functions.map((f) => f.address)).not.toContain("0000:00:1f.0");
    expect(problems.find((p) => p.kind === "malformed")!.message).toContain('"0xzz99"');
  });

  it("skips a device that vanished between the listing and the read, with a note", () => {
    const built = host(seedHost());
    // The bus entry stays (listed), its target is gone: hot-unplug in between.
    fs.rmSync(built.deviceDirs.get("0000:84:00.1")!, { recursive: true });
    const { functions, problems } = readPciFunctions(built.root);
    expect(functions.map((f) => f.address)).not.toContain("0000:84:00.1");
    expect(functions.map((f) => f.address)).toContain("0000:84:00.0");
    expect(problems).toEqual([
      expect.objectContaining({
        kind: "vanished",
        address: "0000:84:00.1",
        path: "/sys/bus/pci/devices/0000:84:00.1",
      }),
    ]);
    expect(problems[0]!.message).toMatch(/disappeared while it was being read/);
  });

  it("says so when there is no PCI bus at all", () => {
    const built = host(seedHost());
    fs.rmSync(path.join(built.root, "sys/bus/pci"), { recursive: true });
    const { functions, problems } = readPciFunctions(built.root);
    expect(functions).toEqual([]);
    expect(problems[0]!.message).toContain("/sys/bus/pci/devices does not exist");
  });
});

describe("readIommu", () => {
  it("maps groups to sorted members, lists units and /dev/vfio nodes", () => {
    const spec = seedHost();
    spec.pci = spec.pci!.map((p) =>
      p.address.startsWith("0000:84:00.") ? { ...p, driver: "vfio-pci" } : p,
    );
    const result = readIommu(host(spec).root);
    expect(result.problems).toEqual([]);
    expect(result.groups.get(42)).toEqual(["0000:83:00.0", "0000:83:00.1"]);
    expect(result.groups.get(11)).toEqual(["0000:02:00.0", "0000:03:00.0"]);
    expect([...result.groups.keys()]).toEqual([...result.groups.keys()].sort((a, b) => a - b));
    expect(result.units).toEqual(["dmar0", "dmar1", "dmar2", "dmar3"]);
    expect([...result.vfioDevices]).toEqual([43]);
  });

  it("is empty when the IOMMU is off", () => {
    const result = readIommu(host(iommuOffHost()).root);
    expect(result.groups.size).toBe(0);
    expect(result.groupsDir).toBe("present");
    expect(result.units).toEqual([]);
    expect(result.vfioDevices.size).toBe(0);
  });

  it("tells a kernel without IOMMU support (no iommu_groups dir) from an IOMMU that is off", () => {
    const built = host(iommuOffHost());
    fs.rmSync(path.join(built.root, "sys/kernel/iommu_groups"), { recursive: true, force: true });
    const result = readIommu(built.root, readPciFunctions(built.root));
    expect(result.groupsDir).toBe("absent");
    expect(result.groups.size).toBe(0);
    expect(result.problems).toEqual([]);
  });

  it("keeps the groups devices' links name when the group directories are missing, and says so once", () => {
    const built = host(seedHost());
    const groups = path.join(built.root, "sys/kernel/iommu_groups");
    fs.rmSync(path.join(groups, "42"), { recursive: true });
    fs.rmSync(path.join(groups, "43"), { recursive: true });
    const result = readIommu(built.root, readPciFunctions(built.root));
    expect(result.groups.get(42)).toEqual(["0000:83:00.0", "0000:83:00.1"]);
    expect(result.groups.get(43)).toEqual(["0000:84:00.0", "0000:84:00.1"]);
    expect([...result.groups.keys()]).toEqual([...result.groups.keys()].sort((a, b) => a - b));
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]!.message).toMatch(
      /name groups 42, 43, which \/sys\/kernel\/iommu_groups does not list/,
    );
    // The whole directory gone: the links still say the IOMMU is on.
    fs.rmSync(groups, { recursive: true });
    const gone = readIommu(built.root, readPciFunctions(built.root));
    expect(gone.groups.get(42)).toEqual(["0000:83:00.0", "0000:83:00.1"]);
    expect(gone.problems).toHaveLength(1);
  });

  it("shows the shared group behind the PCIe-to-PCI bridge", () => {
    const result = readIommu(host(sharedGroupHost()).root);
    expect(result.groups.get(5)).toEqual(["0000:00:05.0", "0000:01:01.0", "0000:01:02.0"]);
  });

  it("finds AMD's ivhd0 under its PCI function", () => {
    expect(readIommu(host(amdHost()).root).units).toEqual(["ivhd0"]);
  });

  it("gives the same groups from the functions' links as from the group listings, on every preset", () => {
    for (const [name, make] of Object.entries(PRESETS)) {
      const built = host(make());
      const listed = readIommu(built.root);
      const derived = readIommu(built.root, readPciFunctions(built.root));
      expect([name, derived.groups]).toEqual([name, listed.groups]);
    }
  });

  it("keeps an unreadable device in its group when membership comes from the functions", () => {
    const built = host(seedHost());
    makeUnreadable(built, "0000:83:00.1", "uevent");
    makeUnreadable(built, "0000:83:00.1", "modalias");
    makeUnreadable(built, "0000:83:00.1", "class");
    const pci = readPciFunctions(built.root);
    expect(pci.functions.map((f) => f.address)).not.toContain("0000:83:00.1");
    expect(readIommu(built.root, pci).groups.get(42)).toEqual(["0000:83:00.0", "0000:83:00.1"]);
  });
});
