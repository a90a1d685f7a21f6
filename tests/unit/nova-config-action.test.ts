// The nova-config action's results: exact values an operator reads and pastes, and keys Juju's
// action-set accepts.
import { describe, expect, it } from "vitest";
import {
  controllerDefaultFilters,
  type NovaConfigInput,
  novaConfig,
  parseNovaConfigParams,
} from "../../src/actions/nova-config";
import { invalidResultKeys, type ResultTree } from "../../src/actions/results";
import type { NovaRelease } from "../../src/host/facts";
import { bound, gpu, gpuAudio } from "../support/bound-devices";

const caracal: NovaRelease = {
  package: "nova-common",
  version: "3:29.0.1-0ubuntu1",
  upstream: [29, 0, 1],
};
const yoga: NovaRelease = {
  package: "nova-common",
  version: "2:25.2.0-0ubuntu1",
  upstream: [25, 2, 0],
};

const BOBCAT_FILTERS =
  "ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter," +
  "ServerGroupAffinityFilter,DifferentHostFilter,SameHostFilter";

/** The action's reply for one GPU on vfio-pci, nova 2024.1 installed, related; `over` changes any of it. */
const novaConfigOf = (over: Partial<NovaConfigInput> = {}) =>
  novaConfig({
    bound: [gpu],
    onVfio: () => true,
    setting: "auto",
    installed: caracal,
    related: true,
    ...over,
  });

describe("nova-config results", () => {
  it.each<[string, Partial<NovaConfigInput>, string, ResultTree]>([
    [
      "one GPU on vfio-pci, nova 2024.1 installed, related",
      {},
      "1 of 1 functions offered to nova as [pci] device_spec",
      {
        option: {
          name: "device_spec",
          setting: "auto",
          reason:
            "nova-pci-option=auto and nova 29.0.1 (2024.1 Caracal, nova-common 3:29.0.1-0ubuntu1) is " +
            "installed: device_spec is the option name from Zed (26.0.0) on",
        },
        "nova-compute": { related: "yes", sends: "1 device_spec, 1 alias" },
        offered: "1",
        "nova-conf":
          "[pci]\n" +
          'device_spec = {"vendor_id":"10de","product_id":"1bb0","address":"0000:83:00.0"}\n' +
          'alias = {"name":"gpu","vendor_id":"10de","product_id":"1bb0","device_type":"type-PCI"}',
        "device-spec": { "1": '{"vendor_id":"10de","product_id":"1bb0","address":"0000:83:00.0"}' },
        alias: {
          "1": '{"name":"gpu","vendor_id":"10de","product_id":"1bb0","device_type":"type-PCI"}',
        },
        controller: {
          "scheduler-filters": `juju config nova-cloud-controller scheduler-default-filters='${BOBCAT_FILTERS},PciPassthroughFilter'`,
          "scheduler-filters-note": expect.stringContaining(
            "line is the default for 2024.1 Caracal (this host's nova; the controller should run the same release) plus PciPassthroughFilter",
          ),
          "pci-alias":
            "juju config nova-cloud-controller pci-alias=" +
            `'[{"name":"gpu","vendor_id":"10de","product_id":"1bb0","device_type":"type-PCI"}]'`,
          "pci-alias-note": expect.stringContaining(
            "nova-config without scope=host prints the line merged from every host",
          ),
        },
        flavor: {
          "1": 'openstack flavor set <flavor> --property "pci_passthrough:alias"="gpu:1"',
          note: expect.stringContaining("this host offers 1 × gpu."),
        },
      },
    ],
    [
      "nothing selected: says so, prints no controller lines",
      { bound: [], installed: null, related: false },
      "nothing selected",
      {
        option: {
          name: "passthrough_whitelist",
          setting: "auto",
          reason:
            "nova-pci-option=auto and no installed nova-common or python3-nova was found in the dpkg " +
            "status: passthrough_whitelist is read by every supported release (deprecated name of " +
            "device_spec since Zed, 26.0.0)",
        },
        "nova-compute": {
          related: "no",
          note: "No nova-compute relation: nothing is sent. Run `juju integrate nova-compute pci-passthrough:nova-compute`.",
        },
        offered: "0",
        "nova-conf": "[pci]",
        note:
          "The devices option selects nothing on this host, so there is nothing for nova; set " +
          "`devices` (see `juju run pci-passthrough/N list-devices`).",
      },
    ],
  ])("%s", (_title, over, message, results) => {
    const reply = novaConfigOf(over);
    expect(reply.ok).toBe(true);
    expect(reply.message).toBe(message);
    expect(reply.results).toEqual(results);
    expect(invalidResultKeys(reply.results)).toEqual([]);
  });

  // Changed deliberately (issue 12 point 4): the audio companion used to get its own device_spec,
  // a gpu-audio alias and a flavor line asking for it; nova could then give it to a second
  // instance, which cannot open the group the first one holds.
  it("a GPU with its audio companion, on Yoga: only the GPU is offered, the flavor asks for it alone", () => {
    const reply = novaConfigOf({
      bound: [gpu, gpuAudio],
      onVfio: (a) => a === "0000:83:00.0",
      installed: yoga,
    });
    const r = reply.results;
    expect(reply.message).toBe("1 of 1 functions offered to nova as [pci] passthrough_whitelist");
    expect(r["nova-conf"]).toBe(
      "[pci]\n" +
        'passthrough_whitelist = {"vendor_id":"10de","product_id":"1bb0","address":"0000:83:00.0"}\n' +
        'alias = {"name":"gpu","vendor_id":"10de","product_id":"1bb0","device_type":"type-PCI"}',
    );
    expect(r.waiting).toBeUndefined();
    expect(JSON.stringify(r.companions)).toContain(
      "0000:83:00.1 10de:10f0 follows 0000:83:00.0 onto vfio-pci (its IOMMU group needs it there) but is not offered to nova",
    );
    const controller = r.controller as ResultTree;
    expect(controller["pci-alias"]).toBe(
      "juju config nova-cloud-controller pci-alias='[" +
        '{"name":"gpu","vendor_id":"10de","product_id":"1bb0","device_type":"type-PCI"}]\'',
    );
    // Yoga's default list still has AvailabilityZoneFilter.
    expect(controller["scheduler-filters"]).toBe(
      `juju config nova-cloud-controller scheduler-default-filters='AvailabilityZoneFilter,${BOBCAT_FILTERS},PciPassthroughFilter'`,
    );
    expect(r.flavor).toEqual({
      "1": 'openstack flavor set <flavor> --property "pci_passthrough:alias"="gpu:1"',
      note:
        "Replace <flavor> with your flavor's name. Ask for several aliases with a comma " +
        '("gpu:1") and for more devices with a higher count; this host offers 1 × gpu.',
    });
    expect(JSON.stringify(r)).not.toContain("gpu-audio");
    expect(invalidResultKeys(r)).toEqual([]);
  });

  it("device_spec forced on Yoga carries the warning", () => {
    const reply = novaConfigOf({ setting: "device_spec", installed: yoga });
    expect((reply.results.option as ResultTree).warning).toContain(
      "releases before Zed (26.0.0) ignore device_spec",
    );
  });

  it("lists entries nova would refuse as problems", () => {
    const bad = bound("0000:84:00.0", "10de:1bb0", "my gpu");
    const reply = novaConfigOf({ bound: [gpu, bad] });
    expect(reply.results.problems).toEqual({
      "1": expect.stringContaining('alias "my gpu" of 0000:84:00.0 cannot be a nova alias name'),
    });
    expect(reply.results["device-spec"]).toEqual({
      "1": '{"vendor_id":"10de","product_id":"1bb0","address":"0000:83:00.0"}',
      "2": '{"vendor_id":"10de","product_id":"1bb0","address":"0000:84:00.0"}',
    });
    expect(invalidResultKeys(reply.results)).toEqual([]);
  });

  it("pads list keys so Juju's sorted output keeps their order", () => {
    const many = Array.from({ length: 10 }, (_, i) =>
      bound(`0000:${(0x10 + i).toString(16)}:00.0`, "10de:1bb0", "gpu"),
    );
    const reply = novaConfigOf({ bound: many });
    expect(Object.keys(reply.results["device-spec"] as ResultTree).sort()).toEqual([
      "01",
      "02",
      "03",
      "04",
      "05",
      "06",
      "07",
      "08",
      "09",
      "10",
    ]);
    expect(invalidResultKeys(reply.results)).toEqual([]);
  });
});

describe("nova-cloud-controller's default filters by release", () => {
  it("follows nova_cc_context.default_enabled_filters", () => {
    expect(controllerDefaultFilters(28).join(",")).toBe(BOBCAT_FILTERS);
    expect(controllerDefaultFilters(33).join(",")).toBe(BOBCAT_FILTERS);
    expect(controllerDefaultFilters(27)[0]).toBe("AvailabilityZoneFilter");
    expect(controllerDefaultFilters(22)[0]).toBe("AvailabilityZoneFilter");
    expect(controllerDefaultFilters(21).slice(0, 2)).toEqual([
      "RetryFilter",
      "AvailabilityZoneFilter",
    ]);
    expect(controllerDefaultFilters(null).join(",")).toBe(BOBCAT_FILTERS);
  });
});

describe("params", () => {
  it("takes scope (cloud by default) and refuses unknown ones", () => {
    expect(parseNovaConfigParams({})).toEqual({ ok: true, params: { scope: "cloud" } });
    expect(parseNovaConfigParams({ scope: "host" })).toEqual({
      ok: true,
      params: { scope: "host" },
    });
    const bad = parseNovaConfigParams({ flavor: "x" });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors[0]?.message).toContain('no parameter "flavor"');
  });
});
