// Issue 25: a 1,000-unit application stays inside Juju's limits. The fake controller enforces
// them as Juju does (ops-ts-shim fake-juju: 64 KiB per unit-state value, 2 MiB per unit state,
// 16 MiB per relation settings bag and per action's results, the kernel's argv limits); here the
// real charm's leader gathers 999 peers and nova-config reads them all, with typical offers and
// with every offer at its size bound and every host's definitions different.

import * as fs from "node:fs";
import { type CharmMetadata, JujuContext, Model, parseDeclaration } from "ops-ts-shim";
import {
  buildFakeUnit,
  CHARM_STATE_QUOTA,
  hookEnvironment,
  type OutputState,
  RELATION_SETTINGS_QUOTA,
  runFakeHookTool,
} from "ops-ts-shim/testing";
import { afterAll, describe, expect, it, vi } from "vitest";
import { updateFleet } from "../../src/fleet-relation";
import {
  boundOffer,
  FLEET_KEY,
  type HostOffer,
  OFFER_KEY,
  OFFER_MAX_BYTES,
  type OfferAlias,
  parseFleetSummary,
} from "../../src/plan/fleet";
import { hostOffer, offerAlias } from "../support/fleet-offers";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import { charmContext, useRoot } from "../support/scenario";

const UNITS = Array.from({ length: 1000 }, (_, i) => `pci-passthrough/${i}`);
const host = makeTempHost(seedHost());
afterAll(() => {
  host.cleanup();
  vi.unstubAllEnvs();
});

const typical = (): HostOffer =>
  hostOffer("29.0.1", [
    offerAlias("gpu", "10de:1bb0", { offered: 4 }),
    offerAlias("nic-vf", "8086:1889", { device_type: "type-VF", offered: 16 }),
  ]);

/** The biggest offer a host can publish: names of 64 characters, placement fields, reasons,
 * more entries than fit (boundOffer cuts them), and every host's names different. */
function worst(unit: number): HostOffer {
  const aliases: OfferAlias[] = Array.from({ length: 40 }, (_, i) => ({
    name: `${String(unit).padStart(4, "0")}-${"a".repeat(58)}${String(i).padStart(2, "0")}`.slice(
      0,
      64,
    ),
    vendor_id: "10de",
    product_id: (0x1000 + i).toString(16),
    device_type: "type-PCI",
    numa_policy: "preferred",
    resource_class: `CUSTOM_${"G".repeat(100)}`,
    traits: ["CUSTOM_A", "CUSTOM_B"],
    offered: 99,
    pending: 99,
    withheld: 99,
    why: ["x".repeat(160), "y".repeat(160), "z".repeat(160)],
  }));
  return boundOffer({ v: 1, nova: "31.0.0", placement: true, aliases });
}

function peers(offer: (i: number) => HostOffer) {
  const others = UNITS.slice(1);
  return {
    endpoint: "fleet",
    peer: true,
    id: 1,
    remoteUnits: others,
    remoteUnitsData: Object.fromEntries(
      others.map((u, i) => [u, { [OFFER_KEY]: JSON.stringify(offer(i + 1)) }]),
    ),
  };
}

/** The unit bags updateFleet reads when `changed` changed, run on the leader's state `out`. */
function mergeCost(out: OutputState, changed: string): string[] {
  const fake = buildFakeUnit({
    unitName: UNITS[0]!,
    leader: true,
    relations: out.relations,
    stored: out.stored,
  });
  const env = hookEnvironment(
    fake,
    { name: "fleet-relation-changed", relationId: 1, remoteUnit: changed },
    { charmDir: "/charm" },
  );
  const model = new Model({
    runner: (argv, input) => runFakeHookTool(fake, argv, { stdin: input, env }),
    context: JujuContext.fromEnv(env),
    metadata: () =>
      parseDeclaration<CharmMetadata>(fs.readFileSync("metadata.yaml", "utf8"), "metadata.yaml"),
  });
  updateFleet(model, undefined, { kind: "changed", unit: changed });
  return fake.calls
    .filter((c) => c.argv[0] === "relation-get" && !c.argv.includes("--app"))
    .map((c) => c.argv.at(-1)!)
    .filter((u) => u !== UNITS[0]);
}

const size = (o: Record<string, string>) =>
  Object.entries(o).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);

describe("a 1,000-unit application", () => {
  useRoot(host.root);

  it("an offer is bounded however much a host has to say", () => {
    const offer = worst(999);
    expect(Buffer.byteLength(JSON.stringify(offer))).toBeLessThanOrEqual(OFFER_MAX_BYTES);
    expect(offer.more).toBeGreaterThan(0);
    expect(offer.aliases.every((a) => a.why === undefined)).toBe(true);
  });

  for (const [label, offer] of [
    ["typical hosts", () => typical()],
    ["every offer at its bound, every host different", worst],
  ] as const) {
    it(`${label}: the leader gathers 999 peers and nova-config reads them, inside every limit`, () => {
      const ctx = charmContext();
      // The leader's own host selects nothing; its peers offer.
      const out = ctx.run("leader-elected", { leader: true, relations: [peers(offer)] });
      const bag = out.relations[0]!.localAppData;
      const summary = parseFleetSummary(bag[FLEET_KEY])!;
      // Typical hosts: the leader indexes all 1,000; at the bound the index is too big to keep.
      const index = out.stored["fleet-index"] as { hosts: object } | undefined;
      if (index) expect(Object.keys(index.hosts)).toHaveLength(1000);
      expect(summary.aliases.length).toBeGreaterThan(0);
      // Juju would have refused the commit (Context.run throws) over any quota; the margins:
      // Worst case (1,000 hosts, every alias name different): 1.8 MB, under an eighth.
      expect(size(bag)).toBeLessThan(RELATION_SETTINGS_QUOTA.maxSize / 8);
      for (const value of Object.values(out.stored)) {
        expect(Buffer.byteLength(JSON.stringify(value))).toBeLessThan(
          CHARM_STATE_QUOTA.maxValueSize,
        );
      }
      const totalState = Object.entries(out.stored).reduce(
        (n, [k, v]) => n + k.length + JSON.stringify(v).length,
        0,
      );
      expect(totalState).toBeLessThan(CHARM_STATE_QUOTA.defaultMaxStateSize / 8);
      // A peer's change costs the fleet merge one relation-get while the leader's index fits in
      // its unit state (updateFleet alone, below: the reboot lock of issue 24 reads every peer's
      // bag on every fleet event of its own accord).
      const calls = mergeCost(out, "pci-passthrough/7");
      if ("fleet-index" in out.stored) expect(calls).toEqual(["pci-passthrough/7"]);
      else expect(calls.length).toBe(999);

      const action = ctx.run({ name: "nova-config-action", params: {} }, { ...out, leader: false });
      expect(action.actionFailure).toBeNull();
      const results = action.actionResults as {
        capacity: string | Record<string, string>;
        hosts: string;
      };
      // The table comes whole, in parts when one argument could not hold it: 1,000 hosts' rows.
      const table =
        typeof results.capacity === "string"
          ? results.capacity
          : Object.keys(results.capacity)
              .sort()
              .map((k) => (results.capacity as Record<string, string>)[k])
              .join("\n");
      const rows = table.split("\n").filter((l) => / pci-passthrough\/\d+ /.test(l));
      expect(new Set(rows.map((l) => l.split(/\s+/)[1])).size).toBe(999);
      expect(results.hosts).toMatch(/^1000 hosts report an offer: /);
      expect(Buffer.byteLength(JSON.stringify(results))).toBeLessThan((16 * 1024 * 1024) / 4);
    });
  }
});
