// list-devices: every function with names, modules, group, NUMA, boot VGA, SR-IOV and selection;
// the class/vendor/selected-only filters; params refused with a clear message.
import { describe, expect, it } from "vitest";
import {
  type ListDevicesParams,
  listDevices,
  parseListDevicesParams,
} from "../../src/actions/list-devices";
import { invalidResultKeys, type ResultTree } from "../../src/actions/results";
import type { HostFacts } from "../../src/host/facts";
import { parsePciIds } from "../../src/host/pci-ids";
import { classWord, deriveAlias } from "../../src/pci-vocabulary";
import { selectFunctions } from "../../src/plan/select";
import {
  host,
  MODULES_ALIAS,
  moduleAliases,
  netPf,
  netVf,
  seedHost,
  sel,
} from "../support/host-facts";

const PCI_IDS = `# excerpt of pci.ids
10de  NVIDIA Corporation
\t1bb0  GP104GL [Quadro P5000]
\t10f0  GP104 High Definition Audio Controller
8086  Intel Corporation
\t1592  Ethernet Controller E810-C for QSFP
\t1889  Ethernet Adaptive Virtual Function
C 03  Display controller
\t00  VGA compatible controller
C 04  Multimedia controller
\t03  Audio device
`;

function richHost(): HostFacts {
  return host([
    ...seedHost().functions,
    netPf("0000:3b:00.0", "8086:1592", "ice", 25, { numVfs: 2, totalVfs: 64 }),
    netVf("0000:3b:01.0", "8086:1889", "iavf", 26, "0000:3b:00.0"),
  ]);
}

const params = (p: Partial<ListDevicesParams> = {}): ListDevicesParams => ({
  classPrefixes: null,
  vendor: null,
  selectedOnly: false,
  eachVf: false,
  ...p,
});

function run(p: Partial<ListDevicesParams> = {}, facts = richHost()) {
  const selection = selectFunctions(
    [sel({ vendorId: "10de", productId: "1bb0", address: "0000:83:00.0", source: "10de:1bb0" })],
    facts,
  ).bind;
  return listDevices({
    params: params(p),
    facts,
    usage: new Map([["0000:3d:00.0", ["network interface eno1 is up"]]]),
    modules: moduleAliases(MODULES_ALIAS, facts),
    names: parsePciIds(PCI_IDS, "/usr/share/misc/pci.ids"),
    selection,
  });
}

const device = (results: ResultTree, key: string) =>
  (results.devices as ResultTree)[key] as ResultTree;

describe("listDevices", () => {
  it("lists every function with class, ids, names, driver, modules, group, NUMA, boot VGA, selection", () => {
    const { rows, results } = run();
    // Every function, the VF under its PF (summarised: see the SR-IOV tests below).
    expect(rows.map((r) => r.address)).toEqual(
      richHost()
        .functions.filter((f) => f.physfn === null)
        .map((f) => f.address),
    );
    expect(results.count).toBe(String(rows.length));
    expect(device(results, "0000-83-00-0")).toEqual({
      address: "0000:83:00.0",
      class: "030000",
      "class-name": "gpu",
      "class-description": "VGA compatible controller",
      ids: "10de:1bb0",
      name: "NVIDIA Corporation GP104GL [Quadro P5000]",
      driver: "nouveau",
      modules: "nouveau, nvidiafb",
      "iommu-group": "60",
      "numa-node": "1",
      "boot-vga": "no",
      selected: "yes",
      alias: "gpu",
      "selected-as": "selected",
      next: "the plan gives it to vfio-pci: the charm binds it at the next boot; now: run the rebind action",
    });
    expect(device(results, "0000-83-00-1")).toMatchObject({
      "class-name": "audio",
      selected: "yes",
      "selected-as": "companion of 0000:83:00.0",
      modules: "snd_hda_intel",
    });
    expect(device(results, "0000-84-00-0")).toMatchObject({ selected: "no" });
    expect(device(results, "0000-02-00-0")).toMatchObject({
      "boot-vga": "yes",
      name: "1a03:2000",
      "numa-node": "none",
    });
    expect(device(results, "0000-3d-00-0")["host-use"]).toBe("network interface eno1 is up");
    expect(invalidResultKeys(results)).toEqual([]);
    expect(results.notes).toBeUndefined();
  });

  it("shows SR-IOV: a PF's numvfs/totalvfs and its VFs summarised under it", () => {
    const { results } = run();
    expect(device(results, "0000-3b-00-0").sriov).toEqual({
      role: "pf",
      numvfs: "2",
      totalvfs: "64",
      vfs: {
        count: "1",
        addresses: "0000:3b:01.0",
        drivers: "iavf x1",
        "iommu-groups": "1 (26)",
        "sharing-a-group": "0",
        selected: "0",
      },
    });
    expect(device(results, "0000-3b-01-0")).toBeUndefined();
    expect(results["vfs-summarised"]).toMatch(/^1 SR-IOV VFs are summarised/);
  });

  it("each-vf lists a VF on its own, with its PF", () => {
    const { results } = run({ eachVf: true });
    expect(device(results, "0000-3b-00-0").sriov).toEqual({
      role: "pf",
      numvfs: "2",
      totalvfs: "64",
    });
    expect(device(results, "0000-3b-01-0").sriov).toEqual({ role: "vf", pf: "0000:3b:00.0" });
    expect(device(results, "0000-3b-01-0").name).toBe(
      "Intel Corporation Ethernet Adaptive Virtual Function",
    );
  });

  it("filters by class word, hex prefix, vendor and selection", () => {
    const addresses = (p: Partial<ListDevicesParams>) => run(p).rows.map((r) => r.address);
    expect(addresses({ classPrefixes: ["0300", "0302", "0380"] })).toEqual([
      "0000:02:00.0",
      "0000:83:00.0",
      "0000:84:00.0",
    ]);
    expect(addresses({ classPrefixes: ["0401", "0403"] })).toEqual([
      "0000:00:1f.3",
      "0000:83:00.1",
      "0000:84:00.1",
    ]);
    expect(addresses({ classPrefixes: ["0604"] })).toEqual(["0000:80:02.0", "0000:80:03.0"]);
    expect(addresses({ vendor: "10de" })).toHaveLength(4);
    expect(addresses({ selectedOnly: true })).toEqual(["0000:83:00.0", "0000:83:00.1"]);
    expect(addresses({ vendor: "10de", classPrefixes: ["04"], selectedOnly: true })).toEqual([
      "0000:83:00.1",
    ]);
    const none = run({ vendor: "abcd" });
    expect(none.results.count).toBe("0");
    expect(none.results.notes).toContain("no PCI function matches the filters");
  });

  it("says when names, modules or IOMMU groups are missing", () => {
    const facts = richHost();
    for (const f of facts.functions) f.iommuGroup = null;
    facts.iommuGroups.clear();
    const { results } = listDevices({
      params: params(),
      facts,
      modules: null,
      names: parsePciIds("", null),
      selection: [],
    });
    expect(results.notes).toContain("no pci.ids on this host");
    expect(results.notes).toContain("modules.alias could not be read");
    expect(results.notes).toContain("the IOMMU is off");
    expect(device(results, "0000-83-00-0")).toMatchObject({
      name: "10de:1bb0",
      "iommu-group": "none",
    });
    expect(device(results, "0000-83-00-0").modules).toBeUndefined();
  });
});

describe("classWord", () => {
  it("names the classes operators filter by", () => {
    expect(["030000", "030200", "038000", "030100"].map(classWord)).toEqual([
      "gpu",
      "gpu",
      "gpu",
      "display",
    ]);
    expect(
      ["040300", "0c0330", "020000", "010802", "010601", "060400", "ff0000"].map(classWord),
    ).toEqual(["audio", "usb", "network", "nvme", "storage", "bridge", "other"]);
  });

  it("is the default nova alias too, so every word the status shows is one class= takes", () => {
    for (const code of [
      "030000",
      "020000",
      "010802",
      "040300",
      "0c0330",
      "120000",
      "0c8000",
      "ff0000",
    ]) {
      const word = deriveAlias({ classCode: code });
      expect(word).toBe(classWord(code));
      const parsed = parseListDevicesParams({ class: word });
      expect(parsed.ok, `class=${word}`).toBe(true);
    }
  });

  it("takes other tools' words and the earlier default aliases as input: class=nic is network", () => {
    const nic = parseListDevicesParams({ class: "nic" });
    const network = parseListDevicesParams({ class: "network" });
    expect(nic).toEqual(network);
    const bad = parseListDevicesParams({ class: "nix" });
    expect(JSON.stringify(bad)).toContain("gpu, nvme, audio, usb, accelerator");
    expect(JSON.stringify(bad)).not.toContain("nic,");
  });
});

describe("parseListDevicesParams", () => {
  it("expands class words, accepts hex prefixes and vendor ids, defaults selected-only", () => {
    expect(parseListDevicesParams({})).toEqual({ ok: true, params: params() });
    const r = parseListDevicesParams({ class: "GPU", vendor: "0x10DE", "selected-only": true });
    expect(r).toEqual({
      ok: true,
      params: {
        classPrefixes: ["0300", "0302", "0380"],
        vendor: "10de",
        selectedOnly: true,
        eachVf: false,
      },
    });
    expect(parseListDevicesParams({ class: "0200" })).toMatchObject({
      params: { classPrefixes: ["0200"] },
    });
  });
});
