// The status says what is really wrong: firmware, not reboot; unknown, not false; no grub, a
// failed regeneration. Pure: an outcome in, the one status out.
import { describe, expect, it } from "vitest";
import type { HostFacts } from "../../src/host/facts";
import {
  type FailedCommand,
  iommuOffReason,
  kernelParamsByHandMessage,
  NO_GRUB,
  statusFor,
  withheldMessage,
} from "../../src/plan/status";
import type { HostPlan } from "../../src/plan/types";
import { bound } from "../support/bound-devices";
import { fn, host } from "../support/host-facts";

const GPU = "0000:83:00.0";
const PARAMS = ["intel_iommu=on", "iommu=pt"];
const BOOT = "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/sda1 ro";

function plan(params = PARAMS, addresses = [GPU]): HostPlan {
  const bind = addresses.map((address) => bound(address, "10de:1bb0", "gpu"));
  return {
    files: [],
    feeds: {},
    kernelParams: params,
    blacklist: [],
    softdeps: [],
    bind,
    problems: [],
    notes: [],
    withheld: [],
    sriov: [],
  };
}

/** The GPU on `driver`, in group 42 when the IOMMU is `on`. */
function facts(opts: {
  iommu: "on" | "off" | "no-support";
  cmdline: string | null;
  driver: string;
  units?: string[];
  cpu?: HostFacts["cpuVendor"];
}): HostFacts {
  const gpu = fn(GPU, "10de:1bb0", "030000", {
    driver: opts.driver,
    iommuGroup: opts.iommu === "on" ? 42 : null,
  });
  return host([gpu], {
    cmdline: opts.cmdline,
    iommuUnits: opts.units ?? (opts.iommu === "on" ? ["dmar0"] : []),
    iommuGroupsDir: opts.iommu === "no-support" ? "absent" : "present",
    cpuVendor: opts.cpu ?? "intel",
  });
}

const prepared = (p: HostPlan, f: HostFacts, failed: FailedCommand[] = []) =>
  statusFor({ kind: "prepared", plan: p, facts: f, failed });

describe("the IOMMU, said as it is", () => {
  it("parameters on the command line but no groups and no unit: the firmware, not a reboot", () => {
    const s = prepared(
      plan(),
      facts({ iommu: "off", cmdline: `${BOOT} intel_iommu=on iommu=pt`, driver: "nouveau" }),
    );
    expect(s.name).toBe("blocked");
    expect(s.message).toMatch(/enable VT-d in the firmware setup/);
    expect(s.message).toContain("booted with intel_iommu=on");
    expect(s.message).not.toMatch(/reboot required/);
  });

  it("AMD needs no switch: no groups at all is the firmware, even before the reboot", () => {
    const s = prepared(
      plan(["iommu=pt"]),
      facts({ iommu: "off", cmdline: BOOT, driver: "nouveau", cpu: "amd" }),
    );
    expect(s.name).toBe("blocked");
    expect(s.message).toMatch(/enable AMD-Vi \(IOMMU\) in the firmware setup/);
  });

  it("the switch missing from the command line: the reboot turns it on", () => {
    const s = prepared(plan(), facts({ iommu: "off", cmdline: BOOT, driver: "nouveau" }));
    expect(s.name).toBe("blocked");
    expect(s.message).toMatch(
      /^reboot required: kernel command line lacks intel_iommu=on iommu=pt/,
    );
  });

  it("a kernel without IOMMU support is named as such", () => {
    const s = prepared(
      plan(),
      facts({ iommu: "no-support", cmdline: `${BOOT} intel_iommu=on iommu=pt`, driver: "nouveau" }),
    );
    expect(s.message).toMatch(/no IOMMU support \(\/sys\/kernel\/iommu_groups does not exist/);
  });

  it("IOMMU on by default and the device already on vfio-pci: active, the drop-in waits for the next boot", () => {
    const s = prepared(plan(), facts({ iommu: "on", cmdline: BOOT, driver: "vfio-pci" }));
    expect(s.name).toBe("active");
    expect(s.message).toMatch(/^1 device \(gpu x1\) on vfio-pci; IOMMU on \(dmar0\)/);
    expect(s.message).toContain(
      "the running kernel lacks intel_iommu=on iommu=pt: the drop-in applies at the next boot",
    );
  });

  it("IOMMU on by default but the device not on vfio-pci yet: still a reboot", () => {
    const s = prepared(plan(), facts({ iommu: "on", cmdline: BOOT, driver: "nouveau" }));
    expect(s.name).toBe("blocked");
    expect(s.message).toMatch(/^reboot required: .*0000:83:00\.0 not on vfio-pci yet/);
  });
});

describe("unknown is not false", () => {
  it("no /proc/cmdline: unknown, never 'lacks' or 'not booted with'", () => {
    const off = prepared(plan(), facts({ iommu: "off", cmdline: null, driver: "nouveau" }));
    expect(off.name).toBe("blocked");
    expect(off.message).toMatch(/kernel command line is unknown/);
    expect(off.message).not.toMatch(/lacks|not booted with/);
    const pending = prepared(plan(), facts({ iommu: "on", cmdline: null, driver: "nouveau" }));
    expect(pending.message).toMatch(/^reboot required: kernel command line unknown/);
    expect(pending.message).not.toMatch(/lacks/);
    const working = prepared(plan(), facts({ iommu: "on", cmdline: null, driver: "vfio-pci" }));
    expect(working.name).toBe("active");
    expect(working.message).toContain("kernel command line unknown (/proc/cmdline unreadable)");
  });

  it("iommuOffReason is null while groups exist", () => {
    expect(
      iommuOffReason(PARAMS, facts({ iommu: "on", cmdline: BOOT, driver: "nouveau" })),
    ).toBeNull();
  });
});

describe("grub and /boot that do not cooperate", () => {
  const notFound: FailedCommand = {
    kind: "grub",
    argv: ["update-grub"],
    notFound: true,
    message: "`update-grub` was not run: update-grub is not on this host (not found on PATH)",
  };

  it("no grub: blocked with the exact parameters to add by hand", () => {
    const s = prepared(plan(), facts({ iommu: "off", cmdline: BOOT, driver: "nouveau" }), [
      notFound,
    ]);
    expect(s).toEqual({
      name: "blocked",
      message: kernelParamsByHandMessage(PARAMS, NO_GRUB),
    });
    expect(s.message).toMatch(/by hand, then reboot: intel_iommu=on iommu=pt$/);
  });

  it("no grub, but the parameters were added by hand: not blocked on grub", () => {
    const s = prepared(
      plan(),
      facts({ iommu: "on", cmdline: `${BOOT} intel_iommu=on iommu=pt`, driver: "vfio-pci" }),
      [notFound],
    );
    expect(s.name).toBe("active");
    expect(s.message).toContain("kept by hand");
  });

  /** The status after `update-initramfs -u -k all` failed so, before the reboot. */
  const initramfsFailed = (notFound: boolean, message: string) =>
    prepared(plan(), facts({ iommu: "on", cmdline: BOOT, driver: "nouveau" }), [
      { kind: "initramfs", argv: ["update-initramfs", "-u", "-k", "all"], notFound, message },
    ]);

  it("no update-initramfs (a dracut host): what to do, and no promise to retry every hook", () => {
    const s = initramfsFailed(
      true,
      "`update-initramfs -u -k all` was not run: update-initramfs is not on this host (not found on PATH)",
    );
    expect(s.name).toBe("blocked");
    expect(s.message).toContain("install it or do its work by hand");
    expect(s.message).toContain("runs it once it is on PATH or its inputs change");
    expect(s.message).not.toContain("runs it again at its next hook");
  });

  it("a full /boot: the failure, that the files are written, and what to do", () => {
    const s = initramfsFailed(
      false,
      "`update-initramfs -u -k all` failed with exit code 1: cpio: write error: No space left on device",
    );
    expect(s.name).toBe("blocked");
    expect(s.message).toMatch(/^`update-initramfs -u -k all` failed with exit code 1/);
    expect(s.message).toContain("free space in /boot");
    expect(s.message).toContain("runs it again at its next hook");
  });
});

describe("kept functions in the status", () => {
  const kept = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      address: `0000:18:00.${i}`,
      vendorId: "8086",
      deviceId: "1593",
      entry: 'devices entry #1 "8086:1593"',
      reasons: [`network interface eno${i + 1} is up`],
      forceable: true,
    }));

  it("names every kept function: the first three in full, the rest by address and where to read why", () => {
    const message = withheldMessage(kept(5));
    for (let i = 0; i < 5; i++) expect(message).toContain(`0000:18:00.${i}`);
    expect(message).toContain("(network interface eno3 is up)");
    expect(message).not.toContain("eno4");
    expect(message).toContain(
      "and 0000:18:00.3, 0000:18:00.4 (their reasons: the list-devices action's host-use, or juju debug-log)",
    );
    expect(message).not.toMatch(/and \d+ more/);
  });

  it("three or fewer: each in full, no pointer", () => {
    const message = withheldMessage(kept(3));
    expect(message).toContain("(network interface eno3 is up)");
    expect(message).not.toContain("their reasons");
  });
});
