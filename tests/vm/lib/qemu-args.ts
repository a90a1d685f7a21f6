/**
 * Builds the QEMU command line of a test-bed guest. Pure: the caller supplies the kernel files and
 * the command-channel socket; nothing here touches the host.
 */
import path from "node:path";
import type { Topology } from "./topologies";

/** The guest's architecture, in Debian's words (the kernel package's suffix). */
export type GuestArch = "amd64" | "arm64";

/** The emulated IOMMU: x86's Intel VT-d or AMD-Vi, arm64's SMMUv3, or none. */
export type IommuKind = "intel" | "amd" | "smmuv3" | "none";

/** How the guest gets its root. */
export type GuestRoot =
  /**
   * Tier 1: busybox initramfs, a host folder read-only over 9p (`rootfs`: the host's own root for
   * amd64 guests, the bed's arm64 userland for arm64 ones), overlay on tmpfs, chroot. `modules` is
   * the host path of the guest kernel's module tree, inside `rootfs` (default `/`).
   */
  | { kind: "bed"; modules: string; rootfs?: string }
  /** Tier 2: a disk image with its own systemd root. */
  | { kind: "disk"; image: string; rootDevice?: string };

export interface QemuPlan {
  /** Default amd64. */
  arch?: GuestArch;
  kernel: string;
  initrd: string;
  topology: Topology;
  iommu: IommuKind;
  root: GuestRoot;
  /** A host folder shared read-write (9p tag "vmbedshare"); guest.ts mounts it at the same path. */
  share?: string;
  /** Unix socket the host listens on; QEMU connects to it as the agent's port. */
  agentSocket: string;
  /** Unix socket for the hook-tool proxy's port (vmbed.tools). */
  toolsSocket: string;
  /** Guest hostname (tier 1) and the name in logs. */
  name: string;
  /** Extra kernel command-line words. */
  append?: string[];
  /**
   * A complete kernel command line that replaces the computed one (tier 2's grub.cfg line); the
   * guest still gets EMULATOR_KERNEL_ARGS after it.
   */
  cmdline?: string;
  memoryMb?: number;
  cpus?: number;
}

/** Kernel command-line words that switch the emulated IOMMU on in the guest kernel. */
export function iommuKernelArgs(iommu: IommuKind): string[] {
  // The AMD IOMMU is on by default in the kernel; "amd_iommu=on" is not a valid value.
  return iommu === "intel" ? ["intel_iommu=on"] : [];
}

/** The QEMU program for an architecture (Debian's qemu-system-x86 / qemu-system-arm). */
export function qemuBinary(arch: GuestArch = "amd64"): string {
  return arch === "arm64" ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

/** The serial console of the machine the bed emulates (q35's 16550, virt's PL011). */
export function consoleDevice(arch: GuestArch = "amd64"): string {
  return arch === "arm64" ? "ttyAMA0" : "ttyS0";
}

/**
 * Words every bed guest boots with, added to whatever line it boots (tier 2's grub.cfg line too):
 * they are the emulator's, not part of what the charm or the guest's grub decided.
 * `no_timer_check`: under TCG on a loaded machine, the kernel's early check that the timer
 * interrupt arrives through the emulated IOMMU's interrupt remapping can time out and panic
 * ("timer doesn't work through Interrupt-remapped IO-APIC") before any userland runs. A real
 * machine's timer passes that check; skipping it changes nothing the tests look at.
 */
export const EMULATOR_KERNEL_ARGS: readonly string[] = ["no_timer_check"];

/** A command line with the emulator's words added (each once, at the end). */
export function withEmulatorArgs(cmdline: string): string {
  const words = cmdline.split(/\s+/).filter((w) => w !== "");
  return [...words, ...EMULATOR_KERNEL_ARGS.filter((w) => !words.includes(w))].join(" ");
}

/** The kernel command line the bed boots with unless the plan gives one. */
export function defaultCmdline(plan: QemuPlan): string {
  const words = [`console=${consoleDevice(plan.arch)}`, "panic=-1", ...iommuKernelArgs(plan.iommu)];
  if (plan.root.kind === "bed") {
    // The init finds the module tree inside the root it mounts.
    const modules = `/${path.relative(plan.root.rootfs ?? "/", plan.root.modules)}`;
    words.push(`vmbed_modules=${modules}`, `vmbed_name=${plan.name}`);
  } else {
    words.push(`root=${plan.root.rootDevice ?? "/dev/vda"}`, "rw");
  }
  return [...words, ...(plan.append ?? [])].join(" ");
}

/** The machine, CPU and IOMMU arguments: q35 for amd64, virt for arm64. */
function machineArgs(plan: QemuPlan): string[] {
  if (plan.arch === "arm64") {
    // GICv3 with its ITS, as arm64 servers have: the ITS is what isolates MSIs on arm64 (VFIO's
    // counterpart of x86 interrupt remapping). virt's default GICv2 has only GICv2m, which does not.
    const iommu = plan.iommu === "smmuv3" ? ",iommu=smmuv3" : "";
    return ["-M", `virt,gic-version=3${iommu}`, "-cpu", "max"];
  }
  const args = ["-M", "q35"];
  // The IOMMU first: it must exist before the devices it translates for are realized.
  if (plan.iommu === "intel") {
    // TCG's default CPU says AuthenticAMD; an Intel IOMMU belongs with an Intel CPU (the charm
    // reads the vendor from /proc/cpuinfo to choose intel_iommu=on).
    args.push("-cpu", "qemu64,vendor=GenuineIntel", "-device", "intel-iommu");
  } else if (plan.iommu === "amd") {
    args.push("-cpu", "EPYC", "-device", "amd-iommu");
  }
  return args;
}

/** The argument vector of qemuBinary(plan.arch) for a plan. */
export function qemuArgs(plan: QemuPlan): string[] {
  if ((plan.iommu === "smmuv3") !== (plan.arch === "arm64") && plan.iommu !== "none") {
    throw new Error(`an ${plan.iommu} IOMMU does not exist on ${plan.arch ?? "amd64"} guests`);
  }
  const args = [
    "-accel",
    "tcg",
    ...machineArgs(plan),
    "-m",
    String(plan.memoryMb ?? 1024),
    "-smp",
    String(plan.cpus ?? 2),
    // No default NIC, VGA, monitor or serial: every device is one the topology asked for.
    "-nodefaults",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-no-reboot",
  ];
  args.push(
    "-kernel",
    plan.kernel,
    "-initrd",
    plan.initrd,
    "-append",
    withEmulatorArgs(plan.cmdline ?? defaultCmdline(plan)),
  );
  // The bed's own devices, at slots the topologies keep free.
  args.push(
    "-fsdev",
    `local,id=hostroot,path=${(plan.root.kind === "bed" && plan.root.rootfs) || "/"},security_model=none,readonly=on,multidevs=remap`,
    "-device",
    "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,addr=10.0",
    "-device",
    "virtio-serial-pci,addr=11.0,id=vmbedserial",
    "-chardev",
    `socket,id=vmbedagent,path=${plan.agentSocket}`,
    "-device",
    "virtserialport,bus=vmbedserial.0,chardev=vmbedagent,name=vmbed.agent",
    "-chardev",
    `socket,id=vmbedtools,path=${plan.toolsSocket}`,
    "-device",
    "virtserialport,bus=vmbedserial.0,chardev=vmbedtools,name=vmbed.tools",
  );
  if (plan.share) {
    args.push(
      "-fsdev",
      `local,id=vmbedshare,path=${plan.share},security_model=none`,
      "-device",
      "virtio-9p-pci,fsdev=vmbedshare,mount_tag=vmbedshare,addr=13.0",
    );
  }
  if (plan.root.kind === "disk") {
    args.push("-drive", `file=${plan.root.image},format=raw,if=none,id=rootdisk`);
    args.push("-device", "virtio-blk-pci,drive=rootdisk,addr=12.0");
  }
  args.push(...(plan.topology.backendArgs ?? []));
  for (const d of plan.topology.devices) {
    if (d.qemu) args.push("-device", d.qemu);
  }
  args.push(...(plan.topology.extraArgs ?? []));
  return args;
}
