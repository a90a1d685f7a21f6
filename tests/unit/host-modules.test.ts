// The modules.alias index: fnmatch globbing as kmod does it, file order, de-duplication, and that
// the vendor/device bucketing never changes an answer (checked against a plain scan of every line).
//
// Checked once by hand against kmod itself: 400 random modaliases built from Debian's
// linux-image-6.1.0-56-amd64 modules.alias (8,968 pci aliases) gave exactly the modules, in the
// same order, as `modprobe -d <pkg> -S 6.1.0-56-amd64 -R <modalias>` (kmod prints a module twice
// when two of its aliases match; we list it once).
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config";
import {
  compileGlob,
  loadModuleIndex,
  parseModuleAliases,
  rememberingModuleIndex,
} from "../../src/host/modules";
import { readHostFacts } from "../../src/host/read-facts";
import { planModulesFor } from "../../src/host-preparation";
import { useCleanups } from "../support/cleanups";
import { makeTempHost, pciModalias } from "../support/hosts/build-host";
import { ALIAS_LINES, seedHost, syntheticAliasLines } from "../support/hosts/presets";

const cleanups = useCleanups();

const E1000E_TWIN = "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00";
const P5000 = "pci:v000010DEd00001BB0sv000010DEsd000011A3bc03sc00i00";
const P5000_AUDIO = "pci:v000010DEd000010F1sv000010DEsd000011A3bc04sc03i00";

describe("glob matching (fnmatch without flags)", () => {
  const matches = (glob: string, subject: string) => compileGlob(glob)(subject);

  it("treats * as any run and ? as one character", () => {
    expect(matches("v00008086d*sv*", "v00008086d000010D3sv00008086")).toBe(true);
    expect(matches("v0000808?d*", "v00008086d1")).toBe(true);
    expect(matches("v0000808?d*", "v000080866d1")).toBe(false);
    expect(matches("abc", "abcd")).toBe(false);
    expect(matches("*", "")).toBe(true);
  });

  it("supports bracket sets, ranges and negation with ! or ^", () => {
    expect(matches("d0[0-2]*", "d01x")).toBe(true);
    expect(matches("d0[0-2]*", "d03x")).toBe(false);
    expect(matches("d[!0-2]", "d3")).toBe(true);
    expect(matches("d[!0-2]", "d1")).toBe(false);
    expect(matches("d[^0-2]", "d1")).toBe(false);
    expect(matches("bc0[3C]", "bc0C")).toBe(true);
    expect(matches("bc0[3C]", "bc0c")).toBe(false);
  });

  it("takes ] first in a set literally, and an unterminated [ literally", () => {
    expect(matches("a[]b]c", "a]c")).toBe(true);
    expect(matches("a[]b]c", "abc")).toBe(true);
    expect(matches("a[bc", "a[bc")).toBe(true);
    expect(matches("a[bc", "ab")).toBe(false);
  });

  it("escapes regular-expression characters and honours backslash escapes", () => {
    expect(matches("a.b", "a.b")).toBe(true);
    expect(matches("a.b", "axb")).toBe(false);
    expect(matches("a\\*b", "a*b")).toBe(true);
    expect(matches("a\\*b", "axb")).toBe(false);
    expect(matches("(x)+", "(x)+")).toBe(true);
  });

  it("matches a real pci alias with a bracket set", () => {
    const index = parseModuleAliases("alias pci:v000010DEd00001[B-C]B0sv*sd*bc03sc*i* gpu_drv\n");
    expect(index.modulesFor(P5000)).toEqual(["gpu_drv"]);
    expect(index.modulesFor(P5000.replace("1BB0", "1DB0"))).toEqual([]);
  });
});

describe("parseModuleAliases", () => {
  const seedAliases = seedHost().modules!.alias!.join("\n");

  it("answers like lspci -k for the seed's devices, in file order", () => {
    const index = parseModuleAliases(seedAliases);
    expect(index.modulesFor(P5000)).toEqual(["nouveau", "nvidiafb"]);
    expect(index.modulesFor(P5000_AUDIO)).toEqual(["snd_hda_intel"]);
    expect(index.modulesFor("pci:v00008086d00001593sv00008086sd00000002bc02sc00i00")).toEqual([
      "ice",
    ]);
    expect(index.modulesFor("pci:v00001A03d00002000sv000015D9sd00001B95bc03sc00i00")).toEqual([
      "ast",
    ]);
    expect(index.modulesFor(E1000E_TWIN)).toEqual(["e1000e"]);
    // The class-wide ahci alias (v*d*…bc01sc06i01*) and the id one both name ahci: listed once.
    expect(index.modulesFor("pci:v00008086d0000A182sv000015D9sd0000095Bbc01sc06i01")).toEqual([
      "ahci",
    ]);
    // Any vendor's AHCI controller, through the wildcard-vendor alias only.
    expect(index.modulesFor("pci:v00001B21d00000612sv00001B21sd00001060bc01sc06i01")).toEqual([
      "ahci",
    ]);
    expect(index.modulesFor("pci:v00001B21d00000612sv00001B21sd00001060bc01sc06i00")).toEqual([]);
  });

  it("follows file order, not bucket order", () => {
    const text = [
      "alias pci:v*d*sv*sd*bc03sc*i* wild_first",
      "alias pci:v000010DEd*sv*sd*bc03sc*i* vendor_second",
      "alias pci:v000010DEd00001BB0sv*sd*bc*sc*i* exact_third",
      "alias pci:v000010DEd*sv*sd*bc*sc*i* wild_first",
    ].join("\n");
    expect(parseModuleAliases(text).modulesFor(P5000)).toEqual([
      "wild_first",
      "vendor_second",
      "exact_third",
    ]);
    const reversed = text.split("\n").reverse().join("\n");
    expect(parseModuleAliases(reversed).modulesFor(P5000)).toEqual([
      "wild_first",
      "exact_third",
      "vendor_second",
    ]);
  });

  it("ignores every alias that is not pci:, and modaliases that are not pci:", () => {
    const index = parseModuleAliases(ALIAS_LINES.other.join("\n"));
    expect(index.modulesFor(P5000)).toEqual([]);
    expect(index.modulesFor("vfio_pci:v000010DEd00001BB0sv000010DEsd000011A3bc03sc00i00")).toEqual(
      [],
    );
    expect(index.modulesFor("usb:v13FDp3940d0100dc00dsc00dp00ic08isc06ip50in00")).toEqual([]);
  });

  it("tolerates comments, blank lines, tabs and CRLF", () => {
    const index = parseModuleAliases(
      "# Aliases\n\nalias pci:v00008086d000010D3sv*sd*bc*sc*i*\te1000e\r\n",
    );
    expect(index.modulesFor(E1000E_TWIN)).toEqual(["e1000e"]);
  });

  it("reads a pci alias on the first and on an unterminated last line, only at a line start", () => {
    const first = "alias pci:v00008086d000010D3sv*sd*bc*sc*i* first";
    const last = "alias pci:v00008086d000010D3sv*sd*bc*sc*i* last";
    const text = [first, "alias usb:v1234p5678d*dc*dsc*dp*ic*isc*ip*in* usbonly", last].join("\n");
    expect(parseModuleAliases(text).modulesFor(E1000E_TWIN)).toEqual(["first", "last"]);
    // Not at a line start: "xalias pci:…" and " alias pci:…" are not alias lines.
    const inside =
      "xalias pci:v00008086d000010D3sv*sd*bc*sc*i* no\n alias pci:v*d*sv*sd*bc*sc*i* no2";
    expect(parseModuleAliases(inside).modulesFor(E1000E_TWIN)).toEqual([]);
  });

  it("hands out copies: a caller changing an answer does not poison the cache", () => {
    const index = parseModuleAliases(seedAliases);
    index.modulesFor(P5000).push("oops");
    expect(index.modulesFor(P5000)).toEqual(["nouveau", "nvidiafb"]);
  });

  it("gives the same answers as a plain scan of every line (bucketing is only an optimisation)", () => {
    const lines = [...syntheticAliasLines(), ...seedAliases.split("\n")];
    const index = parseModuleAliases(lines.join("\n"));
    const plain = lines
      .filter((l) => l.startsWith("alias pci:"))
      .map((l) => {
        const [, glob, module] = l.split(/\s+/);
        return { matches: compileGlob(glob!.slice(4)), module: module! };
      });
    const scan = (modalias: string) => {
      const out: string[] = [];
      for (const { matches, module } of plain) {
        if (matches(modalias.slice(4)) && !out.includes(module)) out.push(module);
      }
      return out;
    };
    // Modaliases that hit exact, vendor-wide and wildcard-vendor aliases, and some that hit none.
    const subjects = new Set<string>([P5000, P5000_AUDIO, E1000E_TWIN]);
    // Every 100th pci line (exact, vendor-wide and wildcard-vendor ones alike) keeps the plain scan,
    // ~9,000 globs per subject, within a few seconds.
    const sample = lines.filter(
      (l, i) => l.startsWith("alias pci:") && (i % 100 === 0 || !l.includes("d0000")),
    );
    for (const line of sample) {
      const m = /v0000([0-9A-F]{4})d(?:0000([0-9A-F]{4}))?/.exec(line);
      const vendor = (m?.[1] ?? "1B21").toLowerCase();
      const device = (m?.[2] ?? "0612").toLowerCase();
      for (const cls of ["030000", "0c8000"]) {
        subjects.add(pciModalias({ vendor, device, class: cls }));
      }
    }
    let nonEmpty = 0;
    for (const modalias of subjects) {
      const expected = scan(modalias);
      if (expected.length > 0) nonEmpty++;
      expect([modalias, index.modulesFor(modalias)]).toEqual([modalias, expected]);
    }
    expect(subjects.size).toBeGreaterThan(150);
    expect(nonEmpty).toBeGreaterThan(80);
  }, 60_000);

  it("finds aliases whose vendor is a glob or oddly spaced as it finds a vendor's own, in file order", () => {
    const text = [
      "alias pci:v0000808?d*sv*sd*bc*sc*i* glob_vendor",
      "alias pci:v00008086d000010D3sv*sd*bc*sc*i* exact",
      "alias pci: v00008086d*sv*sd*bc*sc*i* spaced",
      "alias pci:v0000\u00a08086d*sv*sd*bc*sc*i* nbsp_vendor",
      "alias pci:v0000[8]086d*sv*sd*bc*sc*i* bracket_vendor",
      "alias pci:v00008086 short_glob",
      "alias pci:v*d*sv*sd*bc02sc*i* any_vendor",
      "alias pci:v00008086d*sv*sd*bc*sc*i*",
    ].join("\n");
    expect(parseModuleAliases(text).modulesFor(E1000E_TWIN)).toEqual([
      "glob_vendor",
      "exact",
      "spaced",
      "bracket_vendor",
      "any_vendor",
    ]);
    // The same from the bytes a file read gives.
    const bytes = Buffer.from(text, "latin1");
    expect(parseModuleAliases(bytes).modulesFor(E1000E_TWIN)).toEqual(
      parseModuleAliases(text).modulesFor(E1000E_TWIN),
    );
  });
});

describe("loadModuleIndex", () => {
  it("reads /lib/modules/<release>/modules.alias under the root", () => {
    const built = makeTempHost(seedHost());
    cleanups.push(built.cleanup);
    const { index, problems } = loadModuleIndex(built.root, "6.8.0-45-generic");
    expect(problems).toEqual([]);
    expect(index.modulesFor(P5000)).toEqual(["nouveau", "nvidiafb"]);
  });

  it("answers nothing, with a problem naming the file and the package, when it is missing", () => {
    const built = makeTempHost(seedHost());
    cleanups.push(built.cleanup);
    fs.rmSync(path.join(built.root, "lib/modules/6.8.0-45-generic/modules.alias"));
    const { index, problems } = loadModuleIndex(built.root, "6.8.0-45-generic");
    expect(index.modulesFor(P5000)).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.path).toBe("/lib/modules/6.8.0-45-generic/modules.alias");
    expect(problems[0]!.message).toMatch(/ENOENT.*linux-modules-6\.8\.0-45-generic/);
  });
});

describe("rememberingModuleIndex (answers kept between hooks while modules.alias is unchanged)", () => {
  const RELEASE = "6.8.0-45-generic";
  const aliasFile = (root: string) => path.join(root, "lib/modules", RELEASE, "modules.alias");
  const seed = () => {
    const built = makeTempHost(seedHost());
    cleanups.push(built.cleanup);
    return built.root;
  };

  it("answers as the file does, and remembers exactly the questions asked, sorted", () => {
    const root = seed();
    const first = rememberingModuleIndex(root, RELEASE, null);
    expect(first.index.modulesFor(P5000_AUDIO)).toEqual(["snd_hda_intel"]);
    expect(first.index.modulesFor(P5000)).toEqual(["nouveau", "nvidiafb"]);
    expect(first.index.modulesFor(P5000)).toEqual(["nouveau", "nvidiafb"]);
    expect(first.problems()).toEqual([]);
    const kept = first.remembered()!;
    expect(Object.keys(kept.answers)).toEqual([P5000, P5000_AUDIO].sort());
    expect(kept.stamp).toMatch(/^\/lib\/modules\/6\.8\.0-45-generic\/modules\.alias:\d+:\d+:/);
  });

  it("does not read the file again while its inode, size and mtime are the same", () => {
    const root = seed();
    const file = aliasFile(root);
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
    const first = rememberingModuleIndex(root, RELEASE, null);
    first.index.modulesFor(P5000);
    const kept = first.remembered()!;
    // Same inode, same size, same mtime, different text: only a reader of the file would notice.
    // (depmod never does this; it writes a new file and renames it over the old one.)
    const text = fs.readFileSync(file, "latin1");
    fs.writeFileSync(file, text.replaceAll("nouveau", "nouvea2"), { flag: "r+" });
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
    const second = rememberingModuleIndex(root, RELEASE, kept);
    expect(second.index.modulesFor(P5000)).toEqual(["nouveau", "nvidiafb"]);
    // A question it was not asked before does read the file (and sees the new text).
    expect(second.index.modulesFor(E1000E_TWIN)).toEqual(["e1000e"]);
    expect(second.remembered()!.answers[P5000]).toEqual(["nouveau", "nvidiafb"]);
  });

  it("reads the file again once depmod replaced it", () => {
    const root = seed();
    const first = rememberingModuleIndex(root, RELEASE, null);
    first.index.modulesFor(P5000);
    const file = aliasFile(root);
    const text = fs.readFileSync(file, "latin1");
    fs.writeFileSync(`${file}.tmp`, text.replaceAll(" nouveau", " nouveau_next"));
    fs.renameSync(`${file}.tmp`, file);
    const second = rememberingModuleIndex(root, RELEASE, first.remembered());
    expect(second.index.modulesFor(P5000)).toEqual(["nouveau_next", "nvidiafb"]);
    expect(second.remembered()!.stamp).not.toBe(first.remembered()!.stamp);
  });

  it("keeps nothing from an unreadable file, so the next hook tries it again", () => {
    const root = seed();
    fs.rmSync(aliasFile(root));
    const index = rememberingModuleIndex(root, RELEASE, null);
    expect(index.index.modulesFor(P5000)).toEqual([]);
    expect(index.problems()[0]!.message).toMatch(/ENOENT/);
    expect(index.remembered()).toBeNull();
  });

  it("hands out copies of remembered answers", () => {
    const root = seed();
    const first = rememberingModuleIndex(root, RELEASE, null);
    first.index.modulesFor(P5000);
    const second = rememberingModuleIndex(root, RELEASE, first.remembered());
    second.index.modulesFor(P5000).push("poison");
    expect(second.index.modulesFor(P5000)).toEqual(["nouveau", "nvidiafb"]);
    expect(second.remembered()!.answers[P5000]).toEqual(["nouveau", "nvidiafb"]);
  });
});

describe("planModulesFor (a hook reads what its plan asks of the modules, before planning)", () => {
  const RELEASE = "6.8.0-45-generic";
  const aliasFile = (root: string) => path.join(root, "lib/modules", RELEASE, "modules.alias");
  const ONE_GPU = parseConfig({ devices: "0000:83:00.0" });
  const config = ONE_GPU.ok ? ONE_GPU.config : null;
  const seed = () => {
    const built = makeTempHost(seedHost());
    cleanups.push(built.cleanup);
    return { root: built.root, facts: readHostFacts(built.root).facts };
  };

  it("answers every distinct modalias of the host and names every driver's module, as data", () => {
    const { root, facts } = seed();
    const modules = planModulesFor(config!, root, facts, null)!;
    expect([...modules.aliases.keys()].sort()).toEqual(
      [...new Set(facts.functions.map((f) => f.modalias))].sort(),
    );
    expect(modules.aliases.get(P5000)).toEqual(["nouveau", "nvidiafb"]);
    const drivers = new Set(facts.functions.flatMap((f) => (f.driver ? [f.driver] : [])));
    expect([...modules.names.ofDriver.keys()].sort()).toEqual([...drivers].sort());
    // `known` answers for what the plan can ask: every module modules.alias named, every driver's.
    expect(modules.names.known?.has("nouveau")).toBe(true);
    const asked = new Set([
      ...[...modules.aliases.values()].flat().map((m) => m.replaceAll("-", "_")),
      ...[...modules.names.ofDriver.values()].filter((m) => m !== null),
    ]);
    expect([...modules.names.known!].filter((m) => !asked.has(m))).toEqual([]);
    expect(modules.problems).toEqual([]);
    expect(Object.keys(modules.remembered!.answers)).toEqual([...modules.aliases.keys()].sort());
  });

  it("answers from the last hook's memory while modules.alias is the same file", () => {
    const { root, facts } = seed();
    const file = aliasFile(root);
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
    const first = planModulesFor(config!, root, facts, null)!;
    const text = fs.readFileSync(file, "latin1");
    fs.writeFileSync(file, text.replaceAll(" nouveau", " nouvea2"), { flag: "r+" });
    fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
    const second = planModulesFor(config!, root, facts, first.remembered)!;
    expect(second.aliases.get(P5000)).toEqual(["nouveau", "nvidiafb"]);
    expect(second.remembered).toEqual(first.remembered);
  });

  it("reads nothing without a selection, and says an unreadable file once", () => {
    const { root, facts } = seed();
    const none = parseConfig({});
    expect(planModulesFor(none.ok ? none.config : config!, root, facts, null)).toBeNull();
    fs.rmSync(aliasFile(root));
    const modules = planModulesFor(config!, root, facts, null)!;
    expect(modules.problems.map((p) => p.path)).toEqual([`/lib/modules/${RELEASE}/modules.alias`]);
    expect(modules.aliases.get(P5000)).toEqual([]);
    expect(modules.remembered).toBeNull();
  });
});
