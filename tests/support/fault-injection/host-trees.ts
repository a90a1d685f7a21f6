// Pre-hook host trees for the fault-injection suites, and the checks every injected failure must
// pass: managed files old-or-new, nothing else touched, and the next hook converging.
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { effectiveConfig } from "ops-ts-shim/testing";
import { parse } from "yaml";
import { realFs } from "../../../src/apply/files";
import { OWNED, OWNED_DIRS, SHARED } from "../../../src/host/root";
import { EMPTY_MEMORY, type PreparationMemory } from "../../../src/host-preparation";
import { makeTempHost } from "../hosts/build-host";
import { seedHost } from "../hosts/presets";
import { diffTrees, snapshotTree, type TreeEntry } from "../tree";
import { type HookRun, recordingRunner, runHook } from "./apply-scenarios";
import { type FsCall, faultyFs } from "./faulty-fs";

// import.meta.url, not __dirname: bench/run.mjs bundles this file elsewhere (scripts/run-ts.mjs
// keeps import.meta.url the source's own).
const TOP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** Every path the charm manages: the files it owns and the shared reboot-required pair. */
export const MANAGED: readonly string[] = [...Object.values(OWNED), ...Object.values(SHARED)];
/** The directory the charm creates for its own files (removed once empty). */
export const MANAGED_DIRS: readonly string[] = OWNED_DIRS;

/** config-get --all for these option values (config.yaml defaults for the rest). */
export function fullConfig(values: Record<string, unknown>): Record<string, unknown> {
  const spec = parse(fs.readFileSync(path.join(TOP, "config.yaml"), "utf8"));
  return effectiveConfig(spec, values);
}

/** Copies a host tree (symlinks kept as they are: relative, like sysfs). */
export function copyTree(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
}

/** Bytes of each managed file under root (null when absent). */
export function managedContents(root: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const p of MANAGED) {
    const full = path.join(root, p);
    out.set(p, fs.existsSync(full) ? fs.readFileSync(full, "latin1") : null);
  }
  return out;
}

/** One hook to break, with its pre-hook tree and what a clean run of it leaves. */
export interface FaultScenario {
  name: string;
  /** A host tree as it is before the hook (copied for every run; never written). */
  template: string;
  hook: HookRun;
  before: { snapshot: Map<string, TreeEntry>; managed: Map<string, string | null> };
  clean: {
    snapshot: Map<string, TreeEntry>;
    managed: Map<string, string | null>;
    ran: string[][];
    memory: PreparationMemory;
    /** The injection points: every mutating FsOps call of the clean run, in order. */
    calls: FsCall[];
  };
}

/** The seed host's config for all the GPUs (10de:1bb0): every owned file, a blacklist. */
export const ALL_GPUS = { devices: "10de:1bb0" };
/** One GPU by address plus a kernel parameter: updates, and removes the blacklist file. */
export const ONE_GPU_MORE_PARAMS = {
  devices: "0000:83:00.0",
  "extra-kernel-params": "pcie_aspm=off",
};

/** Builds the scenarios under `workDir`: install on a fresh seed host; install beside another
 * package's reboot-required; a config change after an install; removal after it, and removal
 * after the reboot (reboot-required gone, so removal writes it again). */
export function buildScenarios(workDir: string): FaultScenario[] {
  const seed = makeTempHost(seedHost(), "pci-fault-seed-");
  const fresh = path.join(workDir, "fresh");
  copyTree(seed.root, fresh);
  seed.cleanup();

  const withOthers = path.join(workDir, "with-others");
  copyTree(fresh, withOthers);
  fs.mkdirSync(path.join(withOthers, "var/run"), { recursive: true });
  fs.writeFileSync(
    path.join(withOthers, SHARED.rebootRequired),
    "*** System restart required ***\n",
  );
  fs.writeFileSync(
    path.join(withOthers, SHARED.rebootRequiredPkgs),
    "linux-image-6.8.0-50-generic\n",
  );

  const installed = path.join(workDir, "installed");
  copyTree(fresh, installed);
  const install: HookRun = { kind: "prepare", config: fullConfig(ALL_GPUS), memory: EMPTY_MEMORY };
  const first = runHook(install, installed, realFs, recordingRunner());
  if (first.outcome.kind !== "prepared") throw new Error(`seed install: ${first.outcome.kind}`);

  // /var/run is a tmpfs: after the reboot the install asked for, reboot-required is gone.
  const rebooted = path.join(workDir, "installed-rebooted");
  copyTree(installed, rebooted);
  fs.rmSync(path.join(rebooted, SHARED.rebootRequired));
  fs.rmSync(path.join(rebooted, SHARED.rebootRequiredPkgs));

  const defs: Array<[string, string, HookRun]> = [
    ["install", fresh, install],
    ["install beside another package's reboot-required", withOthers, install],
    [
      "config change",
      installed,
      { kind: "prepare", config: fullConfig(ONE_GPU_MORE_PARAMS), memory: first.memory },
    ],
    ["removal", installed, { kind: "restore", config: {}, memory: first.memory }],
    ["removal after the reboot", rebooted, { kind: "restore", config: {}, memory: first.memory }],
  ];
  return defs.map(([name, template, hook], i) => {
    const scratch = path.join(workDir, `clean-${i}`);
    copyTree(template, scratch);
    const fsOps = faultyFs();
    const runner = recordingRunner();
    const result = runHook(hook, scratch, fsOps, runner);
    if (result.outcome.kind !== "prepared" && result.outcome.kind !== "removed") {
      throw new Error(`${name}: the clean run ended ${result.outcome.kind}`);
    }
    const scenario: FaultScenario = {
      name,
      template,
      hook,
      before: { snapshot: snapshotTree(template), managed: managedContents(template) },
      clean: {
        snapshot: snapshotTree(scratch),
        managed: managedContents(scratch),
        ran: runner.ran,
        memory: result.memory,
        calls: fsOps.calls.map((c) => normalizedCall(c, scratch)),
      },
    };
    fs.rmSync(scratch, { recursive: true, force: true });
    return scenario;
  });
}

/** Problems with the tree after a failed hook (empty when it is sound). `tempsAllowed`: a killed
 * process cannot clean its temp file; it must be ours, beside a managed file. */
export function afterFailureProblems(
  s: FaultScenario,
  root: string,
  tempsAllowed: boolean,
): string[] {
  const problems: string[] = [];
  for (const [p, now] of managedContents(root)) {
    const old = s.before.managed.get(p) ?? null;
    const neu = s.clean.managed.get(p) ?? null;
    if (now !== old && now !== neu) {
      problems.push(
        `${p} is neither its old nor its new content (${now === null ? "absent" : `${now.length} bytes`}: ${JSON.stringify(now?.slice(0, 60))})`,
      );
    }
  }
  const managedDirs = new Set(MANAGED.flatMap((p) => ancestors(p)));
  for (const line of diffTrees(s.before.snapshot, snapshotTree(root))) {
    const rel = `/${line.slice(2)}`;
    if (MANAGED.includes(rel) || MANAGED_DIRS.includes(rel)) continue;
    if (
      line.startsWith("+ ") &&
      managedDirs.has(rel) &&
      fs.statSync(path.join(root, rel)).isDirectory()
    )
      continue;
    if (tempsAllowed && line.startsWith("+ ") && isOurTemp(rel)) continue;
    problems.push(`outside the managed set: ${line}`);
  }
  return problems;
}

/** `/etc/default/grub.d/.99-pci-passthrough.cfg.pci-passthrough-<pid>-<time>.tmp` beside its file. */
export function isOurTemp(hostPath: string): boolean {
  const dir = path.dirname(hostPath);
  const name = path.basename(hostPath);
  return MANAGED.some(
    (p) =>
      path.dirname(p) === dir &&
      name.startsWith(`.${path.basename(p)}.pci-passthrough-`) &&
      name.endsWith(".tmp"),
  );
}

function ancestors(hostPath: string): string[] {
  const out: string[] = [];
  for (let d = path.dirname(hostPath); d !== "/"; d = path.dirname(d)) out.push(d);
  return out;
}

/** Runs the same hook again with the real fs and the stored state Juju kept (the failed hook's
 * was never committed); returns what differs from the clean run (empty when it converged). */
export function convergeProblems(
  s: FaultScenario,
  root: string,
  /** The stored state the next hook starts from and what it should run: by default what Juju
   * kept from before the failed hook, and every command a clean run runs. */
  from: { memory: PreparationMemory; ran: string[][] } = {
    memory: s.hook.memory,
    ran: s.clean.ran,
  },
): string[] {
  const runner = recordingRunner();
  const logs: string[] = [];
  let result: ReturnType<typeof runHook>;
  try {
    result = runHook(
      { ...s.hook, memory: structuredClone(from.memory) },
      root,
      realFs,
      runner,
      logs,
    );
  } catch (err) {
    return [`the next hook failed: ${(err as Error).message}`];
  }
  const problems: string[] = [];
  if (result.outcome.kind !== "prepared" && result.outcome.kind !== "removed") {
    problems.push(`the next hook ended ${result.outcome.kind}: ${logs.join(" | ")}`);
  }
  for (const line of diffTrees(s.clean.snapshot, snapshotTree(root))) {
    problems.push(`differs from a clean run: ${line}`);
  }
  if (JSON.stringify(runner.ran) !== JSON.stringify(from.ran)) {
    problems.push(`ran ${JSON.stringify(runner.ran)}, expected ${JSON.stringify(from.ran)}`);
  }
  if (result.outcome.kind === "prepared" && result.outcome.failed.length > 0) {
    problems.push(`the next hook still failed: ${result.outcome.failed[0]!.message}`);
  }
  if (JSON.stringify(comparable(result.memory)) !== JSON.stringify(comparable(s.clean.memory))) {
    problems.push(
      `stored state differs from a clean run's: ${JSON.stringify(comparable(result.memory))} vs ${JSON.stringify(comparable(s.clean.memory))}`,
    );
  }
  return problems;
}

/** Memory as it reads under any root: the modules.alias, modules.dep and modules.builtin stamps
 * name that tree's files (inode and mtime), not anything the hook decided; the remembered
 * answers are compared. */
function comparable(memory: PreparationMemory): PreparationMemory {
  if (!memory.modules) return memory;
  const { names } = memory.modules;
  return {
    ...memory,
    modules: {
      ...memory.modules,
      stamp: "<modules.alias of this tree>",
      ...(names ? { names: { ...names, stamp: "<module listings of this tree>" } } : {}),
    },
  };
}

/** A call as it reads under any root and pid: `<root>/…/.x.pci-passthrough-<tmp>.tmp`. */
export function normalizedCall(call: FsCall, root: string): FsCall {
  const p = call.path
    .split(root)
    .join("<root>")
    .replace(/\.pci-passthrough-\d+-[0-9a-z]+\.tmp/g, ".pci-passthrough-<tmp>.tmp");
  return { ...call, path: p };
}

/** The managed host path an injection point belongs to: the directory must match. */
export function callDirectory(call: FsCall): string {
  const p = call.path
    .split(" -> ")
    .pop()!
    .replace(/^<root>/, "");
  return call.op === "mkdirSync" || call.flags === "r" ? p : path.dirname(p);
}
