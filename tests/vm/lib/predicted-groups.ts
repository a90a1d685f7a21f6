/**
 * The charm's prediction of IOMMU groups (src/plan/iommu-groups.ts) run on a real guest's config
 * spaces, next to the groups the guest's kernel made: the test that the prediction is the kernel's
 * rule. Everything is read from the guest's sysfs in one round trip; the prediction runs here.
 */
import { parseIsolation } from "../../../src/host/pci-config";
import { predictIommuGroups } from "../../../src/plan/iommu-groups";
import { fn, host } from "../../support/host-facts";
import type { Guest } from "./guest";
import type { PciDeviceSpec } from "./topologies";

/** One function as the guest shows it: its parent bridge, its group, its config space. */
export interface GuestFunction {
  address: string;
  upstream: string | null;
  group: number | null;
  config: Uint8Array;
}

/** Reads every PCI function's sysfs path, `iommu_group` link and `config` (trailing zeros cut). */
export async function readGuestFunctions(guest: Guest): Promise<GuestFunction[]> {
  const out = await guest.exec(
    [
      "for d in /sys/bus/pci/devices/*; do",
      '  g=-; if [ -e "$d/iommu_group" ]; then g=$(basename "$(readlink "$d/iommu_group")"); fi',
      "  c=$(od -An -v -tx1 \"$d/config\" | tr -d ' \\n' | sed 's/\\(00\\)*$//')",
      '  [ -n "$c" ] || c=00',
      '  echo "$(basename "$d") $(readlink "$d") $g $c"',
      "done",
    ].join("\n"),
    { timeoutMs: 120_000 },
  );
  return out
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [address = "", path = "", group = "-", hex = ""] = line.split(" ");
      const parts = path.split("/");
      const parent = parts[parts.length - 2] ?? "";
      const config = new Uint8Array(4096);
      for (let i = 0; i * 2 < hex.length && i < 4096; i++) {
        config[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
      }
      return {
        address,
        upstream: /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(parent) ? parent : null,
        group: group === "-" ? null : Number(group),
        config,
      };
    });
}

/** `vendor:device` from the first four bytes of config space. */
function idsOf(config: Uint8Array): string {
  const hex = (lo: number, hi: number) =>
    (((config[hi] ?? 0) << 8) | (config[lo] ?? 0)).toString(16).padStart(4, "0");
  return `${hex(0, 1)}:${hex(2, 3)}`;
}

/** A partition of addresses as sorted, space-joined groups, sorted: comparable with toEqual. */
function canonical(groups: string[][]): string[] {
  return groups.map((g) => [...g].sort().join(" ")).sort();
}

/** The kernel's groups and the charm's prediction from the same config spaces (x86 rules). */
export function groupsAndPrediction(functions: GuestFunction[]): {
  real: string[];
  predicted: string[];
} {
  const byGroup = new Map<number, string[]>();
  for (const f of functions) {
    if (f.group === null) throw new Error(`${f.address} has no IOMMU group: is the IOMMU on?`);
    byGroup.set(f.group, [...(byGroup.get(f.group) ?? []), f.address]);
  }
  const facts = host(
    functions.map((f) =>
      fn(f.address, idsOf(f.config), "000000", {
        upstream: f.upstream,
        isolation: parseIsolation(f.config),
      }),
    ),
    { arch: "x86" },
  );
  const predicted = predictIommuGroups(facts);
  if (predicted === null) throw new Error("no prediction made");
  const groups = new Map([...predicted.values()].map((g) => [g.members.join(" "), g.members]));
  return { real: canonical([...byGroup.values()]), predicted: canonical([...groups.values()]) };
}

/** Expected groups given by device key, as address groups in canonical form. */
export function groupsOfKeys(devices: PciDeviceSpec[], groups: string[][]): string[] {
  const address = (key: string) => {
    const d = devices.find((x) => x.key === key);
    if (!d) throw new Error(`no device ${key}`);
    return d.address;
  };
  return canonical(groups.map((g) => g.map(address)));
}
