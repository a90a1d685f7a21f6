// `reboot: when-idle` (issue 24) with the packed charm, several units in one simulated model
// sharing the peer relation `fleet`: the reboot lock granted by the leader one unit at a time,
// released once the rebooted unit verified its new boot, recovered from a unit that vanished;
// the host checks (a libvirt domain, a Juju container) holding the reboot back by name; the loop
// guard after a boot that did not bring what was written.
import * as fs from "node:fs";
import * as path from "node:path";
import { createModelSimulator, type ModelSimulator } from "ops-ts-shim/testing/simulator";
import { describe, expect, it } from "vitest";
import { type CharmUnderTest, deployPackedCharm } from "../support/charm-process";
import { useCleanups } from "../support/cleanups";
import { addLxcMonitor, bootHost, installFakeVirsh, setBootId } from "../support/host-boot";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";

const APP = "pci-passthrough";
const CONFIG = { devices: "0000:83:00.0", reboot: "when-idle" };
const FLEET_ID = 9;

interface Host {
  name: string;
  root: string;
  unit: CharmUnderTest;
  setDomains: (domains: Array<[string, string]>) => void;
}

const cleanups = useCleanups();

/** One host per unit (its own tree, its own machine), the first the leader. */
function deployModel(
  count: number,
  options: { ignoreDropIn?: (unit: string) => boolean; config?: Record<string, unknown> } = {},
): { model: ModelSimulator; hosts: Host[] } {
  const hosts: Host[] = [];
  const model = createModelSimulator({
    peers: [{ endpoint: "fleet", id: FLEET_ID }],
    manualReboots: true,
    onReboot: (machine) => {
      const host = hosts.find((h) => h.name === machine)!;
      bootHost(host.root, { ignoreDropIn: options.ignoreDropIn?.(machine) ?? false });
    },
  });
  for (let i = 0; i < count; i++) {
    const built = makeTempHost(seedHost());
    cleanups.push(built.cleanup);
    setBootId(built.root);
    const name = `${APP}/${i}`;
    const unit = deployPackedCharm(built.root, {
      unitName: name,
      principalUnit: `nova-compute/${i}`,
      config: { ...CONFIG, ...options.config },
    });
    cleanups.push(unit.cleanup);
    const setDomains = installFakeVirsh(path.join(path.dirname(unit.charmDir), "fakecmds"));
    hosts.push({ name, root: built.root, unit, setDomains });
    model.addUnit(
      name,
      { sim: unit.sim, run: (e) => unit.dispatch(e).exitCode, machine: name },
      { leader: i === 0 },
    );
  }
  return { model, hosts };
}

const status = (h: Host) => h.unit.sim.readState().unitStatus;
const lockOf = (h: Host): string[] => {
  const rel = h.unit.sim.readState().relations.find((r) => r.id === FLEET_ID)!;
  return JSON.parse(rel.localAppData["reboot-lock"] ?? "[]") as string[];
};
const hooks = (m: ModelSimulator, from: number) =>
  m.history
    .slice(from)
    .map((r) => `${r.unit} ${r.event}${r.exitCode === 0 ? "" : ` (exit ${r.exitCode})`}`);

/** Juju's first hooks of a deployed unit. */
function deployHooks(model: ModelSimulator, hosts: Host[]): void {
  for (const h of hosts)
    for (const e of ["install", "config-changed", "start"]) model.enqueue(h.name, e);
}

describe("reboot=when-idle across units (packed charm, simulated model)", {
  timeout: 300_000,
}, () => {
  it("reboots one unit at a time: the second waits for the lock, which goes back after verification", () => {
    const { model, hosts } = deployModel(2);
    const [h0, h1] = hosts as [Host, Host];
    deployHooks(model, hosts);
    model.settle();
    // The leader asked for the lock, granted it to itself and asked Juju to reboot; unit 1 asked
    // too and waits: the leader is down and nobody else may grant, nor reboot beside it.
    expect(model.reboots).toEqual([h0.name]);
    expect(status(h0).status).toBe("maintenance");
    expect(status(h0).message).toMatch(
      /^rebooting \(reboot=when-idle, every check passed\): kernel command line lacks intel_iommu=on/,
    );
    expect(lockOf(h1)).toEqual([h0.name]);
    expect(status(h1)).toEqual({
      status: "waiting",
      message: expect.stringMatching(
        /^reboot required: .*; reboot=when-idle holds the reboot: waiting for the reboot lock, held by pci-passthrough\/0 \(at most 1 at a time\)$/,
      ),
    });

    // The leader's host comes back with the parameters and the binding: start verifies, the
    // lock goes back and on to unit 1, which reboots in turn.
    const mark = model.history.length;
    model.bootMachine(h0.name);
    model.settle();
    expect(hooks(model, mark)[0]).toBe(`${h0.name} start`);
    expect(status(h0).status).toBe("active");
    expect(fs.readFileSync(path.join(h0.root, "proc/cmdline"), "utf8")).toContain("intel_iommu=on");
    expect(model.reboots).toEqual([h0.name, h1.name]);
    expect(lockOf(h0)).toEqual([h1.name]);
    expect(h0.unit.sim.readState().logs.map((l) => l.message)).toContainEqual(
      expect.stringMatching(
        /^the reboot \(boot [0-9a-f]{8} → [0-9a-f]{8}\) brought what was written; the reboot lock goes back$/,
      ),
    );

    model.bootMachine(h1.name);
    model.settle();
    expect(status(h1).status).toBe("active");
    expect(lockOf(h0)).toEqual([]);
    expect(model.reboots).toEqual([h0.name, h1.name]);
    // Quiet afterwards: another round of hooks asks for nothing.
    for (const h of hosts) model.enqueue(h.name, "update-status");
    model.settle();
    expect(model.reboots).toHaveLength(2);
    expect(model.down.size).toBe(0);
  });

  it("recovers the lock of a unit that vanished while it held it", () => {
    const { model, hosts } = deployModel(3);
    const [h0, h1, h2] = hosts as [Host, Host, Host];
    // The leader's host runs a guest: it never asks, it only grants.
    h0.setDomains([["instance-0000000a", "running"]]);
    deployHooks(model, hosts);
    model.settle();
    expect(status(h0).message).toContain(
      "reboot=when-idle holds the reboot: libvirt domain instance-0000000a is running: migrate or stop it first",
    );
    expect(model.reboots).toEqual([h1.name]);
    expect(lockOf(h0)).toEqual([h1.name]);
    expect(status(h2).message).toContain("waiting for the reboot lock, held by pci-passthrough/1");

    // Unit 1's machine never comes back; the operator removes it (remove-machine --force).
    const mark = model.history.length;
    model.removeUnit(h1.name);
    model.settle();
    expect(hooks(model, mark).slice(0, 2)).toEqual([
      `${h0.name} fleet-relation-departed`,
      `${h2.name} fleet-relation-departed`,
    ]);
    expect(h0.unit.sim.readState().logs.map((l) => l.message)).toContain(
      "reboot lock of pci-passthrough/1 released: it left the application",
    );
    expect(model.reboots).toEqual([h1.name, h2.name]);
    expect(lockOf(h0)).toEqual([h2.name]);
  });

  it("names the paused domain and the Juju container that hold the reboot back, then reboots once they are gone", () => {
    const { model, hosts } = deployModel(1);
    const [h0] = hosts as [Host];
    h0.setDomains([["instance-00000001", "paused"]]);
    addLxcMonitor(h0.root, 4242, "juju-3f2a6a-0-lxd-3");
    deployHooks(model, hosts);
    model.settle();
    expect(model.reboots).toEqual([]);
    expect(status(h0).status).toBe("blocked");
    expect(status(h0).message).toContain(
      "reboot=when-idle holds the reboot: libvirt domain instance-00000001 is paused: migrate or stop it first; Juju container juju-3f2a6a-0-lxd-3 runs on this machine and Juju stops it to reboot: move it, or set reboot-with-juju-containers=true",
    );
    // The operator's view: every check, the lock, what the host will look like; nothing acted.
    expect(model.dispatch(h0.name, "reboot-plan-action")).toBe(0);
    const action = h0.unit.sim.readState().lastAction!;
    expect(action.failed).toBe(false);
    expect(action.results).toMatchObject({
      needed: "yes",
      why: { "1": "kernel command line lacks intel_iommu=on iommu=pt" },
      policy: { reboot: "when-idle", window: "any time", "with-juju-containers": "no" },
      "next-hook-would": "wait: a check holds the reboot back",
      checks: {
        guests: "hold: libvirt domain instance-00000001 is paused: migrate or stop it first",
        vfio: "pass: no process holds a /dev/vfio group",
        "juju-containers": expect.stringMatching(/^hold: Juju container juju-3f2a6a-0-lxd-3 runs/),
        window: expect.stringMatching(/^pass: any time/),
        lock: "hold: the reboot lock is free (asked once the other checks pass)",
      },
      lock: { holders: "nobody", units: "pci-passthrough/0", leader: "yes" },
      after: {
        "kernel-params-added": "intel_iommu=on iommu=pt",
        "on-vfio-pci": { "1": expect.stringMatching(/^0000:83:00\.0 10de:/) },
      },
    });
    expect((action.results.after as Record<string, string>)["kernel-cmdline"]).toMatch(
      / intel_iommu=on iommu=pt$/,
    );
    expect(model.reboots).toEqual([]);
    expect(h0.unit.sim.readState().calls.map((c) => c.argv[0])).not.toContain("juju-reboot");

    h0.setDomains([]);
    model.dispatch(h0.name, "update-status");
    expect(status(h0).message).not.toContain("libvirt domain");
    expect(model.reboots).toEqual([]);
    // The operator allows it: config-changed asks Juju to reboot.
    h0.unit.sim.updateState((s) => {
      s.config["reboot-with-juju-containers"] = true;
    });
    model.dispatch(h0.name, "config-changed");
    expect(model.reboots).toEqual([h0.name]);
    model.bootMachine(h0.name);
    model.settle();
    expect(status(h0)).toEqual({ status: "active", message: expect.any(String) });
  });

  it("loop guard: a boot that ignored the drop-in blocks with what the kernel shows, and never asks again", () => {
    const { model, hosts } = deployModel(1, { ignoreDropIn: () => true });
    const [h0] = hosts as [Host];
    deployHooks(model, hosts);
    model.settle();
    expect(model.reboots).toEqual([h0.name]);
    model.bootMachine(h0.name);
    model.settle();
    const cmdline = fs.readFileSync(path.join(h0.root, "proc/cmdline"), "utf8").trim();
    expect(cmdline).not.toContain("intel_iommu=on");
    expect(status(h0)).toEqual({
      status: "blocked",
      message: expect.stringMatching(
        /^the reboot the charm asked for \(boot [0-9a-f]{8} → [0-9a-f]{8}\) did not bring what was written: kernel command line lacks intel_iommu=on iommu=pt; .*the running kernel's command line is "/,
      ),
    });
    expect(status(h0).message).toContain(`"${cmdline}"`);
    expect(status(h0).message).toContain("the charm will not reboot again for this");
    for (const e of ["update-status", "config-changed", "update-status"]) model.enqueue(h0.name, e);
    model.settle();
    expect(model.reboots).toEqual([h0.name]);
    expect(status(h0).message).toMatch(/^the reboot the charm asked for/);
    // Still holding the lock: the next host would likely fail the same way.
    expect(lockOf(h0)).toEqual([h0.name]);
    model.dispatch(h0.name, "reboot-plan-action");
    const results = h0.unit.sim.readState().lastAction!.results;
    expect(results["next-hook-would"]).toMatch(
      /^nothing: a reboot already failed to bring this \(loop guard\): the reboot the charm asked for/,
    );
    expect(results["loop-guard"]).toBe(status(h0).message);
    expect(model.reboots).toEqual([h0.name]);
  });
});
