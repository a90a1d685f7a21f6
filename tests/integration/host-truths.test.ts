// Issue 12 points 6-8 through the packed charm's dispatch: the status and logs say what is really
// wrong (the firmware, not a reboot; unknown, not false; no grub; a full /boot), and the smaller
// truths (nova-pci-option's parsed value, the IOMMU drivers' own options, class names, and the
// README's sample error, compared with what the charm really says).
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { OWNED } from "../../src/host/root";
import { kernelParamsByHandMessage, NO_GRUB } from "../../src/plan/status";
import { type CharmUnderTest, deployPackedCharm, TOP } from "../support/charm-process";
import { useCleanups } from "../support/cleanups";
import { type HostSpec, makeTempHost } from "../support/hosts/build-host";
import { iommuOffHost, seedHost } from "../support/hosts/presets";
import { novaComputeRelation } from "../support/relations";

const ONE_GPU = { devices: "0000:83:00.0" };
const GPU_PAIR = ["0000:83:00.0", "0000:83:00.1"];
const BOOT = "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/sda1 ro";

const cleanups = useCleanups();

function deploy(
  spec: HostSpec,
  options: Parameters<typeof deployPackedCharm>[1] = { config: ONE_GPU },
): CharmUnderTest & { root: string } {
  const host = makeTempHost(spec);
  const unit = deployPackedCharm(host.root, options);
  cleanups.push(() => {
    unit.cleanup();
    host.cleanup();
  });
  return unit;
}

/** The seed host with the GPU and its audio on vfio-pci. */
function onVfio(spec: HostSpec, addresses = GPU_PAIR): HostSpec {
  return {
    ...spec,
    pci: spec.pci!.map((p) => (addresses.includes(p.address) ? { ...p, driver: "vfio-pci" } : p)),
  };
}

function hook(unit: CharmUnderTest, event: string) {
  const r = unit.dispatch(event);
  // Never a hook error: Juju would retry it forever and drop what the charm remembers.
  expect(r.exitCode, r.stderr).toBe(0);
  return unit.sim.readState();
}

const logsOf = (unit: CharmUnderTest, level?: string) =>
  unit.sim
    .readState()
    .logs.filter((l) => level === undefined || l.level === level)
    .map((l) => l.message);

/** Replaces a recording stand-in (update-grub, update-initramfs) with a script of the test's. */
function fakeCommand(unit: CharmUnderTest, name: string, script: string | null): void {
  const file = path.join(unit.charmDir, "..", "fakecmds", name);
  fs.rmSync(file, { force: true });
  if (script !== null) fs.writeFileSync(file, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
}

describe("point 6: what is really wrong with the IOMMU", () => {
  it("parameters on the command line, no groups, no unit: blocked on the firmware, not a reboot", () => {
    const unit = deploy({ ...iommuOffHost(), cmdline: `${BOOT} intel_iommu=on iommu=pt` });
    const state = hook(unit, "install");
    expect(state.unitStatus.status).toBe("blocked");
    expect(state.unitStatus.message).toMatch(
      /^the IOMMU is off although the kernel was booted with intel_iommu=on \(no IOMMU groups, no IOMMU unit\): enable VT-d in the firmware setup/,
    );
    expect(state.unitStatus.message).not.toMatch(/reboot required/);
  });

  it("IOMMU on by default, the GPU already on vfio-pci, no intel_iommu=on: active, drop-in at the next boot", () => {
    const unit = deploy(onVfio({ ...seedHost(), cmdline: BOOT }));
    const state = hook(unit, "install");
    expect(state.unitStatus.status).toBe("active");
    expect(state.unitStatus.message).toMatch(/^2 devices .* on vfio-pci; IOMMU on \(dmar0/);
    expect(state.unitStatus.message).toContain(
      "the running kernel lacks intel_iommu=on iommu=pt: the drop-in applies at the next boot",
    );
  });

  it("no /proc/cmdline: unknown, never 'lacks' or 'not booted with'", () => {
    const unit = deploy(seedHost());
    fs.rmSync(path.join(unit.root, "proc/cmdline"));
    const state = hook(unit, "install");
    expect(state.unitStatus.status).toBe("blocked");
    expect(state.unitStatus.message).toMatch(/^reboot required: kernel command line unknown/);
    expect(state.unitStatus.message).not.toMatch(/lacks|not booted/);
    const verify = unit.dispatch({ name: "verify-iommu-action", params: {} });
    expect(verify.exitCode).toBe(0);
    const action = unit.sim.readState().lastAction!;
    expect(action.failureMessage).toMatch(/kernel command line is unknown/);
    expect(action.failureMessage).not.toMatch(/not booted with/);
    expect(JSON.stringify(action.results)).toContain("unknown (/proc/cmdline unreadable)");
  });

  it("no /sys/kernel/iommu_groups: no IOMMU support, worded apart from an IOMMU that is off", () => {
    const unit = deploy({ ...iommuOffHost(), cmdline: `${BOOT} intel_iommu=on iommu=pt` });
    fs.rmSync(path.join(unit.root, "sys/kernel/iommu_groups"), { recursive: true, force: true });
    const state = hook(unit, "install");
    expect(state.unitStatus.message).toMatch(
      /^the running kernel has no IOMMU support \(\/sys\/kernel\/iommu_groups does not exist/,
    );
  });

  it("group links without their group directories: the groups are the links', never 'IOMMU off'", () => {
    const unit = deploy(onVfio({ ...seedHost(), cmdline: `${BOOT} intel_iommu=on iommu=pt` }));
    fs.rmSync(path.join(unit.root, "sys/kernel/iommu_groups"), { recursive: true });
    const state = hook(unit, "install");
    expect(state.unitStatus.status).toBe("active");
    expect(state.unitStatus.message).toContain("IOMMU on");
    expect(state.unitStatus.message).not.toContain("IOMMU off");
    const verify = unit.dispatch({ name: "verify-iommu-action", params: {} });
    expect(verify.exitCode).toBe(0);
    const text = JSON.stringify(unit.sim.readState().lastAction);
    expect(text).not.toMatch(/IOMMU is off/);
    expect(text).toContain('"iommu-group":"42"');
  });

  it("no /proc/sys/kernel/osrelease: never 'kernel  has no vfio-pci: install linux-modules-extra-'", () => {
    const unit = deploy({ ...seedHost(), vfioPci: "missing" });
    fs.rmSync(path.join(unit.root, "proc/sys/kernel/osrelease"));
    const state = hook(unit, "install");
    const said = [state.unitStatus.message, ...logsOf(unit)].join("\n");
    expect(said).not.toMatch(/kernel {2}has no vfio-pci|linux-modules-extra-(\s|$|\))/);
    expect(said).toMatch(/kernel release unknown/);
  });

  it("a driver missing from /sys/bus/pci/drivers is one read problem, not one per device", () => {
    const spec = seedHost();
    spec.pci = spec.pci!.map((p) =>
      /^0000:8[34]:/.test(p.address) ? { ...p, driver: undefined, danglingDriver: "nvidia" } : p,
    );
    const unit = deploy(spec);
    hook(unit, "install");
    const about = logsOf(unit, "WARNING").filter((m) => m.includes("nvidia"));
    expect(about).toHaveLength(1);
    expect(about[0]).toMatch(/the driver links of 4 devices .* name driver "nvidia"/);
    expect(about.join("\n")).not.toMatch(/unloading right now\?\); 0000/);
  });
});

describe("point 7: hosts where grub or /boot do not cooperate", () => {
  it("no grub: blocked with the exact parameters to add by hand, exit 0, no 'ran update-grub'", () => {
    const unit = deploy(seedHost());
    fakeCommand(unit, "update-grub", null);
    const state = hook(unit, "install");
    expect(state.unitStatus).toEqual({
      status: "blocked",
      message: kernelParamsByHandMessage(["intel_iommu=on", "iommu=pt"], NO_GRUB),
    });
    expect(state.unitStatus.message).toMatch(/then reboot: intel_iommu=on iommu=pt$/);
    expect(logsOf(unit, "INFO")).not.toContain("ran update-grub");
    expect(logsOf(unit, "INFO")).toContain("ran update-initramfs -u -k all");
    // Every later hook says the same, and still exits 0 (no hook-error loop).
    expect(hook(unit, "update-status").unitStatus.status).toBe("blocked");
  });

  it("no grub: later hooks run nothing, verify-iommu says by hand, and grub installed converges", () => {
    const unit = deploy(seedHost());
    fakeCommand(unit, "update-grub", null);
    const byHand = kernelParamsByHandMessage(["intel_iommu=on", "iommu=pt"], NO_GRUB);
    hook(unit, "install");
    const aboutGrub = () => logsOf(unit).filter((m) => m.includes("update-grub"));
    expect(aboutGrub()).toEqual([
      "`update-grub` was not run: update-grub is not on this host (not found on PATH); the charm runs it once it is on PATH or its inputs change",
    ]);
    // Nothing changed: no second attempt (it would log again), same status, same memory.
    const before = unit.sim.readState();
    for (const event of ["update-status", "config-changed"]) {
      expect(hook(unit, event).unitStatus).toEqual({ status: "blocked", message: byHand });
    }
    expect(aboutGrub()).toHaveLength(1);
    expect(unit.commands()).toEqual(["update-initramfs -u -k all"]);
    expect(unit.sim.readState().stored).toEqual(before.stored);
    expect(before.stored).not.toEqual({});

    // verify-iommu does not promise that a reboot applies the drop-in: there is no grub to read it.
    unit.dispatch({ name: "verify-iommu-action", params: {} });
    const verify = JSON.stringify(unit.sim.readState().lastAction);
    expect(verify).not.toMatch(/reboot so the charm's grub drop-in takes effect/);
    expect(verify).toContain(
      `the running kernel was not booted with intel_iommu=on; ${NO_GRUB}: add it to the boot loader's command line by hand, then reboot`,
    );

    // grub installed: the next hook runs it and the unit moves on to the reboot.
    fakeCommand(
      unit,
      "update-grub",
      `echo "update-grub $*" >> '${path.join(unit.charmDir, "..", "commands.log")}'`,
    );
    unit.clearCommands();
    const state = hook(unit, "update-status");
    expect(unit.commands()).toEqual(["update-grub"]);
    expect(state.unitStatus.message).toMatch(/^reboot required: kernel command line lacks/);
  });

  it("no grub, parameters added by hand and booted: not blocked on grub", () => {
    const unit = deploy(onVfio({ ...seedHost(), cmdline: `${BOOT} intel_iommu=on iommu=pt` }));
    fakeCommand(unit, "update-grub", null);
    const state = hook(unit, "install");
    expect(state.unitStatus.status).toBe("active");
    expect(state.unitStatus.message).toContain("kept by hand");
  });

  it("a full /boot, then a config change, then /boot fixed: reports, never 'edited', converges", () => {
    const unit = deploy(seedHost());
    fakeCommand(
      unit,
      "update-initramfs",
      'echo "cpio: write error: No space left on device" >&2\nexit 1',
    );
    let state = hook(unit, "install");
    expect(state.unitStatus.status).toBe("blocked");
    expect(state.unitStatus.message).toMatch(
      /^`update-initramfs -u -k all` failed with exit code 1: cpio: write error: No space left on device; the charm's files are written: free space in \/boot/,
    );
    expect(logsOf(unit, "INFO")).not.toContain("ran update-initramfs -u -k all");

    // The operator changes the config while /boot is still full.
    unit.sim.updateState((s) => {
      s.config.devices = "10de:1bb0";
    });
    state = hook(unit, "config-changed");
    expect(state.unitStatus.message).not.toMatch(/edited since the charm wrote it/);
    expect(state.unitStatus.message).toMatch(/^`update-initramfs -u -k all` failed/);
    expect(fs.readFileSync(path.join(unit.root, OWNED.udevRule), "utf8")).toContain(
      'KERNEL=="0000:84:00.0"',
    );

    // /boot fixed: the next hook (update-status here) runs it and the unit converges.
    fakeCommand(
      unit,
      "update-initramfs",
      `echo "update-initramfs $*" >> '${path.join(unit.charmDir, "..", "commands.log")}'`,
    );
    unit.clearCommands();
    state = hook(unit, "update-status");
    expect(unit.commands()).toEqual(["update-initramfs -u -k all"]);
    expect(state.unitStatus.message).toMatch(/^reboot required: kernel command line lacks/);
    unit.clearCommands();
    hook(unit, "update-status");
    expect(unit.commands()).toEqual([]);
  });

  it("a sandbox root skips the commands and logs them as skipped, never as ran", () => {
    const unit = deploy(seedHost());
    const r = unit.dispatch("install", { PCI_PASSTHROUGH_RUN_COMMANDS: "" });
    expect(r.exitCode).toBe(0);
    expect(unit.commands()).toEqual([]);
    const info = logsOf(unit, "INFO");
    expect(info.filter((m) => m.startsWith("ran "))).toEqual([]);
    expect(info.filter((m) => m.startsWith("skipped "))).toEqual([
      "skipped `update-initramfs -u -k all`: the root is not / (PCI_PASSTHROUGH_ROOT is set)",
      "skipped `update-grub`: the root is not / (PCI_PASSTHROUGH_ROOT is set)",
    ]);
  });
});

describe("point 8: smaller truths", () => {
  it("nova-pci-option=DEVICE_SPEC publishes device_spec, the parsed value", () => {
    const unit = deploy(onVfio({ ...seedHost(), cmdline: `${BOOT} intel_iommu=on iommu=pt` }), {
      config: { ...ONE_GPU, "nova-pci-option": "DEVICE_SPEC" },
      relations: [novaComputeRelation()],
    });
    const r = unit.dispatch({
      name: "nova-compute-relation-joined",
      relationId: 7,
      remoteUnit: "nova-compute/0",
    });
    expect(r.exitCode, r.stderr).toBe(0);
    const data = unit.sim.readState().relations[0]!.localUnitData.subordinate_configuration!;
    const pci = JSON.parse(data).nova["/etc/nova/nova.conf"].sections.pci as [string, string][];
    expect(pci.map(([k]) => k)).toContain("device_spec");
    expect(pci.map(([k]) => k)).not.toContain("passthrough_whitelist");
  });

  it("extra-kernel-params takes the IOMMU drivers' own options and refuses turning it off", () => {
    const unit = deploy(seedHost(), {
      config: { ...ONE_GPU, "extra-kernel-params": "intel_iommu=on,igfx_off intel_iommu=sm_on" },
    });
    expect(hook(unit, "install").unitStatus.message).toMatch(/^reboot required/);
    expect(fs.readFileSync(path.join(unit.root, OWNED.grubDropIn), "utf8")).toContain(
      "intel_iommu=on iommu=pt intel_iommu=on,igfx_off intel_iommu=sm_on",
    );
    unit.sim.updateState((s) => {
      s.config["extra-kernel-params"] = "intel_iommu=off";
    });
    const state = hook(unit, "config-changed");
    expect(state.unitStatus.status).toBe("blocked");
    expect(state.unitStatus.message).toMatch(
      /^extra-kernel-params="intel_iommu=off": turns the IOMMU off/,
    );
  });

  it("list-devices names the class (PCI bridge, USB controller), not the programming interface", () => {
    const unit = deploy({
      ...seedHost(),
      pciIds: [
        "C 06  Bridge",
        "\t04  PCI bridge",
        "\t\t00  Normal decode",
        "\t\t01  Subtractive decode",
        "",
      ].join("\n"),
    });
    const r = unit.dispatch({ name: "list-devices-action", params: { class: "bridge" } });
    expect(r.exitCode).toBe(0);
    const devices = unit.sim.readState().lastAction!.results.devices as Record<
      string,
      Record<string, string>
    >;
    const port = devices["0000-00-1c-0"]!;
    expect(port.class).toBe("060400");
    expect(port["class-description"]).toBe("PCI bridge");
    expect(JSON.stringify(devices)).not.toContain("decode");
  });

  it('README\'s sample error for devices="10de:zzzz" is exactly what the charm says', () => {
    const readme = fs.readFileSync(path.join(TOP, "README.md"), "utf8");
    const m =
      /`juju config pci-passthrough devices="([^"]*)"` the unit says, exactly:\n\n```text\n(.*)\n```/.exec(
        readme,
      );
    expect(m, "README's sample error block").not.toBeNull();
    const [, value, sample] = m!;
    const unit = deploy(seedHost(), { config: { devices: value } });
    const state = hook(unit, "config-changed");
    expect(state.unitStatus.status).toBe("blocked");
    expect(state.unitStatus.message).toBe(sample);
  });
});
