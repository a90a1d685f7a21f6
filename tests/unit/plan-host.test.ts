// planHost against golden files: the whole plan, rendered as text, for the hosts the issue names.
// Regenerate with UPDATE_GOLDEN=1 npx vitest run tests/unit/plan-host.test.ts (then read the diff).
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type Config, parseConfig } from "../../src/config";
import type { HostFacts } from "../../src/host/facts";
import { OWNED } from "../../src/host/root";
import { planHost } from "../../src/plan/plan-host";
import { renderBindHelper, renderInitramfsHook } from "../../src/plan/render-files";
import type { HostPlan } from "../../src/plan/types";
import { expectGolden } from "../support/golden";
import { fn, host, MODULES_ALIAS, moduleAliases, netPf, seedHost } from "../support/host-facts";

const STATIC: Record<string, string> = {
  [OWNED.bindHelper]: "vfio-bind.sh",
  [OWNED.initramfsHook]: "initramfs-hook.sh",
};
const sha = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 16);

/** The whole plan as text; the two static scripts are compared by hash with their own goldens. */
function renderPlan(plan: HostPlan): string {
  const out: string[] = [];
  out.push("== kernel params", plan.kernelParams.join(" ") || "(none)");
  out.push("== blacklist", plan.blacklist.join(" ") || "(none)");
  out.push("== bind");
  for (const b of plan.bind) {
    out.push(
      `${b.address} ${b.vendorId}:${b.deviceId} class ${b.classCode} alias ${b.alias} ${b.deviceType} ` +
        `numa ${b.numaPolicy ?? "-"} ${b.reason}${b.follows ? ` of ${b.follows}` : ""}`,
    );
  }
  out.push("== problems", ...plan.problems.map((p) => `[${p.option ?? "-"}] ${p.message}`));
  out.push("== notes", ...plan.notes);
  for (const f of plan.files) {
    const feeds = plan.feeds[f.path]?.join(",") ?? "?";
    out.push(`== file ${f.path} mode ${f.mode.toString(8)} feeds ${feeds}`);
    const staticName = STATIC[f.path];
    out.push(staticName ? `(sha256 ${sha(f.content)}: golden/${staticName})` : f.content.trimEnd());
  }
  return `${out.join("\n")}\n`;
}

function config(raw: Record<string, unknown>): Config {
  const parsed = parseConfig(raw);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.config;
}

/** The modules.alias the hosts of these tests have (null: unreadable). */
const index = MODULES_ALIAS;

/** planHost as a hook calls it: modules.alias's answers for the host's functions, read first. */
function planWith(
  cfg: Config,
  facts: HostFacts,
  aliases: string | null,
  ...rest: Parameters<typeof planHost> extends [unknown, unknown, unknown, ...infer R] ? R : never
): HostPlan {
  return planHost(cfg, facts, aliases === null ? null : moduleAliases(aliases, facts), ...rest);
}

/** An E810 port's VFs: none enabled, 128 possible. */
const E810_VFS = { numVfs: 0, totalVfs: 128 };

/** A host with an E810 (ice) whose second port and a second E810 card stay with the host. */
function nicHost(): HostFacts {
  return host([
    fn("0000:00:17.0", "8086:a182", "010601", { driver: "ahci", iommuGroup: 8 }),
    netPf("0000:17:00.0", "8086:1593", "ice", 20, E810_VFS, { netInterfaces: ["ens1f0"] }),
    netPf("0000:17:00.1", "8086:1593", "ice", 21, E810_VFS, { netInterfaces: ["ens1f1"] }),
    fn("0000:b1:00.0", "8086:1592", "020000", {
      driver: "ice",
      iommuGroup: 40,
      netInterfaces: ["eno1"],
    }),
  ]);
}

function amdHost(): HostFacts {
  return host(
    [
      fn("0000:00:08.1", "1022:1484", "060400", { driver: "pcieport", iommuGroup: 3 }),
      fn("0000:c1:00.0", "1002:73bf", "030000", { driver: "amdgpu", iommuGroup: 30 }),
      fn("0000:c1:00.1", "1002:ab28", "040300", { driver: "snd_hda_intel", iommuGroup: 30 }),
      fn("0000:c2:00.0", "1022:1487", "040300", { driver: "snd_hda_intel", iommuGroup: 31 }),
    ],
    { cpuVendor: "amd", iommuUnits: ["ivhd0"] },
  );
}

function gpuLessHost(): HostFacts {
  return host([
    fn("0000:00:17.0", "8086:a182", "010601", { driver: "ahci", iommuGroup: 8 }),
    fn("0000:3d:00.0", "8086:37d2", "020000", { driver: "i40e", iommuGroup: 30 }),
  ]);
}

const none = { boundIds: {} };

const cases: [string, Record<string, unknown>, () => HostFacts, string | null][] = [
  ["seed-both-gpus-by-id", { devices: "10de:1bb0" }, () => seedHost(), index],
  ["seed-one-twin-by-address", { devices: "0000:84:00.0" }, () => seedHost(), index],
  ["nic-by-address-same-driver-kept", { devices: "0000:17:00.0" }, nicHost, index],
  ["amd-host", { devices: "- {address: '0000:c1:00.0', alias: rx6800}" }, amdHost, index],
  ["iommu-off", { iommu: "off" }, () => seedHost(), index],
  [
    "extra-params",
    {
      devices: "10de:1bb0",
      "extra-kernel-params": "pcie_acs_override=downstream,multifunction video=efifb:off",
    },
    () => seedHost(),
    index,
  ],
  [
    "unsafe-interrupts",
    { devices: "10de:1bb0", "allow-unsafe-interrupts": true },
    () => seedHost(),
    index,
  ],
  ["gpu-less-host", { devices: "10de:1bb0" }, gpuLessHost, index],
  ["no-modules-alias", { devices: "10de:1bb0" }, () => seedHost(), null],
  [
    "explicit-blacklist",
    { devices: "10de:1bb0", "blacklist-drivers": "nouveau" },
    () => seedHost(),
    index,
  ],
];

describe("planHost goldens", () => {
  it.each(cases)("%s", (name, raw, facts, idx) => {
    expectGolden(`${name}.txt`, renderPlan(planWith(config(raw), facts(), idx, none)));
  });

  it("renders the static helper and hook once", () => {
    expectGolden("vfio-bind.sh", renderBindHelper());
    expectGolden("initramfs-hook.sh", renderInitramfsHook());
  });
});

describe("planHost decisions", () => {
  it("is deterministic: same input, same bytes, whatever the order of entries", () => {
    const a = planWith(config({ devices: "10de:1bb0 0000:3d:00.0" }), seedHost(), index, none);
    const b = planWith(config({ devices: "0000:3d:00.0,10de:1bb0" }), seedHost(), index, none);
    expect(renderPlan(a)).toBe(renderPlan(b));
    expect(JSON.stringify(a.files)).toBe(JSON.stringify(b.files));
  });

  it("blacklists nouveau only when every device it would claim is selected", () => {
    const both = planWith(config({ devices: "10de:1bb0" }), seedHost(), index, none);
    expect(both.blacklist).toEqual(["nouveau", "nvidiafb"]);
    expect(both.kernelParams).toContain("modprobe.blacklist=nouveau,nvidiafb");
    const one = planWith(config({ devices: "0000:83:00.0" }), seedHost(), index, none);
    expect(one.blacklist).toEqual([]);
    // The twin unbound (driver gone) still counts: modules.alias says nouveau would claim it.
    const facts = seedHost();
    facts.functions.find((f) => f.address === "0000:84:00.0")!.driver = null;
    expect(planWith(config({ devices: "0000:83:00.0" }), facts, index, none).blacklist).toEqual([]);
  });

  it("blacklists by what is bound even when the facts are not in bus order", () => {
    // The plan pairs the bound devices with the host's functions in one walk when both are in
    // bus order (plan/boot.ts splitByBinding); here the helper lists 10000:… before ffff:…
    // (plain string order), so the walk cannot pair them and the address set must.
    const gpu = (address: string) => fn(address, "10de:1bb0", "030000", { driver: "nouveau" });
    const facts = host([gpu("10000:01:00.0"), gpu("ffff:01:00.0")]);
    const plan = planWith(config({ devices: "10de:1bb0" }), facts, index, none);
    expect(plan.bind.map((b) => b.address)).toEqual(["ffff:01:00.0", "10000:01:00.0"]);
    expect(plan.blacklist).toEqual(["nouveau", "nvidiafb"]);
  });

  /** The plan for the first P5000 on the seed host with blacklist-drivers set to `blacklist`. */
  const withBlacklist = (blacklist: string) =>
    planWith(
      config({ devices: "0000:83:00.0", "blacklist-drivers": blacklist }),
      seedHost(),
      index,
      none,
    );

  it("refuses an explicit blacklist that strands a kept device, naming it", () => {
    const plan = withBlacklist("nouveau, snd-hda-intel");
    const text = plan.problems.map((p) => `${p.option}: ${p.message}`).join("\n");
    expect(plan.problems.every((p) => p.option === "blacklist-drivers")).toBe(true);
    expect(text).toMatch(
      /blacklisting nouveau would leave 0000:84:00\.0 \(10de:1bb0, on nouveau\)/,
    );
    expect(text).toMatch(/blacklisting snd_hda_intel would leave 0000:00:1f\.3 .*0000:84:00\.1/);
  });

  it("accepts an explicit blacklist of a module a kept device can do without", () => {
    const plan = withBlacklist("nvidiafb");
    expect(plan.problems).toEqual([]);
    expect(plan.blacklist).toEqual(["nvidiafb"]);
  });

  it("refuses an address that now holds another device than the one it bound", () => {
    const facts = seedHost();
    const gpu = facts.functions.find((f) => f.address === "0000:83:00.0")!;
    gpu.vendorId = "8086";
    gpu.deviceId = "1593";
    gpu.classCode = "020000";
    const previous = { boundIds: { "0000:83:00.0": "10de:1bb0", "0000:83:00.1": "10de:10f0" } };
    const plan = planWith(config({ devices: "0000:83:00.0" }), facts, index, previous);
    expect(plan.problems.map((p) => p.message).join("\n")).toContain(
      "0000:83:00.0 was 10de:1bb0 when the charm bound it and is now 8086:1593",
    );
    // Naming the new ids in the entry is the operator's confirmation.
    const confirmed = planWith(
      config({ devices: "- {address: 0000:83:00.0, vendor-id: 8086, product-id: 1593}" }),
      facts,
      index,
      previous,
    );
    expect(confirmed.problems).toEqual([]);
    // Selected by id, the swapped card is simply not selected any more: a note, no block.
    const byId = planWith(config({ devices: "10de:1bb0" }), facts, index, previous);
    expect(byId.problems).toEqual([]);
    expect(byId.notes.join("\n")).toContain(
      "left to the host: 0000:83:00.0 was 10de:1bb0, now 8086:1593",
    );
  });

  // A container never reaches the planner: host preparation stops first (tests/charm/status.test.ts).
  it("blocks when the kernel has no vfio-pci", () => {
    const plan = planWith(
      config({ devices: "10de:1bb0" }),
      seedHost({ vfioPci: "missing" }),
      index,
      none,
    );
    const text = plan.problems.map((p) => p.message).join("\n");
    expect(text).toMatch(/no vfio-pci .*linux-modules-extra-6\.8\.0-45-generic/);
  });

  it("says when auto cannot tell the CPU vendor, and adds no IOMMU switch", () => {
    const plan = planWith(config({}), seedHost({ cpuVendor: "unknown" }), index, none);
    expect(plan.kernelParams).toEqual(["iommu=pt"]);
    expect(plan.notes.join("\n")).toMatch(/CPU vendor unknown/);
  });

  it("leaves no owned file at all when there is nothing to say", () => {
    const plan = planWith(config({ iommu: "off" }), gpuLessHost(), index, none);
    expect(plan.files).toEqual([]);
    expect(Object.keys(plan.feeds).sort()).toEqual(Object.values(OWNED).sort());
  });

  it("feeds grub from the drop-in and the initramfs from everything else", () => {
    const plan = planWith(config({ devices: "10de:1bb0" }), seedHost(), index, none);
    // Every owned file but the SR-IOV ones, which only entries with `vfs` need.
    const sriovOnly = new Set<string>([
      OWNED.sriovRule,
      OWNED.sriovHelper,
      OWNED.sriovBootUnit,
      OWNED.sriovBootWants,
      OWNED.sriovBootWait,
    ]);
    expect(plan.files.map((f) => f.path)).toEqual(
      Object.values(OWNED)
        .filter((p) => !sriovOnly.has(p))
        .sort(),
    );
    expect(plan.feeds[OWNED.grubDropIn]).toEqual(["grub"]);
    for (const p of [OWNED.modprobeConf, OWNED.udevRule, OWNED.bindHelper, OWNED.initramfsHook]) {
      expect(plan.feeds[p]).toEqual(["initramfs"]);
    }
    expect(plan.files.find((f) => f.path === OWNED.bindHelper)!.mode).toBe(0o755);
    expect(plan.files.find((f) => f.path === OWNED.initramfsHook)!.mode).toBe(0o755);
    for (const f of plan.files)
      expect(f.content).toMatch(/Managed by the pci-passthrough Juju charm/);
  });
});
