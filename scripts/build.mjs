// Bundles the charm into dist/ (charm.js for hooks, actions.js for actions, yaml.js shared), so
// the packed charm needs no node_modules.
// CommonJS output: the packed charm has no package.json saying "type": "module".
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const top = join(dirname(fileURLToPath(import.meta.url)), "..");
mkdirSync(join(top, "dist"), { recursive: true });

/** `yaml` is half the charm's code, and only a `devices` value written as YAML or a read of
 * metadata.yaml needs it; both require it on first use. Kept in its own file, no hook pays to
 * parse it: V8 compiles every byte of a script at load, even code in closures that never run. */
const yamlApart = {
  name: "yaml-apart",
  setup(b) {
    b.onResolve({ filter: /^yaml$/ }, () => ({ path: "./yaml.js", external: true }));
  },
};

/** A hook never runs an action: the hook bundle (dist/charm.js) leaves the actions' code out, and
 * dispatch runs dist/actions.js (the same entry with everything) for `actions/*`. V8 compiles every
 * byte it loads, so a no-op hook loads only what a hook needs. */
const actionsApart = {
  name: "actions-apart",
  setup(b) {
    b.onResolve({ filter: /^\.\/charm-actions$/ }, () => ({
      path: "charm-actions",
      namespace: "actions-apart",
    }));
    b.onLoad({ filter: /.*/, namespace: "actions-apart" }, () => ({
      contents: [
        "const no = () => {",
        '  throw new Error("dist/charm.js runs hooks; dispatch runs actions with dist/actions.js");',
        "};",
        "export const runActionHandler = no;",
        "export const ACTION_PARAM_VALIDATORS = {};",
      ].join("\n"),
      loader: "js",
    }));
  },
};

const common = {
  bundle: true,
  platform: "node",
  format: "cjs",
  // The oldest runtime dispatch accepts from PATH; the bundled one is newer.
  target: "node20",
  // Smaller is faster to load on every hook. Identifiers are not minified, so stack traces name
  // our functions without keepNames (whose __name() calls would run for each one at every load).
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
};
const yamlResult = await build({
  ...common,
  stdin: { contents: 'module.exports = require("yaml");', resolveDir: top },
  outfile: join(top, "dist", "yaml.js"),
});
const result = await build({
  ...common,
  entryPoints: [join(top, "src", "charm.ts")],
  outfile: join(top, "dist", "charm.js"),
  plugins: [yamlApart, actionsApart],
});
const actionsResult = await build({
  ...common,
  entryPoints: [join(top, "src", "charm.ts")],
  outfile: join(top, "dist", "actions.js"),
  plugins: [yamlApart],
});
// The exporter (src/exporter/main.ts), run by systemd with the same runtime: its own small bundle,
// so no hook pays to load it and it loads nothing of the hooks'.
const exporterResult = await build({
  ...common,
  entryPoints: [join(top, "src", "exporter", "main.ts")],
  outfile: join(top, "dist", "exporter.js"),
});
const kib = (r) =>
  (Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0) / 1024).toFixed(0);
console.log(
  `build: dist/charm.js (${kib(result)} KiB, hooks), dist/actions.js (${kib(actionsResult)} KiB), dist/yaml.js (${kib(yamlResult)} KiB), dist/exporter.js (${kib(exporterResult)} KiB)`,
);
