// Packs one .charm per architecture without charmcraft or LXD, build/pci-passthrough_<arch>.charm
// (amd64, arm64: as charmcraft.yaml's platforms): the files scripts/charm-files.mjs lists (the same
// ones charmcraft.yaml's build installs) with that architecture's Node.js runtime, a zip Juju can
// deploy with `juju deploy ./…charm`. Run `npm run pack` (it builds dist/ first); PACK_ARCH=arm64
// packs only that one. Output is reproducible: fixed mtimes, sorted entries.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import {
  charmFiles,
  installFile,
  packedCharmPath,
  RUNTIMES,
  runtimeFor,
  TOP,
  UBUNTU_CHANNELS,
} from "./charm-files.mjs";

const version = (pkg) => JSON.parse(readFileSync(join(TOP, pkg), "utf8")).version;
const archs = process.env.PACK_ARCH ? [packArch(process.env.PACK_ARCH)] : Object.keys(RUNTIMES);
// The one-architecture name of earlier packs: gone, so nothing reads a stale charm by it.
rmSync(join(TOP, "build", "pci-passthrough.charm"), { force: true });
for (const arch of archs) pack(arch);

/** PACK_ARCH checked: Juju's architecture names only; the kernel's (x86_64, aarch64) are named
 * back to the user instead of ending in a stack trace. */
function packArch(value) {
  if (Object.hasOwn(RUNTIMES, value)) return value;
  const known = Object.keys(RUNTIMES);
  const juju = known.find((arch) => RUNTIMES[arch].uname === value);
  const hint = juju ? `: Juju calls ${value} "${juju}", so PACK_ARCH=${juju}` : "";
  console.error(
    `pack: PACK_ARCH="${value}" is not an architecture the charm is packed for (${known.join(", ")})${hint}; leave PACK_ARCH unset to pack both`,
  );
  process.exit(2);
}

/** Packs build/pci-passthrough_<arch>.charm. */
function pack(arch) {
  const runtime = runtimeFor(arch);
  const stage = join(TOP, "build", `stage-${arch}`);
  const out = packedCharmPath(arch);

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
  rmSync(stage, { recursive: true, force: true });
}
