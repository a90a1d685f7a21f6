/**
 * Decides whether the VM suites can run here, preparing the cached kernel/initramfs on the way.
 *
 * A missing tool never skips: the suite fails with the reason and the package to install.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "vitest";
import { SCRIPTS, VM_CACHE } from "./paths";
import { type GuestArch, qemuBinary } from "./qemu-args";

/** The kernel and initramfs scripts/vm/prepare.sh produced (.cache/vm/kernel.json, or
 * kernel-arm64.json for VM_ARCH=arm64). */
export interface BedKernel {
  arch: GuestArch;
  release: string;
  package: string;
  kernel: string;
  initramfs: string;
  /** The guest kernel's module tree on the host (visible to the guest over 9p). */
  modules: string;
  modulesRoot: string;
  /** What the guest mounts as its root: the host's `/` (amd64) or the bed's arm64 userland. */
  rootfs: string;
}

export type BedStatus = { ok: true; kernel: BedKernel } | { ok: false; reason: string };

/** Tools each tier needs, with the Debian package that provides each. */
const TOOLS: Record<1 | 2, Array<[tool: string, pkg: string]>> = {
  1: [
    ["busybox", "busybox-static"],
    ["cpio", "cpio"],
    ["depmod", "kmod"],
    ["apt-get", "apt"],
    // The packed charm is unzipped on the host before it is copied into a guest.
    ["unzip", "unzip"],
  ],
  2: [
    ["debootstrap", "debootstrap"],
    ["mkfs.ext4", "e2fsprogs"],
    ["debugfs", "e2fsprogs"],
  ],
};

function onPath(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0;
}

/** The emulator of each guest architecture and its Debian package. */
const QEMU: Record<GuestArch, [tool: string, pkg: string]> = {
  amd64: [qemuBinary("amd64"), "qemu-system-x86"],
  arm64: [qemuBinary("arm64"), "qemu-system-arm"],
};

/**
 * Checks the tools of a tier and makes sure the cached kernel and initramfs of the architecture
 * (default amd64) are current.
 */
export function checkVmBed(tier: 1 | 2, arch: GuestArch = "amd64"): BedStatus {
  const wanted = [QEMU[arch], ...TOOLS[1], ...(tier === 2 ? TOOLS[2] : [])];
  const missing = wanted.filter(([tool]) => !onPath(tool));
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map(([, pkg]) => pkg))].join(" ");
    return {
      ok: false,
      reason: `missing ${missing.map(([t]) => t).join(", ")}: apt-get install ${pkgs}`,
    };
  }
  if (process.getuid?.() !== 0) {
    return { ok: false, reason: "the VM bed must be prepared as root (mknod, debootstrap)" };
  }
  // prepare.sh is idempotent: well under a second when the cache is current.
  const prep = spawnSync("bash", [path.join(SCRIPTS, "prepare.sh")], {
    encoding: "utf8",
    env: { ...process.env, VM_CACHE_DIR: VM_CACHE, VM_ARCH: arch },
  });
  if (prep.status !== 0) {
    const tail = `${prep.stderr ?? ""}${prep.error?.message ?? ""}`.trim().split("\n").slice(-8);
    return {
      ok: false,
      reason: `scripts/vm/prepare.sh failed (exit ${prep.status}):\n${tail.join("\n")}`,
    };
  }
  const manifest = path.join(VM_CACHE, arch === "amd64" ? "kernel.json" : `kernel-${arch}.json`);
  const kernel = JSON.parse(readFileSync(manifest, "utf8")) as BedKernel;
  for (const file of [kernel.kernel, kernel.initramfs, kernel.modules]) {
    if (!existsSync(file)) {
      return { ok: false, reason: `${manifest} names ${file}, which does not exist` };
    }
  }
  return { ok: true, kernel };
}

/**
 * `describe` for a VM suite: runs `body` when the bed is usable; otherwise the suite fails, naming
 * what is missing (scripts/setup.sh installs every tool; a machine without one never passes by
 * skipping).
 */
export function describeVm(
  title: string,
  status: BedStatus,
  body: (kernel: BedKernel) => void,
): void {
  if (status.ok) {
    describe(title, () => body(status.kernel));
    return;
  }
  describe(title, () => {
    it("has the VM test bed it needs", () => {
      throw new Error(`VM test bed unavailable: ${status.reason}`);
    });
  });
}
