/**
 * vitest wiring for a guest shared by the tests of one describe block: boot once in beforeAll, save
 * the console whenever a test fails, stop QEMU in afterAll.
 */
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { type BootOptions, bootGuest, type Guest } from "./guest";
import { VM_CACHE } from "./paths";
import type { IommuKind } from "./qemu-args";
import type { BedKernel } from "./require-tools";
import type { Topology } from "./topologies";

export interface BedGuestOptions {
  topology: Topology;
  iommu: IommuKind;
  name: string;
  append?: string[];
  share?: string;
  memoryMb?: number;
  qemu?: BootOptions["qemu"];
}

/** Boots a tier-1 guest (busybox initramfs, the host's root — or the arm64 userland — over 9p,
 * chroot) of the kernel's architecture. */
export function bootBedGuest(kernel: BedKernel, opts: BedGuestOptions): Promise<Guest> {
  return bootGuest({
    ...opts,
    arch: kernel.arch,
    kernel: kernel.kernel,
    initrd: kernel.initramfs,
    root: { kind: "bed", modules: kernel.modules, rootfs: kernel.rootfs },
  });
}

/** The passthrough parameter the charm's grub drop-in sets for each IOMMU: booted with it, a guest
 * lets verify-iommu pass once devices move. */
const DROP_IN_PASSTHROUGH: Record<IommuKind, string[]> = {
  intel: ["iommu=pt"],
  amd: ["iommu=pt"],
  smmuv3: ["iommu.passthrough=1"],
  none: [],
};

/**
 * A tier-1 guest for one describe block: a fresh read-write share and the guest, both named
 * `name`, booted once with the passthrough parameter the charm's drop-in sets for `iommu`.
 */
export function useBedGuest(
  kernel: BedKernel,
  name: string,
  topology: Topology,
  iommu: IommuKind,
  more: Pick<BedGuestOptions, "memoryMb" | "qemu"> = {},
): { share: string; guest: () => Guest } {
  const share = useShare(name);
  const append = DROP_IN_PASSTHROUGH[iommu];
  const guest = useGuest(() =>
    bootBedGuest(kernel, { topology, iommu, name, append, share, ...more }),
  );
  return { share, guest };
}

/** Registers the hooks and returns a getter for the guest (valid inside tests). */
export function useGuest(boot: () => Promise<Guest>): () => Guest {
  let guest: Guest | undefined;
  beforeAll(async () => {
    guest = await boot();
  });
  beforeEach((ctx) => {
    ctx.onTestFailed(() => {
      guest?.saveConsole(`test failed: ${ctx.task.name}`);
    });
  });
  afterAll(async () => {
    await guest?.shutdown();
  });
  return () => {
    if (!guest) throw new Error("the guest did not boot (see the beforeAll error)");
    return guest;
  };
}

/**
 * A fresh host folder for a guest's read-write share, in the bed's cache (removed after the describe
 * block; VM_KEEP_SHARE=1 keeps it).
 */
export function useShare(name: string): string {
  const dir = path.join(VM_CACHE, "run", `${name}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  afterAll(() => {
    if (!process.env.VM_KEEP_SHARE) rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
