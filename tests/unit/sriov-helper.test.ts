// The sriov-vfs helper (what the SR-IOV udev rule runs at boot), run by dash and busybox sh against a
// sysfs-shaped tree under a temp root: real directories, `virtfnN` links to the VF directories and
// the `driver` links the kernel keeps. The tree has no kernel behind it, so the VFs the kernel would
// create when sriov_numvfs is written are laid out beforehand (their links are only followed after
// the write); what the kernel really does is the VM tiers' job (tests/vm, helper sriov-vm).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderSriovHelper } from "../../src/plan/render-sriov";
import { useTempDirs, writeFileWithMode as write } from "../support/temp-files";

const temp = useTempDirs();

const PF = "0000:3b:00.0";
const BRIDGE = "sys/devices/pci0000:3a/0000:3a:00.0";

/** A PF on `ice` with `numVfs` enabled now, and the VFs the kernel would show after the write,
 * each on `vfDriver` (null: unbound, as with sriov_drivers_autoprobe=0). */
function fakeHost(numVfs: number, vfs: number, vfDriver: string | null, vfIds = "0x8086:0x1889") {
  const root = temp("pci-sriov-helper-");
  const pfDir = join(root, BRIDGE, PF);
  write(join(pfDir, "sriov_totalvfs"), "64\n");
  write(join(pfDir, "sriov_numvfs"), `${numVfs}\n`);
  write(join(pfDir, "sriov_drivers_autoprobe"), "1\n");
  mkdirSync(join(root, "sys/bus/pci/devices"), { recursive: true });
  symlinkSync(
    `../../../devices/pci0000:3a/0000:3a:00.0/${PF}`,
    join(root, "sys/bus/pci/devices", PF),
  );
  for (const d of ["ice", "iavf", "vfio-pci"])
    write(join(root, "sys/bus/pci/drivers", d, "unbind"), "");
  write(join(root, "sys/bus/pci/drivers_probe"), "");
  const [vendor, device] = vfIds.split(":");
  const vfAddresses: string[] = [];
  for (let i = 0; i < vfs; i++) {
    const vf = `0000:3b:02.${i}`;
    vfAddresses.push(vf);
    const dir = join(root, BRIDGE, vf);
    write(join(dir, "vendor"), `${vendor}\n`);
    write(join(dir, "device"), `${device}\n`);
    write(join(dir, "driver_override"), "(null)\n");
    symlinkSync(`../${vf}`, join(pfDir, `virtfn${i}`));
    if (vfDriver) symlinkSync(`../../../../bus/pci/drivers/${vfDriver}`, join(dir, "driver"));
  }
  const bin = join(root, "fakebin");
  write(join(bin, "modprobe"), `#!/bin/sh\necho "modprobe $*" >>'${root}/calls'\n`, 0o755);
  write(join(bin, "logger"), `#!/bin/sh\necho "logger $*" >>'${root}/calls'\n`, 0o755);
  const helper = write(join(root, "sriov-vfs"), renderSriovHelper(), 0o755);
  const run = (args: string[], shell = "sh") => {
    const [cmd, ...shellArgs] = shell.split(" ");
    const r = spawnSync(cmd!, [...shellArgs, helper, ...args], {
      encoding: "utf8",
      env: { PCI_PASSTHROUGH_ROOT: root, PATH: `${bin}:/usr/bin:/bin` },
    });
    const calls = existsSync(join(root, "calls")) ? readFileSync(join(root, "calls"), "utf8") : "";
    return { status: r.status, stderr: r.stderr, calls };
  };
  const read = (p: string) => readFileSync(join(root, p), "utf8");
  const pf = (attr: string) => read(join(BRIDGE, PF, attr)).trim();
  const vf = (address: string, attr: string) => read(join(BRIDGE, address, attr)).trim();
  return { root, run, read, pf, vf, vfAddresses };
}

describe("sriov-vfs helper", () => {
  const helper = renderSriovHelper();

  it("holds no address and no config value: every value comes from the rule's arguments", () => {
    expect(helper).not.toMatch(/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]/);
    expect(helper.startsWith("#!/bin/sh\n")).toBe(true);
  });

  it.each(["dash", "busybox sh"])("passes %s -n and shellcheck", (shell) => {
    const h = fakeHost(0, 0, null);
    const [cmd, ...args] = shell.split(" ");
    expect(spawnSync(cmd!, [...args, "-n", join(h.root, "sriov-vfs")]).status).toBe(0);
    const sc = spawnSync("shellcheck", ["-s", "sh", join(h.root, "sriov-vfs")], {
      encoding: "utf8",
    });
    expect(sc.error, "shellcheck is missing: scripts/setup.sh installs it").toBeUndefined();
    expect(sc.stdout).toBe("");
  });

  it.each(["sh", "busybox sh"])(
    "with %s, flavor alias: creates the VFs, then sends each to vfio-pci by its own address",
    (shell) => {
      const h = fakeHost(0, 3, null);
      const r = h.run([PF, "3", "vfio-pci", "8086:1889"], shell);
      expect(h.pf("sriov_numvfs")).toBe("3");
      // Off while the VFs appeared (no host VF driver may probe them), back on afterwards.
      expect(h.pf("sriov_drivers_autoprobe")).toBe("1");
      for (const vf of h.vfAddresses) expect(h.vf(vf, "driver_override")).toBe("vfio-pci");
      // drivers_probe got each VF's address (the fake file keeps the last write).
      expect(h.read("sys/bus/pci/drivers_probe")).toBe("0000:3b:02.2");
      // No kernel behind the tree: nothing rebinds, and the helper says so and fails.
      expect(r.status).toBe(1);
      if (shell === "sh") {
        expect(r.calls).toContain(`sriov-vfs: ${PF}: 3 VFs created (there were 0)`);
        expect(r.calls).toMatch(/0000:3b:02.0: on '' after probing, not vfio-pci/);
      }
    },
  );

  it("a VF the host driver took first is unbound from it before the probe", () => {
    const h = fakeHost(2, 2, "iavf");
    h.run([PF, "2", "vfio-pci", "8086:1889"]);
    expect(h.read("sys/bus/pci/drivers/iavf/unbind")).toBe("0000:3b:02.1");
    expect(h.pf("sriov_numvfs")).toBe("2");
  });

  it("coldplug replay with everything in place is a no-op", () => {
    const h = fakeHost(2, 2, "vfio-pci");
    for (const vf of h.vfAddresses)
      write(join(h.root, BRIDGE, vf, "driver_override"), "vfio-pci\n");
    const r = h.run([PF, "2", "vfio-pci", "8086:1889"]);
    expect(r.status).toBe(0);
    expect(h.read("sys/bus/pci/drivers_probe")).toBe("");
    expect(h.read("sys/bus/pci/drivers/vfio-pci/unbind")).toBe("");
    expect(r.calls).not.toContain("created");
  });

  it("neutron ports: creates the VFs and leaves them to the host VF driver", () => {
    const h = fakeHost(0, 2, "iavf");
    const r = h.run([PF, "2", "host", "8086:1889"]);
    expect(r.status).toBe(0);
    expect(h.pf("sriov_numvfs")).toBe("2");
    for (const vf of h.vfAddresses) expect(h.vf(vf, "driver_override")).toBe("(null)");
    expect(h.read("sys/bus/pci/drivers_probe")).toBe("");
  });

  it("a VF with other ids than planned is left alone and reported", () => {
    const h = fakeHost(1, 1, null, "0x8086:0x154c");
    const r = h.run([PF, "1", "vfio-pci", "8086:1889"]);
    expect(r.status).toBe(1);
    expect(h.vf("0000:3b:02.0", "driver_override")).toBe("(null)");
    expect(r.calls).toMatch(/0000:3b:02.0: ids 0x8086:0x154c, not 8086:1889: left alone/);
  });

  it("refuses more VFs than sriov_totalvfs without writing", () => {
    const h = fakeHost(0, 0, null);
    const r = h.run([PF, "65", "vfio-pci", "8086:1889"]);
    expect(r.status).toBe(1);
    expect(h.pf("sriov_numvfs")).toBe("0");
    expect(r.calls).toMatch(/65 VFs asked, sriov_totalvfs is 64/);
  });

  it.each([
    [["", "2", "host", "-"]],
    [["0000:3b:00.0; reboot", "2", "host", "-"]],
    [["../../../etc", "2", "host", "-"]],
    [[PF, "2x", "host", "-"]],
    [[PF, "0", "host", "-"]],
    [[PF, "02", "host", "-"]],
    [[PF, "2", "nouveau", "-"]],
    [[PF, "2", "host", "8086:1889;x"]],
  ])("refuses arguments %j (exit 2) without writing", (args) => {
    const h = fakeHost(0, 0, null);
    expect(h.run(args).status).toBe(2);
    expect(h.pf("sriov_numvfs")).toBe("0");
  });
});
