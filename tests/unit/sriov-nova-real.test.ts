// Debian's real nova (python3-nova) judges what the charm publishes for SR-IOV: the device_spec
// values parsed by nova.pci.whitelist.Whitelist as nova-compute does at start-up, and the aliases by
// nova.pci.request as the API does for a flavor. A VF of the selected PF is admitted (and asked for
// by the type-VF alias); the PF itself never; a VF of another PF never.
//
// nova decides whether a spec's address is a PF when it parses the spec, by reading sysfs
// (nova.pci.utils.is_physical_function: sriov_totalvfs > 0 under /sys/bus/pci/devices/<address>).
// This machine has no such PF, so that one function is stood in for with the PFs of the test host;
// everything else is nova's own code.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config";
import type { HostFacts, PciFunction } from "../../src/host/facts";
import { vfAddresses } from "../../src/pci-vocabulary";
import { novaRelationData, SUBORDINATE_CONFIGURATION_KEY } from "../../src/plan/nova";
import { selectForHost, sriovReady } from "../../src/plan/sriov";
import { fn, host } from "../support/host-facts";

const PYTHON = "/usr/bin/python3";
const NOVA_TIMEOUT_MS = 120_000;

const NOVA_SCRIPT = `
import json, sys
from unittest import mock
import nova.conf
from nova.pci import request, utils, whitelist
CONF = nova.conf.CONF
inp = json.load(sys.stdin)
if inp["pfs"] is None:
    # nova's own is_physical_function, reading sysfs under inp["sys"] instead of /.
    real_isdir, real_open = utils.os.path.isdir, open
    def moved(p):
        return inp["sys"] + p if str(p).startswith("/sys/") else p
    with mock.patch.object(utils.os.path, "isdir", lambda p: real_isdir(moved(p))), \
         mock.patch.object(utils, "open", lambda p, *a, **k: real_open(moved(p), *a, **k), create=True):
        wl = whitelist.Whitelist(inp["specs"])
else:
    pfs = set(inp["pfs"])
    def is_physical_function(domain, bus, slot, function):
        return f"{domain}:{bus}:{slot}.{function}" in pfs
    with mock.patch.object(utils, "is_physical_function", is_physical_function):
        wl = whitelist.Whitelist(inp["specs"])
CONF.set_override("alias", inp["aliases"], group="pci")
aliases = request._get_alias_from_config()
out = {}
for d in inp["devices"]:
    spec = next((s for s in wl.specs if s.match(d)), None)
    out[d["address"]] = {
        "admitted": wl.device_assignable(d),
        "tags": spec.get_tags() if spec else None,
        "aliases": sorted(n for n, (_, specs) in aliases.items()
                          if utils.pci_device_prop_match(d, specs)),
    }
print(json.dumps(out))
`;

interface NovaView {
  admitted: boolean;
  tags: Record<string, string> | null;
  aliases: string[];
}

/** What nova makes of the [pci] pairs for these devices (as libvirt reports them to nova). `pfs`
 * null: nova's own is_physical_function decides, reading the sysfs tree under `sys`. */
function novaView(
  pairs: [string, string][],
  pfs: string[] | null,
  devices: PciFunction[],
  sys: string | null = null,
): Record<string, NovaView> {
  const input = JSON.stringify({
    pfs,
    sys,
    specs: pairs.filter(([k]) => k === "device_spec").map(([, v]) => v),
    aliases: pairs.filter(([k]) => k === "alias").map(([, v]) => v),
    devices: devices.map((d) => ({
      vendor_id: d.vendorId,
      product_id: d.deviceId,
      address: d.address,
      parent_addr: d.physfn,
      dev_type: d.physfn ? "type-VF" : d.sriov ? "type-PF" : "type-PCI",
    })),
  });
  const run = spawnSync(PYTHON, ["-c", NOVA_SCRIPT], { input, encoding: "utf8" });
  if (run.status !== 0) {
    throw new Error(
      `${PYTHON} with python3-nova failed (scripts/setup.sh installs it):\n${run.stderr}`,
    );
  }
  return JSON.parse(run.stdout) as Record<string, NovaView>;
}

/** A PF and, after the boot, its VFs on `vfDriver`. */
function pfWithVfs(
  address: string,
  ids: [string, string, string],
  n: number,
  vfDriver: string,
  group: number,
  offset = 16,
  classCode = "020000",
): PciFunction[] {
  const [vendor, pfDevice, vfDevice] = ids;
  const pf = fn(address, `${vendor}:${pfDevice}`, classCode, {
    driver: "ice",
    iommuGroup: group,
    sriov: { totalVfs: 64, numVfs: n, offset, stride: 1, vfDeviceId: vfDevice },
  });
  const vfs = vfAddresses(address, offset, 1, n)!.map((a, i) =>
    fn(a, `${vendor}:${vfDevice}`, classCode, {
      driver: vfDriver,
      physfn: address,
      iommuGroup: group + 1 + i,
    }),
  );
  return [pf, ...vfs];
}

/** Two E810s (8086:1592, VFs 8086:1889): 3b:00.0 with `n` VFs on `vfDriver`, 3c:00.0 with two on
 * iavf. */
const twoE810s = (n: number, vfDriver: string) =>
  host([
    ...pfWithVfs("0000:3b:00.0", ["8086", "1592", "1889"], n, vfDriver, 10),
    ...pfWithVfs("0000:3c:00.0", ["8086", "1592", "1889"], 2, "iavf", 20),
  ]);
const E810_PFS = ["0000:3b:00.0", "0000:3c:00.0"];

/** QEMU's SR-IOV NVMe: PF 01:00.0, sriov_offset 1, stride 1, and its two VFs (1b36:0010, the PF's
 * own ids) on `vfDriver`. */
const qemuNvmeHost = (vfDriver: string) =>
  host(pfWithVfs("0000:01:00.0", ["1b36", "0010", "0010"], 2, vfDriver, 4, 1, "010802"));
const QEMU_NVME_VFS = '- {address: "0000:01:00.0", vfs: 2}';

/** The [pci] pairs the charm publishes on this host for this `devices` value. */
function published(facts: HostFacts, devices: string): [string, string][] {
  const parsed = parseConfig({ devices });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const selection = selectForHost(parsed.config.devices, facts);
  expect(selection.problems).toEqual([]);
  const onVfio = new Set(
    facts.functions.filter((f) => f.driver === "vfio-pci").map((f) => f.address),
  );
  const { data } = novaRelationData(selection.bind, (a) => onVfio.has(a), "device_spec", {
    pfs: selection.sriov.pfs,
    ready: (pf) => sriovReady(pf, facts),
  });
  return JSON.parse(data[SUBORDINATE_CONFIGURATION_KEY]!).nova["/etc/nova/nova.conf"].sections
    .pci as [string, string][];
}

describe("Debian's nova and the VFs the charm creates", () => {
  it(
    "flavor alias: one spec per PF admits its VFs, never the PF, never another PF's VFs",
    () => {
      const facts = twoE810s(3, "vfio-pci");
      const pairs = published(facts, '- {address: "0000:3b:00.0", vfs: 3, alias: fast-nic}');
      expect(pairs).toEqual([
        ["device_spec", '{"vendor_id":"8086","product_id":"1889","address":"0000:3b:00.0"}'],
        [
          "alias",
          '{"name":"fast-nic","vendor_id":"8086","product_id":"1889","device_type":"type-VF"}',
        ],
      ]);
      const view = novaView(pairs, E810_PFS, facts.functions);
      const admitted = Object.entries(view)
        .filter(([, v]) => v.admitted)
        .map(([k]) => k);
      expect(admitted).toEqual(["0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2"]);
      // The flavor's alias asks for a VF: the PF (type-PF) never answers it.
      expect(view["0000:3b:02.1"]!.aliases).toEqual(["fast-nic"]);
      expect(view["0000:3b:00.0"]).toEqual({ admitted: false, tags: null, aliases: [] });
      expect(view["0000:3c:02.0"]!.admitted).toBe(false);
    },
    NOVA_TIMEOUT_MS,
  );

  it(
    "neutron ports: the spec carries physical_network, and no alias is published",
    () => {
      const facts = twoE810s(2, "iavf");
      const pairs = published(
        facts,
        '- {address: "0000:3b:00.0", vfs: 2, physical-network: physnet1}',
      );
      expect(pairs.filter(([k]) => k === "alias")).toEqual([]);
      const view = novaView(pairs, E810_PFS, facts.functions);
      expect(view["0000:3b:02.0"]).toEqual({
        admitted: true,
        tags: { physical_network: "physnet1" },
        aliases: [],
      });
      expect(view["0000:3b:00.0"]!.admitted).toBe(false);
      expect(view["0000:3c:02.1"]!.admitted).toBe(false);
    },
    NOVA_TIMEOUT_MS,
  );

  it(
    "VFs with the PF's own ids (QEMU's NVMe): each VF pinned by address, so the PF stays out",
    () => {
      const facts = qemuNvmeHost("vfio-pci");
      const pairs = published(facts, QEMU_NVME_VFS);
      expect(
        pairs.filter(([k]) => k === "device_spec").map(([, v]) => JSON.parse(v).address),
      ).toEqual(["0000:01:00.1", "0000:01:00.2"]);
      const view = novaView(pairs, ["0000:01:00.0"], facts.functions);
      expect(Object.entries(view).map(([k, v]) => [k, v.admitted])).toEqual([
        ["0000:01:00.0", false],
        ["0000:01:00.1", true],
        ["0000:01:00.2", true],
      ]);
      // The check can fail: the compact PF spec would have admitted the PF itself here.
      const compact: [string, string][] = [
        ["device_spec", '{"vendor_id":"1b36","product_id":"0010","address":"0000:01:00.0"}'],
      ];
      expect(novaView(compact, ["0000:01:00.0"], facts.functions)["0000:01:00.0"]!.admitted).toBe(
        true,
      );
    },
    NOVA_TIMEOUT_MS,
  );

  it(
    "VFs pinned by their own address wait until all of them are on their planned driver",
    () => {
      expect(published(qemuNvmeHost("nvme"), QEMU_NVME_VFS)).toEqual([]);
    },
    NOVA_TIMEOUT_MS,
  );

  it(
    "issue 21.2: raising vfs 8 → 16, the spec stays the same and nova's own PF rule admits the VFs before, during and after",
    () => {
      const pf = "0000:3b:00.0";
      const devices = `- {address: "${pf}", vfs: 16, alias: fast-nic}`;
      const before = pfWithVfs(pf, ["8086", "1592", "1889"], 8, "vfio-pci", 10);
      // During: sriov_numvfs went to 0 (a count changes through 0): the PF has no VF at all.
      const during = [{ ...before[0]!, sriov: { ...before[0]!.sriov!, numVfs: 0 } }];
      const after = pfWithVfs(pf, ["8086", "1592", "1889"], 16, "vfio-pci", 10);
      const phases = [before, during, after].map((functions) => {
        const facts = host(functions);
        const pairs = published(facts, devices);
        return { facts, pairs };
      });
      const [b, d, a] = phases as [(typeof phases)[0], (typeof phases)[0], (typeof phases)[0]];
      expect(b.pairs).toEqual([
        ["device_spec", `{"vendor_id":"8086","product_id":"1889","address":"${pf}"}`],
        [
          "alias",
          '{"name":"fast-nic","vendor_id":"8086","product_id":"1889","device_type":"type-VF"}',
        ],
      ]);
      // Steady: nova-compute is never told to drop the spec while the count changes.
      expect(d.pairs).toEqual(b.pairs);
      expect(a.pairs).toEqual(b.pairs);
      // nova's own is_physical_function reads sriov_totalvfs (64 here, whatever the count).
      const sys = fs.mkdtempSync(path.join(os.tmpdir(), "nova-sysfs-"));
      try {
        const dir = path.join(sys, "sys/bus/pci/devices", pf);
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, "sriov_totalvfs"), "64\n");
        fs.writeFileSync(path.join(dir, "sriov_numvfs"), "0\n");
        const admitted = (phase: (typeof phases)[0]) =>
          Object.entries(novaView(phase.pairs, null, phase.facts.functions, sys))
            .filter(([, v]) => v.admitted)
            .map(([k]) => k);
        const vfs = (n: number) => vfAddresses(pf, 16, 1, n)!;
        expect(admitted(b)).toEqual(vfs(8));
        expect(admitted(d)).toEqual([]);
        expect(admitted(a)).toEqual(vfs(16));
        // The check can fail: without sriov_totalvfs nova takes the address for a plain
        // function's, and admits none of the VFs.
        fs.rmSync(path.join(dir, "sriov_totalvfs"));
        expect(admitted(a)).toEqual([]);
      } finally {
        fs.rmSync(sys, { recursive: true, force: true });
      }
    },
    NOVA_TIMEOUT_MS,
  );

  it(
    "issue 21.3: a VF whose IOMMU group holds its PF, another VF or another function is not offered; the rest are, one by one",
    () => {
      const pf = "0000:3b:00.0";
      const [pfFn, ...vfs] = pfWithVfs(pf, ["8086", "1592", "1889"], 5, "vfio-pci", 10);
      // 02.0 shares the PF's group; 02.1 and 02.2 share one; 02.3 shares with a NIC of another
      // card; 02.4 has a group of its own.
      const groups = [10, 40, 40, 50, 60];
      const placed = vfs.map((vf, i) => ({ ...vf, iommuGroup: groups[i]! }));
      const stranger = fn("0000:5e:00.0", "8086:1533", "020000", { driver: "igb", iommuGroup: 50 });
      const facts = host([pfFn!, ...placed, stranger]);
      const pairs = published(facts, `- {address: "${pf}", vfs: 5, alias: fast-nic}`);
      expect(pairs).toEqual([
        ["device_spec", '{"vendor_id":"8086","product_id":"1889","address":"0000:3b:02.4"}'],
        [
          "alias",
          '{"name":"fast-nic","vendor_id":"8086","product_id":"1889","device_type":"type-VF"}',
        ],
      ]);
      const view = novaView(pairs, [pf], facts.functions);
      const admitted = Object.entries(view)
        .filter(([, v]) => v.admitted)
        .map(([k]) => k);
      expect(admitted).toEqual(["0000:3b:02.4"]);
      // The status says which VFs and why (the plan's note).
      const parsed = parseConfig({ devices: `- {address: "${pf}", vfs: 5, alias: fast-nic}` });
      if (!parsed.ok) throw new Error("config");
      const notes = selectForHost(parsed.config.devices, facts).notes.join("\n");
      expect(notes).toContain(`${pf}: 4 of its VFs not offered to nova`);
      expect(notes).toContain(`0000:3b:02.0 (IOMMU group 10 also holds its PF ${pf})`);
      expect(notes).toContain("0000:3b:02.1 (IOMMU group 40 also holds VF 0000:3b:02.2)");
      expect(notes).toContain("0000:3b:02.2 (IOMMU group 40 also holds VF 0000:3b:02.1)");
      expect(notes).not.toContain("0000:3b:02.4 (");
    },
    NOVA_TIMEOUT_MS,
  );
});
