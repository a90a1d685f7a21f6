// SR-IOV at scale (issue 15): the synthetic server of 8 PFs × 1,024 VFs plus the rest of a server
// (10,000 functions, sriovServerHost), every VF selected by one `vfs: 1024` entry. Measured:
// - end to end through the packed dispatch with instant sh stand-ins for the hook tools (a fork +
//   exec of sh per call, as Juju's jujuc): the first config-changed on the unprepared host (VFs not
//   there yet: once, on its own fresh tree), a no-op config-changed with the VFs on vfio-pci,
//   list-devices (VFs summarised, the default) and verify-iommu; median of runs;
// - where the time goes: the readers and pure steps the charm takes, in-process (median, JIT warm);
// - what Juju is asked to keep: stored state (each value, the largest key, the total) against
//   Juju's quotas, and the size of each action's results (one action-set call ≤ 1 MiB).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { actionSetArguments } from "ops-ts-shim";
import { makeTempHost } from "../tests/support/hosts/build-host";
import { SRIOV_SERVER_DEVICES, sriovServerHost } from "../tests/support/hosts/presets";
import { captureEvent } from "./latency";
import { actionSteps } from "./lib/action-steps";
import { writeInstantTools } from "./lib/instant-tools";
import { median, timed } from "./lib/measure";
import { simulateUnit, unpackCharm } from "./lib/packed-charm";

export const SRIOV_CONFIG = { devices: SRIOV_SERVER_DEVICES };

type Event =
  | "config-changed (first, VFs not there yet)"
  | "config-changed (no-op)"
  | "list-devices"
  | "verify-iommu";

export interface SriovEndToEnd {
  /** Median wall time. */
  ms: number | null;
  /** Median CPU time (user + sys of dispatch and every process it waited for). */
  cpuMs: number | null;
  runs: number;
  note: string;
  /** Hook-tool calls the event made. */
  calls: number;
}

export interface SriovResult {
  functions: number;
  vfs: number;
  config: Record<string, string>;
  endToEnd: Record<Event, SriovEndToEnd>;
  /** Median ms of each in-process step. */
  parts: Record<string, number>;
  /** action-set arguments of each action's results: keys and bytes (argv as execve counts it). */
  results: Record<"list-devices" | "verify-iommu", { keys: number; bytes: number }>;
  /** `node -e 0` with the charm's runtime, timed interleaved with the events: the machine's pace. */
  baseline: { ms: number; cpuMs: number };
  /** Load average before and after. */
  load: [string, string];
  /** Stored state after the first config-changed: bytes per key, and the total. */
  stored: { values: Record<string, number>; largestKey: number; total: number };
}

/** Wall and CPU time of one run: GNU time's user + sys covers dispatch, node and the hook tools. */
function cpuRun(
  argv: string[],
  env: NodeJS.ProcessEnv,
): { ms: number; cpuMs: number; exitCode: number; stderr: string } {
  const out = path.join(os.tmpdir(), `pci-bench-sriov-cpu-${process.pid}.txt`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync("/usr/bin/time", ["-f", "%U %S", "-o", out, ...argv], {
    env,
    encoding: "utf8",
    stdio: ["ignore", "ignore", "pipe"],
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const [user = "0", sys = "0"] = fs.existsSync(out)
    ? fs.readFileSync(out, "utf8").trim().split("\n").pop()!.split(" ")
    : [];
  fs.rmSync(out, { force: true });
  return {
    ms,
    cpuMs: (Number(user) + Number(sys)) * 1000,
    exitCode: r.status ?? -1,
    stderr: r.stderr ?? "",
  };
}

function resultBytes(results: Record<string, unknown>): { keys: number; bytes: number } {
  const args = actionSetArguments(results);
  let bytes = 0;
  for (const a of args) bytes += Buffer.byteLength(a) + 1;
  return { keys: args.length, bytes };
}

/** The in-process steps (JIT warm: median of runs). */
function steps(
  root: string,
  runs: number,
): { parts: SriovResult["parts"]; results: SriovResult["results"] } {
  const samples: Record<string, number[]> = {};
  let results: SriovResult["results"] | null = null;
  for (let i = 0; i < runs; i++) {
    const part = <T>(name: string, fn: () => T): T => {
      const r = timed(fn);
      const list = samples[name] ?? [];
      list.push(r.ms);
      samples[name] = list;
      return r.value;
    };
    const { results: all } = actionSteps(root, SRIOV_CONFIG, part);
    results ??= {
      "list-devices": resultBytes(all["list-devices"]),
      "verify-iommu": resultBytes(all["verify-iommu"]),
    };
  }
  const parts: Record<string, number> = {};
  for (const [k, v] of Object.entries(samples)) parts[k] = median(v);
  return { parts, results: results! };
}

export function benchSriov(runs: number): SriovResult {
  const charm = unpackCharm();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pci-bench-sriov-"));
  const booted = makeTempHost(sriovServerHost("vfio-pci"), "pci-bench-sriov-host-");
  const fresh = makeTempHost(sriovServerHost(null), "pci-bench-sriov-fresh-");
  try {
    const endToEnd = {} as SriovResult["endToEnd"];
    const baseline: number[] = [];
    const baselineCpu: number[] = [];
    const loadBefore = fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
    /** Captures `event` under the real simulator (which also brings the unit's state along),
     * then times it `times` times with instant stand-ins answering what the simulator answered. */
    const measure = (
      label: Event,
      sim: ReturnType<typeof simulateUnit>,
      root: string,
      event: Parameters<typeof captureEvent>[3],
      times: number,
    ): void => {
      let captured: ReturnType<typeof captureEvent>;
      try {
        captured = captureEvent(sim, charm, root, event);
      } catch (e) {
        endToEnd[label] = {
          ms: null,
          cpuMs: null,
          runs: 0,
          note: (e as Error).message.slice(0, 300),
          calls: 0,
        };
        return;
      }
      const last = sim.readState().lastAction;
      const note = last?.failed ? `action failed: ${last.failureMessage?.slice(0, 160)}` : "";
      const tools = writeInstantTools(
        path.join(dir, `instant-${label.replace(/\W+/g, "-")}`),
        captured.calls,
      );
      const env = sim.env(event, { path: charm.sysbin, extra: { PCI_PASSTHROUGH_ROOT: root } });
      env.PATH = env.PATH!.replace(sim.binDir, tools.binDir);
      const samples: number[] = [];
      const cpu: number[] = [];
      for (let i = 0; i < times; i++) {
        const b = cpuRun([charm.runtime, "-e", "0"], env);
        baseline.push(b.ms);
        baselineCpu.push(b.cpuMs);
        const r = cpuRun([path.join(charm.charmDir, "dispatch")], env);
        if (r.exitCode !== 0) {
          endToEnd[label] = {
            ms: null,
            cpuMs: null,
            runs: i,
            note: `exit ${r.exitCode}: ${r.stderr.slice(0, 300)}`,
            calls: captured.calls.length,
          };
          return;
        }
        samples.push(r.ms);
        cpu.push(r.cpuMs);
      }
      endToEnd[label] = {
        ms: median(samples),
        cpuMs: median(cpu),
        runs: times,
        note,
        calls: captured.calls.length,
      };
    };
    // The first config-changed writes the boot files: it happens once per host, so it is timed
    // once, on its own tree, under the real simulator (its tools are Node.js processes: an upper
    // bound) and then replayed with instant tools on a copy of the unprepared tree.
    const first = makeTempHost(sriovServerHost(null), "pci-bench-sriov-first-");
    let firstSim: ReturnType<typeof simulateUnit>;
    try {
      firstSim = simulateUnit(charm, path.join(dir, "first"), SRIOV_CONFIG);
      const captured = captureEvent(firstSim, charm, fresh.root, "config-changed");
      const tools = writeInstantTools(path.join(dir, "instant-first"), captured.calls);
      const env = firstSim.env("config-changed", {
        path: charm.sysbin,
        extra: { PCI_PASSTHROUGH_ROOT: first.root },
      });
      env.PATH = env.PATH!.replace(firstSim.binDir, tools.binDir);
      const r = cpuRun([path.join(charm.charmDir, "dispatch")], env);
      endToEnd["config-changed (first, VFs not there yet)"] = {
        ms: r.exitCode === 0 ? r.ms : null,
        cpuMs: r.exitCode === 0 ? r.cpuMs : null,
        runs: 1,
        note: r.exitCode === 0 ? "" : `exit ${r.exitCode}: ${r.stderr.slice(0, 300)}`,
        calls: captured.calls.length,
      };
    } finally {
      first.cleanup();
    }
    const state = firstSim.readState() as unknown as { stored?: Record<string, unknown> };
    const values: Record<string, number> = {};
    let total = 0;
    let largestKey = 0;
    for (const [k, v] of Object.entries(state.stored ?? {})) {
      const bytes = Buffer.byteLength(typeof v === "string" ? v : JSON.stringify(v));
      values[k] = bytes;
      total += bytes + Buffer.byteLength(k);
      largestKey = Math.max(largestKey, Buffer.byteLength(k));
    }
    // With the VFs on vfio-pci (after the boot): the unit prepares the host once, then a no-op
    // config-changed and the two actions are timed.
    const unit = simulateUnit(charm, path.join(dir, "booted"), SRIOV_CONFIG);
    captureEvent(unit, charm, booted.root, "config-changed");
    measure("config-changed (no-op)", unit, booted.root, "config-changed", runs);
    for (const action of ["list-devices", "verify-iommu"] as const) {
      measure(action, unit, booted.root, { name: `${action}-action`, params: {} }, runs);
    }
    const { parts, results } = steps(booted.root, Math.max(3, runs));
    return {
      functions: 10_000,
      vfs: 8 * 1024,
      config: SRIOV_CONFIG,
      endToEnd,
      parts,
      results,
      baseline: { ms: median(baseline), cpuMs: median(baselineCpu) },
      load: [loadBefore, fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")],
      stored: { values, largestKey, total },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    charm.cleanup();
    booted.cleanup();
    fresh.cleanup();
  }
}
