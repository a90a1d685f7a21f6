// Which kernel modules would claim a PCI device, answered from the running kernel's modules.alias
// the way kmod (and so `lspci -k`) does: each `alias <glob> <module>` line is an fnmatch(3) pattern
// matched against the device's modalias. Only `pci:` aliases are kept.
//
// Speed matters (issue 7: 10,000 functions in well under a second): the file is kept as bytes and
// a vendor's aliases are found by a byte search on its first lookup, bucketed by their literal
// vendor and device ids, so a lookup tries only the aliases for its vendor:device, its vendor with
// any device, and the handful with a wildcard vendor; each glob is compiled once, on first use;
// answers are cached per distinct modalias (VFs share one).

import { normaliseModule } from "../module-name-vocabulary";
import type { HostReadProblem, ModuleAliases, ModuleIndex, ModuleNames } from "./facts";
import { fileStamp } from "./file-stamp";
import { readFileSync, readlinkSync } from "./fs";
import { errnoCode } from "./read-files";
import { driverModuleLink, moduleFiles, under } from "./root";

interface AliasEntry {
  /** Line order in modules.alias: answers come back in file order. */
  order: number;
  /** The glob without the `pci:` prefix. */
  glob: string;
  module: string;
  /** Compiled on first use: most aliases are never tried. */
  matches: GlobMatcher | null;
}

// In `pci:v00008086d000010D3sv…` (after `pci:`), the vendor id is at 1..9 and the device at 10..18.
const VENDOR = [1, 9] as const;
const DEVICE = [10, 18] as const;
const GLOB_CHARS = /[*?[\\]/;

/** Builds a ModuleIndex from the text of a modules.alias file (as read: bytes, or a string).
 *
 * Nothing is parsed up front: a real file is a megabyte of ~26,000 lines, and a host asks about
 * a handful of vendors. A lookup finds its vendor's lines by a byte search for
 * `alias pci:v<vendor>`; the first lookup walks the `alias pci:` lines once for those whose vendor
 * is a glob (a few dozen), which every lookup tries. Every line is read as the full parse would
 * read it, and answers keep file order. */
export function parseModuleAliases(text: string | Buffer): ModuleIndex {
  const data = typeof text === "string" ? Buffer.from(text, "latin1") : text;
  /** Aliases whose vendor is not one literal id (a glob, or an odd line), bucketed as a full
   * parse buckets them; found by the one walk. */
  let odd: Buckets | null = null;
  const vendors = new Map<string, Buckets>();

  const cache = new Map<string, string[]>();
  return {
    modulesFor(modalias: string): string[] {
      const cached = cache.get(modalias);
      if (cached) return cached.slice();
      const answer = lookup(modalias);
      cache.set(modalias, answer);
      return answer.slice();
    },
  };

  function lookup(modalias: string): string[] {
    if (!modalias.startsWith("pci:")) return [];
    const subject = modalias.slice("pci:".length);
    const vendor = subject.slice(VENDOR[0], VENDOR[1]);
    const device = subject.slice(DEVICE[0], DEVICE[1]);
    odd ??= oddAliases(data);
    const own = vendorAliases(vendor);
    const candidates = [
      ...(own?.byVendorDevice.get(vendor + device) ?? []),
      ...(own?.byVendor.get(vendor) ?? []),
      ...(odd.byVendorDevice.get(vendor + device) ?? []),
      ...(odd.byVendor.get(vendor) ?? []),
      ...odd.anyVendor,
    ].sort((a, b) => a.order - b.order);
    const modules: string[] = [];
    for (const entry of candidates) {
      entry.matches ??= compileGlob(entry.glob);
      if (entry.matches(subject) && !modules.includes(entry.module)) modules.push(entry.module);
    }
    return modules;
  }

  /** The lines `alias pci:v<vendor>…` whose vendor field is exactly that literal id. */
  function vendorAliases(vendor: string): Buckets | null {
    if (!isLiteralId(vendor)) return null;
    let found = vendors.get(vendor);
    if (found) return found;
    found = emptyBuckets();
    const needle = Buffer.from(`${ALIAS_PCI}v${vendor}`, "latin1");
    for (let at = data.indexOf(needle); at !== -1; at = data.indexOf(needle, at + 1)) {
      if (at === 0 || data[at - 1] === NEWLINE) addLine(found, data, at);
    }
    vendors.set(vendor, found);
    return found;
  }
}

/** Aliases bucketed the way a lookup tries them. */
interface Buckets {
  byVendorDevice: Map<string, AliasEntry[]>;
  byVendor: Map<string, AliasEntry[]>;
  anyVendor: AliasEntry[];
}

function emptyBuckets(): Buckets {
  return { byVendorDevice: new Map(), byVendor: new Map(), anyVendor: [] };
}

const ALIAS_PCI = "alias pci:";
const NEWLINE = 0x0a;

/** 8 characters that a vendor search can find literally: no glob character, no white space. */
function isLiteralId(id: string): boolean {
  return id.length === VENDOR[1] - VENDOR[0] && !/[*?[\\\s]/.test(id);
}

/** The `alias pci:` lines (at a line start) whose vendor field is not 8 literal characters after
 * a `v`: the ones a vendor's byte search cannot find. One regular-expression scan of the file
 * (latin1: a character per byte, so its offsets are the bytes'), not a loop over ~9,000 lines. */
function oddAliases(data: Buffer): Buckets {
  const buckets = emptyBuckets();
  const text = data.toString("latin1");
  ODD_ALIAS.lastIndex = 0;
  for (let m = ODD_ALIAS.exec(text); m !== null; m = ODD_ALIAS.exec(text)) {
    addLine(buckets, data, m.index);
  }
  return buckets;
}

/** `alias pci:` at a line start (after a newline only, as the lines are split) not followed by
 * `v` and 8 characters that are neither glob characters nor white space (as trim() and \s see it). */
const ODD_ALIAS = /(?<=^|\n)alias pci:(?!v[^*?[\\\s]{8})/g;

/** Parses the `alias pci:` line at `at` and files it in its bucket (its order: its offset). */
function addLine(buckets: Buckets, data: Buffer, at: number): void {
  let end = data.indexOf(NEWLINE, at);
  if (end === -1) end = data.length;
  const line = data.toString("latin1", at + ALIAS_PCI.length, end).trim();
  const space = line.search(/\s/);
  if (space <= 0) return;
  const glob = line.slice(0, space);
  const module = line.slice(space).trim();
  if (module === "") return;
  const entry: AliasEntry = { order: at, glob, module, matches: null };
  const vendor = literalField(glob, VENDOR, "v");
  if (vendor === null) {
    buckets.anyVendor.push(entry);
  } else {
    const device = glob[DEVICE[0] - 1] === "d" ? literalField(glob, DEVICE, "d") : null;
    if (device === null) push(buckets.byVendor, vendor, entry);
    else push(buckets.byVendorDevice, vendor + device, entry);
  }
}

/** The literal 8 hex digits of a field when the glob fixes them (`v00008086` → `00008086`). */
function literalField(
  glob: string,
  [from, to]: readonly [number, number],
  tag: string,
): string | null {
  if (glob[from - 1] !== tag) return null;
  const field = glob.slice(from, to);
  return field.length === to - from && !GLOB_CHARS.test(field) ? field : null;
}

function push(map: Map<string, AliasEntry[]>, key: string, entry: AliasEntry): void {
  const list = map.get(key);
  if (list) list.push(entry);
  else map.set(key, [entry]);
}

/** One element of a compiled glob. */
type GlobToken =
  | { kind: "char"; char: string }
  | { kind: "any" }
  | { kind: "star" }
  | { kind: "set"; negate: boolean; singles: string; ranges: Array<[string, string]> };

/** A compiled glob: tells whether a whole string matches it. */
export type GlobMatcher = (subject: string) => boolean;

/** Compiles an fnmatch(3) pattern (no flags, as kmod calls it): `*`, `?`, `[a-f]`, `[!x]`/`[^x]`,
 * `]` first in a set is literal, an unterminated `[` is literal, `\` escapes.
 *
 * Matching is the greedy two-pointer walk (on a mismatch, let the last `*` take one more
 * character), linear in practice. A RegExp with one `[^]*` per `*` backtracks polynomially on a
 * near miss: alias globs have four or five stars, and that made a lookup cost milliseconds. */
export function compileGlob(glob: string): GlobMatcher {
  const tokens: GlobToken[] = [];
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") {
      if (tokens.at(-1)?.kind !== "star") tokens.push({ kind: "star" });
    } else if (c === "?") tokens.push({ kind: "any" });
    else if (c === "\\" && i + 1 < glob.length) tokens.push({ kind: "char", char: glob[++i]! });
    else if (c === "[") {
      const set = parseBracket(glob, i);
      if (set === null) tokens.push({ kind: "char", char: "[" });
      else {
        tokens.push(set.token);
        i = set.end;
      }
    } else tokens.push({ kind: "char", char: c });
  }
  return (subject) => matchTokens(tokens, subject);
}

function matchTokens(tokens: GlobToken[], subject: string): boolean {
  let t = 0;
  let s = 0;
  let starToken = -1;
  let starSubject = 0;
  while (s < subject.length) {
    const token = tokens[t];
    if (token !== undefined) {
      if (token.kind === "star") {
        starToken = t++;
        starSubject = s;
        continue;
      }
      if (matchesOne(token, subject[s]!)) {
        t++;
        s++;
        continue;
      }
    }
    if (starToken === -1) return false;
    t = starToken + 1;
    s = ++starSubject;
  }
  while (tokens[t]?.kind === "star") t++;
  return t === tokens.length;
}

function matchesOne(token: Exclude<GlobToken, { kind: "star" }>, c: string): boolean {
  if (token.kind === "char") return token.char === c;
  if (token.kind === "any") return true;
  const inSet =
    token.singles.includes(c) || token.ranges.some(([from, to]) => c >= from && c <= to);
  return inSet !== token.negate;
}

/** A bracket expression starting at `[`; null when unterminated (then `[` is literal, as in glibc). */
function parseBracket(glob: string, open: number): { token: GlobToken; end: number } | null {
  let i = open + 1;
  let negate = false;
  if (glob[i] === "!" || glob[i] === "^") {
    negate = true;
    i++;
  }
  let singles = "";
  const ranges: Array<[string, string]> = [];
  let first = true;
  for (; i < glob.length; i++) {
    let c = glob[i]!;
    if (c === "]" && !first) return { token: { kind: "set", negate, singles, ranges }, end: i };
    first = false;
    if (c === "\\" && i + 1 < glob.length) c = glob[++i]!;
    // `a-z` is a range unless the `-` is last (`[a-]`): then both are literal.
    if (glob[i + 1] === "-" && glob[i + 2] !== undefined && glob[i + 2] !== "]") {
      let to = glob[i + 2]!;
      i += 2;
      if (to === "\\" && i + 1 < glob.length) to = glob[++i]!;
      ranges.push([c, to]);
    } else singles += c;
  }
  return null;
}

/** A ModuleIndex that knows no module (modules.alias unreadable): every answer is empty. */
export const EMPTY_MODULE_INDEX: ModuleIndex = { modulesFor: () => [] };

/** Reads `/lib/modules/<release>/modules.alias` (only hooks that need driver names pay for it). */
export function loadModuleIndex(
  root: string,
  release: string,
): { index: ModuleIndex; problems: HostReadProblem[] } {
  const file = moduleFiles(release).alias;
  try {
    return {
      index: parseModuleAliases(readFileSync(under(root, file))),
      problems: [],
    };
  } catch (error) {
    const code = errnoCode(error);
    return {
      index: EMPTY_MODULE_INDEX,
      problems: [
        {
          kind: "unreadable",
          path: file,
          address: null,
          message: `cannot read ${file} (${code}): the drivers that would claim each device are unknown — is the running kernel's modules package (linux-modules-${release}) installed? (run depmod -a if it is)`,
        },
      ],
    };
  }
}

/** What modules.alias answered for the modaliases a hook asked about, and which file that was. */
export interface RememberedModules {
  /** `<path>:<inode>:<size>:<mtime ms>` of the modules.alias the answers came from. */
  stamp: string;
  /** Modalias → modules, as modulesFor answered; keys sorted, so equal answers store equal. */
  answers: Record<string, string[]>;
  /** Which of the modules the plan may name the kernel has, while modules.dep and
   * modules.builtin are the same files (readModuleNames). */
  names?: RememberedModuleNames;
}

/** Whether the kernel has each module a hook asked about, and which listing files said so. */
export interface RememberedModuleNames {
  /** The stamps of modules.dep and modules.builtin, joined by `|`. */
  stamp: string;
  /** Module (`_` spelling) → whether modules.dep or modules.builtin lists it; keys sorted. */
  answers: Record<string, boolean>;
}

/** A hook's ModuleIndex, with what to remember for the next hook. */
export interface RememberingModuleIndex {
  index: ModuleIndex;
  /** Why the file could not be read, when a question made the index read it. */
  problems(): HostReadProblem[];
  /** This hook's answers with the file's stamp; null when there is nothing to keep. */
  remembered(): RememberedModules | null;
}

/**
 * A ModuleIndex that answers from `remembered` while modules.alias is the same file, and reads the
 * file only for a question it has no answer to. A real modules.alias is a megabyte (~26,000 lines)
 * and parsing it cold costs tens of milliseconds, on every hook of every compute host; the
 * questions (the host's few distinct modaliases) are the same from one hook to the next.
 * Answers from an unreadable file are not kept, so the next hook tries the file again.
 */
export function rememberingModuleIndex(
  root: string,
  release: string,
  remembered: RememberedModules | null,
): RememberingModuleIndex {
  const stamp = fileStamp(root, moduleFiles(release).alias);
  const known = stamp !== null && remembered?.stamp === stamp ? remembered.answers : {};
  const asked = new Map<string, string[]>();
  let loaded: { index: ModuleIndex; problems: HostReadProblem[] } | null = null;
  return {
    index: {
      modulesFor(modalias: string): string[] {
        let answer =
          asked.get(modalias) ?? (Object.hasOwn(known, modalias) ? known[modalias] : undefined);
        if (answer === undefined) {
          loaded ??= loadModuleIndex(root, release);
          answer = loaded.index.modulesFor(modalias);
          if (loaded.problems.length > 0) return answer;
        }
        asked.set(modalias, answer);
        return answer.slice();
      },
    },
    problems: () => loaded?.problems ?? [],
    remembered: () => {
      if (stamp === null || asked.size === 0) return null;
      const answers: Record<string, string[]> = {};
      for (const key of [...asked.keys()].sort()) answers[key] = asked.get(key)!;
      return { stamp, answers };
    },
  };
}

/** `kernel/drivers/net/e1000e/e1000e.ko.zst: deps` or a modules.builtin path → `e1000e`. */
function moduleNameOfPath(path: string): string | null {
  const base = path.slice(path.lastIndexOf("/") + 1);
  const m = /^(.+?)\.ko(?:\.(?:zst|xz|gz))?$/.exec(base);
  return m ? normaliseModule(m[1]!) : null;
}

/** What one listing file of the running kernel says: the modules it names (`_` spelling), or the
 * errno code it could not be read with (`ENOENT` included: each reader words its own problem). */
export type ModuleList = { names: ReadonlySet<string> } | { error: string };

/**
 * The running kernel's module listings as read so far in this dispatch: plain data, filled by
 * whichever reader needs a file first (the kernel facts for vfio-pci, readModuleNames for every
 * name) and handed on, so each file is read once. A file not read yet is absent.
 */
export interface ModuleListing {
  release: string;
  /** modules.builtin: the modules compiled into the kernel. */
  builtin?: ModuleList;
  /** modules.dep: every loadable module, by path. */
  dep?: ModuleList;
}

/** A fresh, empty listing of this release's modules (nothing read yet). */
export function moduleListing(release: string): ModuleListing {
  return { release };
}

/** The listing's answer for modules.builtin or modules.dep, reading the file on first ask. */
export function listedModules(
  root: string,
  listing: ModuleListing,
  which: "builtin" | "dep",
): ModuleList {
  const known = listing[which];
  if (known) return known;
  const file = moduleFiles(listing.release)[which];
  let list: ModuleList;
  try {
    const text = readFileSync(under(root, file), "latin1");
    const names = new Set<string>();
    for (const line of text.split("\n")) {
      if (!line.includes(".ko")) continue;
      const path = which === "dep" ? line.slice(0, line.indexOf(":")) : line.trim();
      const name = moduleNameOfPath(path);
      if (name) names.add(name);
    }
    list = { names };
  } catch (error) {
    list = { error: errnoCode(error) };
  }
  listing[which] = list;
  return list;
}

/**
 * modules.alias's answers for these modaliases (each asked once), read before planning: from
 * `remembered` while the file is unchanged, from the file for any other. Problems (an unreadable
 * file) come back once, to be logged once; `remembered` is what to keep for the next hook (null:
 * nothing to keep, e.g. the file could not be read).
 */
export function readModuleAliases(
  root: string,
  release: string,
  modaliases: Iterable<string>,
  remembered: RememberedModules | null,
): { aliases: ModuleAliases; problems: HostReadProblem[]; remembered: RememberedModules | null } {
  const index = rememberingModuleIndex(root, release, remembered);
  const aliases = new Map<string, readonly string[]>();
  for (const modalias of modaliases) {
    if (!aliases.has(modalias)) aliases.set(modalias, index.index.modulesFor(modalias));
  }
  return { aliases, problems: index.problems(), remembered: index.remembered() };
}

/**
 * The module names of the target kernel (the running one: its /lib/modules is what the next
 * initramfs and boot use) and the modules of these drivers (their sysfs module links), read
 * before planning. Problems (unreadable files) come back once.
 *
 * `known` answers for the modules the plan can ask about: `asked` (what modules.alias answered,
 * the blacklist-drivers list) and the drivers' modules. While modules.dep and modules.builtin are
 * the same files, those answers come from `remembered` (the last hook's) and neither file is read:
 * a real modules.dep is half a megabyte of lines, the answers a few dozen booleans.
 */
export function readModuleNames(
  root: string,
  release: string,
  drivers: Iterable<string>,
  /** What this dispatch already read of the listings (the kernel facts'); filled as read. */
  listing: ModuleListing = moduleListing(release),
  asked: Iterable<string> = [],
  remembered: RememberedModuleNames | null = null,
): { names: ModuleNames; problems: HostReadProblem[]; remembered: RememberedModuleNames | null } {
  const problems: HostReadProblem[] = [];
  const ofDriver = new Map<string, string | null>();
  for (const driver of drivers) {
    if (ofDriver.has(driver)) continue;
    let module: string | null = null;
    try {
      const target = readlinkSync(under(root, driverModuleLink(driver)));
      module = normaliseModule(target.slice(target.lastIndexOf("/") + 1)) || null;
    } catch {
      // Built-in drivers without a module name, or a driver gone since: no answer.
    }
    ofDriver.set(driver, module);
  }
  const questions = new Set<string>();
  for (const m of asked) questions.add(normaliseModule(m));
  for (const m of ofDriver.values()) if (m !== null) questions.add(m);
  const files = moduleFiles(release);
  const depStamp = fileStamp(root, files.dep);
  const builtinStamp = fileStamp(root, files.builtin);
  const stamp = depStamp !== null && builtinStamp !== null ? `${depStamp}|${builtinStamp}` : null;
  const answers = stamp !== null && remembered?.stamp === stamp ? remembered.answers : null;
  if (answers !== null && [...questions].every((m) => Object.hasOwn(answers, m))) {
    const known = new Set([...questions].filter((m) => answers[m]));
    return {
      names: { ofDriver, known },
      problems,
      remembered: rememberNames(stamp!, questions, known),
    };
  }
  const own = listing.release === release ? listing : moduleListing(release);
  const lists: ReadonlySet<string>[] = [];
  for (const which of ["dep", "builtin"] as const) {
    const list = listedModules(root, own, which);
    if ("error" in list) {
      const file = files[which];
      problems.push({
        kind: "unreadable",
        path: file,
        address: null,
        message: `cannot read ${file} (${list.error}): module names cannot be checked, so none is written into modprobe.d or modprobe.blacklist= (is linux-modules-${release} installed? run depmod -a)`,
      });
      continue;
    }
    lists.push(list.names);
  }
  if (lists.length === 0) return { names: { ofDriver, known: null }, problems, remembered: null };
  // Only the answers the plan can ask for: the same whether read now or remembered.
  const known = new Set([...questions].filter((m) => lists.some((names) => names.has(m))));
  const keep =
    stamp !== null && problems.length === 0 ? rememberNames(stamp, questions, known) : null;
  return { names: { ofDriver, known }, problems, remembered: keep };
}

function rememberNames(
  stamp: string,
  questions: ReadonlySet<string>,
  known: ReadonlySet<string>,
): RememberedModuleNames {
  const answers: Record<string, boolean> = {};
  for (const m of [...questions].sort()) answers[m] = known.has(m);
  return { stamp, answers };
}
