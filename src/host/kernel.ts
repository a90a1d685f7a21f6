// The running kernel and its surroundings: command line, CPU vendor, release, how vfio-pci is
// available, loaded modules, and whether we are in a container (where host preparation is refused).

import { machine as unameMachine } from "node:os";
import type { CpuVendor, HostArch, HostFacts, HostReadProblem, VfioPciAvailability } from "./facts";
import { existsSync, readFileSync, readHead } from "./fs";
import { listedModules, type ModuleListing, moduleListing } from "./modules";
import { errnoCode, readSmallFile } from "./read-files";
import { isRealRoot, moduleFiles, READ, under } from "./root";

/** The command line the running kernel booted with (trimmed); null with a problem when unreadable. */
export function readCmdline(root: string, problems: HostReadProblem[] = []): string | null {
  const text = readSmallFile(root, READ.cmdline, problems, "the kernel command line is unknown");
  if (text === null && !problems.some((p) => p.path === READ.cmdline)) {
    problems.push(missing(READ.cmdline, "the kernel command line is unknown (is /proc mounted?)"));
  }
  return text;
}

/** CPU vendor from the first `vendor_id` in /proc/cpuinfo (Hygon's Zen clones count as AMD). */
export function readCpuVendor(root: string, problems: HostReadProblem[] = []): CpuVendor {
  // /proc/cpuinfo repeats every field per CPU (hundreds of KB on big hosts): the first block
  // carries vendor_id, so read only the start.
  let head: string;
  try {
    const buffer = Buffer.alloc(8192);
    head = buffer.toString("latin1", 0, readHead(under(root, READ.cpuinfo), buffer));
  } catch (error) {
    const code = errnoCode(error);
    problems.push({
      kind: "unreadable",
      path: READ.cpuinfo,
      address: null,
      message: `cannot read ${READ.cpuinfo} (${code}); CPU vendor unknown — set the iommu option to intel or amd`,
    });
    return "unknown";
  }
  const vendor = /^vendor_id\s*:\s*(\S+)/m.exec(head)?.[1];
  if (vendor === "GenuineIntel") return "intel";
  if (vendor === "AuthenticAMD" || vendor === "HygonGenuine") return "amd";
  return "unknown";
}

/**
 * The running kernel's machine (`uname -m`): /proc/sys/kernel/arch (Linux 6.1+), else, on the
 * real host, uname(2) itself; "" under another root whose kernel does not say. Never /proc/cpuinfo:
 * its x86 `vendor_id` line says nothing about an arm64 host (it has none).
 */
export function readMachine(root: string): string {
  const text = readSmallFile(root, READ.kernelArch, [], "");
  if (text) return text.split("\n")[0]!.trim();
  return isRealRoot(root) ? unameMachine() : "";
}

/** The architecture family of a kernel machine; an x86 CPU vendor answers when the kernel did not. */
export function archOf(machine: string, cpuVendor: CpuVendor): HostArch {
  if (/^(?:x86_64|i[3-6]86)$/.test(machine)) return "x86";
  if (/^(?:aarch64|arm64)$/.test(machine)) return "arm64";
  if (machine !== "") return "other";
  return cpuVendor === "unknown" ? "unknown" : "x86";
}

/** The running kernel's release (`6.8.0-45-generic`); "" with a problem when unreadable. */
export function readKernelRelease(root: string, problems: HostReadProblem[] = []): string {
  const text = readSmallFile(root, READ.osrelease, problems, "kernel release unknown");
  if (text === null && !problems.some((p) => p.path === READ.osrelease)) {
    problems.push(missing(READ.osrelease, "kernel release unknown, so its modules cannot be read"));
  }
  return text ?? "";
}

/** Whether vfio-pci is built into the running kernel, a loadable module, or missing. `listing`
 * holds what this dispatch read of modules.builtin and modules.dep; what this reads goes into it,
 * so readModuleNames (module names for the plan) does not read the same files again. */
export function readVfioPciAvailability(
  root: string,
  release: string,
  problems: HostReadProblem[] = [],
  listing: ModuleListing = moduleListing(release),
): VfioPciAvailability {
  if (release !== "") {
    const files = moduleFiles(release);
    const own = listing.release === release ? listing : moduleListing(release);
    // Ubuntu since 20.04: `kernel/drivers/vfio/pci/vfio-pci.ko` listed here (CONFIG_VFIO_PCI=y).
    if (lists(root, own, "builtin", files.builtin, problems, "vfio-pci assumed not built in")) {
      return "builtin";
    }
    for (const ext of ["", ".zst", ".xz", ".gz"]) {
      if (existsSync(under(root, `${files.dir}/kernel/drivers/vfio/pci/vfio-pci.ko${ext}`))) {
        return "module";
      }
    }
    // DKMS or distro kernels may keep it elsewhere (updates/, extra/): modules.dep knows.
    if (lists(root, own, "dep", files.dep, problems, "vfio-pci module not looked up")) {
      return "module";
    }
  }
  // No module file but the driver is registered: built in (or /lib/modules is not there to ask).
  if (existsSync(under(root, `${READ.pciDrivers}/vfio-pci`))) return "builtin";
  // Without the release there was no /lib/modules/<release> to ask: unknown, not missing.
  return release === "" ? "unknown" : "missing";
}

/** Whether a listing file names vfio_pci; a file that exists but cannot be read is a problem. */
function lists(
  root: string,
  listing: ModuleListing,
  which: "builtin" | "dep",
  file: string,
  problems: HostReadProblem[],
  consequence: string,
): boolean {
  const list = listedModules(root, listing, which);
  if ("names" in list) return list.names.has("vfio_pci");
  if (list.error !== "ENOENT") {
    problems.push({
      kind: "unreadable",
      path: file,
      address: null,
      message: `cannot read ${file} (${list.error}); ${consequence}`,
    });
  }
  return false;
}

/** Names of loaded modules from /proc/modules (as the kernel spells them: `snd_hda_intel`). */
export function readLoadedModules(root: string, problems: HostReadProblem[] = []): Set<string> {
  const text = readSmallFile(root, READ.modules, problems, "loaded modules unknown");
  const names = new Set<string>();
  for (const line of (text ?? "").split("\n")) {
    const name = line.split(" ", 1)[0];
    if (name) names.add(name);
  }
  return names;
}

/** Whether we run in a container, and the evidence (for the status line). */
export interface ContainerDetection {
  container: boolean;
  /** Operator words: `/run/systemd/container says "lxc"`. Null on a machine. */
  evidence: string | null;
}

/** Detects LXD/LXC, systemd-nspawn, docker & co: host preparation needs a machine. */
export function detectContainer(root: string): ContainerDetection {
  const ignored: HostReadProblem[] = [];
  // systemd (PID 1 in LXD's Ubuntu images) writes the container manager's name here.
  const marker = readSmallFile(root, READ.containerMarker, ignored, "");
  if (marker) {
    return { container: true, evidence: `${READ.containerMarker} says "${marker.split("\n")[0]}"` };
  }
  // Container managers hand PID 1 `container=<type>` (LXD, nspawn, podman).
  try {
    const environ = readFileSync(under(root, READ.initEnviron), "latin1");
    const entry = environ.split("\0").find((e) => e.startsWith("container="));
    if (entry && entry.length > "container=".length) {
      return { container: true, evidence: `${entry} in ${READ.initEnviron}` };
    }
  } catch {
    // Unreadable without root or absent: other evidence may still answer.
  }
  for (const file of READ.containerFiles) {
    if (existsSync(under(root, file))) return { container: true, evidence: `${file} exists` };
  }
  return { container: false, evidence: null };
}

/** The kernel-side facts HostFacts needs, read in one go, and why this is a container. */
export type KernelFacts = Pick<
  HostFacts,
  "cmdline" | "cpuVendor" | "machine" | "arch" | "kernelRelease" | "vfioPci" | "container"
> & {
  /** Operator words for why this is a container (`/run/systemd/container says "lxc"`), or null. */
  containerEvidence: string | null;
  /** What was read of the module listings for vfio-pci: readModuleNames reuses it. */
  moduleListing: ModuleListing;
};

/** Reads cmdline, CPU vendor, machine and architecture, release, vfio-pci availability and container state. */
export function readKernelFacts(root: string, problems: HostReadProblem[] = []): KernelFacts {
  const kernelRelease = readKernelRelease(root, problems);
  const detection = detectContainer(root);
  const machine = readMachine(root);
  // arm64's /proc/cpuinfo has no vendor_id line: not a problem worth reporting there.
  const cpuProblems: HostReadProblem[] = [];
  const cpuVendor = readCpuVendor(root, cpuProblems);
  const arch = archOf(machine, cpuVendor);
  if (arch === "x86" || arch === "unknown") problems.push(...cpuProblems);
  const listing = moduleListing(kernelRelease);
  return {
    cmdline: readCmdline(root, problems),
    cpuVendor,
    machine,
    arch,
    kernelRelease,
    vfioPci: readVfioPciAvailability(root, kernelRelease, problems, listing),
    container: detection.container,
    containerEvidence: detection.evidence,
    moduleListing: listing,
  };
}

function missing(hostPath: string, consequence: string): HostReadProblem {
  return {
    kind: "unreadable",
    path: hostPath,
    address: null,
    message: `${hostPath} does not exist; ${consequence}`,
  };
}
