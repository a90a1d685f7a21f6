// The host-tree builder itself: links are relative and land inside the tree (like sysfs), the
// synthetic scale hosts have exactly the functions asked for, and the presets are consistent.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { readPciFunctions } from "../../src/host/pci";
import { useCleanups } from "../support/cleanups";
import { makeTempHost, pciModalias } from "../support/hosts/build-host";
import { PRESETS, seedHost, syntheticAliasLines, syntheticHost } from "../support/hosts/presets";
import { snapshotTree } from "../support/tree";

const cleanups = useCleanups();

/** Every symlink under `dir`: its stored target and whether it resolves. */
function links(dir: string): Array<{ link: string; target: string; resolves: boolean }> {
  return [...snapshotTree(dir)].flatMap(([rel, entry]) => {
    if (entry.kind !== "link") return [];
    const link = path.join(dir, rel);
    return [{ link, target: entry.target, resolves: fs.existsSync(link) }];
  });
}

describe("buildHostTree", () => {
  it.each(Object.keys(PRESETS))(
    "%s: every link is relative, resolves, and stays inside the tree",
    (name) => {
      const built = makeTempHost(PRESETS[name]!());
      cleanups.push(built.cleanup);
      const all = links(built.root);
      expect(all.length).toBeGreaterThan(20);
      for (const l of all) {
        expect([l.link, l.target.startsWith("/")]).toEqual([l.link, false]);
        expect([l.link, l.resolves]).toEqual([l.link, true]);
        expect(fs.realpathSync(l.link).startsWith(fs.realpathSync(built.root))).toBe(true);
      }
    },
  );

  it("writes attributes the way the kernel prints them", () => {
    const built = makeTempHost(seedHost());
    cleanups.push(built.cleanup);
    const dir = built.deviceDirs.get("0000:83:00.0")!;
    const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
    expect([read("vendor"), read("class"), read("driver_override"), read("numa_node")]).toEqual([
      "0x10de\n",
      "0x030000\n",
      "(null)\n",
      "1\n",
    ]);
    expect(read("modalias")).toBe("pci:v000010DEd00001BB0sv000010DEsd000011A3bc03sc00i00\n");
    expect(fs.existsSync(path.join(dir, "boot_vga"))).toBe(true);
    expect(fs.existsSync(path.join(built.deviceDirs.get("0000:83:00.1")!, "boot_vga"))).toBe(false);
    expect(
      pciModalias({
        vendor: "8086",
        device: "10d3",
        subsystemVendor: "8086",
        subsystemDevice: "0000",
        class: "020000",
      }),
    ).toBe("pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00");
  });

  it("creates the kernel's back-links: driver → devices, group → devices, PF → VFs", () => {
    const built = makeTempHost(PRESETS["amd"]!());
    cleanups.push(built.cleanup);
    const r = built.root;
    expect(fs.realpathSync(path.join(r, "sys/bus/pci/drivers/iavf/0000:41:02.0"))).toBe(
      built.deviceDirs.get("0000:41:02.0"),
    );
    expect(fs.realpathSync(path.join(r, "sys/kernel/iommu_groups/51/devices/0000:c1:00.1"))).toBe(
      built.deviceDirs.get("0000:c1:00.1"),
    );
    expect(fs.realpathSync(path.join(built.deviceDirs.get("0000:41:00.0")!, "virtfn3"))).toBe(
      built.deviceDirs.get("0000:41:02.3"),
    );
  });
});

describe("syntheticHost", () => {
  it.each([1, 100, 1000])("builds exactly %i functions: PFs and their VFs, one group each", (n) => {
    const spec = syntheticHost(n);
    expect(spec.pci).toHaveLength(n);
    expect(new Set(spec.pci!.map((p) => p.address)).size).toBe(n);
    expect(new Set(spec.pci!.map((p) => p.iommuGroup)).size).toBe(n);
    for (const p of spec.pci!) expect(p.address).toMatch(/^0000:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/);
    const pfs = spec.pci!.filter((p) => p.sriov);
    expect(pfs.reduce((sum, p) => sum + p.sriov!.numVfs, 0)).toBe(n - pfs.length);
  });

  it("reads back as built", () => {
    const built = makeTempHost(syntheticHost(300));
    cleanups.push(built.cleanup);
    const { functions, problems } = readPciFunctions(built.root);
    expect(problems).toEqual([]);
    expect(functions).toHaveLength(300);
    expect(functions.filter((f) => f.physfn !== null)).toHaveLength(299);
  });

  it("ships a modules.alias the size of a real one", () => {
    const lines = syntheticAliasLines();
    expect(lines.length).toBeGreaterThan(25_000);
    expect(lines.filter((l) => l.startsWith("alias pci:")).length).toBe(9000);
  });
});
