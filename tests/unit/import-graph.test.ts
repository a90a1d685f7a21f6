// The arrows of src/, read from the code with TypeScript's own parser (ts.preProcessFile: every
// import, export-from, dynamic import and require, type-only ones included). The layering the
// charm is built on (docs/ARCHITECTURE.md, "Layers and their rules") holds only while nobody adds
// the one import that breaks it, so it is a test:
//   - host/ reads facts: it imports nothing from plan/, actions/ or apply/ (types they share live
//     with the facts or in pci-vocabulary.ts);
//   - pure modules (plan/, the action planners, config/, the vocabularies, text) never import apply/, nor
//     node:fs / node:child_process: they take facts and return decisions;
//   - no two files of src/ import each other, however indirectly;
//   - src/ imports only ops-ts-shim's public face (the package root);
//   - what a hook runs reads the host only through host/fs.ts, which records every read for the
//     quiet-hook memo (src/quiet/); apply/ imports node:fs's writers only; it starts processes
//     only through the shim's runProcess, which counts them (bar usage.ts's `ip`);
//   - only host/root.ts spells absolute host paths (read from the string literals of the code).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const TOP = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SRC = join(TOP, "src");
const ARCHITECTURE = join(TOP, "docs", "ARCHITECTURE.md");

/** Actions that act on the host (sysfs writes, commands); every other file of actions/ is pure. */
const ACTION_EXECUTORS = new Set(["actions/rebind.ts", "actions/sriov-vfs.ts"]);

/** Whether a file (relative to src/) must stay free of I/O and of apply/. */
function isPure(file: string): boolean {
  if (file.startsWith("plan/")) return true;
  if (file.startsWith("actions/")) return !ACTION_EXECUTORS.has(file);
  return file.startsWith("config/") || file.endsWith("-vocabulary.ts") || file === "text.ts";
}

/** file (relative to src/) → what it imports: other src files (relative to src/, no extension
 * resolution beyond .ts/.js/.d.ts) and bare specifiers (`node:fs`, `yaml`). */
type Graph = Map<string, string[]>;

interface Rule {
  name: string;
  applies(file: string): boolean;
  forbids(target: string): boolean;
}

const RULES: Rule[] = [
  {
    name: "host/ imports nothing from plan/, actions/ or apply/",
    applies: (f) => f.startsWith("host/"),
    forbids: (t) => /^(plan|actions|apply)\//.test(t),
  },
  {
    name: "a pure module (plan/, action planners, config, vocabulary) imports nothing from apply/",
    applies: isPure,
    forbids: (t) => t.startsWith("apply/"),
  },
  {
    name: "a pure module does no I/O (no node:fs, node:child_process)",
    applies: isPure,
    forbids: (t) => /^(node:)?(fs|child_process)(\/|$)/.test(t),
  },
  {
    name: "src uses only ops-ts-shim's public face (the package root)",
    applies: () => true,
    forbids: (t) => t.startsWith("ops-ts-shim/"),
  },
  {
    name: "a hook reads the host only through host/fs.ts (the quiet-hook memo records it there)",
    applies: (f) => !OWN_FS.test(f),
    forbids: (t) => /^(node:)?fs(\/|$)/.test(t),
  },
  {
    name: "a hook starts processes only through the shim's runProcess (the quiet-hook memo counts them)",
    applies: (f) => !OWN_PROCESSES.test(f),
    forbids: (t) => /^(node:)?child_process$/.test(t),
  },
];

/** Files that may start a process themselves: usage.ts's `ip` (it marks the hook volatile, so no
 * memo stands for it), and what never runs in a hook. The rest start processes through the
 * shim's runProcess, which counts them (a hook that started one is not quiet). */
const OWN_PROCESSES = /^(host\/usage\.ts|actions\/|charm-actions\.ts|exporter\/)/;

/** Files that may import node:fs: the door itself; the quiet-hook files (stdin and their own memo
 * in the charm directory); apply/'s writers (their names checked by writerOnly); and what never
 * runs in a hook (the actions, and the exporter, a process of its own). */
const OWN_FS = /^(host\/fs\.ts|quiet\/|apply\/|actions\/|charm-actions\.ts|exporter\/)/;

/** node:fs's functions that read: apply/ must take these from host/fs.ts. */
const FS_READERS = /^(read|stat|lstat|exists|realpath|opendir|access|fstat)/;

/** `file name` for every node:fs reader apply/ imports itself. */
function applyFsReaders(): string[] {
  const out: string[] = [];
  for (const full of sourceFiles(join(SRC, "apply"))) {
    const source = ts.createSourceFile(full, readFileSync(full, "utf8"), ts.ScriptTarget.Latest);
    for (const statement of source.statements) {
      if (!ts.isImportDeclaration(statement)) continue;
      const from = (statement.moduleSpecifier as ts.StringLiteral).text;
      const named = statement.importClause?.namedBindings;
      if (!/^(node:)?fs$/.test(from) || !named || !ts.isNamedImports(named)) continue;
      for (const e of named.elements) {
        const name = (e.propertyName ?? e.name).text;
        if (FS_READERS.test(name)) out.push(`${relative(SRC, full)} ${name}`);
      }
    }
  }
  return out;
}

/** A string that starts with an absolute host path (`/sys/…`, `/proc/…`, `/etc/…`). */
const HOST_PATH = /^\/(sys|proc|dev|etc|lib|usr|var|run|boot)(\/|$)/;

/** String literals outside host/root.ts that start like a host path and are not one the charm
 * reads or writes, each with why it stays where it is. */
const NOT_HOST_PATHS: Record<string, string> = {
  "plan/nova.ts /etc/nova/nova.conf":
    "a key of nova-compute's subordinate_configuration: nova-compute writes that file, not us",
  "actions/nova-config.ts /etc/neutron/plugins/ml2/sriov_agent.ini: [sriov_nic] physical_device_mappings = ":
    "advice for the neutron SR-IOV agent's host, printed, never read",
  "host/usage.ts /dev/": "a prefix of the mount sources /proc/mounts lists, not a path we open",
  "host/usage.ts /dev/mapper/": "a prefix of the mount sources /proc/mounts lists",
};

/** `file literal` for every string or template head of src/ that starts with a host path. */
function hostPathLiterals(): string[] {
  const out: string[] = [];
  for (const full of sourceFiles(SRC)) {
    const file = relative(SRC, full);
    if (file === "host/root.ts") continue;
    const source = ts.createSourceFile(full, readFileSync(full, "utf8"), ts.ScriptTarget.Latest);
    const visit = (node: ts.Node): void => {
      if (
        (ts.isStringLiteral(node) ||
          ts.isNoSubstitutionTemplateLiteral(node) ||
          ts.isTemplateHead(node)) &&
        HOST_PATH.test(node.text)
      ) {
        out.push(`${file} ${node.text}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return [...new Set(out)].sort();
}

/** file (relative to src/) → the names of the functions it calls (`f(…)`, not `x.f(…)`). */
function calls(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const full of sourceFiles(SRC)) {
    const called = new Set<string>();
    const source = ts.createSourceFile(full, readFileSync(full, "utf8"), ts.ScriptTarget.Latest);
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression))
        called.add(node.expression.text);
      ts.forEachChild(node, visit);
    };
    visit(source);
    out.set(relative(SRC, full), called);
  }
  return out;
}

/** Every import that breaks a rule, as `file -> target (rule)`. */
function violations(graph: Graph, rules: Rule[] = RULES): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    for (const rule of rules) {
      if (!rule.applies(file)) continue;
      for (const t of targets) if (rule.forbids(t)) out.push(`${file} -> ${t} (${rule.name})`);
    }
  }
  return out.sort();
}

/** Every circle of imports among src files, each as `a -> b -> a`. */
function circles(graph: Graph): string[] {
  const found = new Set<string>();
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, "open");
    stack.push(file);
    for (const t of graph.get(file) ?? []) {
      if (!graph.has(t)) continue;
      if (state.get(t) === "open") {
        const loop = stack.slice(stack.indexOf(t));
        found.add([...loop, t].join(" -> "));
      } else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return [...found];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = join(dir, e.name);
    if (e.isDirectory()) return e.name === "generated" ? [] : sourceFiles(full);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [full] : [];
  });
}

/** The import graph of src/ as the code has it now. */
function readGraph(): Graph {
  const graph: Graph = new Map();
  for (const full of sourceFiles(SRC)) {
    const file = relative(SRC, full);
    const info = ts.preProcessFile(readFileSync(full, "utf8"), true, true);
    const targets = info.importedFiles.map(({ fileName: spec }) => {
      if (!spec.startsWith(".")) return spec;
      const target = relative(SRC, resolve(dirname(full), spec)).replace(/\.js$/, ".ts");
      if (target.endsWith(".ts")) return target;
      // `../config` is the folder's index.ts when there is no config.ts (bundler resolution).
      return existsSync(join(SRC, `${target}.ts`)) ? `${target}.ts` : `${target}/index.ts`;
    });
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

describe("the import graph of src/", () => {
  const graph = readGraph();

  it("is read from the code (the known arrows are there)", () => {
    expect(graph.get("config/devices.ts")).toContain("pci-vocabulary.ts");
    expect(graph.get("plan/boot.ts")).toContain("config/index.ts");
    expect(graph.get("host/pci.ts")).toContain("host/fs.ts");
    expect(graph.get("host/fs.ts")).toContain("node:fs");
    expect(graph.get("actions/rebind.ts")).toContain("apply/sysfs.ts");
    expect(graph.get("config/devices.ts")).toContain("yaml"); // require("yaml"), on first use
  });

  it("keeps host/ below plan/, actions/ and apply/, and the pure modules free of apply/ and I/O", () => {
    expect(violations(graph)).toEqual([]);
  });

  it("has no circle", () => {
    expect(circles(graph)).toEqual([]);
  });

  it("leaves apply/ node:fs's writers only: it reads through host/fs.ts", () => {
    expect(applyFsReaders()).toEqual([]);
  });

  it("spells absolute host paths only in host/root.ts", () => {
    const literals = hostPathLiterals();
    // Read from the code: the known exceptions are found (and no more than them).
    expect(literals).toEqual(Object.keys(NOT_HOST_PATHS).sort());
  });

  it("selects in one place: only the host plan calls selectForHost, once per dispatch", () => {
    // Hooks and actions take the selection from the one HostPlan (plan/plan-host.ts); matching a
    // selector to a function lives in plan/select.ts, which the others call.
    const callers = (name: string) =>
      [...calls().entries()]
        .filter(([, called]) => called.has(name))
        .map(([file]) => file)
        .sort();
    expect(callers("selectForHost")).toEqual(["plan/plan-host.ts"]);
    expect(callers("selectFunctions")).toEqual(["plan/sriov.ts"]);
    expect(callers("selectorMatches")).toEqual(["plan/select.ts", "plan/sriov.ts"]);
    // Hooks apply the plan rendered (planHost); actions show its decisions (decideHost).
    expect(callers("planHost")).toEqual(["host-preparation.ts"]);
    expect(callers("decideHost")).toEqual(["charm-actions.ts", "plan/plan-host.ts"]);
  });

  it("is the rule set docs/ARCHITECTURE.md states", () => {
    const note = readFileSync(ARCHITECTURE, "utf8");
    expect(note).toContain("tests/unit/import-graph.test.ts");
    expect(note).toContain("Only `host/root.ts` knows absolute host paths");
    expect(note).toContain("public face of `ops-ts-shim`");
  });
});

describe("the checks themselves fail on what they forbid", () => {
  const bad: Graph = new Map([
    ["host/nova-release.ts", ["plan/nova.ts", "host/fs.ts"]],
    ["host/pci.ts", ["actions/list-devices.ts", "apply/sysfs.ts", "pci-vocabulary.ts"]],
    ["plan/select.ts", ["apply/files.ts", "host/facts.ts"]],
    ["actions/rebind-plan.ts", ["apply/sysfs.ts"]],
    ["actions/rebind.ts", ["apply/sysfs.ts", "node:fs"]],
    ["config/devices.ts", ["node:fs"]],
    ["host-preparation.ts", ["node:fs", "host/fs.ts"]],
    ["host-reboot.ts", ["node:child_process"]],
    ["charm-actions.ts", ["ops-ts-shim/src/runner"]],
    ["a.ts", ["b.ts"]],
    ["b.ts", ["a.ts"]],
  ]);

  it("names each forbidden import, and only those", () => {
    expect(violations(bad).map((v) => v.split(" (")[0])).toEqual([
      "actions/rebind-plan.ts -> apply/sysfs.ts",
      "charm-actions.ts -> ops-ts-shim/src/runner",
      // Twice: a pure module does no I/O, and no hook reads but through host/fs.ts.
      "config/devices.ts -> node:fs",
      "config/devices.ts -> node:fs",
      "host-preparation.ts -> node:fs",
      "host-reboot.ts -> node:child_process",
      "host/nova-release.ts -> plan/nova.ts",
      "host/pci.ts -> actions/list-devices.ts",
      "host/pci.ts -> apply/sysfs.ts",
      "plan/select.ts -> apply/files.ts",
    ]);
  });

  it("finds a circle", () => {
    expect(circles(bad)).toEqual(["a.ts -> b.ts -> a.ts"]);
  });
});
