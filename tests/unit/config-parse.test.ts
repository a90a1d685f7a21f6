import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CONFIG_DEFAULTS, type Config, parseConfig } from "../../src/config";
import { parseAddressPattern } from "../../src/pci-vocabulary";

const top = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function ok(raw: Record<string, unknown>): Config {
  const r = parseConfig(raw);
  if (!r.ok) throw new Error(JSON.stringify(r.errors, null, 1));
  return r.config;
}
const ids = (c: Config) =>
  c.devices.map((d) => `${d.vendorId}:${d.productId}@${d.address?.text ?? null}`);

describe("parseConfig defaults", () => {
  it("keeps CONFIG_DEFAULTS equal to config.yaml's defaults", () => {
    const yaml = parse(readFileSync(join(top, "config.yaml"), "utf8")) as {
      options: Record<string, { default: unknown }>;
    };
    const fromYaml = Object.fromEntries(
      Object.entries(yaml.options).map(([k, v]) => [k, v.default]),
    );
    expect(CONFIG_DEFAULTS).toEqual(fromYaml);
  });

  it("treats missing and null values (unset in Juju) as the defaults", () => {
    const expected: Config = {
      devices: [],
      iommu: "auto",
      iommuPassthroughMode: true,
      allowUnsafeInterrupts: false,
      blacklistDrivers: { mode: "auto" },
      extraKernelParams: [],
      novaPciOption: "auto",
      reboot: {
        mode: "manual",
        windows: [],
        windowText: "",
        allowJujuContainers: false,
        maxUnavailable: 1,
      },
    };
    expect(ok({})).toEqual(expected);
    expect(ok(Object.fromEntries(Object.keys(CONFIG_DEFAULTS).map((k) => [k, null])))).toEqual(
      expected,
    );
  });

  it("ignores keys config.yaml does not declare", () => {
    expect(ok({ "some-future-option": "x" }).devices).toEqual([]);
  });
});

describe("devices", () => {
  it("takes unquoted YAML numbers as the hex the operator typed, never as decimal", () => {
    const c = ok({
      devices: "- {vendor-id: 8086, product-id: 1593}\n- {vendor-id: 0123, product-id: 1e10}\n",
    });
    expect(ids(c)).toEqual(["8086:1593@null", "0123:1e10@null"]);
  });

  it("lower-cases ids and addresses and accepts a 0x prefix", () => {
    const c = ok({
      devices: '[{"vendor-id": "0x10DE", "product-id": "1BB0", "address": "0000:8A:00.0"}]',
    });
    expect(ids(c)).toEqual(["10de:1bb0@0000:8a:00.0"]);
  });

  it("reads short forms separated by commas and spaces, adding the 0000 domain", () => {
    const c = ok({ devices: "10de:1bb0, 0000:83:00.0 84:00.0,\t8086:1593" });
    expect(ids(c)).toEqual([
      "10de:1bb0@null",
      "null:null@0000:83:00.0",
      "null:null@0000:84:00.0",
      "8086:1593@null",
    ]);
    expect(c.devices.map((d) => d.index)).toEqual([0, 1, 2, 3]);
    expect(c.devices[2]!.source).toBe("84:00.0");
  });

  it("reads a YAML list of short forms and a single mapping", () => {
    expect(ids(ok({ devices: "- 10de:1bb0\n- 0000:83:00.*\n" }))).toEqual([
      "10de:1bb0@null",
      "null:null@0000:83:00.*",
    ]);
    expect(ids(ok({ devices: "{vendor-id: '10de', product-id: '1bb0'}" }))).toEqual([
      "10de:1bb0@null",
    ]);
    expect(ids(ok({ devices: '"10de:1bb0, 0000:83:00.0"' }))).toEqual([
      "10de:1bb0@null",
      "null:null@0000:83:00.0",
    ]);
  });

  it("keeps alias, companions and numa-policy, and the entry as typed for messages", () => {
    const c = ok({
      devices:
        '- {vendor-id: "10de", product-id: "1bb0", address: "0000:8?:00.0", alias: p5000, companions: false, numa-policy: Preferred}\n',
    });
    expect(c.devices[0]).toEqual({
      index: 0,
      vendorId: "10de",
      productId: "1bb0",
      // Compiled once, here: the planner matches with it and never parses the text again.
      address: { text: "0000:8?:00.0", isGlob: true, pattern: /^0000:8[0-9a-f]:00\.0$/ },
      alias: "p5000",
      companions: false,
      force: false,
      numaPolicy: "preferred",
      vfs: null,
      physicalNetwork: null,
      source:
        '{vendor-id: "10de", product-id: "1bb0", address: "0000:8?:00.0", alias: p5000, companions: false, numa-policy: Preferred}',
    });
  });

  it("collects every error, from every option, in one pass", () => {
    const r = parseConfig({
      devices: "- {vendor-id: 10dx, product-id: 1bb0}\n- {address: 0000:83:20.0}\n",
      iommu: "on",
      "extra-kernel-params": 'a="b" intel_iommu=on',
      "blacklist-drivers": "vfio-pci",
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.option)).toEqual([
      "devices",
      "devices",
      "iommu",
      "blacklist-drivers",
      "extra-kernel-params",
      "extra-kernel-params",
    ]);
  });
});

describe("parseAddressPattern", () => {
  it.each([
    ["0000:83:00.0", "0000:83:00.0", false],
    ["83:00.0", "0000:83:00.0", false],
    ["10000:01:00.0", "10000:01:00.0", false],
    ["00000:83:00.0", "0000:83:00.0", false],
    ["0000:8?:00.*", "0000:8?:00.*", true],
    ["0000:*:1f.[0-3]", "0000:*:1f.[0-3]", true],
  ])("%s → %s", (raw, text, isGlob) => {
    const a = parseAddressPattern(raw);
    expect(typeof a === "string" ? a : { text: a.text, isGlob: a.isGlob }).toEqual({
      text,
      isGlob,
    });
  });

  it("matches only within one component", () => {
    const a = parseAddressPattern("0000:8?:00.*");
    if (typeof a === "string") throw new Error(a);
    expect(a.pattern.test("0000:83:00.1")).toBe(true);
    expect(a.pattern.test("0000:93:00.1")).toBe(false);
    expect(a.pattern.test("0000:83:00.1x")).toBe(false);
  });
});

describe("blacklist-drivers and extra-kernel-params", () => {
  it("normalises module names like kmod (- and _ alike), dedupes and sorts", () => {
    expect(ok({ "blacklist-drivers": "snd-hda-intel, nouveau nouveau" }).blacklistDrivers).toEqual({
      mode: "list",
      modules: ["nouveau", "snd_hda_intel"],
    });
    expect(ok({ "blacklist-drivers": "" }).blacklistDrivers).toEqual({ mode: "list", modules: [] });
    expect(ok({ "blacklist-drivers": " AUTO " }).blacklistDrivers).toEqual({ mode: "auto" });
  });

  it("keeps ordinary kernel parameters in order", () => {
    const params =
      "pcie_acs_override=downstream,multifunction video=efifb:off quiet rd.driver.pre=vfio-pci " +
      "hugepagesz=1G root=UUID=0a1b-2c3d crashkernel=512M-:192M console=ttyS0,115200n8 isolcpus=1-3,5";
    expect(ok({ "extra-kernel-params": `  ${params}\t` }).extraKernelParams).toEqual(
      params.split(" "),
    );
  });
});

describe("extra-kernel-params and the IOMMU drivers' own options", () => {
  it.each([
    "intel_iommu=on,igfx_off",
    "intel_iommu=sm_on",
    "intel_iommu=on,sm_on,sp_off",
    "intel-iommu=igfx_off",
    "amd_iommu=force_isolation",
    "amd_iommu=pgtbl_v2,force_isolation",
    "iommu.strict=1",
  ])("allows %s, which the charm does not write", (param) => {
    expect(ok({ "extra-kernel-params": param }).extraKernelParams).toEqual([param]);
  });

  it.each([
    ["intel_iommu=off", /turns the IOMMU off/],
    ["intel_iommu=on,off", /turns the IOMMU off/],
    ["amd_iommu=off", /turns the IOMMU off/],
    ["amd_iommu=on", /not a value the kernel knows/],
    ["intel_iommu=on", /set by the charm itself from the iommu option/],
    ["intel_iommu=igfx_of", /"igfx_of", which intel_iommu does not know/],
    ["iommu=pt", /iommu-passthrough-mode/],
    ["iommu.passthrough=0", /iommu-passthrough-mode/],
  ])("refuses %s, a real conflict (or typo)", (param, why) => {
    const r = parseConfig({ "extra-kernel-params": param });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.value).toBe(param);
    expect(`${r.errors[0]!.problem}; ${r.errors[0]!.fix}`).toMatch(why);
  });
});

describe("devices: ids with a typo are said as ids", () => {
  it.each([
    ["10de:zzzz", 'product id "zzzz" is not 4 hex digits'],
    ["10dg:1bb0", 'vendor id "10dg" is not 4 hex digits'],
    ["0x10de:0xzzzz", 'product id "zzzz" is not 4 hex digits'],
  ])("%s", (value, problem) => {
    const r = parseConfig({ devices: value });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual([
      {
        option: "devices",
        value,
        problem: `(entry #1) ${problem}`,
        fix: 'write the ids as lspci -nn shows them in brackets, e.g. "10de:1bb0"',
      },
    ]);
  });
});

/** Configs operators really write: each must parse. */
const GOOD: Record<string, unknown>[] = [
  { devices: "10de:1bb0" },
  { devices: "0000:83:00.0 0000:84:00.0" },
  { devices: "83:00.0,84:00.0" },
  { devices: "0000:8?:00.0" },
  { devices: "- 10de:1bb0\n- 10de:1bb1\n" },
  { devices: '- {vendor-id: "10de", product-id: "1bb0"}\n' },
  { devices: "- {vendor-id: 8086, product-id: 1593, address: '0000:17:00.0', alias: sriov-nic}\n" },
  {
    devices:
      '[{"vendor-id": "10de", "product-id": "1bb0", "alias": "p5000", "numa-policy": "required"}]',
  },
  {
    devices:
      "- vendor-id: '10de'\n  product-id: '1bb0'\n  companions: false\n- address: 0000:3b:00.*\n",
  },
  { devices: "# the two P5000s\n- 10de:1bb0  # both\n" },
  { devices: "  \n" },
  { devices: "- {address: 0000:65:00.0, alias: a100}\n- {address: 0000:ca:00.0, alias: a100}\n" },
  {
    devices:
      "- {address: 0000:83:00.0, alias: p5000}\n- {address: 0000:83:00.0, vendor-id: 10de, product-id: 1bb0, alias: p5000}\n",
  },
  { iommu: "Intel" },
  { iommu: "amd", "iommu-passthrough-mode": false },
  { iommu: "off" },
  { "allow-unsafe-interrupts": true },
  { "blacklist-drivers": "nouveau,nvidiafb" },
  { "blacklist-drivers": "" },
  { "extra-kernel-params": "pcie_acs_override=downstream" },
  { "nova-pci-option": "device_spec" },
  { "nova-pci-option": "passthrough_whitelist" },
];

describe("good-config corpus", () => {
  it.each(GOOD.map((c) => [JSON.stringify(c), c] as const))("%s parses", (_, raw) => {
    const r = parseConfig(raw);
    expect(r.ok ? [] : r.errors).toEqual([]);
  });
});
