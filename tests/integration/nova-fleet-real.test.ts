// Issue 25: what the charm publishes and prints, read by nova's own code at the release it
// targets. Debian bookworm's python3-nova (26, Zed) and trixie's (31.0.0, 2025.1 Epoxy, in the
// cached trixie root of scripts/nova-trixie.sh): the cloud-wide pci-alias line the fleet merges,
// the device_spec with and without `"managed": "no"`, and why a conflicting alias is refused.
import { describe, expect, it } from "vitest";
import type { NovaRelease } from "../../src/host/facts";
import { type HostOffer, mergeFleet } from "../../src/plan/fleet";
import { novaFeatures, novaRelationData, SUBORDINATE_CONFIGURATION_KEY } from "../../src/plan/nova";
import { bound } from "../support/bound-devices";
import { hostOffer, offerAlias } from "../support/fleet-offers";
import {
  BOOKWORM_NOVA,
  NOVA_READS_PCI,
  type NovaPython,
  runNova,
  trixieNova,
} from "../support/nova-python";

interface NovaReading {
  devices: Record<
    string,
    {
      admitted: boolean;
      tags: Record<string, string> | null;
      managed?: boolean;
      resource_class?: string;
      traits?: string[];
    }
  >;
  aliases: Record<string, { numa_policy: string; specs: Array<Record<string, string>> }> | null;
  alias_error: string | null;
}

const release = (version: string): NovaRelease => {
  const [a, b, c] = version.split(".").map(Number);
  return { package: "nova-common", version: `2:${version}-1`, upstream: [a!, b!, c!] };
};

/** Three hosts: gpu on two with the same definition, nic-vf on one, and a NUMA-policy conflict. */
const FLEET = {
  hosts: {
    "pci-passthrough/0": hostOffer("26.2.2", [
      offerAlias("gpu", "10de:1bb0"),
      offerAlias("big-gpu", "10de:20b5"),
    ]),
    "pci-passthrough/1": hostOffer("26.2.2", [
      offerAlias("gpu", "10de:1bb0"),
      offerAlias("nic-vf", "8086:1889", { device_type: "type-VF", numa_policy: "preferred" }),
      offerAlias("big-gpu", "10de:20b5", { numa_policy: "required" }),
    ]),
  },
};

/** The [pci] pairs the relation carries, [key, value], for `devices` (the first P5000 unless
 * said) to nova `novaVersion`, with PCI in Placement on or off. */
function pairs(
  novaVersion: string,
  devices = [bound("0000:83:00.0", "10de:1bb0", "gpu")],
  placement = false,
): [string, string][] {
  const { data } = novaRelationData(
    devices,
    () => true,
    "device_spec",
    { pfs: [], ready: () => false },
    novaFeatures(release(novaVersion), placement),
  );
  const parsed = JSON.parse(data[SUBORDINATE_CONFIGURATION_KEY]!);
  return parsed.nova["/etc/nova/nova.conf"].sections.pci;
}

const GPU = {
  vendor_id: "10de",
  product_id: "1bb0",
  address: "0000:83:00.0",
  parent_addr: null,
  dev_type: "type-PCI",
};
const NOVA_TIMEOUT_MS = 300_000;

function read(nova: NovaPython, p: [string, string][], aliases: string[]): NovaReading {
  return runNova<NovaReading>(nova, NOVA_READS_PCI, {
    specs: p.filter(([k]) => k === "device_spec").map(([, v]) => v),
    aliases,
    devices: [GPU],
  });
}

describe("nova reads the fleet's merged pci-alias line", () => {
  const view = mergeFleet(FLEET);

  it("the merge keeps gpu and nic-vf and refuses big-gpu, defined two ways", () => {
    expect(view.aliases.map((a) => a.name)).toEqual(["gpu", "nic-vf"]);
    expect(view.conflicts.map((c) => c.name)).toEqual(["big-gpu"]);
  });

  it(
    "bookworm's nova 26 parses the merged line; it would refuse the conflicting pair itself",
    () => {
      const line = JSON.stringify(view.aliases);
      // nova-cloud-controller renders each list item as one `alias = ` line.
      const merged = read(
        BOOKWORM_NOVA,
        [],
        (JSON.parse(line) as object[]).map((a) => JSON.stringify(a)),
      );
      expect(merged.alias_error).toBeNull();
      expect(merged.aliases).toEqual({
        gpu: {
          numa_policy: "legacy",
          specs: [{ vendor_id: "10de", product_id: "1bb0", dev_type: "type-PCI" }],
        },
        "nic-vf": {
          numa_policy: "preferred",
          specs: [{ vendor_id: "8086", product_id: "1889", dev_type: "type-VF" }],
        },
      });
      const both = read(
        BOOKWORM_NOVA,
        [],
        [
          JSON.stringify({
            name: "big-gpu",
            vendor_id: "10de",
            product_id: "20b5",
            device_type: "type-PCI",
          }),
          JSON.stringify({
            name: "big-gpu",
            vendor_id: "10de",
            product_id: "20b5",
            device_type: "type-PCI",
            numa_policy: "required",
          }),
        ],
      );
      expect(both.alias_error).toMatch(
        /^PciInvalidAlias: .*NUMA policy mismatch for alias 'big-gpu'/,
      );
    },
    NOVA_TIMEOUT_MS,
  );
});

describe("managed: never before nova 31", () => {
  it(
    "nova 26 (bookworm): no managed key; nova admits the GPU",
    () => {
      const p = pairs("26.2.2");
      expect(p.map(([k, v]) => [k, JSON.parse(v)])).toEqual([
        ["device_spec", { vendor_id: "10de", product_id: "1bb0", address: "0000:83:00.0" }],
        ["alias", { name: "gpu", vendor_id: "10de", product_id: "1bb0", device_type: "type-PCI" }],
      ]);
      const r = read(
        BOOKWORM_NOVA,
        p,
        p.filter(([k]) => k === "alias").map(([, v]) => v),
      );
      expect(r.devices["0000:83:00.0"]!.admitted).toBe(true);
      expect(r.alias_error).toBeNull();
    },
    NOVA_TIMEOUT_MS,
  );
});

/** The first P5000 with a Placement resource class and `traits`. */
const placedGpu = (traits: string[]) =>
  bound("0000:83:00.0", "10de:1bb0", "gpu", { resourceClass: "CUSTOM_GPU_P5000", traits });

/** What `nova` makes of the pairs `p` for the P5000 with report_in_placement on. */
const readsInPlacement = (nova: NovaPython, p: [string, string][]) =>
  runNova<NovaReading>(nova, NOVA_READS_PCI, {
    specs: p.filter(([k]) => k === "device_spec").map(([, v]) => v),
    options: { report_in_placement: true },
    aliases: p.filter(([k]) => k === "alias").map(([, v]) => v),
    devices: [GPU],
  });

describe("PCI in Placement: nova 26 reads the entry's class and traits from the spec", () => {
  it(
    "bookworm's nova 26: its Placement translator derives CUSTOM_GPU_P5000 and CUSTOM_HBM2",
    () => {
      const p = pairs("26.2.2", [placedGpu(["CUSTOM_HBM2"])], true);
      expect(p[0]).toEqual(["report_in_placement", "True"]);
      const r = readsInPlacement(BOOKWORM_NOVA, p);
      expect(r.devices["0000:83:00.0"]).toMatchObject({
        admitted: true,
        resource_class: "CUSTOM_GPU_P5000",
        traits: ["COMPUTE_MANAGED_PCI_DEVICE", "CUSTOM_HBM2"],
      });
    },
    NOVA_TIMEOUT_MS,
  );
});

describe("trixie's nova 31 (2025.1 Epoxy) reads what the charm sends it", () => {
  it(
    '"managed": "no" and the Placement fields on the spec: nova takes the device as pre-bound, in its class',
    () => {
      const p = pairs("31.0.0", [placedGpu(["CUSTOM_HBM2", "CUSTOM_FAST_LINK"])], true);
      expect(JSON.parse(p[1]![1])).toEqual({
        vendor_id: "10de",
        product_id: "1bb0",
        address: "0000:83:00.0",
        managed: "no",
        resource_class: "CUSTOM_GPU_P5000",
        traits: "CUSTOM_HBM2,CUSTOM_FAST_LINK",
      });
      const r = readsInPlacement(trixieNova(), p);
      expect(r.alias_error).toBeNull();
      expect(r.devices["0000:83:00.0"]).toMatchObject({
        admitted: true,
        // nova 31 normalises the tag to a boolean word and copies it onto the device.
        spec_tags: { managed: "false" },
        resource_class: "CUSTOM_GPU_P5000",
        traits: ["COMPUTE_MANAGED_PCI_DEVICE", "CUSTOM_FAST_LINK", "CUSTOM_HBM2"],
      });
    },
    NOVA_TIMEOUT_MS,
  );

  it(
    "the fleet's line carries resource_class/traits when every host reports to Placement (nova >= 27): nova 31 parses it",
    () => {
      const placed = (aliases: HostOffer["aliases"]): HostOffer => ({
        v: 1,
        nova: "31.0.0",
        placement: true,
        aliases,
      });
      const view = mergeFleet({
        hosts: {
          "pci-passthrough/0": placed([
            offerAlias("gpu", "10de:1bb0", {
              resource_class: "CUSTOM_GPU_P5000",
              traits: ["CUSTOM_HBM2"],
            }),
          ]),
          "pci-passthrough/1": placed([
            offerAlias("gpu", "10de:1bb0", {
              resource_class: "CUSTOM_GPU_P5000",
              traits: ["CUSTOM_HBM2"],
            }),
          ]),
        },
      });
      expect(view.aliasPlacement).toBe(true);
      expect(view.aliases).toEqual([
        {
          name: "gpu",
          vendor_id: "10de",
          product_id: "1bb0",
          device_type: "type-PCI",
          resource_class: "CUSTOM_GPU_P5000",
          traits: "CUSTOM_HBM2",
        },
      ]);
      const r = read(
        trixieNova(),
        [],
        view.aliases.map((a) => JSON.stringify(a)),
      );
      expect(r.alias_error).toBeNull();
      expect(r.aliases!.gpu!.specs[0]).toMatchObject({
        resource_class: "CUSTOM_GPU_P5000",
        traits: "CUSTOM_HBM2",
      });
      // bookworm's nova 26 has no such alias fields: the merge never puts them there for it.
      const old = read(
        BOOKWORM_NOVA,
        [],
        view.aliases.map((a) => JSON.stringify(a)),
      );
      expect(old.alias_error).toMatch(/PciInvalidAlias: .*resource_class/);
    },
    NOVA_TIMEOUT_MS,
  );
});
