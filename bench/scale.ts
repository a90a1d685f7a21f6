// Scale: list-devices and verify-iommu on synthetic SR-IOV hosts of 100, 1,000 and 10,000 PCI
// functions (syntheticHost(n): ConnectX-5 PFs and their VFs, a real-sized modules.alias, and the
// machine's own pci.ids when it has one).
//
// Measured three ways:
// - the action's work in-process: the readers and pure functions the glue (src/charm-actions.ts)
//   calls, each timed, summed per action;
// - the whole action through the glue (the Scenario harness runs the real main() and charm class
//   against an in-memory Juju), which adds turning the results into action-set arguments;
// - end to end through the packed dispatch, for 10,000: once under the real unit simulator (whose
//   tools are Node processes, ~50 ms each, and rewrite its state file per call: the simulator's
//   cost, not the charm's), then with instant sh stand-ins answering what the simulator answered
//   (as the latency benchmark does): what an operator's `juju run` costs on the host, bar Juju.
// The last two run in child processes with a time limit: a step that does not scale must show up
// as "did not finish in N s", not hang the benchmark.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { actionSetArguments } from "ops-ts-shim";
import { Context } from "ops-ts-shim/testing";
import { PciPassthroughCharm } from "../src/pci-passthrough-charm";
import { makeTempHost } from "../tests/support/hosts/build-host";
import { syntheticHost } from "../tests/support/hosts/presets";
import { captureEvent } from "./latency";
import { ACTION_STEPS, actionSteps } from "./lib/action-steps";
import { writeInstantTools } from "./lib/instant-tools";
import { median, timed, timeRun } from "./lib/measure";
import { simulateUnit, TOP, unpackCharm } from "./lib/packed-charm";

export const SCALE_SIZES = [100, 1_000, 10_000] as const;

/** Every VF selected by ids: the heavy SR-IOV case (thousands of selected functions). */
export const SCALE_CONFIG = { devices: "15b3:1018" };

/** Limit for one child-process measurement. */
const CHILD_LIMIT_MS = 30_000;
const MACHINE_PCI_IDS = "/usr/share/misc/pci.ids";

type Action = "list-devices" | "verify-iommu";

/** A measurement that may not finish: ms, or null with the reason. */
export interface Bounded {
  ms: number | null;
  note: string;
}

export interface ScaleRow {
  functions: number;
  selected: number;
  buildMs: number;
  /** Median ms of each step the glue takes (in-process). */
  parts: Record<string, number>;
  /** Sum of the steps each action takes: its work, before reporting. */
  work: Record<Action, { ms: number; usPerFunction: number }>;
  /** Size of what the action hands to action-set. */
  results: Record<Action, { keys: number; argvBytes: number }>;
  /** ops-ts-shim's actionSetArguments on those results (every key checked; what action-set gets). */
  flatten: Record<Action, Bounded>;
  /** The whole action through the glue (Context.run), in a child process. */
  glue: Record<Action, Bounded>;
}

export interface ScaleResult {
  config: Record<string, string>;
  pciIds: string | null;
  childLimitMs: number;
  rows: ScaleRow[];
  /** work(10k) / work(1k) per action: flat cost per function means within 1.5x of 10. */
  workRatio10kTo1k: Record<Action, number>;
  /** The packed dispatch: under the real simulator, and with instant tools (median of runs), and
   * the read-only floor (bench/floor.mjs, same runtime) timed between those runs. */
  endToEnd: { functions: number } & Record<
    Action,
    { simulator: Bounded; instant: Bounded; floor: Bounded }
  >;
}

function buildHost(n: number) {
  const spec = syntheticHost(n);
  if (fs.existsSync(MACHINE_PCI_IDS)) spec.pciIds = fs.readFileSync(MACHINE_PCI_IDS, "utf8");
  return makeTempHost(spec, "pci-bench-scale-");
}

/** Key count and argv bytes (strings and NULs, as before the exec) of action-set for these results. */
function resultSize(results: Record<string, unknown>): { keys: number; argvBytes: number } {
  const args = actionSetArguments(results);
  let argvBytes = "action-set".length + 1;
  for (const arg of args) argvBytes += Buffer.byteLength(arg) + 1;
  return { keys: args.length, argvBytes };
}

/** The steps of both actions, as the glue takes them, timed; returns the results too. */
function timedActionSteps(root: string) {
  const parts: Record<string, number> = {};
  const { selected, results } = actionSteps(root, SCALE_CONFIG, (name, fn) => {
    const r = timed(fn);
    parts[name] = r.ms;
    return r.value;
  });
  const work: Record<Action, string[]> = ACTION_STEPS;
  return { parts, work, selected, results };
}

/** Child-process tasks (bench/main.ts `--scale-child <task> <root>`): prints ms as JSON. */
export function scaleChild(task: string, root: string): void {
  process.env.PCI_PASSTHROUGH_ROOT = root;
  if (task.startsWith("flatten:")) {
    const action = task.slice("flatten:".length) as Action;
    const { results } = timedActionSteps(root);
    const t = timed(() => actionSetArguments(results[action]));
    console.log(JSON.stringify({ ms: t.ms, keys: t.value.length }));
    return;
  }
  if (task.startsWith("glue:")) {
    const action = task.slice("glue:".length);
    const read = (f: string) => fs.readFileSync(path.join(TOP, f), "utf8");
    const ctx = new Context(PciPassthroughCharm, {
      metadata: read("metadata.yaml"),
      config: read("config.yaml"),
      actions: read("actions.yaml"),
      unitName: "pci-passthrough/0",
    });
    const t = timed(() => ctx.run(`${action}-action`, { config: SCALE_CONFIG, actionParams: {} }));
    console.log(JSON.stringify({ ms: t.ms, failure: t.value.actionFailure }));
    return;
  }
  throw new Error(`unknown scale task ${task}`);
}

/** Runs a scale task in a child with the time limit. */
function child(task: string, root: string): Bounded {
  const r = spawnSync(process.execPath, [process.argv[1]!, "--scale-child", task, root], {
    encoding: "utf8",
    timeout: CHILD_LIMIT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error || r.signal) {
    return { ms: null, note: `did not finish in ${CHILD_LIMIT_MS / 1000} s` };
  }
  if (r.status !== 0) return { ms: null, note: `failed: ${r.stderr.trim().split("\n").pop()}` };
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as { ms: number; failure?: string };
  return { ms: out.ms, note: out.failure ? `action failed: ${out.failure.slice(0, 160)}` : "" };
}

function measureHost(n: number, runs: number): ScaleRow {
  const build = timed(() => buildHost(n));
  const host = build.value;
  try {
    timedActionSteps(host.root); // warm: page cache, JIT
    const all: Array<Record<string, number>> = [];
    let last = timedActionSteps(host.root);
    all.push(last.parts);
    for (let i = 1; i < runs; i++) {
      last = timedActionSteps(host.root);
      all.push(last.parts);
    }
    const parts = Object.fromEntries(
      Object.keys(all[0]!).map((k) => [k, median(all.map((p) => p[k]!))]),
    );
    const actions: Action[] = ["list-devices", "verify-iommu"];
    const work = Object.fromEntries(
      actions.map((a) => {
        const ms = last.work[a].reduce((sum, k) => sum + parts[k]!, 0);
        return [a, { ms, usPerFunction: (ms * 1000) / n }];
      }),
    ) as ScaleRow["work"];
    return {
      functions: n,
      selected: last.selected,
      buildMs: build.ms,
      parts,
      work,
      results: Object.fromEntries(
        actions.map((a) => [a, resultSize(last.results[a])]),
      ) as ScaleRow["results"],
      flatten: Object.fromEntries(
        actions.map((a) => [a, child(`flatten:${a}`, host.root)]),
      ) as ScaleRow["flatten"],
      glue: Object.fromEntries(
        actions.map((a) => [a, child(`glue:${a}`, host.root)]),
      ) as ScaleRow["glue"],
    };
  } finally {
    host.cleanup();
  }
}

/** Each action through the packed charm's dispatch: once under the real simulator, then `runs`
 * times with instant tools answering what the simulator answered. */
function endToEnd(n: number, runs: number): ScaleResult["endToEnd"] {
  const host = buildHost(n);
  const charm = unpackCharm();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pci-bench-e2e-"));
  try {
    const sim = simulateUnit(charm, path.join(dir, "sim"), SCALE_CONFIG);
    // The floor: list the bus, read each function's uevent and iommu_group link, nothing else.
    const floorCmd = {
      argv: [charm.runtime, path.join(TOP, "bench", "floor.mjs"), host.root],
      env: { PATH: charm.sysbin },
    };
    const one = (action: Action): { simulator: Bounded; instant: Bounded; floor: Bounded } => {
      const event = { name: `${action}-action`, params: {} };
      const extra = { PCI_PASSTHROUGH_ROOT: host.root };
      const t0 = process.hrtime.bigint();
      let captured: ReturnType<typeof captureEvent>;
      try {
        captured = captureEvent(sim, charm, host.root, event);
      } catch (e) {
        return {
          simulator: { ms: null, note: (e as Error).message.slice(0, 300) },
          instant: { ms: null, note: "not run" },
          floor: { ms: null, note: "not run" },
        };
      }
      const simulatorMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const last = sim.readState().lastAction;
      const outcome = last?.failed ? `action failed: ${last.failureMessage?.slice(0, 160)}` : "";
      const tools = writeInstantTools(path.join(dir, `instant-${action}`), captured.calls);
      const env = sim.env(event, { path: charm.sysbin, extra });
      env.PATH = env.PATH!.replace(sim.binDir, tools.binDir);
      const times: number[] = [];
      const floors: number[] = [];
      for (let i = 0; i < runs; i++) {
        const r = timeRun({ argv: [path.join(charm.charmDir, "dispatch")], env });
        if (r.exitCode !== 0) {
          return {
            simulator: { ms: simulatorMs, note: outcome },
            instant: { ms: null, note: `exit ${r.exitCode}: ${r.stderr.slice(0, 300)}` },
            floor: { ms: null, note: "not run" },
          };
        }
        times.push(r.ms);
        const f = timeRun(floorCmd);
        if (f.exitCode !== 0 || f.stdout.trim() !== String(n)) {
          throw new Error(`bench/floor.mjs read ${f.stdout.trim()} of ${n}: ${f.stderr}`);
        }
        floors.push(f.ms);
      }
      return {
        simulator: { ms: simulatorMs, note: outcome },
        instant: { ms: median(times), note: outcome },
        floor: { ms: median(floors), note: "" },
      };
    };
    return {
      functions: n,
      "list-devices": one("list-devices"),
      "verify-iommu": one("verify-iommu"),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    charm.cleanup();
    host.cleanup();
  }
}

/** The scale benchmark. */
export function benchScale(runs: number): ScaleResult {
  const rows = SCALE_SIZES.map((n) => measureHost(n, n >= 10_000 ? Math.max(3, runs >> 1) : runs));
  const at = (n: number) => rows.find((r) => r.functions === n)!;
  const ratio = (a: Action) => at(10_000).work[a].ms / at(1_000).work[a].ms;
  return {
    config: SCALE_CONFIG,
    pciIds: fs.existsSync(MACHINE_PCI_IDS) ? MACHINE_PCI_IDS : null,
    childLimitMs: CHILD_LIMIT_MS,
    rows,
    workRatio10kTo1k: {
      "list-devices": ratio("list-devices"),
      "verify-iommu": ratio("verify-iommu"),
    },
    endToEnd: endToEnd(10_000, Math.max(3, runs >> 1)),
  };
}
