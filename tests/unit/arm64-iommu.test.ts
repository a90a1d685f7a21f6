// arm64 hosts: the architecture comes from the running kernel, the Arm SMMU needs no enable
// parameter, passthrough mode is `iommu.passthrough=1`, x86 IOMMU names are refused naming the
// option, and verify-iommu speaks of MSI isolation by the GIC ITS. Host trees are built on disk
// in the shape the arm64 guest of the VM suite showed (tests/support/hosts/presets.ts).
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { verifyIommu } from "../../src/actions/verify-iommu";
import { parseConfig } from "../../src/config";
import {
  interpretArmMsiIsolation,
  readInterruptRemapping,
} from "../../src/host/interrupt-remapping";
import { archOf, readMachine } from "../../src/host/kernel";
import { readHostFacts } from "../../src/host/read-facts";
import { statusFor } from "../../src/plan/status";
import type { HostSpec } from "../support/hosts/build-host";
import { arm64VirtHost, qemuQ35Host } from "../support/hosts/presets";
import { useTempHosts } from "../support/hosts/use-temp-hosts";
import { planOnTree } from "../support/plan-on-tree";

const host = useTempHosts();

const TWIN_A = "0000:00:03.0";

/** Reads the host and plans it for the config, as the install hook does. */
function plan(spec: HostSpec, raw: Record<string, unknown>) {
  return planOnTree(host(spec).root, raw);
}

describe("the architecture, from the running kernel", () => {
  it("reads /proc/sys/kernel/arch, and only falls back to an x86 vendor line without it", () => {
    const arm = host(arm64VirtHost()).root;
    expect(readMachine(arm)).toBe("aarch64");
    expect(archOf("aarch64", "unknown")).toBe("arm64");
    expect(archOf("x86_64", "unknown")).toBe("x86");
    expect(archOf("ppc64le", "unknown")).toBe("other");
    // Kernels before 6.1 have no kernel/arch: an x86 vendor line still says x86 there…
    expect(archOf("", "intel")).toBe("x86");
    // …and arm64's cpuinfo, which has none, leaves it unknown rather than guessing x86.
    expect(archOf("", "unknown")).toBe("unknown");
  });

  it("believes the kernel over /proc/cpuinfo", () => {
    // An x86 vendor line with an aarch64 kernel (a copied cpuinfo): the kernel wins.
    const { facts } = plan({ ...arm64VirtHost(), cpu: "intel" }, {});
    expect([facts.cpuVendor, facts.machine, facts.arch]).toEqual(["intel", "aarch64", "arm64"]);
  });

  it("reads the arm64 guest's host tree without problems: SMMUv3 unit, groups, arch", () => {
    const { facts, readProblems } = plan(arm64VirtHost(), {});
    expect(readProblems).toEqual([]);
    expect(facts).toMatchObject({
      arch: "arm64",
      machine: "aarch64",
      cpuVendor: "unknown",
      iommuUnits: ["smmu3.0x0000000009050000"],
    });
    expect(facts.iommuGroups.get(0)).toEqual(["0000:00:07.0", "0000:01:00.0", "0000:01:00.1"]);
  });
});

describe("kernel parameters on arm64", () => {
  it("auto adds no enable parameter and spells passthrough mode iommu.passthrough=1", () => {
    const { plan: p } = plan(arm64VirtHost(), { devices: TWIN_A });
    expect(p.problems).toEqual([]);
    expect(p.kernelParams).toEqual(["iommu.passthrough=1"]);
    expect(p.notes.join(" ")).not.toMatch(/vendor unknown/);
    const dropIn = p.files.find((f) => f.path.endsWith("99-pci-passthrough.cfg"));
    expect(dropIn?.content).toContain("iommu.passthrough=1");
    expect(dropIn?.content).not.toMatch(/intel_iommu|iommu=pt/);
  });

  it("takes iommu=arm explicitly, and nothing at all without passthrough mode", () => {
    expect(plan(arm64VirtHost(), { iommu: "arm" }).plan.kernelParams).toEqual([
      "iommu.passthrough=1",
    ]);
    expect(
      plan(arm64VirtHost(), { iommu: "arm", "iommu-passthrough-mode": false }).plan.kernelParams,
    ).toEqual([]);
  });

  it("iommu=arm on a kernel that does not say its architecture trusts the operator", () => {
    const spec = { ...arm64VirtHost(), machine: undefined };
    const { facts, plan: p } = plan(spec, { iommu: "arm" });
    expect(facts.arch).toBe("unknown");
    expect(p.problems).toEqual([]);
    expect(p.kernelParams).toEqual(["iommu.passthrough=1"]);
  });

  it("keeps allow-unsafe-interrupts' meaning (vfio_iommu_type1)", () => {
    const { plan: p } = plan(arm64VirtHost(), { "allow-unsafe-interrupts": true });
    expect(p.kernelParams).toEqual([
      "iommu.passthrough=1",
      "vfio_iommu_type1.allow_unsafe_interrupts=1",
    ]);
  });

  it.each(["intel", "amd"])("refuses iommu=%s on arm64, naming the option and the fix", (mode) => {
    const { plan: p } = plan(arm64VirtHost(), { iommu: mode, devices: TWIN_A });
    expect(p.problems).toHaveLength(1);
    expect(p.problems[0]!.option).toBe("iommu");
    expect(p.problems[0]!.message).toMatch(
      new RegExp(
        `^iommu=${mode} names the .* IOMMU of x86 hosts, but this host runs a aarch64 kernel, whose IOMMU is an Arm SMMU: set iommu to auto \\(or arm\\)\\.$`,
      ),
    );
    const status = statusFor({ kind: "plan-problems", problems: p.problems });
    expect(status.name).toBe("blocked");
    expect(status.message).toMatch(new RegExp(`^iommu: iommu=${mode} names`));
  });

  it("refuses iommu=arm on an x86 kernel", () => {
    const { plan: p } = plan({ ...qemuQ35Host(), machine: "x86_64" }, { iommu: "arm" });
    expect(p.problems.map((x) => x.option)).toEqual(["iommu"]);
    expect(p.problems[0]!.message).toBe(
      "iommu=arm names the Arm SMMU of arm64 hosts, but this host runs a x86_64 kernel: set iommu to auto (or intel/amd).",
    );
  });

  it("x86 keeps intel_iommu=on and iommu=pt", () => {
    const { plan: p } = plan({ ...qemuQ35Host(), machine: "x86_64" }, {});
    expect(p.kernelParams).toEqual(["intel_iommu=on", "iommu=pt"]);
  });

  it("refuses iommu.passthrough in extra-kernel-params, naming the option that owns it", () => {
    const parsed = parseConfig({ "extra-kernel-params": "iommu.passthrough=0" });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.errors[0]!.fix).toContain("iommu-passthrough-mode");
  });
});

describe("MSI isolation on arm64 is the GIC ITS", () => {
  it("reads ITS chips as isolated, GICv2m MSIs as not, nothing as unknown", () => {
    expect(interpretArmMsiIsolation(" 28:  0  1   ITS-MSI 49152 Edge      eth0-rx-0\n")).toEqual({
      state: "enabled",
      evidence:
        "/proc/interrupts lists GIC ITS interrupt chips (ITS-MSI): MSIs are isolated per device",
      mechanism: "gic-its",
    });
    expect(
      interpretArmMsiIsolation(" 45:  0  0  ITS-PCI-MSIX-0000:00:03.0   0 Edge  eth0\n").state,
    ).toBe("enabled");
    expect(interpretArmMsiIsolation(" 40:  3  0  MSI 524288 Edge      eth0\n").state).toBe(
      "disabled",
    );
    expect(interpretArmMsiIsolation(" 11:  4  3  GICv3  27 Level  arch_timer\n").state).toBe(
      "unknown",
    );
    expect(interpretArmMsiIsolation(null).state).toBe("unknown");
  });

  /** verify-iommu on the tree at `root` with nothing selected: what it says of the IOMMU itself. */
  function verifyNothingSelected(root: string) {
    const { facts } = readHostFacts(root);
    return verifyIommu({
      facts,
      plannedCmdline: [],
      selection: [],
      usage: new Map(),
      interruptRemapping: readInterruptRemapping(root, facts.arch),
    });
  }

  function verifyArm(interrupts: string, cmdline?: string) {
    const spec = arm64VirtHost();
    spec.files = { "/proc/interrupts": interrupts };
    if (cmdline) spec.cmdline = cmdline;
    const { root, facts, plan: p, usage } = plan(spec, { devices: TWIN_A });
    return verifyIommu({
      facts,
      plannedCmdline: p.kernelParams,
      selection: p.bind,
      usage,
      interruptRemapping: readInterruptRemapping(root, facts.arch),
    });
  }

  it("verify-iommu reports MSI isolation by the GIC ITS, not interrupt remapping", () => {
    const r = verifyArm(" 28:  0  1   ITS-MSI 49152 Edge      eth0-rx-0\n");
    expect(r.results["interrupt-remapping"]).toBeUndefined();
    expect(r.results["msi-isolation"]).toMatchObject({
      state: "enabled",
      by: "GIC ITS",
      "unsafe-interrupts-allowed": "no",
    });
    expect(r.problems.map((p) => p.check)).not.toContain("msi-isolation");
    expect(r.problems.map((p) => p.check)).not.toContain("cmdline");
  });

  it("fails without an ITS, naming the ITS and allow-unsafe-interrupts", () => {
    const r = verifyArm(" 40:  3  0  MSI 524288 Edge      eth0\n");
    const msi = r.problems.find((p) => p.check === "msi-isolation");
    expect(msi?.message).toMatch(/GIC ITS.*allow-unsafe-interrupts=true/);
    expect(r.message).not.toMatch(/interrupt remapping|VT-d/);
  });

  it("passes with allow_unsafe_interrupts on the command line, saying isolation is weaker", () => {
    const r = verifyArm(
      " 40:  3  0  MSI 524288 Edge      eth0\n",
      "console=ttyAMA0 root=/dev/vda rw iommu.passthrough=1 vfio_iommu_type1.allow_unsafe_interrupts=1",
    );
    expect(r.problems.map((p) => p.check)).not.toContain("msi-isolation");
    expect(r.notes.join(" ")).toMatch(/no GIC ITS.*weaker isolation/);
  });

  it("names the SMMU, not VT-d, when the IOMMU is off", () => {
    const spec = arm64VirtHost();
    spec.iommuUnits = [];
    for (const p of spec.pci ?? []) delete p.iommuGroup;
    const r = verifyNothingSelected(host(spec).root);
    expect(r.problems[0]!.message).toMatch(/enable the SMMU in the firmware/);
  });

  it("x86 hosts keep the interrupt-remapping result", () => {
    const root = host({ ...qemuQ35Host(), machine: "x86_64" }).root;
    expect(fs.existsSync(path.join(root, "proc/sys/kernel/arch"))).toBe(true);
    const r = verifyNothingSelected(root);
    expect(r.results["interrupt-remapping"]).toMatchObject({ state: "enabled" });
    expect(r.results["msi-isolation"]).toBeUndefined();
  });
});
