// Packs build/pci-passthrough.charm without charmcraft or LXD: the files scripts/charm-files.mjs
// lists (the same ones charmcraft.yaml's build installs), a zip Juju can deploy with
// `juju deploy ./…charm`. Run `npm run pack` (it builds dist/ first); PACK_ARCH names the Juju
// architecture (default amd64). Output is reproducible: fixed mtimes, sorted entries.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import {
  charmFiles,
  DEFAULT_ARCH,
  installFile,
  runtimeFor,
  TOP,
  UBUNTU_CHANNELS,
} from "./charm-files.mjs";

const arch = process.env.PACK_ARCH || DEFAULT_ARCH;
const runtime = runtimeFor(arch);
const stage = join(TOP, "build", "stage");
const out = join(TOP, "build", "pci-passthrough.charm");
const version = (pkg) => JSON.parse(readFileSync(join(TOP, pkg), "utf8")).version;

rmSync(stage, { recursive: true, force: true });
const files = charmFiles(arch);
for (const file of files) {
  if (file.kind !== "manifest") installFile(file, stage);
}

// charmcraft writes manifest.yaml; Juju reads only `bases` from it, to check the charm fits the
// machine. The rest says truthfully what built this file (charmcraft did not: no
// charmcraft-version), so a support question about a .charm can be answered from the .charm.
const manifest = {
  "built-by": `pci-passthrough ${version("package.json")} scripts/pack.mjs (npm run pack), not charmcraft`,
  "built-with": `Node.js ${process.versions.node}, esbuild ${version("node_modules/esbuild/package.json")}`,
  runtime: `${runtime.pkg} ${runtime.version}`,
  analysis: {
    attributes: [
      { name: "language", result: "unknown" },
      { name: "framework", result: "unknown" },
    ],
  },
  bases: UBUNTU_CHANNELS.map((channel) => ({ name: "ubuntu", channel, architectures: [arch] })),
};
writeFileSync(join(stage, "manifest.yaml"), stringify(manifest));

// Fixed timestamps so two packs of the same source give the same bytes.
const stamp = new Date("1980-01-02T00:00:00Z");
const entries = files.map((f) => f.to);
for (const entry of entries) utimesSync(join(stage, entry), stamp, stamp);
rmSync(out, { force: true });
// -X: no extra uid/gid fields; -D: no directory entries; the unix mode is kept (dispatch 0755).
execFileSync("zip", ["-q", "-X", "-D", out, "-@"], {
  cwd: stage,
  input: entries.join("\n"),
  env: { ...process.env, TZ: "UTC" },
});
const mib = (statSync(out).size / 1024 / 1024).toFixed(1);
console.log(
  `pack: ${out.replace(`${TOP}/`, "")} (${mib} MiB; runtime Node.js ${runtime.version}, ${arch})`,
);
