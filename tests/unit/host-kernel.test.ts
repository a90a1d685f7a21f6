// kernel.ts against built host trees: command line, CPU vendor, release, how vfio-pci ships,
// loaded modules, container detection.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import type { HostReadProblem } from "../../src/host/facts";
import {
  detectContainer,
  readCmdline,
  readCpuVendor,
  readKernelFacts,
  readKernelRelease,
  readLoadedModules,
  readVfioPciAvailability,
} from "../../src/host/kernel";
import type { BuiltHost } from "../support/hosts/build-host";
import { amdHost, qemuQ35Host, seedHost } from "../support/hosts/presets";
import { useTempHosts } from "../support/hosts/use-temp-hosts";

const host = useTempHosts();

describe("command line, release, CPU", () => {
  it("reads the command line trimmed and the release", () => {
    const root = host(seedHost()).root;
    expect(readCmdline(root)).toBe("BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/sda1 ro");
    expect(readKernelRelease(root)).toBe("6.8.0-45-generic");
  });

  it("reports a missing /proc/cmdline as a problem and an unknown (not empty) line", () => {
    const built = host(seedHost());
    fs.rmSync(path.join(built.root, "proc/cmdline"));
    const problems: HostReadProblem[] = [];
    expect(readCmdline(built.root, problems)).toBeNull();
    expect(problems[0]!.message).toContain("/proc/cmdline");
  });

  it.each([
    ["intel", "intel"],
    ["amd", "amd"],
    ["hygon", "amd"],
    ["arm", "unknown"],
  ] as const)("reads a %s CPU as %s", (cpu, vendor) => {
    expect(readCpuVendor(host({ cpu }).root)).toBe(vendor);
  });

  it("finds vendor_id in a big /proc/cpuinfo from its first block", () => {
    const built = host({ cpu: "amd" });
    const block = fs.readFileSync(path.join(built.root, "proc/cpuinfo"), "latin1");
    fs.writeFileSync(path.join(built.root, "proc/cpuinfo"), block.repeat(200));
    expect(readCpuVendor(built.root)).toBe("amd");
  });

  it("says the CPU is unknown, with the option to set, when cpuinfo is unreadable", () => {
    const built = host({ cpu: "intel" });
    fs.rmSync(path.join(built.root, "proc/cpuinfo"));
    fs.mkdirSync(path.join(built.root, "proc/cpuinfo"));
    const problems: HostReadProblem[] = [];
    expect(readCpuVendor(built.root, problems)).toBe("unknown");
    expect(problems[0]!.message).toMatch(/\/proc\/cpuinfo \(EISDIR\).*set the iommu option/);
  });
});

describe("vfio-pci availability", () => {
  const release = "6.8.0-45-generic";
  const modulesDir = (built: BuiltHost) => path.join(built.root, "lib/modules", release);

  it("is builtin when modules.builtin lists vfio-pci.ko (Ubuntu)", () => {
    const built = host({ vfioPci: "builtin" });
    expect(readVfioPciAvailability(built.root, release)).toBe("builtin");
  });

  it("is builtin from modules.builtin even before the driver directory shows", () => {
    const built = host({ vfioPci: "builtin" });
    fs.rmSync(path.join(built.root, "sys/bus/pci/drivers/vfio-pci"), { recursive: true });
    expect(readVfioPciAvailability(built.root, release)).toBe("builtin");
  });

  it("is a module when vfio-pci.ko.zst exists (Debian), loaded or not", () => {
    expect(readVfioPciAvailability(host({ vfioPci: "module" }).root, release)).toBe("module");
    const loaded = host({ vfioPci: "module", vfioLoaded: true });
    expect(fs.existsSync(path.join(loaded.root, "sys/bus/pci/drivers/vfio-pci"))).toBe(true);
    expect(readVfioPciAvailability(loaded.root, release)).toBe("module");
  });

  it.each(["vfio-pci.ko", "vfio-pci.ko.xz"])(
    "is a module for kernel/drivers/vfio/pci/%s",
    (file) => {
      const built = host({
        vfioPci: "missing",
        modules: { files: [`kernel/drivers/vfio/pci/${file}`] },
      });
      expect(readVfioPciAvailability(built.root, release)).toBe("module");
    },
  );

  it("is a module when only modules.dep knows it (a DKMS/updates build)", () => {
    const built = host({
      vfioPci: "missing",
      modules: { dep: ["updates/dkms/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko"] },
    });
    expect(readVfioPciAvailability(built.root, release)).toBe("module");
  });

  it("is builtin when the driver is registered but there is no module file anywhere", () => {
    const built = host({ vfioPci: "missing", extraDrivers: ["vfio-pci"] });
    fs.rmSync(modulesDir(built), { recursive: true });
    expect(readVfioPciAvailability(built.root, release)).toBe("builtin");
  });

  it("is missing with neither", () => {
    const built = host({ vfioPci: "missing" });
    expect(readVfioPciAvailability(built.root, release)).toBe("missing");
    fs.rmSync(modulesDir(built), { recursive: true });
    expect(readVfioPciAvailability(built.root, release)).toBe("missing");
  });

  it("is unknown, not missing, when the release is unknown and no vfio-pci is registered", () => {
    const built = host({ vfioPci: "missing" });
    fs.rmSync(path.join(built.root, "proc/sys/kernel/osrelease"));
    const problems: HostReadProblem[] = [];
    const facts = readKernelFacts(built.root, problems);
    expect(facts.kernelRelease).toBe("");
    expect(facts.vfioPci).toBe("unknown");
    expect(problems.map((p) => p.path)).toContain("/proc/sys/kernel/osrelease");
    // Registered, it is there whatever the release.
    const registered = host({ vfioPci: "missing", extraDrivers: ["vfio-pci"] });
    expect(readVfioPciAvailability(registered.root, "")).toBe("builtin");
  });

  it("does not mistake vfio-pci-core or vfio_pci aliases for vfio-pci", () => {
    const built = host({
      vfioPci: "missing",
      modules: {
        builtin: ["kernel/drivers/vfio/pci/vfio-pci-core.ko"],
        alias: ["alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci"],
        dep: ["kernel/drivers/vfio/pci/vfio-pci-core.ko: kernel/drivers/vfio/pci/vfio-pci.ko"],
      },
    });
    expect(readVfioPciAvailability(built.root, release)).toBe("missing");
  });
});

describe("loaded modules", () => {
  it("reads the module names from /proc/modules", () => {
    const names = readLoadedModules(host(qemuQ35Host()).root);
    expect([...names]).toEqual(["bochs", "e1000e", "virtio_pci", "ahci", "lpc_ich", "i2c_i801"]);
  });

  it("defaults to the bound drivers that are not built in", () => {
    const names = readLoadedModules(host(amdHost()).root);
    expect(names.has("amdgpu")).toBe(true);
    expect(names.has("snd_hda_intel")).toBe(true);
    expect(names.has("vfio_pci")).toBe(false);
    expect(names.has("pcieport")).toBe(false);
  });
});

describe("container detection", () => {
  it("sees a machine as a machine", () => {
    expect(detectContainer(host(seedHost()).root)).toEqual({ container: false, evidence: null });
  });

  it("believes systemd's /run/systemd/container", () => {
    expect(detectContainer(host({ container: "lxc" }).root)).toEqual({
      container: true,
      evidence: '/run/systemd/container says "lxc"',
    });
  });

  it("reads container= from PID 1's environment when systemd did not write its marker", () => {
    const built = host({ container: "systemd-nspawn" });
    fs.rmSync(path.join(built.root, "run/systemd/container"));
    expect(detectContainer(built.root)).toEqual({
      container: true,
      evidence: "container=systemd-nspawn in /proc/1/environ",
    });
  });

  it.each(["/dev/.lxd-mounts", "/.dockerenv"])("takes %s as evidence", (file) => {
    const built = host({ files: { [file]: file === "/.dockerenv" ? "" : null } });
    expect(detectContainer(built.root)).toEqual({ container: true, evidence: `${file} exists` });
  });

  it("does not take an LXD VM's /dev/lxd/sock for a container", () => {
    const built = host({ files: { "/dev/lxd/sock": "" } });
    expect(detectContainer(built.root).container).toBe(false);
  });

  it("feeds readKernelFacts", () => {
    const facts = readKernelFacts(host({ ...amdHost(), container: "lxc" }).root);
    expect(facts).toMatchObject({
      cpuVendor: "amd",
      kernelRelease: "6.8.0-45-generic",
      vfioPci: "builtin",
      container: true,
      containerEvidence: '/run/systemd/container says "lxc"',
    });
  });
});
