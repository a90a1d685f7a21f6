import { describe, expect, it } from "vitest";
import { OWNED } from "../../src/host/root";
import { type CharmUnderTest, useCharmOnHosts } from "../support/charm-process";
import { arm64VirtHost, laptopHost, seedHost } from "../support/hosts/presets";
import { diffTrees, fileText, snapshotTree } from "../support/tree";

describe("host safety through dispatch", () => {
  const deployOn = useCharmOnHosts();
  let unit: CharmUnderTest | undefined;
  const read = (hostPath: string) => fileText(unit!.root, hostPath);

  it("install with two identical E810 ports by ids binds the free one, keeps eno1's and names it", () => {
    unit = deployOn(seedHost(), { config: { devices: "8086:1593" } });
    const r = unit.dispatch("install");
    expect(r.exitCode).toBe(0);
    const rule = read(OWNED.udevRule);
    expect(rule).toContain('KERNEL=="0000:18:00.1"');
    expect(rule).not.toContain("0000:18:00.0");
    // ice still drives eno1: it is neither blacklisted on the command line nor in modprobe.d.
    expect(read(OWNED.grubDropIn)).not.toMatch(/modprobe\.blacklist=[^ "]*\bice\b/);
    expect(read(OWNED.modprobeConf)).not.toMatch(/^blacklist ice$/m);
    const status = unit.sim.readState().unitStatus;
    expect(status.status).toBe("blocked");
    expect(status.message).toMatch(/^reboot required: /);
    expect(status.message).toContain("kept for the host");
    expect(status.message).toContain("0000:18:00.0 8086:1593");
    expect(status.message).toContain("network interface eno1 is up");
    expect(status.message).toContain("{address: 0000:18:00.0, force: true}");
    const warnings = unit.sim
      .readState()
      .logs.filter((l) => l.level === "WARNING")
      .map((l) => l.message);
    expect(warnings.join("\n")).toMatch(
      /0000:18:00\.0 .*kept for the host: network interface eno1/,
    );
  });

  it("force: true on an address entry takes the management port too", () => {
    unit = deployOn(seedHost(), {
      config: { devices: '- "8086:1593"\n- {address: "0000:18:00.0", force: true}\n' },
    });
    expect(unit.dispatch("install").exitCode).toBe(0);
    const rule = read(OWNED.udevRule);
    expect(rule).toContain('KERNEL=="0000:18:00.0"');
    expect(rule).toContain('KERNEL=="0000:18:00.1"');
    expect(unit.sim.readState().unitStatus.message).not.toContain("kept for the host");
  });

  it("the laptop's HDA audio (group 13 with ISA bridge, SMBus, SPI flash) is refused, all named", () => {
    unit = deployOn(laptopHost(), { config: { devices: "8086:51c8" } });
    expect(unit.dispatch("install").exitCode).toBe(0);
    expect(read(OWNED.udevRule)).toBe("");
    expect(read(OWNED.modprobeConf)).toBe("");
    const status = unit.sim.readState().unitStatus;
    expect(status.status).toBe("blocked");
    expect(status.message).toMatch(/^refused: 0000:00:1f\.3 8086:51c8 of devices entry #1/);
    expect(status.message).toContain("its IOMMU group 13 also holds");
    for (const member of ["1f.0 (ISA/LPC bridge)", "1f.4 (SMBus controller)", "1f.5 ("]) {
      expect(status.message).toContain(`0000:00:${member}`);
    }
    expect(status.message).toContain("no override exists");
  });

  it("the laptop's USB controller shares group 6 with the PCH's SRAM: refused, the SRAM named", () => {
    unit = deployOn(laptopHost(), {
      config: { devices: '- {address: "0000:00:14.0", force: true}' },
    });
    expect(unit.dispatch("install").exitCode).toBe(0);
    expect(read(OWNED.udevRule)).toBe("");
    const status = unit.sim.readState().unitStatus;
    expect(status.status).toBe("blocked");
    expect(status.message).toMatch(/^refused: 0000:00:14\.0 8086:51ed/);
    expect(status.message).toContain(
      "its IOMMU group 6 also holds 0000:00:14.2 (RAM memory (the chipset's shared SRAM))",
    );
    expect(status.message).toContain("no override exists");
  });

  it("a function with no IOMMU group while the IOMMU is on is refused; its sibling is bound", () => {
    // Linux 6.1 under SMMUv3 left the second function behind a PCIe-to-PCI bridge with no group.
    const spec = arm64VirtHost();
    spec.pci = spec.pci!.map((p) =>
      p.address === "0000:01:00.1" ? { ...p, iommuGroup: null } : p,
    );
    unit = deployOn(spec, { config: { devices: "0000:01:00.*" } });
    expect(unit.dispatch("install").exitCode).toBe(0);
    const rule = read(OWNED.udevRule);
    expect(rule).toContain('KERNEL=="0000:01:00.0"');
    expect(rule).not.toContain("0000:01:00.1");
    const status = unit.sim.readState().unitStatus;
    expect(status.status).toBe("blocked");
    expect(status.message).toContain("refused: 0000:01:00.1 8086:10d3");
    expect(status.message).toContain(
      "it has no IOMMU group although the IOMMU is on: vfio-pci cannot take a function without one",
    );
  });

  it("module names written are the kernel's modules, never driver names (xhci_hcd is xhci_pci)", () => {
    // Without the PCH's SRAM in the USB controller's group (older PCHs), which would refuse it.
    const spec = laptopHost();
    spec.pci = spec.pci!.filter((p) => p.address !== "0000:00:14.2");
    unit = deployOn(spec, {
      config: { devices: "0000:00:14.0 0000:00:04.0", "blacklist-drivers": "auto" },
    });
    expect(unit.dispatch("install").exitCode).toBe(0);
    const modprobe = read(OWNED.modprobeConf);
    const grub = read(OWNED.grubDropIn);
    expect(modprobe).toContain("softdep xhci_pci pre: vfio-pci");
    expect(modprobe).toContain("softdep processor_thermal_device_pci pre: vfio-pci");
    const written = [
      ...[...modprobe.matchAll(/^(?:blacklist|softdep) (\S+)/gm)].map((m) => m[1]!),
      ...(/modprobe\.blacklist=([^ "]+)/.exec(grub)?.[1]?.split(",") ?? []),
    ];
    expect(written.length).toBeGreaterThan(0);
    const dep = read(`/lib/modules/6.1.0-56-amd64/modules.dep`);
    const builtin = read(`/lib/modules/6.1.0-56-amd64/modules.builtin`);
    for (const m of written) {
      const file = new RegExp(`/${m.replace(/_/g, "[-_]")}\\.ko`);
      expect(file.test(dep) || file.test(builtin), `${m} is no module of the kernel`).toBe(true);
    }
    expect(written).not.toContain("xhci_hcd");
    expect(written).not.toContain("proc_thermal_pci");
  });

  it("verify-iommu and rebind give the same judgement, and change nothing", () => {
    unit = deployOn(laptopHost(), { config: { devices: "8086:51c8" } });
    const before = snapshotTree(unit.root);

    expect(unit.dispatch({ name: "verify-iommu-action", params: {} }).exitCode).toBe(0);
    const verify = unit.sim.readState().lastAction!;
    expect(verify.failed).toBe(true);
    expect(verify.failureMessage).toContain("refused: 0000:00:1f.3");
    expect(JSON.stringify(verify.results)).not.toMatch(/select (them|it) too/);

    const rebind = { devices: "0000:00:1f.3", force: true };
    expect(unit.dispatch({ name: "rebind-action", params: rebind }).exitCode).toBe(0);
    const moved = unit.sim.readState().lastAction!;
    expect(moved.failed).toBe(true);
    expect(moved.failureMessage).toMatch(/0000:00:1f\.4: it is the chipset's SMBus controller/);
    expect(moved.failureMessage).toContain("force does not override this");
    expect(diffTrees(before, snapshotTree(unit.root))).toEqual([]);
  });
});
