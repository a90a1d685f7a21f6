// Issue 25 through the packed charm: three units of the application, each the real dispatch on
// its own host, under the process-level simulator, their peer relation `fleet` kept as Juju keeps
// it (syncPeers: a committed write reaches the other units, which then get relation-changed).
// The leader's status names the conflict; nova-config on another unit prints the merged line
// and a capacity table whose numbers add up to each unit's offer.
import type { PeerEvent } from "ops-ts-shim/testing";
import { syncPeers } from "ops-ts-shim/testing/simulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLEET_KEY, type HostOffer, OFFER_KEY, parseFleetSummary } from "../../src/plan/fleet";
import {
  type CharmUnderTest,
  deployPackedCharm,
  requirePackedCharm,
} from "../support/charm-process";
import { type HostSpec, makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";

const BOOTED = "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/sda1 ro intel_iommu=on iommu=pt";
const booted = (onVfio: string[]): HostSpec => {
  const spec = seedHost();
  return {
    ...spec,
    cmdline: BOOTED,
    pci: spec.pci!.map((p) => (onVfio.includes(p.address) ? { ...p, driver: "vfio-pci" } : p)),
    files: {
      ...(spec.files ?? {}),
      "/var/lib/dpkg/status":
        "Package: nova-common\nStatus: install ok installed\nVersion: 3:29.0.1-0ubuntu1\n\n",
    },
  };
};

const UNITS = ["pci-passthrough/0", "pci-passthrough/1", "pci-passthrough/2"];
const SETUP: Array<{ host: HostSpec; devices: string }> = [
  { host: booted(["0000:83:00.0", "0000:83:00.1"]), devices: "0000:83:00.0" },
  {
    host: booted(["0000:83:00.0", "0000:83:00.1", "0000:18:00.1"]),
    devices: JSON.stringify([
      { "vendor-id": "10de", "product-id": "1bb0", alias: "gpu" },
      { address: "0000:18:00.1", alias: "nic" },
    ]),
  },
  {
    host: booted(["0000:83:00.0", "0000:83:00.1", "0000:18:00.1"]),
    devices: JSON.stringify([
      { address: "0000:83:00.0", alias: "gpu", "numa-policy": "required" },
      { address: "0000:18:00.1", alias: "nic" },
    ]),
  },
];

describe("three packed units joined by the fleet peer relation", () => {
  const hosts = SETUP.map((s) => makeTempHost(s.host));
  let units: CharmUnderTest[] = [];
  const hooks: string[] = [];

  beforeAll(() => {
    requirePackedCharm();
    units = UNITS.map((unitName, i) =>
      deployPackedCharm(hosts[i]!.root, {
        unitName,
        leader: i === 0,
        config: { devices: SETUP[i]!.devices },
        relations: [
          {
            endpoint: "fleet",
            id: 3,
            peer: true,
            remoteUnits: UNITS.filter((u) => u !== unitName),
          },
        ],
      }),
    );
    // Juju: every unit installs; each committed write wakes the others; run until quiet.
    const queue: PeerEvent[] = [];
    for (const [i, unit] of units.entries()) {
      expect(unit.dispatch("install").exitCode).toBe(0);
      hooks.push(`${UNITS[i]} install`);
      queue.push(
        ...syncPeers(
          units.map((u) => u.sim),
          unit.sim,
        ),
      );
    }
    while (queue.length > 0) {
      const next = queue.shift()!;
      const i = UNITS.indexOf(next.unit);
      expect(units[i]!.dispatch(next.event).exitCode).toBe(0);
      hooks.push(`${next.unit} ${next.event.name} ${next.event.remoteUnit ?? "(app)"}`);
      queue.push(
        ...syncPeers(
          units.map((u) => u.sim),
          units[i]!.sim,
        ),
      );
      expect(hooks.length).toBeLessThan(50);
    }
  }, 300_000);

  afterAll(() => {
    for (const u of units) u.cleanup();
    for (const h of hosts) h.cleanup();
  });

  it("the leader merged every host and its status names the conflict", () => {
    const state = units[0]!.sim.readState();
    const summary = parseFleetSummary(state.relations[0]!.localAppData[FLEET_KEY])!;
    expect(summary.aliases.map((a) => a.name)).toEqual(["nic"]);
    expect(summary.conflicts.map((c) => c.name)).toEqual(["gpu"]);
    expect(state.unitStatus.status).toBe("blocked");
    expect(state.unitStatus.message).toMatch(
      /^fleet: alias "gpu" is 10de:1bb0 type-PCI on pci-passthrough\/0, pci-passthrough\/1 but 10de:1bb0 type-PCI numa_policy=required on pci-passthrough\/2/,
    );
    // Every unit holds the same application bag.
    for (const u of units.slice(1)) {
      expect(u.sim.readState().relations[0]!.localAppData).toEqual(
        state.relations[0]!.localAppData,
      );
    }
  });

  it("nova-config on a non-leader: the merged line and capacity adding up to each offer", () => {
    const unit = units[1]!;
    expect(unit.dispatch({ name: "nova-config-action", params: {} }).exitCode).toBe(0);
    const action = unit.sim.readState().lastAction!;
    expect(action.failed).toBe(false);
    const r = action.results as { controller: Record<string, string>; capacity: string };
    expect(r.controller["pci-alias"]).toBe(
      `juju config nova-cloud-controller pci-alias='[{"name":"nic","vendor_id":"8086","product_id":"1593","device_type":"type-PCI"}]'`,
    );
    const rows = r.capacity
      .split("\n")
      .slice(1)
      .map((l) => l.split(/\s{2,}/));
    for (const [i, u] of units.entries()) {
      const offer = JSON.parse(
        u.sim.readState().relations[0]!.localUnitData[OFFER_KEY]!,
      ) as HostOffer;
      const mine = rows.filter((row) => row[1] === UNITS[i]);
      expect(mine.length).toBe(offer.aliases.length);
      expect(mine.reduce((n, row) => n + Number(row[2]), 0)).toBe(
        offer.aliases.reduce((n, a) => n + a.offered, 0),
      );
      expect(mine.reduce((n, row) => n + Number(row[3]), 0)).toBe(
        offer.aliases.reduce((n, a) => n + a.pending, 0),
      );
    }
    expect(r.capacity).toContain("total (3 hosts)");
  });
});
