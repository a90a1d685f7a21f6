// Hook latency and hook-tool calls: the packed charm's dispatch for a no-op config-changed and an
// update-status on the seed host, with instant hook tools, against a bare `node -e 0` of the SAME
// bundled runtime, interleaved in one run so machine load hits both alike.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { UnitSimulator } from "ops-ts-shim/testing/simulator";
import { makeTempHost } from "../tests/support/hosts/build-host";
import { seedHost, syntheticAliasLines } from "../tests/support/hosts/presets";
import { diffTrees, snapshotTree } from "../tests/support/tree";
import {
  type CannedCall,
  cannedCalls,
  type InstantTools,
  writeInstantTools,
} from "./lib/instant-tools";
import {
  type Command,
  type CpuTimed,
  max,
  median,
  min,
  peakRssMiB,
  RSS_METHOD,
  timeRun,
  timeWithCpu,
} from "./lib/measure";
import { simulateUnit, type UnpackedCharm, unpackCharm } from "./lib/packed-charm";

const DPKG_STATUS = "/var/lib/dpkg/status";
const NOVA_STANZA =
  "Package: nova-common\nStatus: install ok installed\nVersion: 3:29.0.1-0ubuntu1\n\n";

export const LATENCY_EVENTS = ["config-changed", "update-status"] as const;
type LatencyEvent = (typeof LATENCY_EVENTS)[number];

/** Wall time (median, min) and CPU time (median) of one command, in ms. */
export interface TimeStats {
  medianMs: number;
  minMs: number;
  cpuMedianMs: number;
}

export interface LatencyResult {
  runs: number;
  runtimeVersion: string;
  rssMethod: string | null;
  config: Record<string, string>;
  /** `node -e 0` with the bundled runtime. */
  baseline: TimeStats & { peakRssMiB: number | null };
  /** The floor of any charm here: the packed dispatch (sh, its prefetch, the runtime's flags)
   * running a bundle that only unlinks dispatch's fifo and reads the prefetched lines, as the
   * charm's loader does, and nothing else. */
  floor: TimeStats & { ratio: number; peakRssMiB: number | null };
  events: Record<
    LatencyEvent,
    TimeStats & {
      /** medianMs / baseline.medianMs: the target (<= 1.5). */
      ratio: number;
      /** The same in CPU time (user + sys, children included): steadier on a loaded machine. */
      cpuRatio: number;
      /** Peak RSS over the RSS runs (max) and their median. */
      peakRssMiB: number | null;
      medianRssMiB: number | null;
      /** Same event, bundle run directly by the runtime: no sh, so the charm runs config-get and
       * state-get itself, and no compile cache. What dispatch saves (or adds). */
      direct: TimeStats;
      /** Same event through dispatch with its quiet-hook memo removed before each run: the whole
       * charm loads, runs, records its reads and writes the memo again (the first hook after
       * any change of its inputs). The rows above are the hook with its memo standing. */
      full: TimeStats & { ratio: number };
      /** Hook-tool calls the simulator counted for one dispatch, and the stand-ins counted. */
      simulatorCalls: string[];
      instantCalls: string[];
    }
  >;
}

/** Runs the event under the REAL simulator and returns its calls, replayed for their outputs. */
export function captureEvent(
  sim: UnitSimulator,
  charm: UnpackedCharm,
  root: string,
  event: Parameters<UnitSimulator["env"]>[0],
): { calls: CannedCall[]; argv: string[][] } {
  // env() first: for an action it registers the pending action, which action-get then reads.
  const env = sim.env(event, { path: charm.sysbin, extra: { PCI_PASSTHROUGH_ROOT: root } });
  const before = sim.readState();
  const r = timeRun({ argv: [path.join(charm.charmDir, "dispatch")], env });
  if (r.exitCode !== 0) {
    throw new Error(`${JSON.stringify(event)} under the simulator failed: ${r.stderr}`);
  }
  const recorded = sim.readState().calls.slice(before.calls.length);
  return {
    calls: cannedCalls(before, recorded, env),
    argv: recorded.map((c) => c.argv),
  };
}

/** A deployed unit on the seed host, ready to dispatch no-op hooks with instant tools. */
export interface LatencyUnit {
  charm: UnpackedCharm;
  hostRoot: string;
  config: Record<string, string>;
  /** Per event: the packed dispatch, and the bundle run directly by the runtime (no sh). */
  cmds: Record<LatencyEvent, { dispatch: Command; direct: Command }>;
  /** `node -e 0` with the bundled runtime. */
  baseline: Command;
  /** The packed dispatch of a charm whose bundle only reads its stdin (LatencyResult.floor). */
  floor: Command;
  captured: Record<LatencyEvent, { calls: CannedCall[]; argv: string[][] }>;
  tools: InstantTools;
  cleanup(): void;
}

/** Deploys the packed charm on the seed host under the real simulator (install, relation,
 * first config-changed), captures the no-op events' tool calls and writes the instant tools. */
export function deployLatencyUnit(): LatencyUnit {
  const charm = unpackCharm();
  // A real kernel's modules.alias (~26,000 lines, ~1.3 MB), not the seed's few lines: the charm
  // consults it for the modules that would claim each device, so its cost belongs in the numbers.
  const spec = seedHost();
  spec.modules = {
    ...spec.modules,
    alias: [...(spec.modules?.alias ?? []), ...syntheticAliasLines()],
  };
  const host = makeTempHost(spec);
  // A compute host's dpkg status runs to megabytes and the charm reads nova's version from it:
  // this machine's own status plus a nova-common stanza, so that cost is in the numbers.
  const status = path.join(host.root, "var/lib/dpkg/status");
  fs.mkdirSync(path.dirname(status), { recursive: true });
  fs.writeFileSync(
    status,
    `${fs.existsSync(DPKG_STATUS) ? fs.readFileSync(DPKG_STATUS, "utf8").trimEnd() : ""}\n\n${NOVA_STANZA}`,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pci-bench-unit-"));
  const config = { devices: "0000:83:00.0" };
  const cleanup = () => {
    fs.rmSync(dir, { recursive: true, force: true });
    host.cleanup();
    charm.cleanup();
  };
  try {
    const sim = simulateUnit(charm, path.join(dir, "sim"), config, [
      { endpoint: "juju-info", remoteApp: "nova-compute", remoteUnits: ["nova-compute/0"] },
      { endpoint: "nova-compute", remoteApp: "nova-compute", remoteUnits: ["nova-compute/0"] },
    ]);
    // A deployed unit: install, the relation hooks, the first config-changed. After these, the
    // host is prepared and stored state holds what was written: the next hooks are no-ops.
    for (const event of ["install", "nova-compute-relation-joined", "config-changed"]) {
      captureEvent(sim, charm, host.root, event);
    }
    const captured = Object.fromEntries(
      LATENCY_EVENTS.map((e) => [e, captureEvent(sim, charm, host.root, e)]),
    ) as LatencyUnit["captured"];
    const tools = writeInstantTools(
      path.join(dir, "instant"),
      LATENCY_EVENTS.flatMap((e) => captured[e].calls),
    );
    const commands = (event: LatencyEvent) => {
      const env = sim.env(event, {
        path: charm.sysbin,
        extra: { PCI_PASSTHROUGH_ROOT: host.root },
      });
      env.PATH = env.PATH!.replace(sim.binDir, tools.binDir);
      return {
        dispatch: { argv: [path.join(charm.charmDir, "dispatch")], env },
        direct: { argv: [charm.runtime, path.join(charm.charmDir, "dist", "charm.js")], env },
      };
    };
    // The same charm directory but for its bundle: dispatch as packed, the runtime it ships, and
    // a dist/charm.js that unlinks dispatch's fifo (as the charm's loader does first thing:
    // scripts/build.mjs, unlinkPrefetchFifo; else the next dispatch would rm it), reads the
    // prefetched config and state to the end and stops.
    const floorDir = path.join(dir, "floor");
    fs.mkdirSync(path.join(floorDir, "dist"), { recursive: true });
    fs.copyFileSync(path.join(charm.charmDir, "dispatch"), path.join(floorDir, "dispatch"));
    fs.symlinkSync(path.join(charm.charmDir, "runtime"), path.join(floorDir, "runtime"));
    fs.writeFileSync(
      path.join(floorDir, "dist", "charm.js"),
      [
        'const fs = require("node:fs");',
        "try {",
        "  fs.unlinkSync(process.env.PCI_PASSTHROUGH_PREFETCH_FIFO);",
        "} catch {}",
        "fs.readFileSync(0);",
        "",
      ].join("\n"),
    );
    const floorEnv = commands("config-changed").dispatch.env;
    return {
      charm,
      hostRoot: host.root,
      config,
      cmds: Object.fromEntries(LATENCY_EVENTS.map((e) => [e, commands(e)])) as LatencyUnit["cmds"],
      baseline: { argv: [charm.runtime, "-e", "0"], env: { PATH: charm.sysbin } },
      floor: {
        argv: [path.join(floorDir, "dispatch")],
        env: { ...floorEnv, JUJU_CHARM_DIR: floorDir, CHARM_DIR: floorDir },
      },
      captured,
      tools,
      cleanup,
    };
  } catch (err) {
    cleanup();
    throw err;
  }
}

/** The latency benchmark on a deployed unit; `runs` timed runs per command. */
export function benchLatency(unit: LatencyUnit, runs: number): LatencyResult {
  const { cmds, baseline, floor, tools, captured } = unit;
  const before = snapshotTree(unit.hostRoot, { stamps: true });

  // One instant-tool dispatch of each event on its own: it must succeed silently, and its
  // calls are counted.
  const instantCalls = {} as Record<LatencyEvent, string[]>;
  for (const e of LATENCY_EVENTS) {
    tools.reset();
    const r = timeRun(cmds[e].dispatch);
    if (r.exitCode !== 0 || r.stderr !== "") {
      throw new Error(`${e} with instant tools: exit ${r.exitCode}, stderr ${r.stderr}`);
    }
    instantCalls[e] = tools.calls();
  }

  // Interleaved: baseline, each event through dispatch, each event run directly; the order
  // rotates each round so no command always follows the same one.
  const samples = new Map<string, CpuTimed[]>();
  // `:full` removes the event's memo first (untimed), so its run is the whole charm's.
  const forget = (e: LatencyEvent) => () =>
    fs.rmSync(path.join(unit.charm.charmDir, ".quiet-hooks", e), { force: true });
  const jobs: Array<[string, Command, (() => void)?]> = [
    ["baseline", baseline],
    ["floor", floor],
    ...LATENCY_EVENTS.flatMap(
      (e): Array<[string, Command, (() => void)?]> => [
        [e, cmds[e].dispatch],
        [`${e}:direct`, cmds[e].direct],
        [`${e}:full`, cmds[e].dispatch, forget(e)],
      ],
    ),
  ];
  for (let i = 0; i < 3; i++) {
    for (const [, c, before] of jobs) {
      before?.();
      timeWithCpu(c); // warm the page cache
    }
  }
  for (let i = 0; i < runs; i++) {
    for (let j = 0; j < jobs.length; j++) {
      const [k, c, before] = jobs[(i + j) % jobs.length]!;
      before?.();
      const r = timeWithCpu(c);
      if (r.exitCode !== 0) throw new Error(`${k}: exit ${r.exitCode}`);
      samples.set(k, [...(samples.get(k) ?? []), r]);
    }
  }
  const stats = (k: string) => {
    const s = samples.get(k)!;
    return {
      medianMs: median(s.map((x) => x.realMs)),
      minMs: min(s.map((x) => x.realMs)),
      cpuMedianMs: median(s.map((x) => x.userMs + x.sysMs)),
    };
  };
  const rssRuns = Math.max(5, Math.min(15, runs));
  const rss = (c: Command) => {
    const values: number[] = [];
    for (let i = 0; i < rssRuns; i++) {
      const v = peakRssMiB(c);
      if (v !== null) values.push(v);
    }
    return values.length > 0 ? { max: max(values), median: median(values) } : null;
  };
  const base = stats("baseline");
  const baseRss = rss(baseline);
  const floorStats = stats("floor");
  const floorRss = rss(floor);

  const events = {} as LatencyResult["events"];
  for (const e of LATENCY_EVENTS) {
    const s = stats(e);
    const r = rss(cmds[e].dispatch);
    events[e] = {
      ...s,
      ratio: s.medianMs / base.medianMs,
      cpuRatio: s.cpuMedianMs / base.cpuMedianMs,
      peakRssMiB: r?.max ?? null,
      medianRssMiB: r?.median ?? null,
      direct: stats(`${e}:direct`),
      full: { ...stats(`${e}:full`), ratio: stats(`${e}:full`).medianMs / base.medianMs },
      simulatorCalls: captured[e].argv.map((a) => a.join(" ")),
      instantCalls: instantCalls[e],
    };
  }
  const written = diffTrees(before, snapshotTree(unit.hostRoot, { stamps: true }));
  if (written.length > 0) {
    throw new Error(
      `a no-op hook wrote to the host tree during the benchmark: ${written.join(", ")}`,
    );
  }
  return {
    runs,
    runtimeVersion: unit.charm.runtimeVersion,
    rssMethod: RSS_METHOD,
    config: unit.config,
    baseline: { ...base, peakRssMiB: baseRss?.max ?? null },
    floor: {
      ...floorStats,
      ratio: floorStats.medianMs / base.medianMs,
      peakRssMiB: floorRss?.max ?? null,
    },
    events,
  };
}
