// Runs a Python snippet with a real nova's own code: Debian bookworm's python3-nova (26, Zed) on
// this machine, or trixie's (31.0.0, 2025.1 Epoxy) in the trixie root scripts/nova-trixie.sh
// builds and caches (debootstrap, under /tmp/heavy.lock). What the charm publishes and prints is
// judged by the nova release it targets, never by a model of it.
import { execFileSync, spawnSync } from "node:child_process";
import * as path from "node:path";

const TOP = path.resolve(__dirname, "..", "..");

/** Where a nova runs: the host's python3, or a chroot into the trixie root. */
export interface NovaPython {
  label: string;
  argv: string[];
}

export const BOOKWORM_NOVA: NovaPython = {
  label: "bookworm python3-nova 26",
  argv: ["/usr/bin/python3"],
};

/** The trixie root (built on first use: minutes; cached under .cache/nova-trixie/<recipe>). */
export function trixieNova(): NovaPython {
  let root: string;
  try {
    root = execFileSync("bash", [path.join(TOP, "scripts/nova-trixie.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim();
  } catch (e) {
    throw new Error(
      `scripts/nova-trixie.sh could not build trixie's python3-nova root (needs root, debootstrap and the Debian mirror): ${(e as Error).message}`,
    );
  }
  return { label: "trixie python3-nova 31", argv: ["chroot", root, "/usr/bin/python3"] };
}

/** Runs `script` (reading JSON on stdin, printing JSON) with that nova; throws with its stderr. */
export function runNova<T>(nova: NovaPython, script: string, input: unknown): T {
  const [cmd, ...args] = nova.argv;
  const run = spawnSync(cmd!, [...args, "-c", script], {
    input: JSON.stringify(input),
    encoding: "utf8",
  });
  if (run.status !== 0) {
    throw new Error(`${nova.label} (${nova.argv.join(" ")}) failed:\n${run.stderr}`);
  }
  return JSON.parse(run.stdout) as T;
}

/**
 * nova's reading of [pci] values: each device_spec through nova.pci.whitelist.Whitelist (as
 * nova-compute parses them at start-up; `is_physical_function` stands in for sysfs, given the
 * PFs), each device's tags and, where the release has it, `managed`; the placement resource
 * class and traits nova's own translator derives from those tags; and the aliases through
 * nova.pci.request._get_alias_from_config (as the API and scheduler parse them).
 */
export const NOVA_READS_PCI = `
import json, sys
from unittest import mock
import nova.conf
from nova.pci import request, utils, whitelist
CONF = nova.conf.CONF
inp = json.load(sys.stdin)
pfs = set(inp.get("pfs", []))
def is_physical_function(domain, bus, slot, function):
    return f"{domain}:{bus}:{slot}.{function}" in pfs
for k, v in inp.get("options", {}).items():
    CONF.set_override(k, v, group="pci")
with mock.patch.object(utils, "is_physical_function", is_physical_function):
    wl = whitelist.Whitelist(inp["specs"])
out = {"devices": {}, "aliases": None, "alias_error": None}
try:
    from nova.compute import pci_placement_translator as ppt
except ImportError:
    ppt = None
class Dev:
    def __init__(self, d):
        self.vendor_id = d["vendor_id"]; self.product_id = d["product_id"]; self.address = d["address"]
for d in inp["devices"]:
    spec = next((s for s in wl.specs if s.match(d)), None)
    tags = dict(spec.get_tags()) if spec else None
    # nova 31 returns the matching spec, earlier releases a bool.
    entry = {"admitted": bool(wl.device_assignable(d)), "tags": tags}
    # nova 31: the spec's own tags (managed, live_migratable) that it copies onto the device.
    if spec is not None and hasattr(spec, "enhanced_pci_device_with_spec_tags"):
        enhanced = {}
        spec.enhanced_pci_device_with_spec_tags(enhanced)
        entry["spec_tags"] = enhanced
    if spec is not None and ppt is not None:
        entry["resource_class"] = ppt._get_rc_for_dev(Dev(d), tags)
        entry["traits"] = sorted(ppt._get_traits_for_dev(tags))
    out["devices"][d["address"]] = entry
CONF.set_override("alias", inp.get("aliases", []), group="pci")
try:
    aliases = request._get_alias_from_config()
    out["aliases"] = {name: {"numa_policy": pol, "specs": specs} for name, (pol, specs) in aliases.items()}
except Exception as exc:
    out["alias_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
`;
