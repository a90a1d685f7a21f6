// Host preparation for an arm64 compute host, checked by the programs that read its files: the
// real grub-mkconfig (grub-common's scripts are the same on every architecture; `uname -m` picks
// 10_linux's arm64 branch, so a stand-in uname says aarch64) and the real kmod. The plan comes from
// an arm64 host tree shaped like the VM bed's arm64 guest (tests/support/hosts/presets.ts).
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { OWNED } from "../../src/host/root";
import { useCleanups } from "../support/cleanups";
import { grubMkconfigLinuxLines } from "../support/grub-mkconfig";
import { makeTempHost } from "../support/hosts/build-host";
import { arm64VirtHost } from "../support/hosts/presets";
import { planOnTree } from "../support/plan-on-tree";
import { requireMountNamespace, requireTool } from "../support/tools";

const RELEASE = "6.1.0-57-arm64";

const cleanups = useCleanups();
function temp(): string {
  const dir = mkdtempSync(join(tmpdir(), "pci-arm64-prep-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
function write(path: string, content: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode);
}

/** The files the charm would write on the arm64 guest's host for a config. */
function planArm64(raw: Record<string, unknown>) {
  const host = makeTempHost(arm64VirtHost());
  cleanups.push(host.cleanup);
  const { plan, file } = planOnTree(host.root, raw);
  expect(plan.problems).toEqual([]);
  return { plan, file };
}

describe("host preparation on arm64", () => {
  it("plans the drop-in, the softdep for the twin's driver, and no blacklist (the twin keeps e1000e)", () => {
    const { plan, file } = planArm64({ devices: "0000:00:03.0" });
    expect(plan.kernelParams).toEqual(["iommu.passthrough=1"]);
    expect(plan.blacklist).toEqual([]);
    expect(file(OWNED.modprobeConf)).toContain("softdep e1000e pre: vfio-pci");
  });

  it("the real grub-mkconfig, taking 10_linux's arm64 branch, puts iommu.passthrough=1 on the normal entries only", () => {
    requireMountNamespace();
    requireTool("grub-mkconfig", "grub-common");
    const { file } = planArm64({ devices: "0000:00:03.0", "allow-unsafe-interrupts": true });
    const t = temp();
    write(
      join(t, "default/grub"),
      'GRUB_DEFAULT=0\nGRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyAMA0"\n',
    );
    write(join(t, "default/grub.d/99-pci-passthrough.cfg"), file(OWNED.grubDropIn)!);
    // Debian and Ubuntu name arm64 kernels vmlinuz-* as on x86 (an uncompressed Image would be
    // vmlinux-*, which 10_linux's arm64 branch also lists, and its x86 branch does not).
    write(join(t, "boot/vmlinuz-6.1.0-57-arm64"), "");
    write(join(t, "boot/initrd.img-6.1.0-57-arm64"), "");
    write(join(t, "boot/vmlinux-6.8.0-45-generic"), "");
    // grub-mkconfig and 10_linux ask `uname -m` which kernels to list and how.
    write(
      join(t, "bin/uname"),
      '#!/bin/sh\nif [ "$1" = -m ]; then echo aarch64; else exec /bin/uname "$@"; fi\n',
      0o755,
    );
    const { normal, recovery } = grubMkconfigLinuxLines(t, join(t, "bin"));
    const linux = [...normal, ...recovery];
    // The arm64 branch found the vmlinux-* kernel too: proof it ran, not the x86 one.
    expect(linux.some((l) => l.includes("/vmlinux-6.8.0-45-generic"))).toBe(true);
    expect(linux.some((l) => l.includes(`/vmlinuz-${RELEASE}`))).toBe(true);
    expect(normal.length).toBeGreaterThan(0);
    for (const l of normal) {
      expect(l).toMatch(
        / console=ttyAMA0 quiet iommu\.passthrough=1 vfio_iommu_type1\.allow_unsafe_interrupts=1$/,
      );
      expect(l).not.toMatch(/intel_iommu|amd_iommu|iommu=pt/);
    }
    for (const l of recovery) expect(l).not.toMatch(/iommu\.passthrough/);
  }, 60_000);

  it("kmod reads its modprobe.d file as the charm meant it", () => {
    requireTool("modprobe", "kmod");
    const { file } = planArm64({
      devices: "0000:00:03.0, 0000:00:04.0, 0000:01:00.0, 0000:01:00.1",
      "blacklist-drivers": "auto",
    });
    const dir = temp();
    write(join(dir, "pci-passthrough.conf"), file(OWNED.modprobeConf)!);
    const r = spawnSync("modprobe", ["-C", dir, "--showconfig"], { encoding: "utf8" });
    expect(r.stderr).not.toMatch(/ERROR|bad line/);
    const lines = r.stdout.split("\n");
    // Every e1000e goes (twins and the two-function card): e1000e claims nothing the host keeps,
    // so auto blacklists it.
    expect(lines).toContain("blacklist e1000e");
    expect(lines).toContain("softdep e1000e pre: vfio-pci");
  });
});
