// Issue 25, through the real charm: three units of one application on three hosts, joined by the
// peer relation `fleet` as Juju joins them (ops-ts-shim ApplicationContext). Each unit publishes
// its offer; the leader merges: one pci-alias line, a conflict refused and named (in its status
// and in nova-config), and capacity numbers that add up to each unit's offer.
import * as fs from "node:fs";
import * as path from "node:path";
import { ApplicationContext } from "ops-ts-shim/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PciPassthroughCharm } from "../../src/pci-passthrough-charm";
import { FLEET_KEY, type HostOffer, OFFER_KEY, parseFleetSummary } from "../../src/plan/fleet";
import { hostOffer, offerAlias } from "../support/fleet-offers";
import type { HostSpec } from "../support/hosts/build-host";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";

const TOP = path.resolve(__dirname, "..", "..");
const read = (f: string) => fs.readFileSync(path.join(TOP, f), "utf8");
const RELEASE = "6.8.0-45-generic";
const BOOTED = `BOOT_IMAGE=/vmlinuz-${RELEASE} root=/dev/sda1 ro intel_iommu=on iommu=pt`;
const NOVA_COMMON = (version: string) =>
  `Package: nova-common\nStatus: install ok installed\nVersion: ${version}\n\n`;

/** The seed host after a reboot, with these functions on vfio-pci and this nova installed. */
function booted(onVfio: string[], nova: string): HostSpec {
  const spec = seedHost();
  return {
    ...spec,
    cmdline: BOOTED,
    pci: spec.pci!.map((p) => (onVfio.includes(p.address) ? { ...p, driver: "vfio-pci" } : p)),
    files: { ...(spec.files ?? {}), "/var/lib/dpkg/status": NOVA_COMMON(nova) },
  };
}

const UNITS = ["pci-passthrough/0", "pci-passthrough/1", "pci-passthrough/2"];
const HOSTS: Record<string, { host: HostSpec; devices: string }> = {
  // One GPU, on vfio-pci: gpu offered 1.
  "pci-passthrough/0": {
    host: booted(["0000:83:00.0", "0000:83:00.1"], "3:29.0.1-0ubuntu1"),
    devices: "0000:83:00.0",
  },
  // Both GPUs selected, one on vfio-pci so far; the NIC's two ports: the management one is
  // withheld (up with the default route), the other offered.
  "pci-passthrough/1": {
    host: booted(["0000:83:00.0", "0000:83:00.1", "0000:18:00.1"], "3:29.0.1-0ubuntu1"),
    devices: JSON.stringify([
      { "vendor-id": "10de", "product-id": "1bb0", alias: "gpu" },
      { address: "0000:18:00.0", alias: "nic" },
      { address: "0000:18:00.1", alias: "nic" },
    ]),
  },
  // The same GPU under the same name, but NUMA policy `required`: a conflict.
  "pci-passthrough/2": {
    host: booted(["0000:83:00.0", "0000:83:00.1", "0000:18:00.1"], "3:30.0.0-0ubuntu1"),
    devices: JSON.stringify([
      { address: "0000:83:00.0", alias: "gpu", "numa-policy": "required" },
      { address: "0000:18:00.1", alias: "nic" },
    ]),
  },
};

const roots = new Map<string, { root: string; cleanup(): void }>();
beforeAll(() => {
  for (const unit of UNITS) roots.set(unit, makeTempHost(HOSTS[unit]!.host));
});
afterAll(() => {
  for (const r of roots.values()) r.cleanup();
  vi.unstubAllEnvs();
});

function fleet(): ApplicationContext {
  return new ApplicationContext(PciPassthroughCharm, {
    metadata: read("metadata.yaml"),
    config: read("config.yaml"),
    actions: read("actions.yaml"),
    units: UNITS,
    peer: "fleet",
    leader: "pci-passthrough/0",
    state: (unit) => ({ config: { devices: HOSTS[unit]!.devices } }),
    beforeRun: (unit) => {
      vi.stubEnv("PCI_PASSTHROUGH_ROOT", roots.get(unit)!.root);
      vi.stubEnv("PCI_PASSTHROUGH_RUN_COMMANDS", "");
    },
  });
}

const offerOf = (app: ApplicationContext, unit: string): HostOffer =>
  JSON.parse(app.output(unit).relations.find((r) => r.peer)!.localUnitData[OFFER_KEY]!);

describe("the fleet view over the peer relation (three units)", () => {
  const app = fleet();
  beforeAll(() => {
    app.runAll("install");
    app.settle();
  });

  it("each unit publishes its offer: aliases with ids, type, NUMA policy, counts, nova release", () => {
    expect(offerOf(app, "pci-passthrough/0")).toEqual(
      hostOffer("29.0.1", [offerAlias("gpu", "10de:1bb0")]),
    );
    const second = offerOf(app, "pci-passthrough/1");
    expect(second.aliases.map((a) => [a.name, a.offered, a.pending, a.withheld])).toEqual([
      ["gpu", 1, 1, 0],
      ["nic", 1, 0, 1],
    ]);
    expect(second.aliases[1]!.why![0]).toMatch(/^0000:18:00\.0: /);
    expect(offerOf(app, "pci-passthrough/2").aliases[0]).toMatchObject({
      name: "gpu",
      numa_policy: "required",
    });
  });

  it("the leader merges: nic in the one line, gpu refused as a conflict naming hosts and values", () => {
    const bag = app.output("pci-passthrough/0").relations.find((r) => r.peer)!.localAppData;
    const summary = parseFleetSummary(bag[FLEET_KEY])!;
    // The leader's index (its unit state) holds every host; the bag holds no counts.
    expect(
      Object.keys(
        (app.output("pci-passthrough/0").stored["fleet-index"] as { hosts: object }).hosts,
      ),
    ).toEqual(UNITS);
    expect(summary.aliases).toEqual([
      { name: "nic", vendor_id: "8086", product_id: "1593", device_type: "type-PCI" },
    ]);
    expect(summary.conflicts).toEqual([
      {
        name: "gpu",
        variants: [
          {
            definition: "10de:1bb0 type-PCI",
            units: ["pci-passthrough/0", "pci-passthrough/1"],
            count: 2,
          },
          {
            definition: "10de:1bb0 type-PCI numa_policy=required",
            units: ["pci-passthrough/2"],
            count: 1,
          },
        ],
      },
    ]);
    expect(summary.nova).toEqual({ min: 29, max: 30 });
    // Every unit sees the same bag (peer application data is readable by all).
    for (const unit of UNITS) {
      expect(app.state(unit).relations!.find((r) => r.peer)!.localAppData).toEqual(bag);
    }
  });

  it("the leader's status names the conflict; the others' do not", () => {
    const status = app.output("pci-passthrough/0").unitStatus;
    expect(status.name).toBe("blocked");
    expect(status.message).toBe(
      'fleet: alias "gpu" is 10de:1bb0 type-PCI on pci-passthrough/0, pci-passthrough/1 but ' +
        "10de:1bb0 type-PCI numa_policy=required on pci-passthrough/2: left out of the cloud-wide " +
        "pci-alias. Give one side another `alias` in `devices` on those hosts (juju run <unit> " +
        "nova-config shows them all).",
    );
    expect(app.output("pci-passthrough/2").unitStatus.message).not.toContain("fleet");
  });

  it("nova-config on a non-leader: the merged line, the conflict, capacity adding up to each offer", () => {
    const out = app.run("pci-passthrough/2", { name: "nova-config-action", params: {} });
    const r = out.actionResults as Record<string, unknown> & {
      controller: Record<string, string>;
      conflicts: Record<string, string>;
      capacity: string;
    };
    expect(r.scope).toBe("cloud");
    expect(r.controller["pci-alias"]).toBe(
      `juju config nova-cloud-controller pci-alias='[{"name":"nic","vendor_id":"8086","product_id":"1593","device_type":"type-PCI"}]'`,
    );
    // The oldest nova (29, 2024.1 Caracal) picks the controller's default filter list.
    expect(r.controller["scheduler-filters"]).toContain(",PciPassthroughFilter'");
    expect(Object.values(r.conflicts)[0]).toMatch(
      /^alias "gpu" is 10de:1bb0 type-PCI on pci-passthrough\/0, pci-passthrough\/1 but .* on pci-passthrough\/2: /,
    );
    expect(r.capacity).toBe(
      [
        "alias           host               offered  pending  withheld",
        "gpu (conflict)  pci-passthrough/0        1        0         0",
        "gpu (conflict)  pci-passthrough/1        1        1         0",
        "gpu (conflict)  pci-passthrough/2        1        0         0",
        "gpu (conflict)  total (3 hosts)          3        1         0",
        "nic             pci-passthrough/1        1        0         1",
        "nic             pci-passthrough/2        1        0         0",
        "nic             total (2 hosts)          2        0         1",
      ].join("\n"),
    );
    // The numbers add up to what each unit offers.
    const rows = r.capacity
      .split("\n")
      .slice(1)
      .map((l) => l.split(/\s{2,}/));
    for (const unit of UNITS) {
      const offer = offerOf(app, unit);
      const mine = rows.filter((row) => row[1] === unit);
      for (const [i, key] of (["offered", "pending", "withheld"] as const).entries()) {
        expect(mine.reduce((n, row) => n + Number(row[2 + i]), 0)).toBe(
          offer.aliases.reduce((n, a) => n + a[key], 0),
        );
      }
    }
    expect(out.actionFailure).toBeNull();
  });

  it("scope=host keeps the per-host answer", () => {
    const out = app.run("pci-passthrough/1", {
      name: "nova-config-action",
      params: { scope: "host" },
    });
    const r = out.actionResults as Record<string, unknown>;
    expect(r["nova-conf"]).toContain('alias = {"name":"nic"');
    expect(r.scope).toBeUndefined();
  });

  it("a unit leaving takes its hosts out; the conflict goes with the last host that made it", () => {
    const leader = "pci-passthrough/0";
    app.remove("pci-passthrough/2");
    const out = app.output(leader);
    const summary = parseFleetSummary(out.relations.find((r) => r.peer)!.localAppData[FLEET_KEY])!;
    expect(Object.keys((out.stored["fleet-index"] as { hosts: object }).hosts)).toHaveLength(2);
    expect(summary.conflicts).toEqual([]);
    expect(summary.aliases.map((a) => a.name)).toEqual(["gpu", "nic"]);
    expect(out.unitStatus.message).not.toContain("fleet");
  });
});
