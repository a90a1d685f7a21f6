// The one status a dispatch sets, for each way host preparation can end.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { OWNED } from "../../src/host/root";
import { useCleanups } from "../support/cleanups";
import { type HostSpec, makeTempHost } from "../support/hosts/build-host";
import { gpuLessHost, seedHost } from "../support/hosts/presets";
import { charmContext, useRoot } from "../support/scenario";
import { diffTrees, snapshotTree } from "../support/tree";

const cleanups = useCleanups();
afterEach(() => {
  vi.unstubAllEnvs();
});

function host(spec: HostSpec): string {
  const h = makeTempHost(spec);
  cleanups.push(h.cleanup);
  useRoot(h.root);
  return h.root;
}

describe("unit status", () => {
  it("a container gets blocked and nothing is written", () => {
    const root = host({ ...seedHost(), container: "lxc" });
    const before = snapshotTree(root);
    const out = charmContext().run("install", { config: { devices: "10de:1bb0" } });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toMatch(/^host preparation needs a machine, not a container/);
    // The log says what gave the container away.
    expect(out.logs.map((l) => l.message)).toContainEqual(
      expect.stringContaining('(/run/systemd/container says "lxc")'),
    );
    expect(diffTrees(before, snapshotTree(root))).toEqual([]);
  });

  it("a GPU-less compute host is active, with the IOMMU prepared", () => {
    const root = host(gpuLessHost());
    const out = charmContext().run("install", { config: { devices: "10de:1bb0" } });
    expect(out.unitStatus.name).toBe("active");
    expect(out.unitStatus.message).toMatch(/^no matching devices on this host; IOMMU on/);
    expect(fs.readFileSync(path.join(root, OWNED.grubDropIn), "utf8")).toContain("intel_iommu=on");
    expect(fs.existsSync(path.join(root, OWNED.udevRule))).toBe(false);
  });

  it("bad config is blocked naming the option, value and fix, with nothing written", () => {
    const root = host(seedHost());
    const before = snapshotTree(root);
    const out = charmContext().run("config-changed", {
      config: { "extra-kernel-params": 'quiet"; rm -rf /' },
    });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toMatch(/^extra-kernel-params=/);
    expect(diffTrees(before, snapshotTree(root))).toEqual([]);
    expect(
      out.logs.some((l) => l.level === "ERROR" && l.message.includes("extra-kernel-params")),
    ).toBe(true);
  });

  it("iommu off with devices selected names both options", () => {
    host(seedHost());
    const out = charmContext().run("config-changed", {
      config: { iommu: "off", devices: "10de:1bb0" },
    });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toMatch(/iommu/);
    expect(out.unitStatus.message).toMatch(/devices/);
  });

  it("a foreign file at our path is left alone and named", () => {
    const root = host(seedHost());
    fs.mkdirSync(path.dirname(path.join(root, OWNED.grubDropIn)), { recursive: true });
    fs.writeFileSync(path.join(root, OWNED.grubDropIn), 'GRUB_CMDLINE_LINUX_DEFAULT="mine"\n');
    const out = charmContext().run("install", { config: { devices: "0000:83:00.0" } });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toContain(OWNED.grubDropIn);
    expect(fs.readFileSync(path.join(root, OWNED.grubDropIn), "utf8")).toBe(
      'GRUB_CMDLINE_LINUX_DEFAULT="mine"\n',
    );
    expect(fs.existsSync(path.join(root, OWNED.udevRule))).toBe(false);
  });

  it("an address that now holds another device blocks with both ids named", () => {
    host(seedHost());
    const first = charmContext().run("install", { config: { devices: "0000:83:00.0" } });
    vi.unstubAllEnvs();
    // The GPU at 83:00.0 was swapped for a NIC between hooks.
    const swapped = seedHost();
    swapped.pci = swapped.pci!.map((p) =>
      p.address === "0000:83:00.0"
        ? { ...p, vendor: "8086", device: "1593", class: "020000", driver: "ice" }
        : p,
    );
    host(swapped);
    const out = charmContext().run("config-changed", first);
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toContain("0000:83:00.0");
    expect(out.unitStatus.message).toContain("10de:1bb0");
    expect(out.unitStatus.message).toContain("8086:1593");
  });

  it("unsafe interrupts are said in the active status", () => {
    const spec = seedHost();
    host({
      ...spec,
      cmdline: `${spec.cmdline} intel_iommu=on iommu=pt vfio_iommu_type1.allow_unsafe_interrupts=1`,
    });
    const out = charmContext().run("config-changed", {
      config: { "allow-unsafe-interrupts": true },
    });
    expect(out.unitStatus.name).toBe("active");
    expect(out.unitStatus.message).toContain(
      "allow-unsafe-interrupts is on: guests are less isolated",
    );
  });
});
