// The exporter's budget (issue 26): a scrape ≤ 50 ms at 1,000 PCI functions and ≤ 300 ms at
// 10,000, resident memory ≤ 60 MiB. Run after `npm run build` (or pack):
//   node scripts/run-ts.mjs bench/exporter.ts [--scrapes N]
// which runs it with the charm's own runtime. For each size: a synthetic SR-IOV host tree
// (syntheticHost(n): ConnectX-5 PFs and VFs, every VF selected and on vfio-pci), the plan the install hook makes there written where
// the charm writes it, and a /proc of 400 processes with 16 fds each (a busy compute host: the
// in-use check reads every process's fds). Then dist/exporter.js runs as systemd runs it (its
// own process, this runtime) and is scraped over HTTP: warm-up scrapes, then N timed ones.
// Measured: the wall time of each HTTP scrape, the exporter's own scrape_duration gauge, and
// VmRSS / VmHWM (peak) of the exporter process after the scrapes.
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { EXPORTER_OWNED } from "../src/host/root";
import { EXPORTER_NODE_OPTIONS, summarisePlan } from "../src/plan/exporter-files";
import { freePort } from "../tests/support/free-port";
import { makeTempHost } from "../tests/support/hosts/build-host";
import { syntheticHost } from "../tests/support/hosts/presets";
import { planOnTree } from "../tests/support/plan-on-tree";
import { machineInfo, median } from "./lib/measure";
import { TOP } from "./lib/packed-charm";

const SIZES = [1_000, 10_000] as const;
const BUDGET_MS: Record<number, number> = { 1000: 50, 10000: 300 };
const RSS_BUDGET_MIB = 60;

function fakeProc(root: string): void {
  for (let pid = 1000; pid < 1400; pid++) {
    const fd = path.join(root, "proc", String(pid), "fd");
    fs.mkdirSync(fd, { recursive: true });
    fs.writeFileSync(path.join(root, "proc", String(pid), "cmdline"), "/usr/bin/daemon\0");
    for (let n = 0; n < 16; n++)
      fs.symlinkSync(n < 3 ? "/dev/null" : `socket:[${pid * 100 + n}]`, path.join(fd, String(n)));
  }
}

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

interface Row {
  functions: number;
  planned: number;
  wallMs: number[];
  ownMs: number[];
  /** CPU ms per scrape (the exporter process's utime + stime over the timed scrapes). */
  cpuMs: number;
  rssMiB: number;
  peakMiB: number;
  bytes: number;
}

async function measure(n: number, scrapes: number): Promise<Row> {
  // The steady state: every planned VF on vfio-pci (so /dev/vfio nodes exist and every scrape
  // reads every process's fds), the PFs on mlx5_core.
  const spec = syntheticHost(n);
  const host = makeTempHost({
    ...spec,
    pci: spec.pci!.map((p) => (p.physfn ? { ...p, driver: "vfio-pci" } : p)),
  });
  let child: ChildProcess | null = null;
  try {
    const { plan } = planOnTree(host.root, { devices: "15b3:1018" });
    const file = path.join(host.root, EXPORTER_OWNED.plan);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify(summarisePlan(plan))}\n`);
    fakeProc(host.root);
    const port = await freePort();
    const exporter = spawn(
      process.execPath,
      [path.join(TOP, "dist", "exporter.js"), "--listen", `127.0.0.1:${port}`],
      {
        // As the unit file runs it (plan/exporter-files.ts: NODE_OPTIONS).
        env: { PCI_PASSTHROUGH_ROOT: host.root, NODE_OPTIONS: EXPORTER_NODE_OPTIONS },
        stdio: ["ignore", "ignore", "pipe"],
      },
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
    const scrape = async () => {
      const t0 = process.hrtime.bigint();
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const wall = Number(process.hrtime.bigint() - t0) / 1e6;
      const own =
        Number(/^pci_passthrough_exporter_scrape_duration_seconds (\S+)$/m.exec(text)?.[1]) * 1000;
      return { wall, own, bytes: text.length };
    };
    for (let i = 0; i < 5; i++) await scrape();
    const wallMs: number[] = [];
    const ownMs: number[] = [];
    let bytes = 0;
    const cpu0 = cpuSeconds(exporter.pid!);
    for (let i = 0; i < scrapes; i++) {
      const r = await scrape();
      wallMs.push(r.wall);
      ownMs.push(r.own);
      bytes = r.bytes;
    }
    return {
      functions: n,
      planned: plan.bind.length,
      wallMs,
      ownMs,
      cpuMs: ((cpuSeconds(exporter.pid!) - cpu0) * 1000) / scrapes,
      rssMiB: status(exporter.pid!, "VmRSS"),
      peakMiB: status(exporter.pid!, "VmHWM"),
      bytes,
    };
  } finally {
    child?.kill("SIGKILL");
    host.cleanup();
  }
}

const p95 = (v: number[]) =>
  [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * 0.95))]!;
const f = (x: number) => x.toFixed(1);

async function main(): Promise<void> {
  const at = process.argv.indexOf("--scrapes");
  const scrapes = at >= 0 ? Number(process.argv[at + 1]) : 30;
  const rows: Row[] = [];
  for (const n of SIZES) {
    process.stderr.write(`bench exporter: ${n} functions...\n`);
    rows.push(await measure(n, scrapes));
  }
  const m = machineInfo();
  const out = [
    `Run ${new Date().toISOString()} on ${m.cpu} (${m.cores} cores), load ${fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}; runtime Node.js ${process.versions.node}; ${scrapes} timed scrapes after 5 warm-up ones.`,
    "",
    "| functions (planned) | scrape wall median / p95 ms | exporter's own median ms | CPU ms a scrape | budget (own median) | VmRSS / peak MiB (≤ 60) | exposition |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map(
      (r) =>
        `| ${r.functions.toLocaleString("en")} (${r.planned.toLocaleString("en")}) | ${f(median(r.wallMs))} / ${f(p95(r.wallMs))} | ${f(median(r.ownMs))} | ${f(r.cpuMs)} | ≤ ${BUDGET_MS[r.functions]} ms: ${median(r.ownMs) <= BUDGET_MS[r.functions]! ? "met" : "NOT met"} | ${f(r.rssMiB)} / ${f(r.peakMiB)}: ${r.peakMiB <= RSS_BUDGET_MIB ? "met" : "NOT met"} | ${(r.bytes / 1024).toFixed(0)} KiB |`,
    ),
  ];
  console.log(out.join("\n"));
}

main().catch((error: Error) => {
  console.error(error.stack ?? String(error));
  process.exitCode = 1;
});
