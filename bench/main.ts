// The benchmark entry (bundled and run by bench/run.mjs with the charm's own runtime). Sections:
// latency, profile, scale, idempotence (default: all). Writes bench/results.json and prints the
// tables as markdown (what bench/RESULTS.md quotes). `--runs N` sets the timed runs per command.
import * as fs from "node:fs";
import * as path from "node:path";
import { benchIdempotence } from "./idempotence";
import { benchLatency, deployLatencyUnit } from "./latency";
import { machineInfo } from "./lib/measure";
import { TOP } from "./lib/packed-charm";
import { profileHook } from "./profile";
import { type BenchResults, report } from "./report";
import { benchScale, scaleChild } from "./scale";
import { benchSriov } from "./sriov";

const SECTIONS = ["latency", "profile", "scale", "idempotence", "sriov"] as const;
type Section = (typeof SECTIONS)[number];

function run(): void {
  const args = process.argv.slice(2);
  if (args[0] === "--scale-child") {
    scaleChild(args[1]!, args[2]!);
    return;
  }
  const runsAt = args.indexOf("--runs");
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 30;
  const asked = args.filter((a): a is Section => (SECTIONS as readonly string[]).includes(a));
  const sections = asked.length > 0 ? asked : [...SECTIONS];
  const results: BenchResults = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    loadAtEnd: "",
  };
  const step = (name: string) => process.stderr.write(`bench: ${name}...\n`);

  if (sections.includes("latency") || sections.includes("profile")) {
    step("deploying the packed charm on the seed host (real simulator)");
    const unit = deployLatencyUnit();
    try {
      if (sections.includes("latency")) {
        step(`hook latency (${runs} interleaved runs per command)`);
        results.latency = benchLatency(unit, runs);
      }
      if (sections.includes("profile")) {
        step("profile: load-only bundles, what-ifs, --cpu-prof");
        results.profile = profileHook(unit, Math.max(8, Math.round(runs / 3)));
      }
    } finally {
      unit.cleanup();
    }
  }
  if (sections.includes("scale")) {
    step("scale: synthetic hosts of 100, 1,000 and 10,000 functions");
    results.scale = benchScale(Math.max(3, Math.round(runs / 10)));
  }
  if (sections.includes("idempotence")) {
    step("idempotence: second identical hooks");
    results.idempotence = benchIdempotence();
  }
  if (sections.includes("sriov")) {
    step("sriov: 8 PFs x 1,024 VFs and the rest of a server, every VF selected");
    results.sriov = benchSriov(Math.max(3, Math.round(runs / 5)));
  }
  results.loadAtEnd = machineInfo().loadAverage as string;
  fs.writeFileSync(
    path.join(TOP, "bench", "results.json"),
    `${JSON.stringify(results, null, 1)}\n`,
  );
  process.stdout.write(report(results));
}

run();
