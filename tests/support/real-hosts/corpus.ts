// The real-host corpus: recordings of real machines' sysfs/procfs, brought from Debian source
// packages by scripts/real-hosts.sh (into .cache/real-hosts/) and unpacked here, at test time,
// into a temp root the charm reads as PCI_PASSTHROUGH_ROOT. The manifests in
// tests/fixtures/real-hosts/ say where each recording comes from, its licence, what the machine
// is, what the host uses, and the few things a running host always has that the recording lacks;
// only those are added, and each addition is checked against the recording (see unpackRealHost).
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostTempDir } from "../hosts/build-host";

const TOP = path.resolve(__dirname, "..", "..", "..");
export const MANIFEST_DIR = path.join(TOP, "tests", "fixtures", "real-hosts");
export const CORPUS_CACHE =
  process.env["REAL_HOSTS_CACHE"] ?? path.join(TOP, ".cache", "real-hosts");

export interface RealHostManifest {
  id: string;
  machine: string;
  kind: string;
  source: {
    suite: string;
    package: string;
    version: string;
    path: string;
    sha256: string;
    licence: string;
    /** `tar`: a tarball whose `top` directory is the host's `/`. `sys-script`: a Python script
     * of d()/l()/f() calls that writes a /sys (systemd's test/sys-script.py), parsed, never run. */
    format: "tar" | "sys-script";
    top: string;
  };
  recorded: string;
  added: {
    /** /proc/cmdline written when the recording has none; null when it has its own. */
    cmdline: string | null;
    /** /sys/bus/pci/drivers/<name> created for every driver a recorded `driver` link names whose
     * directory was not recorded (a running kernel always has it). No `module` link is added:
     * which module a recorded driver belongs to is not in the recording. */
    driverDirs: string[];
  };
  /** The functions this host uses for itself, as the recording shows, and why. */
  uses: Record<string, string>;
  /** Realistic `devices` values for this host. */
  selections: Array<{ name: string; devices: string }>;
}

export function realHostManifests(): RealHostManifest[] {
  return fs
    .readdirSync(MANIFEST_DIR)
    .filter((n) => n.endsWith(".json"))
    .sort()
    .map(
      (n) => JSON.parse(fs.readFileSync(path.join(MANIFEST_DIR, n), "utf8")) as RealHostManifest,
    );
}

const FETCH_HINT = "run `bash scripts/real-hosts.sh` (scripts/setup.sh runs it)";

/** The kernel whose module index every recorded host is given, and where that index is. */
export function corpusKernel(): { release: string; moduleDir: string } {
  const indexFile = path.join(CORPUS_CACHE, "index.json");
  if (!fs.existsSync(indexFile)) throw new Error(`${indexFile} is missing: ${FETCH_HINT}`);
  const { kernelRelease } = JSON.parse(fs.readFileSync(indexFile, "utf8")) as {
    kernelRelease: string;
  };
  const moduleDir = path.join(CORPUS_CACHE, "modules", kernelRelease);
  for (const f of ["modules.alias", "modules.dep", "modules.builtin"]) {
    if (!fs.existsSync(path.join(moduleDir, f)))
      throw new Error(`${moduleDir}/${f} is missing: ${FETCH_HINT}`);
  }
  return { release: kernelRelease, moduleDir };
}

/** The recording as fetched (never modified): .cache/real-hosts/recordings/<id>.<file>. */
export function recordingFile(m: RealHostManifest): string {
  const file = path.join(CORPUS_CACHE, "recordings", `${m.id}.${path.basename(m.source.path)}`);
  if (!fs.existsSync(file))
    throw new Error(
      `${m.id}: ${file} (${m.source.package} ${m.source.path}) is missing: ${FETCH_HINT}`,
    );
  return file;
}

export interface UnpackedHost {
  manifest: RealHostManifest;
  /** The host's `/`: PCI_PASSTHROUGH_ROOT. */
  root: string;
  kernelRelease: string;
  cleanup(): void;
}

/**
 * Unpacks a recording into a fresh temp dir. With `additions` (the default) it then adds what a
 * running host always has and the recording lacks: the module index of a Debian kernel
 * (/lib/modules/<release>/modules.{alias,dep,builtin}), /proc/sys/kernel/osrelease naming that
 * kernel, the manifest's /proc/cmdline when none was recorded, and the manifest's driver
 * directories. Each addition is refused when the recording already has it, and the driver list
 * must be exactly the drivers whose recorded links dangle, so a manifest cannot quietly add more.
 */
export function unpackRealHost(m: RealHostManifest, options = { additions: true }): UnpackedHost {
  const file = recordingFile(m);
  const dir = fs.mkdtempSync(path.join(hostTempDir(), `real-host-${m.id}-`));
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    if (m.source.format === "tar") {
      execFileSync("tar", ["-xf", file, "-C", dir, "--no-same-owner"]);
    } else {
      writeSysScript(fs.readFileSync(file, "latin1"), dir);
    }
    const root = path.resolve(dir, m.source.top);
    if (!fs.existsSync(path.join(root, "sys"))) throw new Error(`${m.id}: no sys/ in ${root}`);
    const { release, moduleDir } = corpusKernel();
    if (options.additions) addRunningHostFiles(m, root, release, moduleDir);
    return { manifest: m, root, kernelRelease: release, cleanup };
  } catch (error) {
    cleanup();
    throw error;
  }
}

function addRunningHostFiles(
  m: RealHostManifest,
  root: string,
  release: string,
  moduleDir: string,
): void {
  const at = (hostPath: string) => path.join(root, hostPath);
  const addFile = (hostPath: string, content: string) => {
    if (fs.existsSync(at(hostPath))) throw new Error(`${m.id}: ${hostPath} is recorded; not added`);
    fs.mkdirSync(path.dirname(at(hostPath)), { recursive: true });
    fs.writeFileSync(at(hostPath), content);
  };

  addFile("/proc/sys/kernel/osrelease", `${release}\n`);
  const modules = `/lib/modules/${release}`;
  fs.mkdirSync(at(modules), { recursive: true });
  for (const f of ["modules.alias", "modules.dep", "modules.builtin"]) {
    if (fs.existsSync(at(`${modules}/${f}`)))
      throw new Error(`${m.id}: ${modules}/${f} is recorded`);
    fs.symlinkSync(path.join(moduleDir, f), at(`${modules}/${f}`));
  }

  if (m.added.cmdline !== null) addFile("/proc/cmdline", `${m.added.cmdline}\n`);
  else if (!fs.existsSync(at("/proc/cmdline")))
    throw new Error(`${m.id}: no /proc/cmdline recorded and the manifest adds none`);

  const dangling = danglingDrivers(root);
  const listed = [...m.added.driverDirs].sort();
  if (JSON.stringify(dangling) !== JSON.stringify(listed)) {
    throw new Error(
      `${m.id}: the recording's driver links name missing drivers [${dangling.join(", ")}], the manifest adds [${listed.join(", ")}]`,
    );
  }
  for (const name of listed) fs.mkdirSync(at(`/sys/bus/pci/drivers/${name}`), { recursive: true });
}

/** Drivers named by a device's `driver` link whose /sys/bus/pci/drivers/<name> is not recorded. */
export function danglingDrivers(root: string): string[] {
  const devices = path.join(root, "sys/bus/pci/devices");
  const names = new Set<string>();
  for (const address of fs.existsSync(devices) ? fs.readdirSync(devices) : []) {
    const link = path.join(devices, address, "driver");
    let target: string;
    try {
      target = fs.readlinkSync(link);
    } catch {
      continue;
    }
    if (!fs.existsSync(link)) names.add(target.slice(target.lastIndexOf("/") + 1));
  }
  return [...names].sort();
}

// ------------------------------------------------------------------------------------------------
// systemd's test/sys-script.py: a recorded /sys as `d(path, mode)`, `l(path, target)` and
// `f(path, mode, b'…')` calls. Read as data: only those three calls are accepted, every path must
// stay inside the target directory, and nothing of the script is executed.

/** Writes the /sys that a sys-script describes under `dir`. */
export function writeSysScript(text: string, dir: string): void {
  const start = text.indexOf("\nd('sys',");
  if (start < 0) throw new Error("sys-script: no d('sys', …) call: not a recorded /sys");
  const base = path.resolve(dir);
  const inside = (p: string): string => {
    const full = path.resolve(base, p);
    if (!full.startsWith(`${base}/`)) throw new Error(`sys-script: path ${p} leaves the root`);
    return full;
  };
  let i = start + 1;
  let calls = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === "\n" || ch === " ") {
      i++;
      continue;
    }
    const call = /^([dlf])\(/.exec(text.slice(i, i + 2));
    if (!call)
      throw new Error(`sys-script: unexpected text at offset ${i}: ${text.slice(i, i + 40)}`);
    i += 2;
    const [first, afterFirst] = pyString(text, i);
    i = afterFirst;
    const args: Array<string | number> = [first];
    while (text[i] === ",") {
      i++;
      while (text[i] === " ") i++;
      const octal = /^0o([0-7]+)/.exec(text.slice(i, i + 12));
      if (octal) {
        args.push(Number.parseInt(octal[1]!, 8));
        i += octal[0].length;
      } else {
        const [value, next] = pyString(text, i);
        args.push(value);
        i = next;
      }
    }
    if (text[i] !== ")") throw new Error(`sys-script: unclosed call at offset ${i}`);
    i++;
    const target = inside(String(args[0]));
    if (call[1] === "d") fs.mkdirSync(target, { mode: 0o755 });
    else if (call[1] === "l") fs.symlinkSync(String(args[1]), target);
    else fs.writeFileSync(target, Buffer.from(String(args[2]), "latin1"), { mode: 0o644 });
    calls++;
  }
  if (calls === 0) throw new Error("sys-script: no calls");
}

const ESCAPES: Record<string, string> = {
  n: "\n",
  t: "\t",
  r: "\r",
  "\\": "\\",
  "'": "'",
  '"': '"',
  a: "\x07",
  b: "\b",
  f: "\f",
  v: "\v",
  "\n": "",
};

/** A Python (bytes) string literal at `i`: its value as latin1 text, and the offset after it. */
function pyString(text: string, i: number): [string, number] {
  let j = i;
  if (text[j] === "b") j++;
  const quote =
    text.startsWith("'''", j) || text.startsWith('"""', j) ? text.slice(j, j + 3) : text[j];
  if (quote !== "'" && quote !== '"' && quote !== "'''" && quote !== '"""')
    throw new Error(`sys-script: no string literal at offset ${i}`);
  j += quote.length;
  let out = "";
  while (!text.startsWith(quote, j)) {
    if (j >= text.length) throw new Error(`sys-script: unterminated string at offset ${i}`);
    const ch = text[j]!;
    if (ch !== "\\") {
      out += ch;
      j++;
      continue;
    }
    const next = text[j + 1]!;
    if (next === "x") {
      out += String.fromCharCode(Number.parseInt(text.slice(j + 2, j + 4), 16));
      j += 4;
    } else if (/[0-7]/.test(next)) {
      const digits = /^[0-7]{1,3}/.exec(text.slice(j + 1, j + 4))![0];
      out += String.fromCharCode(Number.parseInt(digits, 8));
      j += 1 + digits.length;
    } else if (next in ESCAPES) {
      out += ESCAPES[next];
      j += 2;
    } else {
      out += `\\${next}`; // Python keeps an unknown escape as written
      j += 2;
    }
  }
  return [out, j + quote.length];
}
