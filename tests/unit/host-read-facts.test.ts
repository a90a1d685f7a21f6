// readHostFacts: the whole cheap read, what it leaves out on purpose, and that a host tree still
// reads the same after it is moved or copied (relative links, as the kernel makes them).
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadModuleIndex, readHostFacts, readIommu } from "../../src/host/read-facts";
import { hostTempDir } from "../support/hosts/build-host";
import { amdHost, iommuOffHost, PRESETS, qemuQ35Host, seedHost } from "../support/hosts/presets";
import { useTempHosts } from "../support/hosts/use-temp-hosts";

const host = useTempHosts();
const extraDirs: string[] = [];
afterEach(() => {
  for (const d of extraDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("readHostFacts", () => {
  it("reads the seed host", () => {
    const { facts, problems, containerEvidence } = readHostFacts(host(seedHost()).root);
    expect(problems).toEqual([]);
    expect(containerEvidence).toBeNull();
    expect(facts).toMatchObject({
      cmdline: "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/sda1 ro",
      cpuVendor: "intel",
      kernelRelease: "6.8.0-45-generic",
      vfioPci: "builtin",
      container: false,
      iommuUnits: ["dmar0", "dmar1", "dmar2", "dmar3"],
    });
    expect(facts.functions).toHaveLength(15);
    expect(facts.iommuGroups.get(43)).toEqual(["0000:84:00.0", "0000:84:00.1"]);
    expect(facts.vfioDevices.size).toBe(0);
  });

  it("agrees with the per-group listing on every preset", () => {
    for (const make of Object.values(PRESETS)) {
      const root = host(make()).root;
      expect(readHostFacts(root).facts.iommuGroups).toEqual(readIommu(root).groups);
    }
  });

  it("reads the IOMMU-off, AMD and QEMU shapes", () => {
    const off = readHostFacts(host(iommuOffHost()).root).facts;
    expect([off.iommuGroups.size, off.iommuUnits, off.vfioPci]).toEqual([0, [], "module"]);
    expect(off.functions.every((f) => f.iommuGroup === null)).toBe(true);
    const amd = readHostFacts(host(amdHost()).root).facts;
    expect([amd.cpuVendor, amd.iommuUnits]).toEqual(["amd", ["ivhd0"]]);
    const q35 = readHostFacts(host(qemuQ35Host()).root).facts;
    expect(q35.iommuGroups.get(7)).toEqual(["0000:00:1f.0", "0000:00:1f.2", "0000:00:1f.3"]);
    expect(
      q35.functions
        .filter((f) => f.vendorId === "8086" && f.deviceId === "10d3")
        .map((f) => f.address),
    ).toEqual(["0000:00:03.0", "0000:00:04.0"]);
  });

  it("shows /dev/vfio groups once a member is on vfio-pci", () => {
    const spec = seedHost();
    spec.pci = spec.pci!.map((p) =>
      p.address.startsWith("0000:83:00.") ? { ...p, driver: "vfio-pci" } : p,
    );
    expect([...readHostFacts(host(spec).root).facts.vfioDevices]).toEqual([42]);
  });

  it("says why it is a container", () => {
    const result = readHostFacts(host({ ...seedHost(), container: "lxc" }).root);
    expect(result.facts.container).toBe(true);
    expect(result.containerEvidence).toBe('/run/systemd/container says "lxc"');
  });

  it("does not touch modules.alias or pci.ids (only loadModuleIndex / loadPciIds do)", () => {
    const built = host({ ...seedHost(), pciIds: "10de  NVIDIA Corporation\n" });
    // Make both unreadable: if readHostFacts opened them, it would report EISDIR.
    for (const file of ["lib/modules/6.8.0-45-generic/modules.alias", "usr/share/misc/pci.ids"]) {
      fs.rmSync(path.join(built.root, file));
      fs.mkdirSync(path.join(built.root, file));
    }
    expect(readHostFacts(built.root).problems).toEqual([]);
    expect(loadModuleIndex(built.root, "6.8.0-45-generic").problems[0]!.message).toContain(
      "EISDIR",
    );
  });

  it("collects every reader's problems and still answers", () => {
    const spec = seedHost();
    spec.pci = spec.pci!.map((p) =>
      p.address === "0000:84:00.0" ? { ...p, driver: undefined, danglingDriver: "nvidia" } : p,
    );
    const built = host(spec);
    fs.rmSync(built.deviceDirs.get("0000:83:00.1")!, { recursive: true });
    fs.rmSync(path.join(built.root, "proc/sys/kernel/osrelease"));
    const { facts, problems } = readHostFacts(built.root);
    expect(problems.map((p) => [p.kind, p.path])).toEqual([
      ["vanished", "/sys/bus/pci/devices/0000:83:00.1"],
      ["malformed", "/sys/bus/pci/devices/0000:84:00.0/driver"],
      ["unreadable", "/proc/sys/kernel/osrelease"],
    ]);
    expect(facts.kernelRelease).toBe("");
    expect(facts.functions).toHaveLength(14);
    // Without a release, vfio-pci is judged by the registered driver alone.
    expect(facts.vfioPci).toBe("builtin");
  });
});

describe("a host tree is relocatable", () => {
  it("reads the same after a move and after a copy that keeps links as they are", () => {
    const built = host(amdHost());
    // A copy taken now: the VFs a PF announces read driver_override and net/ on first use, which
    // must be here, before the tree moves.
    const before = structuredClone(readHostFacts(built.root));
    const moved = path.join(hostTempDir(), `moved-${path.basename(built.root)}`);
    fs.renameSync(built.root, moved);
    extraDirs.push(moved);
    expect(readHostFacts(moved)).toEqual(before);
    const copied = `${moved}-copy`;
    fs.cpSync(moved, copied, { recursive: true, verbatimSymlinks: true });
    extraDirs.push(copied);
    expect(readHostFacts(copied)).toEqual(before);
  });
});
