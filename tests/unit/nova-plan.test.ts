// The exact relation data this charm sends nova-compute, for the cases an operator meets: one GPU,
// one of two identical GPUs, a GPU with its HDMI audio function, nothing bound, and removal. The
// expected strings are written out by hand: they are the wire format, not a re-run of the code.
import { describe, expect, it } from "vitest";
import type { NovaRelease } from "../../src/host/facts";
import {
  chooseOptionName,
  clearedNovaRelationData,
  novaEntryProblems,
  novaPciEntries,
  novaRelationData,
  openstackReleaseName,
  resolveOptionName,
  subordinateConfiguration,
} from "../../src/plan/nova";
import { bound, gpu, gpuAudio } from "../support/bound-devices";

const all = () => true;

const release = (version: string, upstream: [number, number, number]): NovaRelease => ({
  package: "nova-common",
  version,
  upstream,
});

describe("novaRelationData: the exact subordinate_configuration", () => {
  it("one GPU", () => {
    const { data, waiting } = novaRelationData([gpu], all, "device_spec");
    expect(data).toEqual({
      subordinate_configuration:
        '{"nova":{"/etc/nova/nova.conf":{"sections":{"pci":[' +
        '["device_spec","{\\"vendor_id\\":\\"10de\\",\\"product_id\\":\\"1bb0\\",\\"address\\":\\"0000:83:00.0\\"}"],' +
        '["alias","{\\"name\\":\\"gpu\\",\\"vendor_id\\":\\"10de\\",\\"product_id\\":\\"1bb0\\",\\"device_type\\":\\"type-PCI\\"}"]' +
        "]}}}}",
    });
    expect(waiting).toEqual([]);
  });

  it("one GPU under the pre-Zed name", () => {
    const { data } = novaRelationData([gpu], all, "passthrough_whitelist");
    const pci = JSON.parse(data.subordinate_configuration!).nova["/etc/nova/nova.conf"].sections
      .pci;
    expect(pci).toEqual([
      [
        "passthrough_whitelist",
        '{"vendor_id":"10de","product_id":"1bb0","address":"0000:83:00.0"}',
      ],
      ["alias", '{"name":"gpu","vendor_id":"10de","product_id":"1bb0","device_type":"type-PCI"}'],
    ]);
  });

  it("two identical GPUs, the second selected: its address pins it", () => {
    // The planner bound only 0000:84:00.0; 0000:83:00.0 (same ids) stays with the host.
    const second = bound("0000:84:00.0", "10de:1bb0", "gpu");
    const { data } = novaRelationData([second], all, "device_spec");
    expect(data.subordinate_configuration).toBe(
      '{"nova":{"/etc/nova/nova.conf":{"sections":{"pci":[' +
        '["device_spec","{\\"vendor_id\\":\\"10de\\",\\"product_id\\":\\"1bb0\\",\\"address\\":\\"0000:84:00.0\\"}"],' +
        '["alias","{\\"name\\":\\"gpu\\",\\"vendor_id\\":\\"10de\\",\\"product_id\\":\\"1bb0\\",\\"device_type\\":\\"type-PCI\\"}"]' +
        "]}}}}",
    );
    expect(data.subordinate_configuration).not.toContain("0000:83:00.0");
  });

  it("both identical GPUs: two device_specs, one alias", () => {
    const second = bound("0000:84:00.0", "10de:1bb0", "gpu");
    // Given out of order: the output is in address order so the data does not flap.
    expect(novaPciEntries([second, gpu])).toEqual({
      deviceSpecs: [
        { vendor_id: "10de", product_id: "1bb0", address: "0000:83:00.0" },
        { vendor_id: "10de", product_id: "1bb0", address: "0000:84:00.0" },
      ],
      aliases: [{ name: "gpu", vendor_id: "10de", product_id: "1bb0", device_type: "type-PCI" }],
    });
  });

  // Changed deliberately (issue 12 point 4): the companion had a device_spec and an alias of its
  // own, so nova could hand it to a second instance that then cannot open the group.
  it("a GPU with its audio companion: only the GPU is offered to nova", () => {
    const { data } = novaRelationData([gpu, gpuAudio], all, "device_spec");
    expect(data.subordinate_configuration).toBe(
      '{"nova":{"/etc/nova/nova.conf":{"sections":{"pci":[' +
        '["device_spec","{\\"vendor_id\\":\\"10de\\",\\"product_id\\":\\"1bb0\\",\\"address\\":\\"0000:83:00.0\\"}"],' +
        '["alias","{\\"name\\":\\"gpu\\",\\"vendor_id\\":\\"10de\\",\\"product_id\\":\\"1bb0\\",\\"device_type\\":\\"type-PCI\\"}"]' +
        "]}}}}",
    );
  });

  it("a companion the operator also selected is offered like any selected function", () => {
    const selectedAudio = { ...gpuAudio, reason: "selected" as const, follows: null };
    expect(novaPciEntries([gpu, selectedAudio]).deviceSpecs.map((s) => s.address)).toEqual([
      "0000:83:00.0",
      "0000:83:00.1",
    ]);
  });

  it("no devices: an empty pci list, not a deleted key (nova-compute must re-render)", () => {
    const { data, waiting } = novaRelationData([], all, "device_spec");
    expect(data).toEqual({
      subordinate_configuration: '{"nova":{"/etc/nova/nova.conf":{"sections":{"pci":[]}}}}',
    });
    expect(waiting).toEqual([]);
  });

  it("removal clears the key", () => {
    expect(clearedNovaRelationData()).toEqual({ subordinate_configuration: null });
  });
});

describe("only functions on vfio-pci now are offered", () => {
  it("a GPU still on its host driver waits", () => {
    const second = bound("0000:84:00.0", "10de:1bb0", "gpu");
    const onVfio = (a: string) => a === "0000:84:00.0";
    const { data, waiting } = novaRelationData([gpu, second], onVfio, "device_spec");
    expect(waiting).toEqual([gpu]);
    expect(data.subordinate_configuration).toContain('\\"address\\":\\"0000:84:00.0\\"');
    expect(data.subordinate_configuration).not.toContain("0000:83:00.0");
  });

  it("nothing on vfio-pci yet: an empty list and everything waiting", () => {
    const { data, waiting } = novaRelationData(
      [gpu, gpuAudio],
      () => false,
      "passthrough_whitelist",
    );
    expect(data.subordinate_configuration).toBe(
      '{"nova":{"/etc/nova/nova.conf":{"sections":{"pci":[]}}}}',
    );
    expect(waiting).toEqual([gpu, gpuAudio]);
  });
});

describe("aliases", () => {
  it("carries numa_policy when set, after device_type", () => {
    const entries = novaPciEntries([{ ...gpu, numaPolicy: "required" }]);
    expect(JSON.stringify(entries.aliases[0])).toBe(
      '{"name":"gpu","vendor_id":"10de","product_id":"1bb0","device_type":"type-PCI","numa_policy":"required"}',
    );
  });

  it("one name over two models: two alias lines with the same name (nova ORs them)", () => {
    const a100 = bound("0000:41:00.0", "10de:20b0", "gpu");
    const entries = novaPciEntries([gpu, a100]);
    expect(entries.aliases).toEqual([
      { name: "gpu", vendor_id: "10de", product_id: "20b0", device_type: "type-PCI" },
      { name: "gpu", vendor_id: "10de", product_id: "1bb0", device_type: "type-PCI" },
    ]);
    expect(novaEntryProblems([gpu, a100])).toEqual([]);
  });

  it("one name with two device types: nova would refuse the alias, so the second is left out and said", () => {
    const pf = bound("0000:41:00.0", "15b3:101d", "gpu", {
      deviceType: "type-PF",
      classCode: "020000",
    });
    const entries = novaPciEntries([gpu, pf]);
    expect(entries.deviceSpecs.map((s) => s.address)).toEqual(["0000:41:00.0", "0000:83:00.0"]);
    expect(entries.aliases).toEqual([
      { name: "gpu", vendor_id: "15b3", product_id: "101d", device_type: "type-PF" },
    ]);
    expect(novaEntryProblems([gpu, pf])).toEqual([
      {
        option: "devices",
        message:
          'alias "gpu" is type-PF/legacy for 0000:41:00.0 but type-PCI/legacy for 0000:83:00.0 ' +
          "(device_type/numa_policy): nova refuses an alias whose entries differ, so 0000:83:00.0 " +
          "is left out of it. Give one of them its own alias in `devices`.",
      },
    ]);
  });

  it("one name with two NUMA policies is refused the same way", () => {
    const other = bound("0000:84:00.0", "10de:1bb0", "gpu", { numaPolicy: "required" });
    expect(novaPciEntries([gpu, other]).aliases).toHaveLength(1);
    expect(novaEntryProblems([gpu, other])[0]?.message).toContain(
      "type-PCI/legacy for 0000:83:00.0 but type-PCI/required",
    );
  });

  it.each([
    ["gpu:big", "a colon breaks the flavor's name:count"],
    ["gpu,2", "a comma breaks the flavor's list"],
    ["$gpu", "oslo.config substitutes $names"],
    ["my gpu", "a space breaks the pasted command lines"],
    ["gpu'", "a quote breaks the pasted command lines"],
    ["", "nova requires a name"],
    ["x".repeat(257), "nova allows 256 characters"],
  ])("refuses alias %j (%s) but still offers the device_spec", (alias) => {
    const device = { ...gpu, alias };
    const entries = novaPciEntries([device]);
    expect(entries.deviceSpecs).toHaveLength(1);
    expect(entries.aliases).toEqual([]);
    const problems = novaEntryProblems([device]);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.option).toBe("devices");
    expect(problems[0]?.message).toContain("cannot be a nova alias name");
  });

  it("accepts ordinary names", () => {
    for (const alias of ["gpu", "p5000", "A100_80G", "gpu.audio", "x".repeat(256)]) {
      expect(novaPciEntries([{ ...gpu, alias }]).aliases).toHaveLength(1);
    }
  });
});

describe("ids and addresses nova would refuse are never published", () => {
  it("normalises upper-case and 0x ids, leaves out what is not an id or full address", () => {
    const odd = bound("0000:83:00.0", "0x10DE:1BB0", "gpu");
    const short = bound("83:00.0", "10de:1bb0", "gpu");
    const badId = bound("0000:84:00.0", "10de:zz", "gpu");
    const badSlot = bound("0000:84:20.0", "10de:1bb0", "gpu");
    const entries = novaPciEntries([odd, short, badId, badSlot]);
    expect(entries.deviceSpecs).toEqual([
      { vendor_id: "10de", product_id: "1bb0", address: "0000:83:00.0" },
    ]);
    expect(novaEntryProblems([odd, short, badId, badSlot]).map((p) => p.message)).toEqual([
      'ids "10de:zz" of 0000:84:00.0 are not 4-digit hex: not offered to nova.',
      'PCI address "0000:84:20.0" is not a full domain:bus:device.function address: not offered to nova.',
      'PCI address "83:00.0" is not a full domain:bus:device.function address: not offered to nova.',
    ]);
  });
});

describe("the [pci] option name", () => {
  const yoga = release("2:25.2.0-0ubuntu1", [25, 2, 0]);
  const zedRc = release("3:26.0.0~rc1-0ubuntu1", [26, 0, 0]);
  const caracal = release("3:29.0.1-0ubuntu1", [29, 0, 1]);

  it.each([
    ["auto", null, "passthrough_whitelist"],
    ["auto", yoga, "passthrough_whitelist"],
    ["auto", zedRc, "device_spec"],
    ["auto", caracal, "device_spec"],
    ["device_spec", null, "device_spec"],
    ["device_spec", yoga, "device_spec"],
    ["passthrough_whitelist", caracal, "passthrough_whitelist"],
  ] as const)("%s with %j → %s", (setting, installed, expected) => {
    expect(resolveOptionName(setting, installed)).toBe(expected);
  });

  it("explains the choice", () => {
    expect(chooseOptionName("auto", caracal)).toEqual({
      name: "device_spec",
      reason:
        "nova-pci-option=auto and nova 29.0.1 (2024.1 Caracal, nova-common 3:29.0.1-0ubuntu1) is " +
        "installed: device_spec is the option name from Zed (26.0.0) on",
      warning: null,
    });
    expect(chooseOptionName("auto", null).reason).toBe(
      "nova-pci-option=auto and no installed nova-common or python3-nova was found in the dpkg " +
        "status: passthrough_whitelist is read by every supported release (deprecated name of " +
        "device_spec since Zed, 26.0.0)",
    );
    expect(chooseOptionName("auto", yoga).reason).toContain(
      "nova 25.2.0 (Yoga, nova-common 2:25.2.0-0ubuntu1)",
    );
  });

  it("warns when device_spec is forced on a release that ignores it", () => {
    expect(chooseOptionName("device_spec", yoga).warning).toBe(
      "nova-pci-option=device_spec but nova 25.2.0 (Yoga, nova-common 2:25.2.0-0ubuntu1) is " +
        "installed: releases before Zed (26.0.0) ignore device_spec and will offer no devices. Set " +
        "nova-pci-option=auto or passthrough_whitelist.",
    );
    expect(chooseOptionName("device_spec", caracal).warning).toBeNull();
    expect(chooseOptionName("device_spec", null).warning).toBeNull();
  });

  it("names releases by nova major version", () => {
    expect(openstackReleaseName(25)).toBe("Yoga");
    expect(openstackReleaseName(26)).toBe("Zed");
    expect(openstackReleaseName(28)).toBe("2023.2 Bobcat");
    expect(openstackReleaseName(99)).toBeNull();
  });
});

describe("subordinateConfiguration", () => {
  it("publishes exactly one service key and one file, so nova-compute's lookup finds it", () => {
    const parsed = JSON.parse(subordinateConfiguration(novaPciEntries([gpu]), "device_spec"));
    expect(Object.keys(parsed)).toEqual(["nova"]);
    expect(Object.keys(parsed.nova)).toEqual(["/etc/nova/nova.conf"]);
    expect(Object.keys(parsed.nova["/etc/nova/nova.conf"])).toEqual(["sections"]);
    expect(Object.keys(parsed.nova["/etc/nova/nova.conf"].sections)).toEqual(["pci"]);
  });
});
