// Where a no-op hook's time goes, for when the latency target is missed:
// 1. load-only bundles (built exactly like scripts/build.mjs) against `node -e 0`: what loading
//    yaml, the generated ajv validators, and the whole charm costs before any work is done;
// 2. `node --cpu-prof` of the real bundle (rebuilt with a source map) running a no-op hook as
//    dispatch runs it (config and state piped in, compile cache warm), each
//    sample's function mapped back to its source file, self time summed per module group.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { SourceMap } from "node:module";
import * as path from "node:path";
import { type BuildOptions, buildSync } from "esbuild";
import { BUNDLE_OPTIONS } from "../scripts/bundle-options.mjs";
import type { LatencyUnit } from "./latency";
import { type Command, type CpuTimed, median, timeWithCpu } from "./lib/measure";
import { TOP } from "./lib/packed-charm";

/** The options scripts/build.mjs builds with, so what is measured is what ships. That build keeps
 * yaml apart in dist/yaml.js, required on first use; `external` does the same here (buildSync takes
 * no plugins), so none of these bundles parses or loads yaml unless a variant imports it. */
const SHIPPED: BuildOptions = { ...BUNDLE_OPTIONS, logLevel: "silent", external: ["yaml"] };

const OUT = path.join(TOP, "build", "bench", "profile");

/** Load-only entries: each imports something and keeps it alive, and does nothing else. */
const VARIANTS: Record<string, string> = {
  "yaml (import only; the charm requires it only for a YAML devices value)": `const { parse } = require("./dist/yaml.js"); (globalThis as any).k = parse;`,
  "generated ajv validators (import only)": `import * as v from "./src/generated/validators.js"; (globalThis as any).k = v;`,
  "ops-ts-shim (import only)": `import * as shim from "ops-ts-shim"; (globalThis as any).k = shim;`,
  "whole charm (import only, main not called)": `import { main } from "ops-ts-shim"; import { PciPassthroughCharm } from "./src/pci-passthrough-charm"; (globalThis as any).k = [main, PciPassthroughCharm];`,
};

function buildVariant(name: string, contents: string): string {
  const file = path.join(OUT, `${name.replace(/[^a-z0-9]+/gi, "-")}.cjs`);
  buildSync({ ...SHIPPED, stdin: { contents, resolveDir: TOP, loader: "ts" }, outfile: file });
  return file;
}

export interface ProfileResult {
  runs: number;
  event: string;
  /** Median wall/CPU ms of each load-only bundle, and the same minus `node -e 0`. */
  loads: Array<{ name: string; medianMs: number; cpuMedianMs: number; extraCpuMs: number }>;
  /** Self time (ms, median over the profiled runs) by module group, largest first. */
  selfMs: Array<{ group: string; ms: number }>;
  /** Median length of the profiled part of the run (V8 profiling starts after bootstrap). */
  profiledMs: number;
}

/** Where a source file goes in the table. */
function groupOf(source: string): string {
  const rel = source.replace(/^(\.\.\/)+/, "");
  const m =
    /(node_modules\/[^/]+)|(ops-ts-shim\/src)|(src\/generated)|(src\/[^/]+?)(?:\/|\.ts$)/.exec(rel);
  return m ? m[0].replace(/\/$/, "").replace(/\.ts$/, ".ts") : rel;
}

/** Node's own modules, by what they do. */
function nodeInternal(url: string): string {
  if (/child_process|spawn/.test(url)) return "node: child_process (hook tools: spawnSync)";
  if (/modules\/|vm|source_map/.test(url)) return "node: module loader";
  if (/\/fs|internal\/fs/.test(url)) return "node: fs";
  return `node: other (${url.replace(/^node:(internal\/)?/, "")})`;
}

interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  }>;
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time per group of one profile, in ms. */
function selfTimes(profile: CpuProfile, bundleUrl: string, map: SourceMap): Map<string, number> {
  const groupOfNode = new Map<number, string>();
  for (const n of profile.nodes) {
    const f = n.callFrame;
    let group: string;
    if (f.url === bundleUrl || f.url === bundleUrl.replace(/^file:\/\//, "")) {
      const entry = map.findEntry(f.lineNumber, f.columnNumber) as { originalSource?: string };
      group = entry.originalSource ? groupOf(entry.originalSource) : "bundle (unmapped)";
      if (process.env.PROFILE_FUNCTIONS) group = `${group} ${f.functionName || "(top level)"}`;
    } else if (f.url.startsWith("node:")) group = nodeInternal(f.url);
    else if (f.url === "") {
      group =
        f.functionName === "(garbage collector)"
          ? "garbage collector"
          : f.functionName === "(idle)"
            ? "idle (waiting: hook tools, I/O)"
            : f.functionName === "(program)"
              ? "V8/native (parse, compile, bootstrap)"
              : `native ${f.functionName}`;
    } else group = f.url;
    groupOfNode.set(n.id, group);
  }
  const out = new Map<string, number>();
  // timeDeltas[i] is the time before samples[i]; charge it to the sample that ends it.
  for (let i = 0; i < profile.samples.length; i++) {
    const g = groupOfNode.get(profile.samples[i]!) ?? "?";
    out.set(g, (out.get(g) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  return out;
}

/** Interleaved runs of named commands: median wall and CPU of each, and CPU beyond the first. */
function compare(
  commands: Array<[string, Command]>,
  runs: number,
): Array<{ name: string; medianMs: number; cpuMedianMs: number; extraCpuMs: number }> {
  const samples = new Map<string, CpuTimed[]>();
  for (let i = 0; i < runs + 2; i++) {
    for (let j = 0; j < commands.length; j++) {
      const [name, cmd] = commands[(i + j) % commands.length]!;
      const r = timeWithCpu(cmd);
      if (r.exitCode !== 0) throw new Error(`${name}: exit ${r.exitCode}`);
      if (i >= 2) samples.set(name, [...(samples.get(name) ?? []), r]);
    }
  }
  const cpu = (name: string) => median(samples.get(name)!.map((s) => s.userMs + s.sysMs));
  const baseCpu = cpu(commands[0]![0]);
  return commands.map(([name]) => ({
    name,
    medianMs: median(samples.get(name)!.map((s) => s.realMs)),
    cpuMedianMs: cpu(name),
    extraCpuMs: cpu(name) - baseCpu,
  }));
}

/** A startup snapshot of the charm (node --build-snapshot): every module loaded and compiled at
 * build time, main() run on deserialization. Returns null when the runtime cannot build one. */
function buildSnapshot(runtime: string): string | null {
  const entry = path.join(OUT, "snapshot-entry.cjs");
  buildSync({
    ...SHIPPED,
    stdin: {
      contents: `import * as v8 from "node:v8"; import { main } from "ops-ts-shim"; import { PciPassthroughCharm } from "./src/pci-passthrough-charm"; v8.startupSnapshot.setDeserializeMainFunction(() => { process.exitCode = main(PciPassthroughCharm); });`,
      resolveDir: TOP,
      loader: "ts",
    },
    outfile: entry,
  });
  const blob = path.join(OUT, "charm.snapshot");
  const r = spawnSync(runtime, ["--snapshot-blob", blob, "--build-snapshot", entry], {
    cwd: OUT,
    encoding: "utf8",
  });
  return r.status === 0 ? blob : null;
}

/** A startup snapshot of nothing: what Node.js pays to start from any user-land snapshot (it
 * reads the blob, megabytes, and deserializes a whole heap, where `node -e 0` uses the one built
 * into the binary). Null when the runtime cannot build one. */
function buildEmptySnapshot(runtime: string): string | null {
  const entry = path.join(OUT, "empty-snapshot-entry.cjs");
  fs.writeFileSync(
    entry,
    'require("node:v8").startupSnapshot.setDeserializeMainFunction(() => {});\n',
  );
  const blob = path.join(OUT, "empty.snapshot");
  const r = spawnSync(runtime, ["--snapshot-blob", blob, "--build-snapshot", entry], { cwd: OUT });
  return r.status === 0 ? blob : null;
}

/** What dispatch pipes into the charm: its early config-get and state-get, run with the same
 * (instant) tools, in the ops-ts-shim withPrefetched format. */
function prefetched(env: NodeJS.ProcessEnv): string {
  return [
    ["config-get", "--format=json", "--all"],
    ["state-get", "--format=json"],
  ]
    .map((argv) => {
      const r = spawnSync(argv[0]!, argv.slice(1), { env, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`${argv.join(" ")}: exit ${r.status}`);
      return `${argv.join(" ")}\t${r.stdout.trim()}\n`;
    })
    .join("");
}

/** Profiles `runs` runs of the event as dispatch runs it (bundle rebuilt with a source map,
 * the prefetched reads on stdin, a warm compile cache), and measures what loading costs and
 * what the alternatives would. */
export function profileHook(
  unit: LatencyUnit,
  runs: number,
  event = "config-changed",
): ProfileResult {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  const runtime = unit.charm.runtime;
  const { dispatch, direct } = unit.cmds[event as keyof LatencyUnit["cmds"]];
  const tool = path.join(unit.tools.binDir, "state-get");

  // 1. load-only variants and what-ifs against node -e 0, interleaved.
  const snapshot = buildSnapshot(runtime);
  const emptySnapshot = buildEmptySnapshot(runtime);
  const node = (code: string): Command => ({ argv: [runtime, "-e", code], env: direct.env });
  const loads = compare(
    [
      ["node -e 0", unit.baseline],
      ...Object.entries(VARIANTS).map(([name, code]): [string, Command] => [
        name,
        { argv: [runtime, buildVariant(name, code)], env: unit.baseline.env },
      ]),
      [
        "first Intl collator (localeCompare with options; the charm compares by hand)",
        node(`"dmar10".localeCompare("dmar2", "en", { numeric: true })`),
      ],
      [
        "two spawnSync of an instant sh hook tool (what the two reads would cost from node)",
        node(
          `const c = require("child_process"); c.spawnSync(${JSON.stringify(tool)}); c.spawnSync(${JSON.stringify(tool)});`,
        ),
      ],
      [`${event} hook through dispatch (as shipped: its quiet-hook memo standing)`, dispatch],
      [`${event} hook, bundle run directly (no prefetch, no compile cache)`, direct],
      ...(snapshot
        ? [
            [
              `${event} hook from a startup snapshot (what-if; no prefetch)`,
              { argv: [runtime, "--snapshot-blob", snapshot], env: direct.env },
            ] as [string, Command],
          ]
        : []),
      ...(emptySnapshot
        ? [
            [
              "an EMPTY startup snapshot (the floor of any snapshot: its blob read and deserialized)",
              { argv: [runtime, "--snapshot-blob", emptySnapshot], env: direct.env },
            ] as [string, Command],
          ]
        : []),
    ],
    runs,
  );

  // 2. CPU profiles of the real hook, run the way dispatch runs it.
  // dispatch runs dist/charm.js, the loader of dist/charm.code.js with its after-run V8 code
  // cache (scripts/build.mjs): the shipped loader, beside the bundle rebuilt with a source map.
  // Its cache name carries the shipped bundle's digest; V8 rejects the cache of another length
  // and the warm-up run below writes this bundle's.
  const bundle = path.join(OUT, "charm.code.js");
  const loader = path.join(OUT, "charm.js");
  fs.copyFileSync(path.join(unit.charm.charmDir, "dist", "charm.js"), loader);
  // The loader runs the quiet-hook probe first; its memo is removed before each run below, so
  // what is profiled is the whole charm (a hook whose inputs changed), memo recording included.
  const memo = path.join(OUT, "..", ".quiet-hooks", event);
  buildSync({
    ...SHIPPED,
    entryPoints: [path.join(TOP, "src", "charm.ts")],
    outfile: bundle,
    sourcemap: "external",
    sourcesContent: false,
  });
  const input = prefetched(direct.env);
  const env = {
    ...direct.env,
    OPS_TS_PREFETCHED: "stdin",
    NODE_COMPILE_CACHE: path.join(OUT, "compile-cache"),
  };
  spawnSync(runtime, [loader], { env, input }); // fills the compile cache, as a first hook does
  const perGroup = new Map<string, number[]>();
  const lengths: number[] = [];
  for (let i = 0; i < runs; i++) {
    fs.rmSync(memo, { force: true });
    const dir = path.join(OUT, `prof-${i}`);
    const r = spawnSync(
      runtime,
      ["--cpu-prof", "--cpu-prof-dir", dir, "--cpu-prof-interval", "100", loader],
      { env, input, encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`profiled ${event} failed: ${r.stderr}`);
    const file = fs.readdirSync(dir).find((f) => f.endsWith(".cpuprofile"))!;
    const profile = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as CpuProfile;
    lengths.push((profile.endTime - profile.startTime) / 1000);
    for (const [g, ms] of selfTimes(profile, `file://${bundle}`, map())) {
      perGroup.set(g, [...(perGroup.get(g) ?? []), ms]);
    }
  }
  const selfMs = [...perGroup]
    .map(([group, all]) => ({ group, ms: median([...all, ...Array(runs - all.length).fill(0)]) }))
    .sort((a, b) => b.ms - a.ms);
  return { runs, event, loads, selfMs, profiledMs: median(lengths) };

  function map(): SourceMap {
    return new SourceMap(JSON.parse(fs.readFileSync(`${bundle}.map`, "utf8")));
  }
}
