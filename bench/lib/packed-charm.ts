// The packed charm, unzipped the way Juju unpacks it on a unit, plus a minimal PATH for its
// dispatch (sh, cat, uname, dirname and nothing else: no node, so only the bundled runtime runs).
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createUnitSimulator, type UnitSimulator } from "ops-ts-shim/testing/simulator";

/** The repository's top directory (bench/run.mjs runs the bundle with it as the cwd). */
export const TOP = process.cwd();
export const PACKED = path.join(TOP, "build", "pci-passthrough_amd64.charm");

export interface UnpackedCharm {
  /** JUJU_CHARM_DIR: dispatch, dist/charm.js, runtime/bin/node, the yaml files. */
  charmDir: string;
  /** The bundled Node.js (what dispatch runs). */
  runtime: string;
  runtimeVersion: string;
  /** Directory with sh, cat, uname, dirname: dispatch's whole PATH besides the hook tools. */
  sysbin: string;
  cleanup(): void;
}

/** Unzips build/pci-passthrough_amd64.charm into a fresh temp directory. */
export function unpackCharm(packed = PACKED): UnpackedCharm {
  if (!fs.existsSync(packed)) throw new Error(`${packed} is missing: run \`npm run pack\` first`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pci-bench-charm-"));
  const charmDir = path.join(dir, "charm");
  execFileSync("unzip", ["-q", packed, "-d", charmDir]);
  const sysbin = path.join(dir, "sysbin");
  fs.mkdirSync(sysbin);
  for (const tool of ["sh", "cat", "uname", "dirname", "mkfifo", "rm"]) {
    const found = ["/bin", "/usr/bin"].map((d) => path.join(d, tool)).find((p) => fs.existsSync(p));
    if (!found) throw new Error(`no ${tool} on this machine`);
    fs.symlinkSync(found, path.join(sysbin, tool));
  }
  return {
    charmDir,
    runtime: path.join(charmDir, "runtime", "bin", "node"),
    runtimeVersion: fs.readFileSync(path.join(charmDir, "runtime", "VERSION"), "utf8").trim(),
    sysbin,
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** This charm as a subordinate unit of nova-compute/0 under the shim's unit simulator (its state
 * and tools in `dir`), with the unpacked charm's config.yaml and the given config and relations. */
export function simulateUnit(
  charm: UnpackedCharm,
  dir: string,
  config: Record<string, string>,
  relations: Parameters<typeof createUnitSimulator>[0]["relations"] = [],
): UnitSimulator {
  return createUnitSimulator({
    dir,
    charmDir: charm.charmDir,
    unitName: "pci-passthrough/0",
    principalUnit: "nova-compute/0",
    configYaml: fs.readFileSync(path.join(charm.charmDir, "config.yaml"), "utf8"),
    config,
    relations,
  });
}
