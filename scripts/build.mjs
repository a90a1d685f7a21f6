// Bundles the charm into one file, dist/charm.js, so the packed charm needs no node_modules.
// CommonJS output: the packed charm has no package.json saying "type": "module".
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const top = join(dirname(fileURLToPath(import.meta.url)), "..");
mkdirSync(join(top, "dist"), { recursive: true });
const result = await build({
  entryPoints: [join(top, "src", "charm.ts")],
  outfile: join(top, "dist", "charm.js"),
  bundle: true,
  platform: "node",
  format: "cjs",
  // The oldest runtime dispatch accepts from PATH; the bundled one is newer.
  target: "node20",
  // Smaller is faster to load on every hook; names are kept so stack traces stay readable.
  minifySyntax: true,
  minifyWhitespace: true,
  keepNames: true,
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`build: dist/charm.js (${(bytes / 1024).toFixed(0)} KiB)`);
