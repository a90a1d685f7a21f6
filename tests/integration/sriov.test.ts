// SR-IOV through the packed charm's dispatch: an entry with `vfs` writes the SR-IOV rule and helper
// (and the initramfs hook that carries them), says what the next boot brings, refuses a bad or
// impossible value naming the option with nothing changed, and removal takes the files away.
// The host is amdHost: an X710 pair (8086:1572, VFs 8086:154c, sriov_totalvfs 64) whose second
// port 41:00.1 has no VF yet.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { OWNED } from "../../src/host/root";
import {
  type CharmUnderTest,
  expectBlockedChangingNothing,
  useCharmOnHosts,
} from "../support/charm-process";
import { amdHost } from "../support/hosts/presets";
import { diffTrees, fileText, snapshotTree } from "../support/tree";

const PF = "0000:41:00.1";

describe("SR-IOV through dispatch", () => {
  const deployOn = useCharmOnHosts();
  let unit: CharmUnderTest | undefined;
  const read = (hostPath: string) => fileText(unit!.root, hostPath);
  const setDevices = (devices: string) =>
    unit!.sim.updateState((s) => {
      s.config["devices"] = devices;
    });

  it("vfs: 4 writes the PF's rule and the helper, regenerates the initramfs, and says what the boot brings", () => {
    unit = deployOn(amdHost(), { config: { devices: `- {address: "${PF}", vfs: 4}` } });
    expect(unit.dispatch("install").exitCode).toBe(0);
    const rule = read(OWNED.sriovRule);
    expect(rule).toContain(
      `ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="${PF}", ATTR{vendor}=="0x8086", ATTR{device}=="0x1572", DRIVER=="?*", DRIVER!="vfio-pci", RUN+="${OWNED.sriovHelper} %k 4 vfio-pci 8086:154c"`,
    );
    expect(fs.statSync(path.join(unit.root, OWNED.sriovHelper)).mode & 0o777).toBe(0o755);
    expect(read(OWNED.initramfsHook)).toContain(OWNED.sriovHelper);
    // The PF itself is never bound: no per-address vfio-pci rule at all here.
    expect(read(OWNED.udevRule)).toBe("");
    expect(unit.commands()).toContain("update-initramfs -u -k all");
    const status = unit.sim.readState().unitStatus;
    expect(status.status).toBe("blocked");
    expect(status.message).toContain(`${PF} has 0 VFs, 4 planned`);
  });

  it("beside ovn-chassis' netplan file (sriov-numvfs=auto): blocked with the exact line, nothing written", () => {
    const spec = amdHost();
    const ovn = fs.readFileSync(
      path.join(__dirname, "..", "fixtures", "vf-count-owners", "150-charm-ovn.yaml"),
      "utf8",
    );
    unit = deployOn(
      { ...spec, files: { ...(spec.files ?? {}), "/etc/netplan/150-charm-ovn.yaml": ovn } },
      { config: { devices: `- {address: "${PF}", vfs: 4}` } },
    );
    expect(expectBlockedChangingNothing(unit, "install")).toContain(
      'juju config ovn-chassis sriov-numvfs="enp65s0f0:64 enp65s0f1:4"',
    );
  });

  it("an impossible or malformed vfs blocks naming the option, and changes nothing", () => {
    unit = deployOn(amdHost(), { config: { devices: `- {address: "${PF}", vfs: 4}` } });
    expect(unit.dispatch("install").exitCode).toBe(0);
    for (const [devices, words] of [
      [
        `- {address: "${PF}", vfs: 65}`,
        /devices: .*vfs: 65 on 0000:41:00.1 .*at most 64 \(sriov_totalvfs\)/,
      ],
      [`- {address: "${PF}", vfs: two}`, /^devices=.*vfs "two".*not a whole number/],
      [`- {address: "0000:43:00.0", vfs: 2}`, /0000:43:00.0 \(144d:a808\), which has no SR-IOV/],
    ] as const) {
      setDevices(devices);
      unit.clearCommands();
      expect(expectBlockedChangingNothing(unit, "config-changed")).toMatch(words);
    }
  });

  it("physical-network keeps the VFs on the host driver; removing the entry removes the files", () => {
    unit = deployOn(amdHost(), {
      config: { devices: `- {address: "${PF}", vfs: 2, physical-network: physnet1}` },
    });
    expect(unit.dispatch("install").exitCode).toBe(0);
    expect(read(OWNED.sriovRule)).toContain(`%k 2 host 8086:154c`);
    // The boot order comes with it: the unit before nova-compute, its drop-in, its waiter.
    expect(read(OWNED.sriovBootUnit)).toContain(
      `${OWNED.sriovBootWait} 240 ${PF} 2 host 8086:154c`,
    );
    expect(read(OWNED.sriovBootWants)).toContain("Wants=pci-passthrough-sriov.service");
    setDevices("");
    unit.clearCommands();
    expect(unit.dispatch("config-changed").exitCode).toBe(0);
    expect(read(OWNED.sriovRule)).toBe("");
    expect(read(OWNED.sriovHelper)).toBe("");
    expect(read(OWNED.initramfsHook)).toBe("");
    for (const p of [OWNED.sriovBootUnit, OWNED.sriovBootWants, OWNED.sriovBootWait])
      expect(read(p)).toBe("");
    // The drop-in's folder held only ours: gone too.
    expect(fs.existsSync(path.join(unit.root, path.dirname(OWNED.sriovBootWants)))).toBe(false);
    // The initramfs loses the rule too, so the next boot makes no VF.
    expect(unit.commands()).toContain("update-initramfs -u -k all");
  });

  it("sriov-vfs dry-run prints the writes in order and changes nothing; list-devices summarises", () => {
    unit = deployOn(amdHost(), { config: { devices: `- {address: "${PF}", vfs: 4}` } });
    expect(unit.dispatch("install").exitCode).toBe(0);
    const before = snapshotTree(unit.root);
    expect(unit.dispatch({ name: "sriov-vfs-action", params: { "dry-run": true } }).exitCode).toBe(
      0,
    );
    const action = unit.sim.readState().lastAction!;
    expect(action.failed).toBe(false);
    expect(diffTrees(before, snapshotTree(unit.root))).toEqual([]);
    const text = JSON.stringify(action.results);
    const autoprobe = text.indexOf(`/sys/bus/pci/devices/${PF}/sriov_drivers_autoprobe <- 0`);
    const numvfs = text.indexOf(`/sys/bus/pci/devices/${PF}/sriov_numvfs <- 4`);
    const override = text.indexOf("/sys/bus/pci/devices/0000:41:0a.0/driver_override <- vfio-pci");
    expect(autoprobe).toBeGreaterThan(-1);
    expect(numvfs).toBeGreaterThan(autoprobe);
    expect(override).toBeGreaterThan(numvfs);
    // The other X710 port has 4 VFs on iavf: summarised under it by default, one by one on request.
    expect(unit.dispatch({ name: "list-devices-action", params: {} }).exitCode).toBe(0);
    const summary = unit.sim.readState().lastAction!.results as Record<string, unknown>;
    expect(JSON.stringify(summary)).not.toContain('"address":"0000:41:02.0"');
    expect(JSON.stringify(summary)).toContain('"addresses":"0000:41:02.0 - 0000:41:02.3"');
    expect(
      unit.dispatch({ name: "list-devices-action", params: { "each-vf": true } }).exitCode,
    ).toBe(0);
    expect(JSON.stringify(unit.sim.readState().lastAction!.results)).toContain(
      '"address":"0000:41:02.0"',
    );
  });
});
