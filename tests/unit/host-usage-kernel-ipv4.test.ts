// When the kernel is asked for IPv4 addresses (`ip -j -4 addr show`, a process and child_process
// loaded): only when a judgement asks about a function behind an interface the files show no use
// of (host/usage.ts). The decision is pure (undecidedByFiles, kernelIpv4Matters); the hook
// (prepareHost) asks through it; and on every recorded real host, for every selection its
// manifest names, the plan is the one made on the kernel's answer from the start.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config";
import type { HostUsage, NetInterface } from "../../src/host/facts";
import { readHostFacts } from "../../src/host/read-facts";
import {
  judgeWithHostUsage,
  kernelIpv4Matters,
  readHostUsage,
  readHostUsageFromFiles,
  readNetInterfaces,
  type UsageReading,
  undecidedByFiles,
} from "../../src/host/usage";
import { EMPTY_MEMORY, planModulesFor, prepareHost } from "../../src/host-preparation";
import { planHost } from "../../src/plan/plan-host";
import { useCleanups } from "../support/cleanups";
import { recordingRunner } from "../support/fault-injection/apply-scenarios";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import {
  type RealHostManifest,
  realHostManifests,
  type UnpackedHost,
  unpackRealHost,
} from "../support/real-hosts/corpus";

/** `ip -j -4 addr show` as iproute2 prints it (the fields read), for these interfaces. */
function ipJson(addresses: Record<string, string[]>): string {
  return JSON.stringify(
    Object.entries(addresses).map(([ifname, list], i) => ({
      ifindex: i + 1,
      ifname,
      addr_info: list.map((local) => ({ family: "inet", local, prefixlen: 24 })),
    })),
  );
}

/** An `ip` that answers `text` and counts how often it was run. */
function countingIp(text: string) {
  const ip = Object.assign(
    () => {
      ip.runs += 1;
      return text;
    },
    { runs: 0 },
  );
  return ip;
}

const nic = (over: Partial<NetInterface>): NetInterface => ({
  name: "eth0",
  pciAddress: "0000:01:00.0",
  adminUp: false,
  operstate: "down",
  master: null,
  uppers: [],
  addresses: [],
  routes: 0,
  ...over,
});

describe("undecidedByFiles: the interfaces only the kernel's IPv4 answer can judge", () => {
  it("an interface that is down with nothing on it is undecided; any evidence decides it", () => {
    expect([...undecidedByFiles([nic({})])]).toEqual(["0000:01:00.0"]);
    const decided: Array<[string, Partial<NetInterface>]> = [
      // Up: "is up" makes it in use whatever its addresses.
      ["up", { adminUp: true }],
      ["up without carrier", { adminUp: true, operstate: "down" }],
      ["a route", { routes: 1 }],
      ["enslaved", { master: "bond0" }],
      ["a VLAN on it", { uppers: ["eth0.100"] }],
      ["an IPv6 address", { addresses: ["2001:db8::5"] }],
    ];
    for (const [why, over] of decided) {
      expect([...undecidedByFiles([nic(over)])], why).toEqual([]);
    }
    // No PCI device (a bridge, a veth): no function to judge.
    expect([...undecidedByFiles([nic({ pciAddress: null })])]).toEqual([]);
  });

  it("on a host tree: the down port is undecided, the up one is not", () => {
    const built = makeTempHost(seedHost());
    try {
      // eno1 (18:00.0) is up with an address and routes; eno2 (18:00.1) is down.
      expect([...undecidedByFiles(readNetInterfaces(built.root))]).toEqual(["0000:18:00.1"]);
    } finally {
      built.cleanup();
    }
  });

  it("kernelIpv4Matters: only when a function asked about is undecided", () => {
    const undecided = new Set(["0000:18:00.1"]);
    expect(kernelIpv4Matters(undecided, ["0000:83:00.0", "0000:83:00.1"])).toBe(false);
    expect(kernelIpv4Matters(undecided, ["0000:83:00.0", "0000:18:00.1"])).toBe(true);
    expect(kernelIpv4Matters(new Set(), ["0000:18:00.1"])).toBe(false);
  });
});

describe("judgeWithHostUsage: the kernel asked only when the judgement needs it", () => {
  /** A reading whose kernel answer is `withKernel`, counting how often it is asked. */
  function reading(files: HostUsage, undecided: string[], withKernel: HostUsage) {
    const asks = { count: 0 };
    const r: UsageReading = {
      usage: files,
      undecided: new Set(undecided),
      withKernelIpv4() {
        asks.count += 1;
        return withKernel;
      },
    };
    return { r, asks };
  }
  const files: HostUsage = new Map([["0000:18:00.0", ["network interface eno1 is up"]]]);
  const kernel: HostUsage = new Map([
    ...files,
    ["0000:18:00.1", ["network interface eno2 has addresses 10.9.9.9"]],
  ]);

  it("a judgement that never asks about an undecided function: one run, no kernel", () => {
    const { r, asks } = reading(files, ["0000:18:00.1"], kernel);
    let runs = 0;
    const used = judgeWithHostUsage(r, (usage) => {
      runs += 1;
      return usage.get("0000:18:00.0") ?? [];
    });
    expect([used, runs, asks.count]).toEqual([["network interface eno1 is up"], 1, 0]);
  });

  it("one that asks about it: the kernel is asked, and the answer judged again", () => {
    const { r, asks } = reading(files, ["0000:18:00.1"], kernel);
    let runs = 0;
    const used = judgeWithHostUsage(r, (usage) => {
      runs += 1;
      return usage.get("0000:18:00.1") ?? [];
    });
    expect([used, runs, asks.count]).toEqual([
      ["network interface eno2 has addresses 10.9.9.9"],
      2,
      1,
    ]);
  });

  it("an answer that changes nothing asked about: asked once, judged once", () => {
    const { r, asks } = reading(files, ["0000:18:00.1"], new Map(files));
    let runs = 0;
    judgeWithHostUsage(r, (usage) => {
      runs += 1;
      return usage.has("0000:18:00.1");
    });
    expect([runs, asks.count]).toEqual([1, 1]);
  });

  it("a judgement that walks the whole usage asked about everything", () => {
    const { r, asks } = reading(files, ["0000:18:00.1"], kernel);
    const seen = judgeWithHostUsage(r, (usage) => [...usage.keys()].sort());
    expect(seen).toEqual(["0000:18:00.0", "0000:18:00.1"]);
    expect(asks.count).toBe(1);
  });
});

describe("a hook asks `ip` only for a selection that can need it", () => {
  const cleanups = useCleanups();
  const seed = () => {
    const built = makeTempHost(seedHost());
    cleanups.push(built.cleanup);
    return built.root;
  };
  const hook = (root: string, devices: string, ip: ReturnType<typeof countingIp>) =>
    prepareHost({ devices }, EMPTY_MEMORY, {
      root,
      runner: recordingRunner(),
      log: () => {},
      ipAddrJson: ip,
    });
  // The kernel says the down port eno2 holds an address: only it can tell.
  const eno2Addressed = () => countingIp(ipJson({ eno1: ["10.0.0.5"], eno2: ["192.0.2.77"] }));

  it("a GPU-only selection on a host with NICs (one of them down): `ip` not run", () => {
    const ip = eno2Addressed();
    const result = hook(seed(), "10de:1bb0", ip);
    expect(result.outcome.kind).toBe("prepared");
    expect(result.plan!.bind.map((b) => b.address)).toContain("0000:83:00.0");
    expect(ip.runs).toBe(0);
  });

  it("the port that is up: judged in use by the files, `ip` not run", () => {
    const ip = eno2Addressed();
    const result = hook(seed(), "0000:18:00.0", ip);
    expect(result.plan!.withheld.map((w) => w.address)).toEqual(["0000:18:00.0"]);
    expect(result.plan!.withheld[0]!.reasons.join("; ")).toContain("network interface eno1 is up");
    expect(ip.runs).toBe(0);
  });

  it("the down port among the candidates: `ip` run once, and its address keeps it", () => {
    const ip = eno2Addressed();
    const result = hook(seed(), "0000:18:00.1", ip);
    expect(ip.runs).toBe(1);
    expect(result.plan!.bind).toEqual([]);
    expect(result.plan!.withheld[0]!.reasons.join("; ")).toContain(
      "network interface eno2 has addresses 192.0.2.77",
    );
    // The kernel saying it holds nothing: the same question asked, the port given to vfio-pci.
    const none = countingIp(ipJson({ eno1: ["10.0.0.5"] }));
    const idle = hook(seed(), "0000:18:00.1", none);
    expect(none.runs).toBe(1);
    expect(idle.plan!.bind.map((b) => b.address)).toEqual(["0000:18:00.1"]);
  });

  it("readHostUsage (the actions: every function shown) asks whenever anything is undecided", () => {
    const root = seed();
    const ip = eno2Addressed();
    expect(readHostUsage(root, { ipAddrJson: ip }).get("0000:18:00.1")).toEqual([
      "network interface eno2 has addresses 192.0.2.77",
    ]);
    expect(ip.runs).toBe(1);
  });
});

describe("the recorded real hosts: every manifest selection plans as on the kernel's answer", () => {
  /** The interfaces the recording has down (IFF_UP clear in `flags`): what the files cannot tell
   * is whether they hold an IPv4 address. The answer says each does: the worst case for a plan
   * that did not ask. (An up interface is in use by "is up" whatever the kernel says.) */
  function everyDownInterfaceAddressed(root: string): string {
    const dir = path.join(root, "sys/class/net");
    const names = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
    const down: Record<string, string[]> = {};
    names.forEach((name, i) => {
      const flags = path.join(dir, name, "flags");
      if (!fs.existsSync(flags)) return;
      if ((Number.parseInt(fs.readFileSync(flags, "utf8"), 16) & 1) === 0) {
        down[name] = [`198.51.100.${i + 1}`];
      }
    });
    return ipJson(down);
  }

  const manifests = realHostManifests();
  const asked: Record<string, number> = {};
  const cases = manifests.flatMap((m) =>
    m.selections.map((s) => [m.id, s.name, m, s.devices] as const),
  );
  const hosts = new Map<string, UnpackedHost>();
  const hostOf = (m: RealHostManifest) => {
    let host = hosts.get(m.id);
    if (!host) {
      host = unpackRealHost(m);
      hosts.set(m.id, host);
    }
    return host;
  };
  afterAll(() => {
    for (const host of hosts.values()) host.cleanup();
  });

  it.each(cases)("%s: %s", (_id, name, m, devices) => {
    const { root } = hostOf(m);
    const parsed = parseConfig({ devices });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const { facts } = readHostFacts(root);
    const modules = planModulesFor(parsed.config, root, facts, null);
    const planOn = (usage: HostUsage) =>
      planHost(
        parsed.config,
        facts,
        modules?.aliases ?? null,
        { boundIds: {} },
        { usage, moduleNames: modules?.names ?? null },
      );
    const answer = everyDownInterfaceAddressed(root);
    // As before: the kernel's answer read for every interface, then the plan.
    const fromTheStart = readHostUsage(root, {
      functions: facts.functions,
      netInterfaces: readNetInterfaces(root, [], () => answer),
    });
    const ip = countingIp(answer);
    const reading = readHostUsageFromFiles(root, { functions: facts.functions, ipAddrJson: ip });
    expect(judgeWithHostUsage(reading, planOn)).toEqual(planOn(fromTheStart));
    asked[`${m.id}: ${name}`] = ip.runs;
  });

  describe("and the kernel was asked only where it could matter", () => {
    beforeAll(() => {
      expect(Object.keys(asked)).toHaveLength(cases.length);
    });
    it("the R910's boot VGA: not asked; its idle second card (two ports down): asked", () => {
      const r910 = manifests.find((m) => m.id === "dell-poweredge-r910")!;
      const key = (s: string) =>
        `${r910.id}: ${r910.selections.find((x) => x.name.includes(s))!.name}`;
      expect(asked[key("boot VGA")]).toBe(0);
      expect(asked[key("idle second card")]).toBe(1);
    });
    it("most selections ask nothing of the kernel", () => {
      const runs = Object.values(asked);
      expect(runs.every((n) => n <= 1)).toBe(true);
      expect(runs.filter((n) => n === 0).length).toBeGreaterThan(runs.length / 2);
    });
  });
});
