// Bundles the charm into dist/ (charm.js for hooks, actions.js for actions, yaml.js shared), so
// the packed charm needs no node_modules. charm.js and actions.js are small loaders of the bundles
// charm.code.js and actions.code.js (writeCachedLoader).
// CommonJS output: the packed charm has no package.json saying "type": "module".
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { BUNDLE_OPTIONS } from "./bundle-options.mjs";

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

const common = { ...BUNDLE_OPTIONS, metafile: true, logLevel: "warning" };
const yamlResult = await build({
  ...common,
  stdin: { contents: 'module.exports = require("yaml");', resolveDir: top },
  outfile: join(top, "dist", "yaml.js"),
});
const result = await build({
  ...common,
  entryPoints: [join(top, "src", "charm.ts")],
  outfile: join(top, "dist", "charm.code.js"),
  plugins: [yamlApart, actionsApart],
});
const actionsResult = await build({
  ...common,
  entryPoints: [join(top, "src", "charm.ts")],
  outfile: join(top, "dist", "actions.code.js"),
  plugins: [yamlApart],
});
// The quiet-hook probe (src/quiet/probe.ts), which dist/charm.js runs before loading the charm: a
// hook whose memo still stands ends there. Bundled on its own (a quiet hook loads only it) and
// written into the loader itself: a second file to resolve and read cost a quiet hook ~0.4 ms.
const probeResult = await build({
  ...common,
  entryPoints: [join(top, "src", "quiet", "probe.ts")],
  format: "iife",
  globalName: "quietHookProbe",
  write: false,
  outfile: join(top, "dist", "quiet-hook.js"),
});
writeCachedLoader("charm.js", "charm.code.js", {
  exitWhenDone: true,
  probe: probeResult.outputFiles[0].text,
});
writeCachedLoader("actions.js", "actions.code.js", { exitWhenDone: "unless-stoppable" });
// The exporter (src/exporter/main.ts), run by systemd with the same runtime: its own small bundle,
// so no hook pays to load it and it loads nothing of the hooks'.
const exporterResult = await build({
  ...common,
  entryPoints: [join(top, "src", "exporter", "main.ts")],
  outfile: join(top, "dist", "exporter.js"),
});
/**
 * dist/charm.js and dist/actions.js, what dispatch runs: each compiles its bundle (`code`) with a
 * V8 code cache taken at the END of a run, kept beside Node.js's own compile cache.
 *
 * V8 compiles a function's body only when it is first called. Node.js's compile cache
 * (NODE_COMPILE_CACHE) is taken right after the script is compiled, so it holds the top level and
 * none of those bodies: every hook compiled again each function it ran (~9 ms CPU of a no-op
 * hook). A cache taken after a run (vm.Script#createCachedData) holds every function that run
 * compiled, and V8 then skips compiling them. The first run of a charm (install, upgrade-charm:
 * both run the whole reconcile) has no cache, or V8 rejects it (another V8, other flags), and
 * writes one; later runs only read it. The file name carries the bundle's digest, so a new charm
 * never runs with the code of the old one (V8's own check compares the source's length only).
 */
function writeCachedLoader(name, code, { exitWhenDone, probe: probeCode = null }) {
  const digest = createHash("sha256")
    .update(readFileSync(join(top, "dist", code)))
    .digest("hex")
    .slice(0, 16);
  const stem = code.replace(/\.js$/, "");
  const args = [code, `${stem}-${digest}.v8`, `${stem}-`, exitWhenDone]
    .map((a) => JSON.stringify(a))
    .join(", ");
  // A hook's memo stands for this code and these declarations only: a new charm starts afresh.
  const charmId = createHash("sha256");
  for (const file of [join("dist", code), "metadata.yaml", "config.yaml", "actions.yaml"])
    charmId.update(readFileSync(join(top, file)));
  const probe =
    probeCode === null
      ? ""
      : `${probeCode}if (quietHookProbe.quietHook(__dirname, ${JSON.stringify(charmId.digest("hex").slice(0, 16))})) process.exit();\n`;
  writeFileSync(
    join(top, "dist", name),
    `"use strict";\n// Made by scripts/build.mjs (writeCachedLoader): runs ./${code} with a V8 code cache.\n(${unlinkPrefetchFifo})();\n${probe}(${runCached})(${args});\n`,
  );
}

/** The first thing a loader does: unlink the fifo dispatch made for its prefetch (run_charm), now
 * that both of its ends are open (it is this process's stdin), so the name goes even when the
 * quiet-hook probe ends the hook. dispatch names it after its own pid, which is this process's
 * (exec keeps it); any other path is not ours to remove. The variable goes too, before the probe
 * reads the environment: it names a pid, so a memo keyed on it would never match again (its
 * key holds every variable but JUJU_CONTEXT_ID), and it is not for the tools and commands the
 * charm starts, nor for a stoppable action's worker. */
function unlinkPrefetchFifo() {
  const fifo = process.env.PCI_PASSTHROUGH_PREFETCH_FIFO;
  if (fifo === undefined) return;
  delete process.env.PCI_PASSTHROUGH_PREFETCH_FIFO;
  if (!fifo.endsWith(`/.prefetch.${process.pid}`)) return;
  try {
    require("node:fs").unlinkSync(fifo);
  } catch {}
}

/** The body of a loader (see writeCachedLoader), run in dist/ as CommonJS: `require` and
 * `__dirname` are the loader's. A failure to write the cache only costs the next hook its use.
 *
 * With `exitWhenDone` (the hooks' loader), the process exits as soon as the bundle has run: a
 * hook's handlers are synchronous (hook tools and commands run with spawnSync, stdout and stderr
 * are synchronous on Linux), so nothing is left to run, and process.exit() skips tearing V8's heap
 * down piece by piece (~1 ms CPU of a no-op hook; Node.js still writes its compile cache). So do
 * actions ("unless-stoppable"), bar those the bundle exports as STOPPABLE_ACTIONS (src/charm.ts):
 * such an action goes on in a worker thread after the bundle's top level returns, and its worker
 * (which runs this loader too) is one of them. An action's heap is large: verify-iommu on 10,000
 * functions spent ~20 ms tearing it down after its last hook tool. */
function runCached(codeName, cacheName, stalePrefix, exitWhenDone) {
  const fs = require("node:fs");
  const { Script } = require("node:vm");
  const code = `${__dirname}/${codeName}`;
  const dir = process.env.NODE_COMPILE_CACHE;
  const cache = dir ? `${dir}/${cacheName}` : null;
  let cachedData;
  if (cache !== null) {
    try {
      cachedData = fs.readFileSync(cache);
    } catch {}
  }
  // Node.js's own CommonJS wrapper, on a line of its own so the bundle's lines keep their numbers.
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {\n${fs.readFileSync(code, "utf8")}\n})`,
    { filename: code, lineOffset: -1, cachedData },
  );
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, require, mod, code, __dirname);
  if (cache !== null && (cachedData === undefined || script.cachedDataRejected)) {
    // Written whole, then renamed: a hook never reads half a cache. A stoppable action's two
    // threads may both write it.
    const partial = `${cache}.${process.pid}.${require("node:worker_threads").threadId}`;
    try {
      fs.writeFileSync(partial, script.createCachedData());
      fs.renameSync(partial, cache);
      for (const old of fs.readdirSync(dir)) {
        if (old.startsWith(stalePrefix) && old !== cacheName) fs.rmSync(`${dir}/${old}`);
      }
    } catch {
      fs.rmSync(partial, { force: true });
    }
  }
  if (exitWhenDone === true) process.exit();
  if (exitWhenDone === "unless-stoppable") {
    const action = (process.env.JUJU_DISPATCH_PATH ?? "").replace(/^actions\//, "");
    if (!(mod.exports.STOPPABLE_ACTIONS ?? []).includes(action)) process.exit();
  }
}

const kib = (r) =>
  (Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0) / 1024).toFixed(0);
console.log(
  `build: dist/charm.js → charm.code.js (${kib(result)} KiB, hooks), dist/actions.js → actions.code.js (${kib(actionsResult)} KiB), dist/yaml.js (${kib(yamlResult)} KiB), dist/exporter.js (${kib(exporterResult)} KiB), the quiet-hook probe in dist/charm.js (${(probeResult.outputFiles[0].contents.length / 1024).toFixed(0)} KiB)`,
);
