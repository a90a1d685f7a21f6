// What must hold on any real host, whatever the selection: read from the files the charm wrote and
// from the recording itself, never from the charm's own reasoning. Each check returns the
// violations as sentences (empty when it holds), so a failure names host, function and file.
import * as fs from "node:fs";
import * as path from "node:path";
import { OWNED } from "../../../src/host/root";

/** Classes a companion may never be: host bridge, ISA/LPC bridge, SMBus (issue 12, point 2), and
 * the PCH's shared SRAM (RAM memory), which shares a USB controller's slot on real laptops. */
export const CHIPSET_CLASSES: Record<string, string> = {
  "0500": "RAM memory",
  "0600": "host bridge",
  "0601": "ISA/LPC bridge",
  "0c05": "SMBus controller",
};

/** One recorded PCI function, read straight from the recording (no charm code). */
export interface RecordedFunction {
  address: string;
  /** `8086:1521`, or null when the recording has no ids. */
  ids: string | null;
  /** 6 hex digits, or null. */
  classCode: string | null;
  modalias: string | null;
  /** Basename of the recorded `driver` link. */
  driver: string | null;
}

export function recordedFunctions(root: string): RecordedFunction[] {
  const dir = path.join(root, "sys/bus/pci/devices");
  const read = (address: string, file: string): string | null => {
    try {
      return fs.readFileSync(path.join(dir, address, file), "latin1").trim();
    } catch {
      return null;
    }
  };
  const hex = (raw: string | null, digits: number) =>
    raw === null ? null : raw.toLowerCase().replace(/^0x/, "").padStart(digits, "0");
  return fs
    .readdirSync(dir)
    .sort()
    .map((address) => {
      const vendor = hex(read(address, "vendor"), 4);
      const device = hex(read(address, "device"), 4);
      let driver: string | null = null;
      try {
        driver = path.basename(fs.readlinkSync(path.join(dir, address, "driver")));
      } catch {
        driver = null;
      }
      return {
        address,
        ids: vendor && device ? `${vendor}:${device}` : null,
        classCode: hex(read(address, "class"), 6),
        modalias: read(address, "modalias"),
        driver,
      };
    });
}

/** The addresses a `devices` value in short form (ids, addresses, globs) names on this host. */
export function matchedBy(devices: string, functions: RecordedFunction[]): Set<string> {
  const out = new Set<string>();
  for (const entry of devices.split(/[\s,]+/).filter(Boolean)) {
    if (/^[0-9a-f]{4}:[0-9a-f]{4}$/i.test(entry)) {
      for (const f of functions) if (f.ids === entry.toLowerCase()) out.add(f.address);
      continue;
    }
    const glob = new RegExp(
      `^${entry
        .toLowerCase()
        .replace(/\./g, "\\.")
        .replace(/\*/g, "[0-9a-f]*")
        .replace(/\?/g, "[0-9a-f]")}$`,
    );
    for (const f of functions) if (glob.test(f.address)) out.add(f.address);
  }
  return out;
}

/** What the charm's files set up for the next boot, read from the files themselves. */
export interface WrittenFiles {
  /** Addresses the udev rule hands to vfio-pci at boot. */
  boundAtBoot: Set<string>;
  /** Modules kept off the host: `blacklist` lines and `modprobe.blacklist=` / `module_blacklist=`. */
  blacklisted: Set<string>;
  /** Every module name written anywhere (blacklists, softdeps, options). */
  moduleNames: Set<string>;
}

export function readWrittenFiles(root: string): WrittenFiles {
  const text = (p: string) => {
    try {
      return fs.readFileSync(path.join(root, p), "utf8");
    } catch {
      return "";
    }
  };
  const boundAtBoot = new Set<string>();
  for (const m of text(OWNED.udevRule).matchAll(/KERNEL=="([^"]+)"/g)) boundAtBoot.add(m[1]!);
  const blacklisted = new Set<string>();
  const moduleNames = new Set<string>();
  for (const raw of text(OWNED.modprobeConf).split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const words = line.split(/\s+/);
    if (words[0] === "blacklist" && words[1]) {
      blacklisted.add(words[1]);
      moduleNames.add(words[1]);
    } else if (words[0] === "softdep") {
      for (const w of words.slice(1)) if (!/^(pre|post):$/.test(w)) moduleNames.add(w);
    } else if (words[0] === "options" || words[0] === "install" || words[0] === "remove") {
      if (words[1]) moduleNames.add(words[1]);
    }
  }
  for (const m of text(OWNED.grubDropIn).matchAll(
    /(?:modprobe\.blacklist|module_blacklist)=([^\s"]+)/g,
  )) {
    for (const name of m[1]!.split(",").filter(Boolean)) {
      blacklisted.add(name);
      moduleNames.add(name);
    }
  }
  return { boundAtBoot, blacklisted, moduleNames };
}

/** The kernel's module names (modules.dep and modules.builtin), `-` spelled `_` as kmod does. */
export function kernelModuleNames(moduleDir: string): Set<string> {
  const names = new Set<string>();
  const add = (file: string) =>
    names.add(
      path
        .basename(file)
        .replace(/\.ko(\.[a-z]+)?$/, "")
        .replace(/-/g, "_"),
    );
  for (const line of fs.readFileSync(path.join(moduleDir, "modules.dep"), "utf8").split("\n")) {
    const file = line.split(":")[0];
    if (file) add(file);
  }
  for (const line of fs.readFileSync(path.join(moduleDir, "modules.builtin"), "utf8").split("\n")) {
    if (line.trim()) add(line.trim());
  }
  return names;
}

/** modules.alias's PCI lines as (pattern, module): which modules would claim a modalias. */
export function pciAliases(moduleDir: string): Array<{ pattern: RegExp; module: string }> {
  const out: Array<{ pattern: RegExp; module: string }> = [];
  for (const line of fs.readFileSync(path.join(moduleDir, "modules.alias"), "utf8").split("\n")) {
    const m = /^alias (pci:\S+) (\S+)$/.exec(line);
    if (!m) continue;
    const source = m[1]!
      .replace(/[.+^${}()|\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".");
    out.push({ pattern: new RegExp(`^${source}$`), module: m[2]!.replace(/-/g, "_") });
  }
  return out;
}

export interface HostRun {
  functions: RecordedFunction[];
  uses: Record<string, string>;
  selection: Set<string>;
  written: WrittenFiles;
  knownModules: Set<string>;
  aliases: Array<{ pattern: RegExp; module: string }>;
}

/** Invariant: no function the host uses is handed to vfio-pci at boot. */
export function usedFunctionsBound(run: HostRun): string[] {
  return Object.entries(run.uses)
    .filter(([address]) => run.written.boundAtBoot.has(address))
    .map(
      ([address, why]) => `${address} is bound to vfio-pci at boot, yet the host uses it (${why})`,
    );
}

/** Invariant: no module that drives a function the host uses is blacklisted. */
export function usedDriversBlacklisted(run: HostRun): string[] {
  const out: string[] = [];
  const byAddress = new Map(run.functions.map((f) => [f.address, f]));
  for (const [address, why] of Object.entries(run.uses)) {
    const f = byAddress.get(address);
    if (!f) continue;
    const claims = new Set<string>();
    if (f.modalias)
      for (const a of run.aliases) if (a.pattern.test(f.modalias)) claims.add(a.module);
    if (f.driver) claims.add(f.driver.replace(/-/g, "_"));
    for (const module of claims) {
      if (run.written.blacklisted.has(module))
        out.push(
          `${module} is blacklisted, yet it drives ${address}, which the host uses (${why})`,
        );
    }
  }
  return out;
}

/** Invariant: no host bridge, ISA/LPC bridge or SMBus follows a selection as a companion. */
export function chipsetCompanions(run: HostRun): string[] {
  const out: string[] = [];
  for (const f of run.functions) {
    const what = f.classCode ? CHIPSET_CLASSES[f.classCode.slice(0, 4)] : undefined;
    if (what && run.written.boundAtBoot.has(f.address) && !run.selection.has(f.address))
      out.push(
        `${f.address} (${what}) is bound to vfio-pci at boot as a companion; it was not selected`,
      );
  }
  return out;
}

/** Invariant: every module name the charm wrote is a module of the kernel (modules.dep/builtin). */
export function unknownModuleNames(run: HostRun): string[] {
  return [...run.written.moduleNames]
    .filter((name) => !run.knownModules.has(name.replace(/-/g, "_")))
    .map(
      (name) =>
        `"${name}" is written as a module name but is neither in modules.dep nor modules.builtin`,
    );
}
