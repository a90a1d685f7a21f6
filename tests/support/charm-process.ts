// Runs the packed charm the way Juju does: unzip build/pci-passthrough_amd64.charm, then exec its
// `dispatch` with Juju's environment, fake hook tools on PATH (the shim's unit simulator), a
// sandbox root, and NO node on PATH, so only the runtime inside the charm can run it.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  createUnitSimulator,
  type UnitSimulator,
  type UnitSimulatorOptions,
} from "ops-ts-shim/testing/simulator";
import { afterEach, beforeEach, expect } from "vitest";
import { type BuiltHost, type HostSpec, makeTempHost } from "./hosts/build-host";
import { seedHost } from "./hosts/presets";
import { diffTrees, snapshotTree, tempDir } from "./tree";

export const TOP = path.resolve(__dirname, "..", "..");
export const PACKED = path.join(TOP, "build", "pci-passthrough_amd64.charm");

/** Fails with the command to run when the charm was not packed (the test command packs first). */
export function requirePackedCharm(): string {
  if (!fs.existsSync(PACKED)) throw new Error(`${PACKED} is missing: run \`npm run pack\` first`);
  return PACKED;
}

/** A directory of the few programs dispatch itself needs (sh, uname, cat), and no node. */
function minimalBin(dir: string): string {
  const bin = path.join(dir, "sysbin");
  fs.mkdirSync(bin, { recursive: true });
  for (const tool of ["sh", "uname", "cat", "dirname", "mkfifo", "rm"]) {
    const found = ["/bin", "/usr/bin"].map((d) => path.join(d, tool)).find((p) => fs.existsSync(p));
    if (!found) throw new Error(`no ${tool} on this machine`);
    fs.symlinkSync(found, path.join(bin, tool));
  }
  return bin;
}

/** Recording stand-ins for update-grub / update-initramfs / modprobe / systemctl (the exporter
 * while related over cos-agent): each appends its argv. */
function fakeCommands(dir: string, log: string): string {
  const bin = path.join(dir, "fakecmds");
  fs.mkdirSync(bin, { recursive: true });
  for (const tool of ["update-grub", "update-initramfs", "modprobe", "systemctl"]) {
    fs.writeFileSync(path.join(bin, tool), `#!/bin/sh\necho "\${0##*/} $*" >> '${log}'\n`, {
      mode: 0o755,
    });
  }
  return bin;
}

let unpacked: string | null = null;

/** The packed charm unzipped once per test process (126 MB of runtime: unzipping it for every
 * test would dominate the suite); each unit gets a cheap copy with hard-linked files. */
function copyUnpacked(charmDir: string): void {
  if (unpacked === null) {
    const { dir } = tempDir("pci-charm-");
    execFileSync("unzip", ["-q", requirePackedCharm(), "-d", dir]);
    unpacked = dir;
  }
  execFileSync("cp", ["-al", unpacked, charmDir]);
}

export interface DispatchResult {
  exitCode: number;
  /** The pid of the process the test started (as Juju starts it): dispatch's. */
  pid: number;
  stdout: string;
  stderr: string;
}

export interface CharmUnderTest {
  sim: UnitSimulator;
  charmDir: string;
  /** The sandbox `/` the charm reads and writes. */
  root: string;
  /** Commands the charm ran (update-grub …), one line each, in order. */
  commands(): string[];
  clearCommands(): void;
  dispatch(
    event: Parameters<UnitSimulator["env"]>[0],
    extraEnv?: Record<string, string>,
  ): DispatchResult;
  /** Starts the dispatch and returns at once, for a test that acts while the charm runs (signals
   * it, serves a fifo); the test calls sim.finish with its exit code when it has ended. */
  start(
    event: Parameters<UnitSimulator["env"]>[0],
    extraEnv?: Record<string, string>,
  ): ChildProcess;
  cleanup(): void;
}

/** What a test may set of the simulated unit (the rest is the charm's own). */
export type DeployOptions = Omit<UnitSimulatorOptions, "dir" | "charmDir" | "configYaml">;

/** Unpacks the charm into a temp unit directory and wires the simulator around it. */
export function deployPackedCharm(root: string, options: DeployOptions = {}): CharmUnderTest {
  const { dir, cleanup } = tempDir("pci-unit-");
  const charmDir = path.join(dir, "charm");
  copyUnpacked(charmDir);
  const sim = createUnitSimulator({
    dir,
    charmDir,
    unitName: "pci-passthrough/0",
    principalUnit: "nova-compute/0",
    configYaml: fs.readFileSync(path.join(charmDir, "config.yaml"), "utf8"),
    // Juju validates action params and inserts defaults before the charm runs.
    actionsYaml: fs.readFileSync(path.join(charmDir, "actions.yaml"), "utf8"),
    ...options,
  });
  const commandLog = path.join(dir, "commands.log");
  const searchPath = `${fakeCommands(dir, commandLog)}:${minimalBin(dir)}`;
  const envFor = (event: Parameters<UnitSimulator["env"]>[0], extraEnv: Record<string, string>) =>
    sim.env(event, {
      path: searchPath,
      // Audit mode (src/quiet/memo.ts AUDIT_ENV): a hook whose quiet-hook memo matches runs in
      // full all the same, and fails if that run was not quiet: every test that repeats a hook
      // checks the memo would have skipped only what changes nothing.
      extra: {
        PCI_PASSTHROUGH_ROOT: root,
        PCI_PASSTHROUGH_RUN_COMMANDS: "1",
        PCI_PASSTHROUGH_QUIET_AUDIT: "1",
        ...extraEnv,
      },
    });
  return {
    sim,
    charmDir,
    root,
    commands: () =>
      fs.existsSync(commandLog)
        ? fs
            .readFileSync(commandLog, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((l) => l.trim())
        : [],
    clearCommands: () => fs.rmSync(commandLog, { force: true }),
    dispatch(event, extraEnv = {}) {
      const r = spawnSync(path.join(charmDir, "dispatch"), [], {
        env: envFor(event, extraEnv),
        encoding: "utf8",
        timeout: 30_000,
      });
      sim.finish(r.status);
      return {
        exitCode: r.status ?? -1,
        pid: r.pid,
        stdout: r.stdout ?? "",
        stderr: r.stderr ?? "",
      };
    },
    start(event, extraEnv = {}) {
      return spawn(path.join(charmDir, "dispatch"), [], {
        env: envFor(event, extraEnv),
        stdio: ["ignore", "pipe", "pipe"],
      });
    },
    cleanup,
  };
}

/** A host tree for each test, and the packed charm deployed on it as the test asks. */
export interface PackedCharmHost extends BuiltHost {
  /** The packed charm on this test's host (or on `root`, another tree the test built); removed
   * after the test with the host. */
  deploy(options?: DeployOptions, root?: string): CharmUnderTest;
}

/**
 * vitest wiring for suites that run the packed charm on a fresh host in every test: a tree of
 * `spec` (the seed host unless said) is built before each test, and it and every unit deployed
 * during the test are removed after it. The returned object always shows the current test's host.
 */
export function usePackedCharmHost(spec: () => HostSpec = seedHost): PackedCharmHost {
  let host: (BuiltHost & { cleanup(): void }) | undefined;
  let units: CharmUnderTest[] = [];
  beforeEach(() => {
    host = makeTempHost(spec());
  });
  afterEach(() => {
    for (const unit of units) unit.cleanup();
    units = [];
    host?.cleanup();
    host = undefined;
  });
  const current = () => {
    if (!host) throw new Error("usePackedCharmHost: the host exists only inside a test");
    return host;
  };
  return {
    get root() {
      return current().root;
    },
    get kernelRelease() {
      return current().kernelRelease;
    },
    get deviceDirs() {
      return current().deviceDirs;
    },
    deploy(options = {}, root = current().root) {
      const unit = deployPackedCharm(root, options);
      units.push(unit);
      return unit;
    },
  };
}

/**
 * vitest wiring for suites whose tests each build their own host: `deployOn(spec, options)` builds
 * a tree of `spec`, deploys the packed charm on it (the unit's `root`), and both are removed after
 * the test.
 */
export function useCharmOnHosts(): (spec: HostSpec, options?: DeployOptions) => CharmUnderTest {
  const made: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of made.splice(0)) cleanup();
  });
  return (spec, options = {}) => {
    const host = makeTempHost(spec);
    made.push(host.cleanup);
    const unit = deployPackedCharm(host.root, options);
    made.unshift(unit.cleanup);
    return unit;
  };
}

/**
 * Dispatches `event` and checks that the charm blocked without changing its host: no file written
 * or removed, no command run since the unit's commands were last cleared. Returns the status
 * message for the caller's own checks of its words.
 */
export function expectBlockedChangingNothing(
  unit: CharmUnderTest,
  event: Parameters<CharmUnderTest["dispatch"]>[0],
): string {
  const before = snapshotTree(unit.root);
  expect(unit.dispatch(event).exitCode).toBe(0);
  expect(diffTrees(before, snapshotTree(unit.root))).toEqual([]);
  expect(unit.commands()).toEqual([]);
  const status = unit.sim.readState().unitStatus;
  expect(status.status).toBe("blocked");
  return status.message;
}
