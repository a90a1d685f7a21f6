// Idempotence: a second identical hook writes no file and runs no command. Counted two ways:
// - in-process, host preparation with a counting FsOps (every write, rename, chmod, unlink, sync)
//   and a recording command runner, on several preset hosts;
// - through the packed dispatch under the real unit simulator, with recording update-grub /
//   update-initramfs stand-ins and an inode/ctime snapshot of the whole host tree.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { EMPTY_MEMORY } from "../src/host-preparation";
import { recordingRunner, runHook } from "../tests/support/fault-injection/apply-scenarios";
import { faultyFs } from "../tests/support/fault-injection/faulty-fs";
import { fullConfig } from "../tests/support/fault-injection/host-trees";
import { makeTempHost } from "../tests/support/hosts/build-host";
import { PRESETS } from "../tests/support/hosts/presets";
import { diffTrees, snapshotTree } from "../tests/support/tree";
import { timeRun } from "./lib/measure";
import { simulateUnit, unpackCharm } from "./lib/packed-charm";

export interface HookCount {
  /** Mutating FsOps calls (open for write, write, fsync, close, chmod, rename, unlink, mkdir). */
  fsCalls: number;
  /** Files the apply report says it created, updated or removed. */
  filesChanged: number;
  commands: string[];
}

export interface IdempotenceCase {
  host: string;
  config: Record<string, string>;
  first: HookCount;
  second: HookCount;
  third: HookCount;
}

export interface IdempotenceResult {
  inProcess: IdempotenceCase[];
  dispatch: {
    host: string;
    config: Record<string, string>;
    /** install, then config-changed and update-status: paths touched and commands run by each. */
    hooks: Array<{ event: string; touched: string[]; commands: string[]; toolCalls: number }>;
  };
}

const CASES: Array<[string, Record<string, string>]> = [
  ["seed", { devices: "10de:1bb0" }],
  ["seed", { devices: "0000:83:00.0", "extra-kernel-params": "pcie_aspm=off" }],
  ["amd", { devices: "1002:73bf" }],
  ["gpu-less", { devices: "10de:1bb0" }],
  ["qemu-q35", { devices: "0000:00:03.0" }],
  ["shared-group", {}],
];

function inProcess(hostName: string, values: Record<string, string>): IdempotenceCase {
  const host = makeTempHost(PRESETS[hostName]!(), "pci-bench-idem-");
  try {
    const config = fullConfig(values);
    let memory = EMPTY_MEMORY;
    const hook = (): HookCount => {
      const fsOps = faultyFs();
      const runner = recordingRunner();
      const result = runHook({ kind: "prepare", config, memory }, host.root, fsOps, runner);
      if (result.outcome.kind !== "prepared") {
        throw new Error(`${hostName} ${JSON.stringify(values)}: ${result.outcome.kind}`);
      }
      memory = result.memory;
      return {
        fsCalls: fsOps.calls.length,
        filesChanged: (result.report?.files ?? []).filter(
          (f) => f.action !== "unchanged" && f.action !== "absent",
        ).length,
        commands: runner.ran.map((a) => a.join(" ")),
      };
    };
    return { host: hostName, config: values, first: hook(), second: hook(), third: hook() };
  } finally {
    host.cleanup();
  }
}

function throughDispatch(): IdempotenceResult["dispatch"] {
  const config = { devices: "0000:83:00.0" };
  const host = makeTempHost(PRESETS.seed!(), "pci-bench-idem-");
  const charm = unpackCharm();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pci-bench-idem-"));
  try {
    const fake = path.join(dir, "fakecmds");
    const log = path.join(dir, "commands.log");
    fs.mkdirSync(fake);
    for (const tool of ["update-grub", "update-initramfs", "modprobe"]) {
      fs.writeFileSync(path.join(fake, tool), `#!/bin/sh\necho "\${0##*/} $*" >> '${log}'\n`, {
        mode: 0o755,
      });
    }
    const sim = simulateUnit(charm, path.join(dir, "sim"), config, [
      { endpoint: "juju-info", remoteApp: "nova-compute" },
    ]);
    const hooks: IdempotenceResult["dispatch"]["hooks"] = [];
    for (const event of ["install", "config-changed", "update-status", "config-changed"]) {
      fs.rmSync(log, { force: true });
      const before = snapshotTree(host.root, { stamps: true });
      const calls = sim.readState().calls.length;
      const env = sim.env(event, {
        path: `${fake}:${charm.sysbin}`,
        extra: { PCI_PASSTHROUGH_ROOT: host.root, PCI_PASSTHROUGH_RUN_COMMANDS: "1" },
      });
      const r = timeRun({ argv: [path.join(charm.charmDir, "dispatch")], env });
      if (r.exitCode !== 0) throw new Error(`${event}: exit ${r.exitCode}: ${r.stderr}`);
      hooks.push({
        event,
        touched: diffTrees(before, snapshotTree(host.root, { stamps: true })),
        commands: fs.existsSync(log)
          ? fs.readFileSync(log, "utf8").split("\n").filter(Boolean)
          : [],
        toolCalls: sim.readState().calls.length - calls,
      });
    }
    return { host: "seed", config, hooks };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    charm.cleanup();
    host.cleanup();
  }
}

/** The idempotence counters. */
export function benchIdempotence(): IdempotenceResult {
  return {
    inProcess: CASES.map(([h, c]) => inProcess(h, c)),
    dispatch: throughDispatch(),
  };
}
