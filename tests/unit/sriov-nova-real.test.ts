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

/** What nova makes of the [pci] pairs for these devices (as libvirt reports them to nova). */
function novaView(
  pairs: [string, string][],
  pfs: string[],
  devices: PciFunction[],
): Record<string, NovaView> {
  const input = JSON.stringify({
    pfs,
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
      const a = pfWithVfs("0000:3b:00.0", ["8086", "1592", "1889"], 3, "vfio-pci", 10);
      const b = pfWithVfs("0000:3c:00.0", ["8086", "1592", "1889"], 2, "iavf", 20);
      const facts = host([...a, ...b]);
      const pairs = published(facts, '- {address: "0000:3b:00.0", vfs: 3, alias: fast-nic}');
      expect(pairs).toEqual([
        ["device_spec", '{"vendor_id":"8086","product_id":"1889","address":"0000:3b:00.0"}'],
        [
          "alias",
          '{"name":"fast-nic","vendor_id":"8086","product_id":"1889","device_type":"type-VF"}',
        ],
      ]);
      const view = novaView(pairs, ["0000:3b:00.0", "0000:3c:00.0"], facts.functions);
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
      const a = pfWithVfs("0000:3b:00.0", ["8086", "1592", "1889"], 2, "iavf", 10);
      const b = pfWithVfs("0000:3c:00.0", ["8086", "1592", "1889"], 2, "iavf", 20);
      const facts = host([...a, ...b]);
      const pairs = published(
        facts,
        '- {address: "0000:3b:00.0", vfs: 2, physical-network: physnet1}',
      );
      expect(pairs.filter(([k]) => k === "alias")).toEqual([]);
      const view = novaView(pairs, ["0000:3b:00.0", "0000:3c:00.0"], facts.functions);
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
      // QEMU: PF 01:00.0 on nvme, sriov_offset 1, stride 1, VFs 1b36:0010 like the PF.
      const facts = host(
        pfWithVfs("0000:01:00.0", ["1b36", "0010", "0010"], 2, "vfio-pci", 4, 1, "010802"),
      );
      const pairs = published(facts, '- {address: "0000:01:00.0", vfs: 2}');
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
    "nothing is published for a PF until all its VFs are on their planned driver",
    () => {
      const a = pfWithVfs("0000:3b:00.0", ["8086", "1592", "1889"], 3, "iavf", 10);
      const pairs = published(host(a), '- {address: "0000:3b:00.0", vfs: 3}');
      expect(pairs).toEqual([]);
    },
    NOVA_TIMEOUT_MS,
  );
});
