// Host preparation, start to finish, for one hook: config → facts → plan → apply. Each step can
// stop the run with an outcome the status names; nothing is written unless every check passed.
import { NOT_FOUND_EXIT } from "ops-ts-shim";
import type { CommandRunner } from "./apply/commands";
import { type FsOps, realFs } from "./apply/files";
import {
  type ApplyReport,
  applyHostFiles,
  EMPTY_FILES_STATE,
  type FilesState,
  NotOursError,
} from "./apply/host-files";
import { type PackedBindings, packBindings, unpackBindings } from "./bound-memory";
import { type Config, type DeviceSelector, type ParseResult, parseConfig } from "./config";
import { parseExporterPort } from "./config/exporter-port";
import type {
  HostFacts,
  HostReadProblem,
  HostUsage,
  ModuleAliases,
  ModuleNames,
} from "./host/facts";
import { readBootId, readKernelMessages } from "./host/kernel-log";
import {
  type ModuleListing,
  type RememberedModules,
  readModuleAliases,
  readModuleNames,
} from "./host/modules";
import { judgeWithHostUsage, readHostFacts, readHostUsageFromFiles } from "./host/read-facts";
import { EXPORTER_OWNED, EXPORTER_SERVICE, OWNED, under } from "./host/root";
import type { IpAddrJson } from "./host/usage";
import { readVfCountClaims } from "./host/vf-count-owners";
import { exporterServiceCommands, renderExporterFiles } from "./plan/exporter-files";
import { planHost } from "./plan/plan-host";
import { mayMatchUnread, selectsAny } from "./plan/select";
import {
  rememberSriovRule,
  ruleContent,
  type SriovRuleMemory,
  sriovBootFailures,
} from "./plan/sriov-boot";
import { CONTAINER_MESSAGE, type FailedCommand, type PreparationOutcome } from "./plan/status";
import type { HostPlan } from "./plan/types";

/** What host preparation remembers between hooks (kept in Juju stored state, as ONE value: it
 * must stay within Juju's quotas with 10,000 selected functions, see bound-memory.ts). */
export interface PreparationMemory {
  files: FilesState;
  /** "vendor:device" → the functions the charm set up for vfio-pci, as address ranges. */
  bound: PackedBindings;
  /** The modules that would claim this host's devices, while modules.alias stays the same file. */
  modules?: RememberedModules;
  /** Which SR-IOV rule the host has and the boot that wrote it (plan/sriov-boot.ts). */
  sriovRule?: SriovRuleMemory;
}

export const EMPTY_MEMORY: PreparationMemory = { files: EMPTY_FILES_STATE, bound: { byIds: {} } };

/** Memory as stored by any version of the charm: before the packed form it kept `boundIds`, an
 * address → ids map (upgrade-charm reads that once; the next change stores the packed form). */
export function loadMemory(stored: unknown): PreparationMemory {
  if (!stored || typeof stored !== "object") return EMPTY_MEMORY;
  const { boundIds, bound, ...rest } = stored as Partial<PreparationMemory> & {
    boundIds?: Record<string, string>;
  };
  return {
    ...EMPTY_MEMORY,
    ...rest,
    bound: bound ?? (boundIds ? packBindings(boundIds) : EMPTY_MEMORY.bound),
  };
}

export interface PreparationDeps {
  root: string;
  runner: CommandRunner;
  log: (level: "DEBUG" | "INFO" | "WARNING" | "ERROR", message: string) => void;
  fs?: FsOps;
  /** How to ask the kernel for IPv4 addresses (host/usage.ts); default: `ip` on a real root. */
  ipAddrJson?: IpAddrJson | null;
  /** Set while the unit is related over cos-agent: the exporter is installed and runs with this
   * runtime from this charm directory; null or absent: it is removed. */
  exporter?: ExporterDeps | null;
}

/** Where the exporter's program is, and whether this hook must restart it (upgrade-charm: the
 * same unit file, a new bundle). */
export interface ExporterDeps {
  nodePath: string;
  charmDir: string;
  restart?: boolean;
}

export interface PreparationResult {
  outcome: PreparationOutcome;
  /** The config as parsed (null when it was refused): what the rest of the hook acts on, never
   * the raw values (`DEVICE_SPEC` is device_spec). */
  config: Config | null;
  memory: PreparationMemory;
  /** Present when files were applied (even if nothing changed). */
  report: ApplyReport | null;
  facts: HostFacts | null;
  plan: HostPlan | null;
}

/** Brings the host in line with the config; see PreparationOutcome for how it can stop. */
export function prepareHost(
  rawConfig: Readonly<Record<string, unknown>>,
  memory: PreparationMemory,
  deps: PreparationDeps,
): PreparationResult {
  const parsed = withExporterPort(parseConfig(rawConfig), rawConfig);
  const stop = (
    outcome: PreparationOutcome,
    facts: HostFacts | null = null,
    plan: HostPlan | null = null,
  ) => ({
    outcome,
    config: parsed.ok ? parsed.config : null,
    memory,
    report: null,
    facts,
    plan,
  });
  if (!parsed.ok) {
    for (const e of parsed.errors)
      deps.log("ERROR", `config ${e.option}=${JSON.stringify(e.value)}: ${e.problem}; ${e.fix}`);
    return stop({ kind: "config-error", errors: parsed.errors });
  }
  const config = parsed.config;
  const boundIds = unpackBindings(memory.bound);
  // A hook shows no NUMA node or driver override: those are read only if something asks.
  const { facts, problems, containerEvidence, moduleListing } = readHostFacts(deps.root, "plan");
  logProblems(problems, deps);
  if (facts.container) {
    deps.log("WARNING", `${CONTAINER_MESSAGE} (${containerEvidence ?? "a container"})`);
    return stop({ kind: "container" }, facts);
  }
  // A function whose identity could not be read is left out of the facts. If it may be one of
  // ours, planning without it would unconfigure it (remove its udev rule, rebuild the initramfs):
  // a read error is not a removed card, so change nothing until the read works again.
  const listed = new Set(facts.functions.map((f) => f.address));
  // The last problem of a function is the one that made the reader give up on it.
  const unsure = problems.findLast(
    (p) => p.address !== null && !listed.has(p.address) && mayBeOurs(p, config.devices, boundIds),
  );
  if (unsure) {
    return stop(
      {
        kind: "refused",
        message: `${unsure.message}; nothing was changed while ${unsure.address} may be a device this charm manages`,
      },
      facts,
    );
  }

  // Only a selection needs the modules (blacklist, softdeps); modules.alias's answers are remembered.
  const modules = planModulesFor(config, deps.root, facts, memory.modules ?? null, moduleListing);
  // What the host uses (network, disks, console) is withheld from the selection: read only when
  // there is a selection to judge, and the kernel's IPv4 addresses (a process) only when the
  // plan asks about a function the files cannot judge (host/usage.ts).
  const usageProblems: HostReadProblem[] = [];
  const usage =
    config.devices.length > 0
      ? readHostUsageFromFiles(deps.root, {
          functions: facts.functions,
          problems: usageProblems,
          ipAddrJson: deps.ipAddrJson,
        })
      : null;
  logProblems(usageProblems, deps);
  // Who else sets VF counts at boot: read only when an entry asks for VFs.
  const claimProblems: HostReadProblem[] = [];
  const vfCountClaims = config.devices.some((d) => d.vfs !== null)
    ? readVfCountClaims(deps.root, claimProblems)
    : [];
  logProblems(claimProblems, deps);
  if (modules) logProblems(modules.problems, deps);
  const planOn = (usage: HostUsage) =>
    planHost(
      config,
      facts,
      modules?.aliases ?? null,
      { boundIds },
      { usage, moduleNames: modules?.names ?? null, vfCountClaims },
    );
  const plan = usage ? judgeWithHostUsage(usage, planOn) : planOn(new Map());
  for (const w of plan.withheld) {
    deps.log(
      "WARNING",
      `${w.address} (${w.vendorId}:${w.deviceId}, ${w.entry}) ${w.forceable ? "kept for the host" : "refused"}: ${w.reasons.join("; ")}`,
    );
  }
  if (plan.problems.length > 0) {
    for (const p of plan.problems)
      deps.log("ERROR", `${p.option ? `${p.option}: ` : ""}${p.message}`);
    return stop({ kind: "plan-problems", problems: plan.problems }, facts, plan);
  }

  const port = parsed.exporterPort;
  const applied = deps.exporter
    ? { ...plan, files: [...plan.files, ...renderExporterFiles(plan, { ...deps.exporter, port })] }
    : plan;
  let report: ApplyReport;
  try {
    stopUnwantedExporter(applied.files, deps);
    report = applyHostFiles(applied, memory.files, {
      root: deps.root,
      runner: deps.runner,
      fs: deps.fs,
    });
  } catch (err) {
    if (err instanceof NotOursError) {
      deps.log("ERROR", err.message);
      return stop({ kind: "refused", message: err.message }, facts, plan);
    }
    throw err;
  }
  logReport(report, deps);
  runExporterCommands(report, deps);
  const bound = packBindings(
    Object.fromEntries(plan.bind.map((d) => [d.address, `${d.vendorId}:${d.deviceId}`])),
  );
  if (bound.dropped)
    deps.log(
      "WARNING",
      `${bound.dropped} of ${plan.bind.length} bound functions are not remembered (their addresses do not fit Juju's stored-state quota): a card swapped in their slots is not noticed`,
    );
  // A boot since the SR-IOV rule was written that left a PF's count wrong: the kernel said no,
  // and another reboot would say the same. Its log is read only then.
  const bootId = readBootId(deps.root);
  const rule = ruleContent(plan.files, OWNED.sriovRule);
  const sriovRule = rememberSriovRule(
    memory.sriovRule,
    rule === null ? null : sha256Prefix(rule),
    bootId,
  );
  let kernelLog: Map<string, string[]> | null | undefined;
  const sriovBoot = sriovBootFailures(plan.sriov, sriovRule, bootId, (pf) => {
    if (kernelLog === undefined) {
      kernelLog = readKernelMessages(
        deps.root,
        plan.sriov.map((p) => p.address),
      );
    }
    return kernelLog?.get(pf) ?? null;
  });
  return {
    outcome: { kind: "prepared", plan, facts, failed: failedCommands(report), sriovBoot },
    config,
    memory: {
      files: report.state,
      bound,
      ...rememberedModules(modules, memory),
      ...(sriovRule ? { sriovRule } : {}),
    },
    report,
    facts,
    plan,
  };
}

/** The module answers to keep: this hook's, or the last ones when this hook asked none. */
function rememberedModules(
  modules: PlanModules | null,
  memory: PreparationMemory,
): Pick<PreparationMemory, "modules"> {
  const kept = modules?.remembered ?? memory.modules;
  return kept ? { modules: kept } : {};
}

/** What the plan asks of the kernel's modules, read before planning (plan/ reads nothing). */
export interface PlanModules {
  /** modules.alias's answers for every distinct modalias of the host's functions. */
  aliases: ModuleAliases;
  /** The kernel's module names and the module of every driver the functions are on. */
  names: ModuleNames;
  /** The modules.alias answers to keep for the next hook; null: keep the last ones. */
  remembered: RememberedModules | null;
  /** What could not be read, to log once. */
  problems: HostReadProblem[];
}

/**
 * The modules the plan of this config asks about, read up front: none when no entry matches a
 * function here and blacklist-drivers is auto (the plan then writes no module name), else
 * modules.alias for each distinct modalias (from `remembered` while the file is unchanged: a
 * megabyte parsed on every hook of every compute host otherwise), each driver's module link, and
 * modules.dep/modules.builtin (from `listing`, what the kernel facts already read of them, so each
 * file is read once; not at all while both are the files `remembered` answered from). Hooks and actions both plan with this, so an action shows the plan a hook
 * makes.
 */
export function planModulesFor(
  config: Config,
  root: string,
  facts: HostFacts,
  remembered: RememberedModules | null,
  /** What readHostFacts read of modules.builtin/modules.dep (its moduleListing): not read again. */
  listing?: ModuleListing,
): PlanModules | null {
  if (config.devices.length === 0) return null;
  // An entry that matches no function here binds nothing, and with blacklist-drivers=auto the
  // plan then names no module: a host whose card is not in yet pays for no module file.
  if (config.blacklistDrivers.mode === "auto" && !selectsAny(config.devices, facts.functions))
    return null;
  const modaliases = new Set<string>();
  const drivers = new Set<string>();
  for (const fn of facts.functions) {
    modaliases.add(fn.modalias);
    if (fn.driver !== null) drivers.add(fn.driver);
  }
  const aliases = readModuleAliases(root, facts.kernelRelease, modaliases, remembered);
  // The names the plan can ask the kernel about: what modules.alias answered, the listed
  // blacklist, and (readModuleNames adds them) the drivers' modules.
  const asked = new Set<string>();
  for (const modules of aliases.aliases.values()) for (const m of modules) asked.add(m);
  if (config.blacklistDrivers.mode === "list") {
    for (const m of config.blacklistDrivers.modules) asked.add(m);
  }
  const names = readModuleNames(
    root,
    facts.kernelRelease,
    drivers,
    listing,
    asked,
    remembered?.names ?? null,
  );
  const kept = aliases.remembered && {
    ...aliases.remembered,
    ...(names.remembered ? { names: names.remembered } : {}),
  };
  return {
    aliases: aliases.aliases,
    names: names.names,
    remembered: kept,
    problems: [...names.problems, ...aliases.problems],
  };
}

/** Takes away everything host preparation added; the host needs a reboot to drop vfio-pci. */
export function restoreHost(memory: PreparationMemory, deps: PreparationDeps): PreparationResult {
  stopUnwantedExporter([], deps);
  const report = applyHostFiles({ files: [], feeds: {} }, memory.files, {
    root: deps.root,
    runner: deps.runner,
    fs: deps.fs,
  });
  logReport(report, deps);
  runExporterCommands(report, deps);
  const failed = failedCommands(report);
  return {
    outcome: { kind: "removed", failed },
    config: null,
    // A failed regeneration keeps its record, so the next hook (remove after stop) runs it again.
    memory: failed.length > 0 ? { ...EMPTY_MEMORY, files: report.state } : EMPTY_MEMORY,
    report,
    facts: null,
    plan: null,
  };
}

/** parseConfig's result with the exporter's port checked too (one list of errors). */
function withExporterPort(
  parsed: ParseResult,
  raw: Readonly<Record<string, unknown>>,
): ParseResult & { exporterPort: number } {
  const port = parseExporterPort(raw["exporter-port"]);
  if ("port" in port) return { ...parsed, exporterPort: port.port };
  const errors = parsed.ok ? [port.error] : [...parsed.errors, port.error];
  return { ok: false, errors, exporterPort: 0 };
}

/** Stops and disables the exporter before apply removes its unit file (systemctl needs the file
 * to disable it). Only when the file is there and the plan has none: looked up (stat), not read,
 * since apply reads every owned file once right after. */
function stopUnwantedExporter(files: readonly { path: string }[], deps: PreparationDeps): void {
  if (files.some((f) => f.path === EXPORTER_OWNED.unit)) return;
  try {
    (deps.fs ?? realFs).statSync(under(deps.root, EXPORTER_OWNED.unit));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  runLogged(["systemctl", "disable", "--now", EXPORTER_SERVICE], deps);
}

/** systemctl after apply: reload and (re)start a new or changed unit, reload after a removal,
 * restart an unchanged one when the bundle changed (upgrade-charm). */
function runExporterCommands(report: ApplyReport, deps: PreparationDeps): void {
  const action = report.files.find((f) => f.path === EXPORTER_OWNED.unit)?.action;
  const commands = exporterServiceCommands(action);
  if (commands.length === 0 && action === "unchanged" && deps.exporter?.restart) {
    commands.push(["systemctl", "restart", EXPORTER_SERVICE]);
  }
  for (const argv of commands) runLogged(argv, deps);
}

/** Runs a systemctl call; a failure is logged (the exporter is not worth failing the hook for:
 * the agent's `up` metric and the PciPassthroughExporterDown alert say it is not running). */
function runLogged(argv: string[], deps: PreparationDeps): void {
  const result = deps.runner(argv);
  if (result.skipped) return;
  if (result.exitCode === 0) {
    deps.log("INFO", `ran ${argv.join(" ")}`);
  } else {
    const tail = (result.stderr || result.stdout).trim().split("\n").slice(-2).join(" | ");
    deps.log(
      "ERROR",
      `\`${argv.join(" ")}\` failed with exit code ${result.exitCode}${tail ? `: ${tail}` : ""}; the exporter may not be running (journalctl -u ${EXPORTER_SERVICE})`,
    );
  }
}

function failedCommands(report: ApplyReport): FailedCommand[] {
  return report.failed.map((f) => ({
    kind: f.kind,
    argv: f.argv,
    notFound: f.result.exitCode === NOT_FOUND_EXIT,
    message: f.message,
  }));
}

function logReport(report: ApplyReport, deps: PreparationDeps): void {
  for (const f of report.files)
    if (f.action !== "unchanged") deps.log("INFO", `${f.action} ${f.path}`);
  // "ran" only for what ran; the runner itself logged why it skipped the others.
  for (const argv of report.ran) deps.log("INFO", `ran ${argv.join(" ")}`);
  for (const f of report.failed) {
    // A program not found is a standing fact about the host, said at every hook as a WARNING:
    // the charm logs a warning only when the set of warnings changes (sayChangedWarnings), so it
    // reaches the log once and is not mistaken for gone at the next hook.
    if (f.result.exitCode === NOT_FOUND_EXIT) {
      deps.log(
        "WARNING",
        `${f.message}; the charm runs it once it is on PATH or its inputs change`,
      );
    } else if (!f.remembered) {
      // A failure an earlier hook already reported is said once, there; the status keeps it.
      deps.log("ERROR", `${f.message}; the charm runs it again at its next hook`);
    }
  }
}

/** Whether a function left out of the facts (unreadable, not vanished) may be one the selection
 * covers or the charm set up. */
function mayBeOurs(
  problem: HostReadProblem,
  selectors: DeviceSelector[],
  boundIds: Record<string, string>,
): boolean {
  const address = problem.address;
  if (problem.kind === "vanished" || address === null) return false;
  if (boundIds[address] !== undefined) return true;
  return selectors.some((sel) => mayMatchUnread(sel, address));
}

function logProblems(problems: HostReadProblem[], deps: PreparationDeps): void {
  for (const p of problems) deps.log("WARNING", p.message);
}

/** The SR-IOV rule's digest as the preparation memory keeps it. node:crypto (and OpenSSL's
 * start-up) loads only here, on hosts with SR-IOV configured, not on every hook of every host. */
function sha256Prefix(text: string): string {
  const { createHash } = require("node:crypto") as typeof import("node:crypto");
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}
