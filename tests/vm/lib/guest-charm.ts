/**
 * The packed charm, deployed inside a guest the way Juju deploys it, driven by the shim's unit
 * simulator.
 *
 * The simulator lives on the host, in a folder the guest mounts read-write at the same path (see
 * BootOptions.share): the host sets config and reads statuses and action results from its state
 * file; the fake hook tools it writes there run inside the guest when the charm calls them. The
 * charm itself is unpacked into the guest's /var/lib/juju/agents/unit-pci-passthrough-0/charm and
 * its `dispatch` runs there as root with PCI_PASSTHROUGH_ROOT=/ — the guest's real /sys, /proc,
 * /etc, modprobe, update-grub and update-initramfs.
 *
 * By default the hook tools the charm calls are scripts/vm/hook-tool-proxy.sh, which hand each call
 * to the simulator's own tool on the host (Node starts in ~0.1 s there, ~3 s under TCG). Set
 * VM_TOOLS_IN_GUEST=1 to run the simulator's tools inside the guest instead.
 */
import { execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import type { FakeAction } from "ops-ts-shim/testing";
import {
  createUnitSimulator,
  type UnitSimulator,
  type UnitSimulatorOptions,
} from "ops-ts-shim/testing/simulator";
import { type Guest, type RunResult, shellQuote, type ToolCall } from "./guest";
import { REPO, SCRIPTS } from "./paths";
import { progress, seconds } from "./progress";
import type { GuestArch } from "./qemu-args";

/** Where Juju unpacks a unit's charm; the charm must not care, but we put it there anyway. */
export const JUJU_UNIT_DIR = "/var/lib/juju/agents/unit-pci-passthrough-0";
export const JUJU_CHARM_DIR = `${JUJU_UNIT_DIR}/charm`;

/** The packed charm `npm run pack` builds for a guest architecture. */
export const packedCharm = (arch: GuestArch = "amd64") =>
  path.join(REPO, `build/pci-passthrough_${arch}.charm`);

/** The amd64 charm, which the x86 guests run. */
export const PACKED_CHARM = packedCharm("amd64");

/** The search path of a root shell on Debian, after the fake hook tools. */
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface GuestCharmOptions {
  guest: Guest;
  /** Which .charm to deploy: the guest's architecture (default amd64). */
  arch?: GuestArch;
  /** The host folder the guest mounted at the same path (BootOptions.share). */
  share: string;
  config?: Record<string, unknown>;
  /** Programs replaced by recorders that log their argv (tier 1 has no grub to update). */
  recordedCommands?: string[];
  /**
   * A node the fake hook tools run with, as a guest path. Default: this process's own node, which
   * tier 1's guest sees at the same path (the host's root is its root); tier 2's Debian guest has
   * none of its own, so it uses the runtime bundled in the charm.
   */
  toolNode?: string;
  simulator?: Omit<UnitSimulatorOptions, "dir" | "charmDir" | "configYaml" | "config">;
  /** Forward hook-tool calls to the host (default true unless VM_TOOLS_IN_GUEST=1). */
  toolsOnHost?: boolean;
}

/** One dispatch of the charm inside the guest. */
export interface DispatchRun extends RunResult {
  ms: number;
}

/** An action run: the dispatch and what the fake controller recorded for it. */
export interface ActionRun {
  dispatch: DispatchRun;
  action: FakeAction;
}

/** The charm, deployed in a guest. */
export class GuestCharm {
  private lastExitCode: number | null = null;

  constructor(
    public guest: Guest,
    readonly sim: UnitSimulator,
    private readonly searchPath: string,
    private readonly commandLog: string,
    private readonly proxyDir: string | null,
    private readonly share: string,
  ) {}

  /**
   * Follows the unit into the next boot of the same disk: the charm and its unit state are where
   * they were; only the command channel and the hook-tool forwarding are new.
   */
  reattach(guest: Guest): void {
    this.guest = guest;
    if (this.proxyDir) guest.setToolHandler((call) => runSimulatorTool(this.sim, this.share, call));
  }

  /** Runs the charm's dispatch for an event inside the guest, as Juju would. */
  async dispatch(
    event: Parameters<UnitSimulator["env"]>[0],
    opts: { timeoutMs?: number; extraEnv?: Record<string, string> } = {},
  ): Promise<DispatchRun> {
    const env = this.sim.env(event, {
      path: this.searchPath,
      // Audit mode (src/quiet/memo.ts): a hook whose quiet-hook memo matches runs in full all the
      // same and fails unless it was quiet and read the same: the memo judged on a real kernel.
      extra: {
        PCI_PASSTHROUGH_ROOT: "/",
        PCI_PASSTHROUGH_QUIET_AUDIT: "1",
        ...(opts.extraEnv ?? {}),
      },
    });
    // The proxies shadow the simulator's own tools (which sim.env put first).
    if (this.proxyDir) env.PATH = `${this.proxyDir}:${env.PATH}`;
    const assignments = Object.entries(env)
      .filter((e): e is [string, string] => typeof e[1] === "string")
      .map(([k, v]) => `${k}=${shellQuote(v)}`)
      .join(" ");
    const name = typeof event === "string" ? event : event.name;
    this.guest.note(`dispatch ${name}`);
    progress(`${this.guest.name}: dispatch ${name}`);
    const started = Date.now();
    const result = await this.guest.run(
      `cd ${JUJU_CHARM_DIR} && exec env -i ${assignments} ./dispatch`,
      { timeoutMs: opts.timeoutMs ?? 600_000 },
    );
    const ms = Date.now() - started;
    this.sim.finish(result.exitCode);
    this.lastExitCode = result.exitCode;
    this.guest.note(`dispatch ${name} exited ${result.exitCode} after ${ms} ms`);
    progress(`${this.guest.name}: ${name} exited ${result.exitCode} after ${seconds(ms)}`);
    return { ...result, ms };
  }

  /**
   * Juju's side of `juju-reboot`: whether the last hook asked to reboot the machine (Juju acts
   * only once the hook exited 0; a failed hook's request is dropped), consumed as Juju consumes
   * it. The test then reboots the guest and runs `start`, as Juju does after a machine reboot.
   */
  takeRebootRequest(): "after-hook" | "now" | null {
    const asked = this.sim.readState().reboot;
    if (asked !== null) this.sim.updateState((s) => (s.reboot = null));
    return this.lastExitCode === 0 ? asked : null;
  }

  /** Runs an action with params; returns the dispatch and the recorded action. */
  async action(name: string, params: Record<string, unknown> = {}): Promise<ActionRun> {
    const dispatch = await this.dispatch({ name: `${name}-action`, params });
    const action = this.sim.readState().lastAction;
    if (!action || action.name !== name) {
      throw new Error(
        `the ${name} action left no record (exit ${dispatch.exitCode})\n${dispatch.stderr}`,
      );
    }
    return { dispatch, action };
  }

  /** Sets config options (as `juju config` would) before the next config-changed. */
  setConfig(values: Record<string, unknown>): void {
    this.sim.updateState((s) => {
      Object.assign(s.config, values);
    });
  }

  /** The recorded programs the charm ran (argv lines), in order. */
  commands(): string[] {
    return existsSync(this.commandLog)
      ? readFileSync(this.commandLog, "utf8").split("\n").filter(Boolean)
      : [];
  }

  /**
   * Everything worth reading when a dispatch went wrong: its exit code and output, and what the
   * charm logged through juju-log.
   */
  explain(run: DispatchRun): string {
    const logs = this.sim
      .readState()
      .logs.map((l) => `${l.level}: ${l.message}`)
      .slice(-30);
    return `exit ${run.exitCode} after ${run.ms} ms\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}--- juju-log (last 30)\n${logs.join("\n")}`;
  }

  /** The unit's status as the charm last set it. */
  status(): { status: string; message: string } {
    return this.sim.readState().unitStatus;
  }
}

/** Unpacks the packed charm into the guest and creates the simulated unit around it. */
export async function deployCharmInGuest(opts: GuestCharmOptions): Promise<GuestCharm> {
  const charmFile = packedCharm(opts.arch);
  if (!existsSync(charmFile)) {
    throw new Error(`${charmFile} is missing: run \`npm run pack\` first`);
  }
  const { guest, share } = opts;
  // Unzipped on the host (fast), copied into the guest's own disk or memory (where Juju puts it).
  const staged = path.join(share, "charm-unpacked");
  rmSync(staged, { recursive: true, force: true });
  mkdirSync(staged, { recursive: true });
  execFileSync("unzip", ["-q", charmFile, "-d", staged]);
  await guest.exec(
    `rm -rf ${JUJU_CHARM_DIR} && mkdir -p ${JUJU_UNIT_DIR} && cp -a ${shellQuote(staged)} ${JUJU_CHARM_DIR}`,
    { timeoutMs: 300_000 },
  );

  const unitDir = path.join(share, "unit");
  rmSync(unitDir, { recursive: true, force: true });
  const sim = createUnitSimulator({
    unitName: "pci-passthrough/0",
    principalUnit: "nova-compute/0",
    ...(opts.simulator ?? {}),
    dir: unitDir,
    charmDir: JUJU_CHARM_DIR,
    configYaml: readFileSync(path.join(staged, "config.yaml"), "utf8"),
    config: opts.config ?? {},
  });
  const toolsOnHost = opts.toolsOnHost ?? process.env.VM_TOOLS_IN_GUEST !== "1";
  // The wrappers run in the guest only when not forwarded; forwarded, the host runs them as made.
  if (opts.toolNode && !toolsOnHost) retargetToolInterpreter(sim.binDir, opts.toolNode);

  const commandLog = path.join(share, "commands.log");
  rmSync(commandLog, { force: true });
  const dirs = [sim.binDir];
  if (opts.recordedCommands?.length) {
    const fakes = path.join(share, "recorded-bin");
    mkdirSync(fakes, { recursive: true });
    for (const tool of opts.recordedCommands) {
      writeFileSync(
        path.join(fakes, tool),
        `#!/bin/sh\necho "\${0##*/}\${*:+ $*}" >> ${shellQuote(commandLog)}\n`,
        { mode: 0o755 },
      );
    }
    dirs.push(fakes);
  }
  // sim.env() puts binDir first itself; the rest of the search path follows it.
  const searchPath = [...dirs.slice(1), SYSTEM_PATH].join(":");

  let proxyDir: string | null = null;
  if (toolsOnHost) {
    proxyDir = path.join(share, "tool-proxy");
    rmSync(proxyDir, { recursive: true, force: true });
    mkdirSync(proxyDir, { recursive: true });
    for (const tool of readdirSync(sim.binDir)) {
      copyFileSync(path.join(SCRIPTS, "hook-tool-proxy.sh"), path.join(proxyDir, tool));
    }
    execFileSync("chmod", ["-R", "a+rx", proxyDir]);
  }
  const charm = new GuestCharm(guest, sim, searchPath, commandLog, proxyDir, share);
  charm.reattach(guest);
  return charm;
}

/** Runs the simulator's own executable for a call the guest forwarded. */
function runSimulatorTool(sim: UnitSimulator, cwd: string, call: ToolCall): Promise<RunResult> {
  const exe = path.join(sim.binDir, call.tool);
  if (!existsSync(exe) || call.tool.includes("/")) {
    return Promise.resolve({
      exitCode: 127,
      stdout: "",
      stderr: `${call.tool}: not a hook tool\n`,
    });
  }
  return new Promise((resolve) => {
    // The guest's environment (JUJU_* of this hook) with the host's PATH; the guest's cwd does
    // not exist here, and the tools resolve nothing relative to it but `--file` paths.
    const child = spawn(exe, call.argv, {
      cwd,
      env: { ...call.env, PATH: process.env.PATH ?? "/usr/bin:/bin" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", (e) => resolve({ exitCode: 126, stdout, stderr: `${stderr}${e.message}\n` }));
    child.on("close", (code) => resolve({ exitCode: code ?? 126, stdout, stderr }));
    child.stdin.end(call.stdin ?? "");
  });
}

/**
 * Points the simulator's tool wrappers at another node. They exec this process's node by its
 * absolute path, which only exists in a guest whose root is the host's.
 */
function retargetToolInterpreter(binDir: string, node: string): void {
  const from = shellQuote(process.execPath);
  for (const tool of readdirSync(binDir)) {
    const file = path.join(binDir, tool);
    const text = readFileSync(file, "utf8");
    if (!text.includes(from)) {
      throw new Error(`the simulator's wrapper ${file} does not exec ${from}; update this helper`);
    }
    writeFileSync(file, text.replace(from, shellQuote(node)), { mode: 0o755 });
  }
}
