import { describe, expect, it } from "vitest";
import {
  clearedNovaRelationData,
  type NovaSpecOptionName,
  novaPciEntries,
  novaRelationData,
  offeredToNova,
  renderPciSection,
} from "../../src/plan/nova";
import type { BoundDevice } from "../../src/plan/types";
import { bound, gpu, gpuAudio, secondGpu } from "../support/bound-devices";
import { expectGolden } from "../support/golden";
import {
  novaComputeContext,
  type Relation,
  renderNovaConf,
  sectionEphemeral,
  type UnitData,
} from "../support/nova-compute";

// ---------------------------------------------------------------- nova-compute, emulated
// (tests/support/nova-compute.ts)

// ---------------------------------------------------------------- oslo.config, emulated

/** oslo_config iniparser.BaseParser.parse + ConfigParser.new_section/assignment. */
function parseOsloIni(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let section: string | null = null;
  let key: string | null = null;
  let value: string[] = [];
  const flush = () => {
    if (key === null) return;
    if (section === null) throw new Error("assignment before any section");
    const s = sections.get(section)!;
    s.set(key, [...(s.get(key) ?? []), value.join("\n")]);
    key = null;
    value = [];
  };
  for (const rawLine of text.split("\n")) {
    const line = rawLine.trimEnd();
    if (line === "") {
      flush();
      continue;
    }
    if (line.startsWith(" ") || line.startsWith("\t")) {
      if (key === null) throw new Error(`unexpected continuation line: ${line}`);
      value.push(line.trimStart());
      continue;
    }
    flush();
    if (line.startsWith("[")) {
      if (!line.endsWith("]") || line.length <= 2) throw new Error(`bad section: ${line}`);
      section = line.slice(1, -1);
      if (!sections.has(section)) sections.set(section, new Map());
    } else if (line.startsWith("#") || line.startsWith(";")) {
      // comment
    } else {
      const colon = line.indexOf(":");
      const equal = line.indexOf("=");
      if (colon < 0 && equal < 0) throw new Error(`no ':' or '=' in: ${line}`);
      const at = colon < 0 || (equal >= 0 && equal < colon) ? equal : colon;
      let v = line.slice(at + 1).trim();
      if (v.length > 0 && v[0] === v[v.length - 1] && (v[0] === '"' || v[0] === "'"))
        v = v.slice(1, -1);
      key = line.slice(0, at).trim();
      if (key === "") throw new Error(`empty key: ${line}`);
      value = [v];
    }
  }
  flush();
  return sections;
}

// ---------------------------------------------------------------- nova's accepted shapes

const VENDOR = /^[0-9a-fA-F]{4}$/; // nova/pci/utils.py PCI_VENDOR_PATTERN
const FULL_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const DEVICE_TYPES = ["type-PCI", "type-PF", "type-VF"]; // _ALIAS_SCHEMA (vdpa excluded)
const NUMA_POLICIES = ["required", "legacy", "preferred", "socket"];
const ALIAS_KEYS = [
  "name",
  "capability_type",
  "product_id",
  "vendor_id",
  "device_type",
  "numa_policy",
  "resource_class",
  "traits",
  "live_migratable",
];

/** What nova would refuse in any one JSON option value, and the object when it is one. */
function jsonOptionValue(raw: string): { problems: string[]; value?: Record<string, unknown> } {
  const problems: string[] = [];
  if (raw.includes("$")) problems.push("contains $ (oslo.config substitutes it)");
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { problems: [...problems, "not JSON"] };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    return { problems: [...problems, "not one JSON object"] };
  return { problems, value: parsed as Record<string, unknown> };
}

/** What nova would refuse in one device_spec value (the subset of forms this charm publishes). */
function deviceSpecProblems(raw: string): string[] {
  const { problems, value: s } = jsonOptionValue(raw);
  if (s === undefined) return problems;
  if (Object.keys(s).join(",") !== "vendor_id,product_id,address")
    problems.push(`keys ${Object.keys(s)}`);
  for (const k of ["vendor_id", "product_id"]) {
    if (typeof s[k] !== "string" || !/^[0-9a-f]{4}$/.test(s[k] as string))
      problems.push(`${k} ${s[k]}`);
  }
  const address = s.address;
  if (typeof address !== "string" || !FULL_ADDRESS.test(address))
    problems.push(`address ${address}`);
  else {
    // devspec.py PhysicalPciAddress limits: domain ≤ ffff, bus ≤ ff, slot ≤ 1f, function ≤ 7.
    const slot = Number.parseInt(address.slice(8, 10), 16);
    if (slot > 0x1f) problems.push(`slot ${slot} > 0x1f`);
  }
  if ("devname" in s && "address" in s) problems.push("address and devname together");
  return problems;
}

/** What nova would refuse in one alias value (_ALIAS_SCHEMA + _validate_required_ids). */
function aliasProblems(raw: string): string[] {
  const { problems, value: a } = jsonOptionValue(raw);
  if (a === undefined) return problems;
  for (const k of Object.keys(a)) if (!ALIAS_KEYS.includes(k)) problems.push(`unknown key ${k}`);
  if (typeof a.name !== "string" || a.name.length < 1 || a.name.length > 256) problems.push("name");
  else if (/[,:\s]/.test(a.name))
    problems.push("name unusable in pci_passthrough:alias name:count");
  for (const k of ["vendor_id", "product_id"]) {
    if (!(k in a)) problems.push(`${k} missing (required without pci_in_placement)`);
    else if (typeof a[k] !== "string" || !VENDOR.test(a[k] as string))
      problems.push(`${k} ${a[k]}`);
    else if (a[k] !== (a[k] as string).toLowerCase()) problems.push(`${k} not lower case`);
  }
  if (!DEVICE_TYPES.includes(a.device_type as string))
    problems.push(`device_type ${a.device_type}`);
  if ("numa_policy" in a && !NUMA_POLICIES.includes(a.numa_policy as string)) {
    problems.push(`numa_policy ${a.numa_policy}`);
  }
  return problems;
}

/** get_alias_from_config's cross-entry rule: one name, one device_type and one numa_policy. */
function aliasConsistencyProblems(raws: string[]): string[] {
  const seen = new Map<string, string>();
  const problems: string[] = [];
  for (const raw of raws) {
    const a = JSON.parse(raw) as Record<string, string>;
    const shape = `${a.device_type}/${a.numa_policy ?? "legacy"}`;
    const first = seen.get(a.name!);
    if (first === undefined) seen.set(a.name!, shape);
    else if (first !== shape) problems.push(`alias ${a.name}: ${first} vs ${shape}`);
  }
  return problems;
}

/** devspec.py PciDeviceSpec.match for the single-address form we publish. */
function specMatches(
  raw: string,
  fn: { vendorId: string; deviceId: string; address: string },
): boolean {
  const s = JSON.parse(raw) as Record<string, string>;
  return s.vendor_id === fn.vendorId && s.product_id === fn.deviceId && s.address === fn.address;
}

// ---------------------------------------------------------------- fixtures

/** ceilometer-agent's data on nova-ceilometer (charm-ceilometer-agent NOVA_SETTINGS, json.dumps). */
const CEILOMETER: UnitData = {
  subordinate_configuration: JSON.stringify({
    nova: {
      "/etc/nova/nova.conf": {
        sections: {
          DEFAULT: [
            ["instance_usage_audit", "True"],
            ["instance_usage_audit_period", "hour"],
            ["notify_on_state_change", "vm_and_task_state"],
          ],
        },
      },
    },
  }),
  services: '["ceilometer-polling"]',
};
/** neutron-openvswitch's data on neutron-plugin: no subordinate_configuration at all. */
const NEUTRON_OVS: UnitData = { "metadata-shared-secret": "s3cret", host: "compute-1.maas" };
/** nova-compute-nvidia-vgpu's data on nova-vgpu (Xena and later shape). */
const VGPU: UnitData = {
  subordinate_configuration: JSON.stringify({
    nova: {
      "/etc/nova/nova.conf": {
        sections: {
          devices: [["enabled_mdev_types", "nvidia-35"]],
          "mdev_nvidia-35": [["device_addresses", "0000:84:00.0"]],
        },
      },
    },
  }),
};

function relations(
  ours: UnitData | null,
  extra: { ceilometer?: boolean; vgpu?: boolean } = {},
): Relation[] {
  const rels: Relation[] = [{ endpoint: "neutron-plugin", units: [NEUTRON_OVS] }];
  if (extra.ceilometer ?? true) rels.push({ endpoint: "nova-ceilometer", units: [CEILOMETER] });
  if (ours !== null) rels.push({ endpoint: "ephemeral-backend", units: [ours] });
  if (extra.vgpu) rels.push({ endpoint: "nova-vgpu", units: [VGPU] });
  return rels;
}

/** Our unit's relation data as Juju would hold it (a null value deletes the key). */
function asUnitData(data: Record<string, string | null>): UnitData {
  const out: UnitData = { "private-address": "10.0.0.11" };
  for (const [k, v] of Object.entries(data)) if (v !== null) out[k] = v;
  return out;
}

// ---------------------------------------------------------------- the contract

const CASES: { name: string; golden: string; bound: BoundDevice[]; option: NovaSpecOptionName }[] =
  [
    { name: "one GPU", golden: "one-gpu.conf", bound: [gpu], option: "device_spec" },
    {
      name: "one GPU, pre-Zed option name",
      golden: "one-gpu-passthrough-whitelist.conf",
      bound: [gpu],
      option: "passthrough_whitelist",
    },
    {
      name: "two identical GPUs, the second selected",
      golden: "two-identical-gpus-second-selected.conf",
      bound: [secondGpu],
      option: "device_spec",
    },
    {
      name: "both identical GPUs",
      golden: "two-identical-gpus.conf",
      bound: [gpu, secondGpu],
      option: "device_spec",
    },
    {
      name: "a GPU with its audio function",
      golden: "gpu-with-audio.conf",
      bound: [gpu, gpuAudio],
      option: "device_spec",
    },
    { name: "no devices", golden: "no-devices.conf", bound: [], option: "device_spec" },
    {
      name: "NUMA policy, two models under one alias",
      golden: "numa-two-models.conf",
      bound: [
        bound("0000:41:00.0", "10de:20b5", "gpu", { numaPolicy: "required" }),
        bound("0000:c1:00.0", "10de:2236", "gpu", { numaPolicy: "required" }),
      ],
      option: "device_spec",
    },
  ];

describe("rendered by nova-compute, read by oslo.config, accepted by nova", () => {
  for (const c of CASES) {
    it(c.name, () => {
      const { data } = novaRelationData(c.bound, () => true, c.option);
      const view = novaComputeContext(relations(asUnitData(data)));
      expect(view.ephemeralBackendComplete).toBe(true);
      const conf = renderNovaConf(view);
      expectGolden(`nova/${c.golden}`, conf);

      // ceilometer-agent's settings survive next to ours.
      const ini = parseOsloIni(conf);
      expect(ini.get("DEFAULT")?.get("instance_usage_audit")).toEqual(["True"]);
      expect(ini.get("DEFAULT")?.get("notify_on_state_change")).toEqual(["vm_and_task_state"]);

      // Our section renders exactly as plan/nova.ts says it does (the nova-config action shows it).
      const entries = novaPciEntries(c.bound);
      expect(sectionEphemeral(view.sections)).toBe(renderPciSection(entries, c.option));

      // Multi-valued: one line per value, collected into one list, one JSON object each.
      const pci = ini.get("pci")!;
      const specs = pci.get(c.option) ?? [];
      const other = c.option === "device_spec" ? "passthrough_whitelist" : "device_spec";
      expect(pci.has(other)).toBe(false);
      // Companions are on vfio-pci for their group, never offered to nova on their own.
      const offered = c.bound.filter(offeredToNova);
      expect(specs).toHaveLength(offered.length);
      const aliases = pci.get("alias") ?? [];
      expect(aliases).toHaveLength(entries.aliases.length);
      for (const raw of specs) expect(deviceSpecProblems(raw), raw).toEqual([]);
      for (const raw of aliases) expect(aliasProblems(raw), raw).toEqual([]);
      expect(aliasConsistencyProblems(aliases)).toEqual([]);

      // Every bound function is matched by exactly one spec, and every spec by one function.
      for (const d of offered) expect(specs.filter((s) => specMatches(s, d))).toHaveLength(1);
      for (const d of c.bound.filter((b) => !offeredToNova(b))) {
        expect(specs.filter((s) => specMatches(s, d))).toEqual([]);
      }
    });
  }

  it("the address pins one of two identical GPUs", () => {
    const { data } = novaRelationData([secondGpu], () => true, "device_spec");
    const specs = parseOsloIni(renderNovaConf(novaComputeContext(relations(asUnitData(data)))))
      .get("pci")!
      .get("device_spec")!;
    expect(specs.some((s) => specMatches(s, secondGpu))).toBe(true);
    expect(specs.some((s) => specMatches(s, gpu))).toBe(false);
  });

  it("the checks can fail: they catch what nova refuses", () => {
    expect(
      deviceSpecProblems('{"vendor_id":"10DE","product_id":"1bb0","address":"83:00.0"}'),
    ).toEqual(["vendor_id 10DE", "address 83:00.0"]);
    expect(deviceSpecProblems('[{"vendor_id":"10de"}]')).toEqual(["not one JSON object"]);
    expect(aliasProblems('{"name":"gpu","vendor_id":"10de","device_type":"type-vdpa"}')).toEqual([
      "product_id missing (required without pci_in_placement)",
      "device_type type-vdpa",
    ]);
    expect(
      aliasProblems(
        '{"name":"a:b","vendor_id":"10de","product_id":"1bb0","device_type":"type-PCI","numa_policy":"x"}',
      ),
    ).toEqual(["name unusable in pci_passthrough:alias name:count", "numa_policy x"]);
    expect(
      aliasConsistencyProblems([
        '{"name":"gpu","device_type":"type-PCI"}',
        '{"name":"gpu","device_type":"type-PF"}',
      ]),
    ).toEqual(["alias gpu: type-PCI/legacy vs type-PF/legacy"]);
  });

  it("reads repeated sections and keys the way oslo.config does", () => {
    const ini = parseOsloIni(
      '[pci]\nalias = {"name":"a"}\n\n[pci]\nalias = {"name":"b"}\nx = "quoted"\n',
    );
    expect(ini.get("pci")?.get("alias")).toEqual(['{"name":"a"}', '{"name":"b"}']);
    expect(ini.get("pci")?.get("x")).toEqual(["quoted"]);
  });
});

describe("coexistence and removal, as nova-compute sees them", () => {
  const gpuData = () => asUnitData(novaRelationData([gpu], () => true, "device_spec").data);

  it("without ceilometer-agent our sections still render", () => {
    const view = novaComputeContext(relations(gpuData(), { ceilometer: false }));
    expect(view.ephemeralBackendComplete).toBe(true);
    expectGolden("nova/one-gpu-without-ceilometer.conf", renderNovaConf(view));
  });

  it("nothing bound: the empty pci list keeps the context complete, so nova-compute re-renders", () => {
    const empty = asUnitData(novaRelationData([], () => true, "device_spec").data);
    const view = novaComputeContext(relations(empty, { ceilometer: false }));
    expect(view.ephemeralBackendComplete).toBe(true);
    const pci = parseOsloIni(renderNovaConf(view)).get("pci")!;
    expect([...pci.keys()]).toEqual([]);
    // A deleted key instead would leave the context incomplete: nova-compute's
    // ephemeral-backend-relation-changed hook would skip the write and keep stale device_specs.
    const deleted = asUnitData(clearedNovaRelationData());
    expect(
      novaComputeContext(relations(deleted, { ceilometer: false })).ephemeralBackendComplete,
    ).toBe(false);
  });

  it("relation broken (our data gone): re-rendered without us only when ceilometer-agent is there", () => {
    const withCeilometer = novaComputeContext(relations(null));
    expect(withCeilometer.ephemeralBackendComplete).toBe(true);
    expect(parseOsloIni(renderNovaConf(withCeilometer)).get("pci")?.has("device_spec")).toBe(false);
    // Alone, the context is incomplete and nova-compute keeps the old nova.conf until another hook
    // (config-changed, upgrade-charm…) rewrites it: the README says to empty `devices` first.
    expect(
      novaComputeContext(relations(null, { ceilometer: false })).ephemeralBackendComplete,
    ).toBe(false);
  });

  it("a nova-vgpu subordinate erases our [pci] and ceilometer-agent's [DEFAULT] lines", () => {
    const view = novaComputeContext(relations(gpuData(), { vgpu: true }));
    const ini = parseOsloIni(renderNovaConf(view));
    expect(ini.get("pci")?.has("device_spec")).toBe(false);
    expect(ini.get("DEFAULT")?.has("instance_usage_audit")).toBe(false);
    expect(ini.get("devices")?.get("enabled_mdev_types")).toEqual(["nvidia-35"]);
  });

  it("sections a neutron-plugin subordinate publishes are replaced by ours (as by ceilometer-agent's)", () => {
    const neutronWithSections: UnitData = {
      subordinate_configuration: JSON.stringify({
        nova: { "/etc/nova/nova.conf": { sections: { DEFAULT: [["some_plugin_option", "1"]] } } },
      }),
    };
    const rels = relations(gpuData(), { ceilometer: false });
    rels[0] = { endpoint: "neutron-plugin", units: [neutronWithSections] };
    const ini = parseOsloIni(renderNovaConf(novaComputeContext(rels)));
    expect(ini.get("DEFAULT")?.has("some_plugin_option")).toBe(false);
    expect(ini.get("pci")?.get("device_spec")).toHaveLength(1);
    // neutron-openvswitch publishes no subordinate_configuration, so it loses nothing.
    expect(NEUTRON_OVS.subordinate_configuration).toBeUndefined();
  });

  it("two subordinates on ephemeral-backend merge their [pci] lists", () => {
    const rels = relations(gpuData(), { ceilometer: false });
    rels.push({
      endpoint: "ephemeral-backend",
      units: [asUnitData(novaRelationData([secondGpu], () => true, "device_spec").data)],
    });
    const pci = parseOsloIni(renderNovaConf(novaComputeContext(rels))).get("pci")!;
    expect(pci.get("device_spec")).toHaveLength(2);
  });
});
