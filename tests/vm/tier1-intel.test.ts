/**
 * Tier 1, Intel IOMMU: the packed charm's actions inside a real kernel, against the guest's real
 * sysfs. One guest with every emulated case (tests/vm/lib/topologies.ts FULL); every assertion
 * after an action reads the guest's sysfs itself rather than trusting the action's report.
 */
import { expect, it } from "vitest";
import { EXPORTER_NODE_FLAGS } from "../../src/plan/exporter-files";
import { key, results, sub, type Tree } from "./lib/action-results";
import { deployCharmInGuest, type GuestCharm, JUJU_CHARM_DIR } from "./lib/guest-charm";
import { groupsAndPrediction, groupsOfKeys, readGuestFunctions } from "./lib/predicted-groups";
import { checkVmBed, describeVm } from "./lib/require-tools";
import {
  expectGroupBackNotViable,
  expectInUseNicRefused,
  expectListDevicesMatchesSysfs,
  expectRebindTakesMate,
} from "./lib/scenarios";
import { driverOf, exists, groupOf, guestStateSnapshot, netInterfaces } from "./lib/sysfs";
import { device, FULL, GROUPING_GROUPS } from "./lib/topologies";
import { useBedGuest } from "./lib/use-guest";

const bed = checkVmBed(1);
const twinA = device(FULL, "twinA").address;
const twinB = device(FULL, "twinB").address;

describeVm("tier 1 (Intel IOMMU): charm actions on a real kernel", bed, (kernel) => {
  // iommu=pt as the charm's drop-in would set it, so verify-iommu can pass once devices move.
  const { share, guest } = useBedGuest(kernel, "tier1-intel", FULL, "intel");
  let charm: GuestCharm;
  const deployed = () => charm;

  it("deploys the packed charm where Juju would and runs its dispatch", async () => {
    // This guest's root is the host's, which has no grub or initramfs-tools: recorders stand in
    // for update-grub and update-initramfs (tier 2 runs the real ones).
    charm = await deployCharmInGuest({
      guest: guest(),
      share,
      config: { devices: twinA },
      // systemctl: the cos-agent tests below (systemd is not this guest's init).
      recordedCommands: ["update-grub", "update-initramfs", "systemctl"],
    });
    const run = await charm.dispatch("install");
    expect(charm.sim.readState().logs.filter((l) => l.level === "ERROR")).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(charm.commands()).toEqual(["update-initramfs -u -k all", "update-grub"]);
    // The charm wrote its files into the guest's own /etc (the overlay), not the host's.
    const written = await guest().exec("cd /run/vmbed/upper && find etc -type f | sort");
    expect(written).toContain("etc/default/grub.d/");
    expect(charm.status().message).toMatch(/reboot required/);
  });

  it("list-devices reports what the guest's sysfs says, selecting only the chosen twin", async () => {
    const listed = await expectListDevicesMatchesSysfs(guest(), deployed(), FULL);
    expect(sub(listed, key(twinA)).selected).toBe("yes");
    expect(sub(listed, key(twinB)).selected).toBe("no");
    expect(sub(listed, key(device(FULL, "bootVga").address))["boot-vga"]).toBe("yes");
    expect(sub(listed, key(device(FULL, "vgaA").address))["boot-vga"]).toBe("no");
  });

  it("the kernel's IOMMU groups are the ones the charm predicts from config space", async () => {
    const { real, predicted } = groupsAndPrediction(await readGuestFunctions(guest()));
    expect(predicted).toEqual(real);
    // Each rule happened for real: ACS ports isolate, a card without ACS shares, a port without
    // ACS takes what is below it, a root-bus device without ACS shares across its functions.
    for (const g of groupsOfKeys(FULL.devices, GROUPING_GROUPS)) expect(real).toContain(g);
  });

  it("list-devices filters by class", async () => {
    const run = await deployed().action("list-devices", { class: "network" });
    const listed = Object.values(sub(results(run), "devices")) as Tree[];
    const nics = FULL.devices.filter((d) => d.ids.startsWith("8086:10")).map((d) => d.address);
    expect(listed.map((r) => r.address).sort()).toEqual(nics.sort());
  });

  it("verify-iommu fails while the selected twin is still on e1000e, naming it", async () => {
    const run = await deployed().action("verify-iommu");
    expect(run.action.failed).toBe(true);
    const r = results(run);
    expect(r.ok).toBe("no");
    expect(sub(r, "iommu")).toMatchObject({ enabled: "yes", units: "dmar0" });
    const dev = sub(r, "devices", key(twinA));
    expect(dev).toMatchObject({ driver: "e1000e", viable: "yes", ok: "no" });
    expect(run.action.failureMessage).toContain(twinA);
  });

  it("rebind dry-run prints the writes and leaves the guest exactly as it was", async () => {
    const before = await guestStateSnapshot(guest());
    const run = await deployed().action("rebind", { "dry-run": true });
    expect(run.action.failed).toBe(false);
    const r = results(run);
    expect(r["dry-run"]).toBe("yes");
    const writes = Object.values(sub(r, "writes")) as Tree[];
    expect(writes.map((w) => `${w.path} ${w.value}`)).toEqual([
      `/sys/bus/pci/devices/${twinA}/driver_override "vfio-pci"`,
      `/sys/bus/pci/drivers/e1000e/unbind "${twinA}"`,
      `/sys/bus/pci/drivers_probe "${twinA}"`,
    ]);
    expect(await guestStateSnapshot(guest())).toBe(before);
  });

  it("rebind moves the selected twin to vfio-pci; /dev/vfio/<group> appears; the other twin stays", async () => {
    const group = await groupOf(guest(), twinA);
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(false);
    const run = await deployed().action("rebind");
    expect(run.action.failureMessage).toBeNull();
    expect(results(run).ok).toBe("yes");
    expect(await driverOf(guest(), twinA)).toBe("vfio-pci");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(true);
    expect(await driverOf(guest(), twinB)).toBe("e1000e");
    expect((await guest().readFile(`/sys/bus/pci/devices/${twinA}/driver_override`)).trim()).toBe(
      "vfio-pci",
    );
  });

  // Issue 26: the exporter the cos-agent relation installs, run from the packed charm in the guest.
  const EXPORTER_UNIT = "/etc/systemd/system/pci-passthrough-exporter.service";
  const metric = (text: string, name: string, address: string): string | undefined =>
    new RegExp(`^${name}\\{address="${address}",[^}]*\\} (\\d+)$`, "m").exec(text)?.[1];
  const scrape = async (): Promise<string> => {
    for (let i = 0; i < 60; i++) {
      const r = await guest().run("curl -sf http://127.0.0.1:9847/metrics");
      if (r.exitCode === 0) return r.stdout;
      await new Promise((done) => setTimeout(done, 1000));
    }
    throw new Error(`the exporter never answered:\n${await guest().exec("cat /tmp/exporter.log")}`);
  };

  it("cos-agent: relating installs the exporter; run from the packed charm it sees twin A on vfio-pci, free", async () => {
    deployed().sim.updateState((s) => {
      s.relations.push({
        id: 20,
        endpoint: "cos-agent",
        remoteApp: "grafana-agent",
        remoteUnits: ["grafana-agent/0"],
        remoteUnitsData: { "grafana-agent/0": {} },
        remoteAppData: {},
        localUnitData: {},
        localAppData: {},
      });
    });
    const before = deployed().commands().length;
    const run = await deployed().dispatch({
      name: "cos-agent-relation-joined",
      relationId: 20,
      remoteUnit: "grafana-agent/0",
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(deployed().commands().slice(before)).toEqual([
      "systemctl daemon-reload",
      "systemctl enable pci-passthrough-exporter.service",
      "systemctl restart pci-passthrough-exporter.service",
    ]);
    const unit = await guest().readFile(EXPORTER_UNIT);
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1];
    expect(execStart).toBe(
      `${JUJU_CHARM_DIR}/runtime/bin/node ${EXPORTER_NODE_FLAGS.join(" ")} ${JUJU_CHARM_DIR}/dist/exporter.js --listen 127.0.0.1:9847`,
    );
    // systemd is not this guest's init: start it as the unit says (its flags are on ExecStart).
    await guest().exec(
      `setsid ${execStart} >/tmp/exporter.log 2>&1 </dev/null & echo $! >/tmp/exporter.pid`,
    );
    const text = await scrape();
    expect(text).toMatch(
      new RegExp(
        `^pci_passthrough_function_on_planned_driver\\{address="${twinA}",[^}]*driver="vfio-pci"[^}]*\\} 1$`,
        "m",
      ),
    );
    expect(metric(text, "pci_passthrough_function_in_use", twinA)).toBe("0");
    expect(metric(text, "pci_passthrough_function_available", twinA)).toBe("1");
    expect(text).toMatch(/^pci_passthrough_iommu_enabled 1$/m);
    expect(text).toMatch(/^pci_passthrough_exporter_scrape_errors_total 0$/m);
  });

  it("cos-agent: a process holding twin A's /dev/vfio/<group> shows it in use, then free once it exits", async () => {
    const group = await groupOf(guest(), twinA);
    await guest().exec(
      `setsid sh -c 'exec 3</dev/vfio/${group}; exec sleep 600' >/dev/null 2>&1 </dev/null & echo $! >/tmp/holder.pid`,
    );
    let held = "";
    for (let i = 0; i < 30 && metric(held, "pci_passthrough_function_in_use", twinA) !== "1"; i++) {
      held = await scrape();
    }
    expect(metric(held, "pci_passthrough_function_in_use", twinA)).toBe("1");
    expect(metric(held, "pci_passthrough_function_available", twinA)).toBe("0");
    await guest().exec(
      "kill $(cat /tmp/holder.pid); while kill -0 $(cat /tmp/holder.pid) 2>/dev/null; do sleep 0.2; done",
    );
    const free = await scrape();
    expect(metric(free, "pci_passthrough_function_in_use", twinA)).toBe("0");
    expect(metric(free, "pci_passthrough_function_available", twinA)).toBe("1");
  });

  it("cos-agent: the last relation gone stops and disables the exporter and removes its files", async () => {
    const before = deployed().commands().length;
    const run = await deployed().dispatch({ name: "cos-agent-relation-broken", relationId: 20 });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(deployed().commands().slice(before)).toEqual([
      "systemctl disable --now pci-passthrough-exporter.service",
      "systemctl daemon-reload",
    ]);
    expect(await exists(guest(), EXPORTER_UNIT)).toBe(false);
    await guest().exec("kill $(cat /tmp/exporter.pid) 2>/dev/null; true");
    deployed().sim.updateState((s) => {
      s.relations = s.relations.filter((r) => r.endpoint !== "cos-agent");
    });
  });

  it("verify-iommu passes once the twin is on vfio-pci", async () => {
    const run = await deployed().action("verify-iommu");
    expect(run.action.failureMessage).toBeNull();
    expect(results(run).ok).toBe("yes");
    expect(sub(results(run), "devices", key(twinA))).toMatchObject({
      driver: "vfio-pci",
      viable: "yes",
      ok: "yes",
    });
  });

  it("rebind to=host returns it to e1000e and /dev/vfio/<group> goes", async () => {
    const group = await groupOf(guest(), twinA);
    const run = await deployed().action("rebind", { to: "host" });
    expect(run.action.failureMessage).toBeNull();
    expect(await driverOf(guest(), twinA)).toBe("e1000e");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(false);
    expect((await guest().readFile(`/sys/bus/pci/devices/${twinA}/driver_override`)).trim()).toBe(
      "(null)",
    );
    // A real interface again: e1000e registered a netdev for it.
    expect((await netInterfaces(guest(), twinA)).length).toBe(1);
  });

  it("refuses the boot VGA and leaves it alone", async () => {
    const vga = device(FULL, "bootVga").address;
    const before = await guestStateSnapshot(guest());
    const run = await deployed().action("rebind", { devices: vga });
    expect(run.action.failed).toBe(true);
    expect(run.action.failureMessage).toContain(vga);
    expect(run.action.failureMessage).toMatch(/boot VGA/i);
    expect(await guestStateSnapshot(guest())).toBe(before);
  });

  it("refuses a NIC that is up with an address, and takes it only with force", async () => {
    const uplink = device(FULL, "uplink").address;
    await expectInUseNicRefused(guest(), deployed(), uplink, "e1000");

    const forced = await deployed().action("rebind", { devices: uplink, force: true });
    expect(forced.action.failureMessage).toBeNull();
    expect(await driverOf(guest(), uplink)).toBe("vfio-pci");
    expect(await netInterfaces(guest(), uplink)).toEqual([]);
    await deployed().action("rebind", { devices: uplink, to: "host" });
    expect(await driverOf(guest(), uplink)).toBe("e1000");
  });

  it("a shared group: verify-iommu calls it not viable; rebind takes the whole group or nothing", async () => {
    const sharedA = device(FULL, "sharedA").address;
    const sharedB = device(FULL, "sharedB").address;
    const bridge = device(FULL, "bridge").address;
    await expectRebindTakesMate(guest(), deployed(), sharedA, sharedB);
    expect(await driverOf(guest(), bridge)).toBe(""); // bridges stay as they are
    expect((await deployed().action("verify-iommu")).action.failureMessage).toBeNull();

    // With sharedB back on e1000 the group is not viable for sharedA alone.
    await expectGroupBackNotViable(guest(), deployed(), sharedA, sharedB, "e1000");

    // Once the host uses sharedB, the group cannot go: refused, nothing moves.
    const [ifname] = await netInterfaces(guest(), sharedB);
    await guest().exec(`ip addr add 198.51.100.7/24 dev ${ifname} && ip link set ${ifname} up`);
    const before = await guestStateSnapshot(guest());
    const refused = await deployed().action("rebind");
    expect(refused.action.failed).toBe(true);
    expect(refused.action.failureMessage).toContain(sharedB);
    expect(await guestStateSnapshot(guest())).toBe(before);
    await guest().exec(`ip addr flush dev ${ifname} && ip link set ${ifname} down`);
  });

  it("a multi-function card moves with its audio function, and back", async () => {
    const gpu = device(FULL, "gpu").address;
    const audio = device(FULL, "gpuAudio").address;
    const group = await expectRebindTakesMate(guest(), deployed(), gpu, audio);
    // Both functions pass; what is left is the reboot for the audio driver's blacklist, which
    // the charm planned because snd_hda_intel would claim nothing the host keeps.
    const verify = await deployed().action("verify-iommu");
    expect(sub(results(verify), "devices", key(gpu)).ok).toBe("yes");
    expect(sub(results(verify), "devices", key(audio)).ok).toBe("yes");
    expect(verify.action.failureMessage).toMatch(/modprobe\.blacklist=snd_hda_intel/);

    await deployed().action("rebind", { to: "host" });
    expect(await driverOf(guest(), gpu)).toBe("virtio-pci");
    // The audio function had no driver before (snd_hda_intel is not loaded): none after either.
    expect(await driverOf(guest(), audio)).toBe("");
    expect(await exists(guest(), `/dev/vfio/${group}`)).toBe(false);
  });
});
