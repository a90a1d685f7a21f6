// The exporter's budget (issue 26): a scrape ≤ 50 ms at 1,000 PCI functions and ≤ 300 ms at
// 10,000 (wall, as the scraper sees it), resident memory ≤ 60 MiB. Run after `npm run build` (or
// pack), under the shared lock on a shared machine:
//   flock /tmp/heavy.lock node scripts/run-ts.mjs bench/exporter.ts [--scrapes N] [--runs R]
// which runs it with the charm's own runtime. For each size: a synthetic SR-IOV host tree
// (syntheticHost(n): ConnectX-5 PFs and VFs, every VF selected and on vfio-pci), the plan the
// install hook makes there written where the charm writes it, and a /proc of 400 processes with 16
// fds each (a busy compute host: every group has a /dev/vfio node, so each scrape reads every
// process's fds). Then dist/exporter.js runs as the unit file runs it (its own process, this
// runtime, the unit's flags: plan/exporter-files.ts EXPORTER_NODE_FLAGS), and, for comparison, with
// the runtime's defaults. Each run is a new process: its RSS before any scrape, 5 warm-up scrapes,
// then N timed ones over HTTP (fetch, one at a time). Measured per run: each scrape's wall time,
// the process's CPU (utime + stime) over the timed scrapes, and VmHWM (peak resident set, which
// counts the runtime's own code paged in) and VmRSS after them, from /proc/<pid>/status.
// Reported: the median and p95 of every timed scrape of every run, the median CPU a scrape, and
// the highest peak of the runs.
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { EXPORTER_OWNED } from "../src/host/root";
import { EXPORTER_NODE_FLAGS, summarisePlan } from "../src/plan/exporter-files";
import { freePort } from "../tests/support/free-port";
import { makeTempHost } from "../tests/support/hosts/build-host";
import { syntheticHost } from "../tests/support/hosts/presets";
import { planOnTree } from "../tests/support/plan-on-tree";
import { machineInfo, median } from "./lib/measure";
import { TOP } from "./lib/packed-charm";

const SIZES = [1_000, 10_000] as const;
const BUDGET_MS: Record<number, number> = { 1000: 50, 10000: 300 };
const RSS_BUDGET_MIB = 60;
const CONFIGS: Array<{ name: string; flags: readonly string[] }> = [
  { name: "unit's flags", flags: EXPORTER_NODE_FLAGS },
  { name: "runtime defaults", flags: [] },
];

function fakeProc(root: string): void {
  for (let pid = 1000; pid < 1400; pid++) {
    const fd = path.join(root, "proc", String(pid), "fd");
    fs.mkdirSync(fd, { recursive: true });
    fs.writeFileSync(path.join(root, "proc", String(pid), "cmdline"), "/usr/bin/daemon\0");
    for (let n = 0; n < 16; n++)
      fs.symlinkSync(n < 3 ? "/dev/null" : `socket:[${pid * 100 + n}]`, path.join(fd, String(n)));
  }
}

/** A /proc/<pid>/status field in MiB. */
function status(pid: number, field: string): number {
  const line = fs
    .readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${field}:`));
  return Number(/(\d+)/.exec(line ?? "")?.[1] ?? Number.NaN) / 1024;
}

/** CPU seconds the process used so far (utime + stime, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Run {
  wallMs: number[];
  /** CPU ms a scrape, over the timed scrapes. */
  cpuMs: number;
  idleMiB: number;
  rssMiB: number;
  peakMiB: number;
  bytes: number;
}

/** One exporter process on the host at `root`: started, scraped, measured, killed. */
async function runOnce(root: string, flags: readonly string[], scrapes: number): Promise<Run> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  try {
    const exporter = spawn(
      process.execPath,
      [...flags, path.join(TOP, "dist", "exporter.js"), "--listen", `127.0.0.1:${port}`],
      { env: { PCI_PASSTHROUGH_ROOT: root }, stdio: ["ignore", "ignore", "pipe"] },
    );
    child = exporter;
    await new Promise<void>((resolve, reject) => {
      let err = "";
      exporter.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        if (err.includes("listening on")) resolve();
      });
      exporter.once("exit", (code) => reject(new Error(`exporter exited ${code}: ${err}`)));
    });
    const pid = exporter.pid!;
    const idleMiB = status(pid, "VmRSS");
    const scrape = async () => {
      const t0 = process.hrtime.bigint();
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return { wall: Number(process.hrtime.bigint() - t0) / 1e6, bytes: Buffer.byteLength(text) };
    };
    for (let i = 0; i < 5; i++) await scrape();
    const wallMs: number[] = [];
    let bytes = 0;
    const cpu0 = cpuSeconds(pid);
    for (let i = 0; i < scrapes; i++) {
      const r = await scrape();
      wallMs.push(r.wall);
      bytes = r.bytes;
    }
    return {
      wallMs,
      cpuMs: ((cpuSeconds(pid) - cpu0) * 1000) / scrapes,
      idleMiB,
      rssMiB: status(pid, "VmRSS"),
      peakMiB: status(pid, "VmHWM"),
      bytes,
    };
  } finally {
    child?.kill("SIGKILL");
  }
}

interface Row {
  functions: number;
  planned: number;
  config: string;
  runs: Run[];
}

const p95 = (v: number[]) =>
  [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * 0.95))]!;
const f = (x: number) => x.toFixed(1);
const verdict = (ok: boolean) => (ok ? "met" : "**missed**");

async function main(): Promise<void> {
  const option = (name: string, fallback: number) => {
    const at = process.argv.indexOf(name);
    return at >= 0 ? Number(process.argv[at + 1]) : fallback;
  };
  const scrapes = option("--scrapes", 30);
  const runs = option("--runs", 3);
  const rows: Row[] = [];
  for (const n of SIZES) {
    process.stderr.write(`bench exporter: ${n} functions...\n`);
    // The steady state: every planned VF on vfio-pci (so /dev/vfio nodes exist and every scrape
    // reads every process's fds), the PFs on mlx5_core.
    const spec = syntheticHost(n);
    const host = makeTempHost({
      ...spec,
      pci: spec.pci!.map((p) => (p.physfn ? { ...p, driver: "vfio-pci" } : p)),
    });
    try {
      const { plan } = planOnTree(host.root, { devices: "15b3:1018" });
      const file = path.join(host.root, EXPORTER_OWNED.plan);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, `${JSON.stringify(summarisePlan(plan))}\n`);
      fakeProc(host.root);
      const sized = CONFIGS.map((c) => ({
        functions: n,
        planned: plan.bind.length,
        config: c.name,
        runs: [] as Run[],
      }));
      // The configurations interleaved, run by run: the machine's load falls on both alike.
      for (let r = 0; r < runs; r++) {
        for (const [i, c] of CONFIGS.entries()) {
          sized[i]!.runs.push(await runOnce(host.root, c.flags, scrapes));
        }
      }
      rows.push(...sized);
    } finally {
      host.cleanup();
    }
  }
  const m = machineInfo();
  const load = fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const out = [
    `Run ${new Date().toISOString()} on ${m.cpu} (${m.cores} cores), load ${load}; runtime Node.js ${process.versions.node}; ${runs} runs of ${scrapes} timed scrapes after 5 warm-up ones, each run a new exporter process. Unit's flags: \`${EXPORTER_NODE_FLAGS.join(" ")}\`.`,
    "",
    `| functions (planned) | runtime flags | scrape wall median / p95 ms | budget | CPU ms a scrape | RSS before a scrape MiB | peak RSS (VmHWM) MiB | ≤ ${RSS_BUDGET_MIB} MiB | exposition |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map((r) => {
      const wall = r.runs.flatMap((x) => x.wallMs);
      const peak = Math.max(...r.runs.map((x) => x.peakMiB));
      const budget = BUDGET_MS[r.functions]!;
      return `| ${r.functions.toLocaleString("en")} (${r.planned.toLocaleString("en")}) | ${r.config} | ${f(median(wall))} / ${f(p95(wall))} | ≤ ${budget} ms: ${verdict(median(wall) <= budget)} | ${f(median(r.runs.map((x) => x.cpuMs)))} | ${f(median(r.runs.map((x) => x.idleMiB)))} | ${f(peak)} | ${verdict(peak <= RSS_BUDGET_MIB)} | ${(r.runs[0]!.bytes / 1024).toFixed(0)} KiB |`;
    }),
  ];
  console.log(out.join("\n"));
}

main().catch((error: Error) => {
  console.error(error.stack ?? String(error));
  process.exitCode = 1;
});
