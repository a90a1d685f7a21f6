// The quiet-hook memo, through the packed dispatch: a hook that changed nothing is kept with its
// inputs (src/quiet/), and the next dispatch of it with the same inputs ends before the charm is
// even loaded; any changed input (config, stored state, a file the charm owns, a driver, a new
// function, Juju's environment) runs it in full. strace checks the memo holds every host path the
// hook touched, so no input of a hook escapes it. (Every other packed-charm test runs in audit
// mode, tests/support/charm-process.ts: a memo that matched is run in full anyway and the hook
// fails if that run was not quiet.)
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { OWNED } from "../../src/host/root";
import { type CharmUnderTest, usePackedCharmHost } from "../support/charm-process";
import { setUeventDriver } from "../support/hosts/build-host";
import { requireTool } from "../support/tools";
import { diffTrees, snapshotTree } from "../support/tree";

const ONE_GPU = { devices: "0000:83:00.0" };
/** The memo used as in production: a hook it matches is skipped. */
const LIVE = { PCI_PASSTHROUGH_QUIET_AUDIT: "0" };
const LOADED = "the charm's code was loaded";

describe("quiet hooks (the packed charm)", () => {
  const host = usePackedCharmHost();

  /** A unit whose host is prepared, with a memo of update-status (its second run changed nothing). */
  function prepared(): CharmUnderTest {
    const unit = host.deploy({ config: ONE_GPU });
    expect(unit.dispatch("install").exitCode).toBe(0);
    expect(unit.dispatch("update-status", LIVE).exitCode).toBe(0);
    return unit;
  }

  /** Replaces the charm's code with one that fails when loaded (a new file: the unit's charm
   * directory is hard-linked to the shared unpacked one). A dispatch that still exits 0 never
   * loaded it: the probe ended it. */
  function breakCharmCode(unit: CharmUnderTest): void {
    const code = path.join(unit.charmDir, "dist", "charm.code.js");
    fs.rmSync(code);
    fs.writeFileSync(code, `throw new Error(${JSON.stringify(LOADED)});\n`);
  }

  const memoOf = (unit: CharmUnderTest, hook: string) =>
    path.join(unit.charmDir, ".quiet-hooks", hook);

  it("a repeated update-status ends before the charm loads, changing and asking nothing", () => {
    const unit = prepared();
    expect(fs.existsSync(memoOf(unit, "update-status"))).toBe(true);
    breakCharmCode(unit);
    unit.clearCommands();
    const before = snapshotTree(host.root, { stamps: true });
    const calls = unit.sim.readState().calls.length;
    const status = unit.sim.readState().unitStatus;
    const quiet = unit.dispatch("update-status", LIVE);
    expect(quiet.stderr).toBe("");
    expect(quiet.exitCode).toBe(0);
    expect(diffTrees(before, snapshotTree(host.root, { stamps: true }))).toEqual([]);
    // dispatch's own prefetch (config-get, state-get) is all Juju saw.
    expect(
      unit.sim
        .readState()
        .calls.slice(calls)
        .map((c) => c.argv[0]),
    ).toEqual(["config-get", "state-get"]);
    expect(unit.sim.readState().unitStatus).toEqual(status);
    expect(unit.commands()).toEqual([]);
  });

  it("runs in full when any input changed, and says what changed on the host", () => {
    const unit = prepared();
    // Someone edits a file the charm owns: the next update-status sees it (the charm keeps the
    // edit and blocks, naming the file).
    fs.appendFileSync(path.join(host.root, OWNED.modprobeConf), "blacklist nouveau # by hand\n");
    expect(unit.dispatch("update-status", LIVE).exitCode).toBe(0);
    expect(unit.sim.readState().unitStatus).toMatchObject({
      status: "blocked",
      message: expect.stringContaining(`${OWNED.modprobeConf} was edited since the charm wrote it`),
    });

    // Each other kind of input, with the charm's code broken: a hook that runs says so.
    const changes: Array<[string, (unit: CharmUnderTest) => Record<string, string> | undefined]> = [
      [
        "the config",
        (unit) => {
          unit.sim.updateState((s) => {
            s.config["extra-kernel-params"] = "pcie_aspm=off";
          });
          return undefined;
        },
      ],
      [
        "the GPU's driver",
        () => {
          // As the kernel shows a new binding: the link moves and uevent says it.
          const device = path.join(host.root, "sys/bus/pci/devices/0000:83:00.0");
          const target = fs.readlinkSync(path.join(device, "driver"));
          fs.rmSync(path.join(device, "driver"));
          fs.symlinkSync(target.replace(/[^/]+$/, "vfio-pci"), path.join(device, "driver"));
          setUeventDriver(device, "vfio-pci");
          return undefined;
        },
      ],
      [
        "a new function",
        () => {
          const devices = path.join(host.root, "sys/bus/pci/devices");
          fs.symlinkSync(
            "../../../devices/pci0000:80/0000:80:03.0/0000:83:00.0",
            path.join(devices, "0000:99:00.0"),
          );
          return undefined;
        },
      ],
      ["Juju's environment", () => ({ JUJU_AVAILABILITY_ZONE: "zone-b" })],
    ];
    for (const [what, change] of changes) {
      const fresh = prepared();
      breakCharmCode(fresh);
      const extra = change(fresh) ?? {};
      const run = fresh.dispatch("update-status", { ...LIVE, ...extra });
      expect({ what, stderr: run.stderr.includes(LOADED) }).toEqual({ what, stderr: true });
      expect(run.exitCode).toBe(1);
    }
  });

  it("keeps no memo of a hook that changed something, and replaces one that no longer stands", () => {
    const unit = host.deploy({ config: ONE_GPU });
    expect(unit.dispatch("install", LIVE).exitCode).toBe(0);
    expect(fs.existsSync(memoOf(unit, "install"))).toBe(false);
    expect(unit.dispatch("config-changed", LIVE).exitCode).toBe(0);
    const first = fs.readFileSync(memoOf(unit, "config-changed"), "utf8");
    unit.sim.updateState((s) => {
      s.config["extra-kernel-params"] = "pcie_aspm=off";
    });
    // Changes the grub drop-in: no memo, and the stale one is gone.
    expect(unit.dispatch("config-changed", LIVE).exitCode).toBe(0);
    expect(fs.existsSync(memoOf(unit, "config-changed"))).toBe(false);
    expect(unit.dispatch("config-changed", LIVE).exitCode).toBe(0);
    expect(fs.readFileSync(memoOf(unit, "config-changed"), "utf8")).not.toBe(first);
  });

  it("in audit mode, fails a hook whose memo matched but does not hold what the run read", () => {
    // Audit mode throughout (the suites' default): the memo is kept with that environment.
    const unit = host.deploy({ config: ONE_GPU });
    expect(unit.dispatch("install").exitCode).toBe(0);
    expect(unit.dispatch("update-status").exitCode).toBe(0);
    const memo = memoOf(unit, "update-status");
    // A memo with the right key and no reads matches anything: the audit sees the run read more.
    fs.writeFileSync(memo, `${fs.readFileSync(memo, "utf8").split("\n")[0]}\n`);
    const audited = unit.dispatch("update-status");
    expect(audited.exitCode).toBe(1);
    expect(audited.stderr).toMatch(
      /^quiet-hook audit: the memo at .* matched, so it would have skipped this hook, but the run read otherwise: memo "", run "\w+\\t\//,
    );
  });

  it("holds every host path the hook opened, listed, stat'ed or read a link of (strace)", () => {
    requireTool("strace", "strace");
    const unit = prepared();
    const memo = memoOf(unit, "update-status");
    fs.rmSync(memo);
    const trace = path.join(unit.charmDir, "..", "strace.txt");
    const env = unit.sim.env("update-status", {
      path: process.env.PATH,
      extra: { PCI_PASSTHROUGH_ROOT: host.root, PCI_PASSTHROUGH_RUN_COMMANDS: "1", ...LIVE },
    });
    const r = spawnSync(
      "strace",
      [
        "-f",
        "-qq",
        "-o",
        trace,
        "-e",
        "trace=%file,getdents64",
        path.join(unit.charmDir, "dispatch"),
      ],
      { env, encoding: "utf8" },
    );
    unit.sim.finish(r.status);
    expect(r.status).toBe(0);
    const reads = fs
      .readFileSync(memo, "utf8")
      .split("\n")
      .slice(1, -1)
      .map((l) => l.split("\t") as [string, string, string]);
    const recorded = new Set(reads.map(([, file]) => file));
    const realpaths = reads.filter(([op]) => op === "realpath").map(([, file]) => file);
    const walked = new Set(realpaths.flatMap(realpathSteps));
    const touched = new Set<string>();
    const missing: string[] = [];
    for (const line of fs.readFileSync(trace, "utf8").split("\n")) {
      const m = /^\d+\s+(\w+)\((?:AT_FDCWD, )?"([^"]*)"/.exec(line);
      if (!m || !m[2]!.startsWith(`${host.root}/`)) continue;
      const [, call, file] = m as unknown as [string, string, string];
      touched.add(file);
      // realpath(3) reads every link on its way: those steps are covered by its entry.
      if (!recorded.has(file) && !(call === "readlink" && walked.has(file))) {
        missing.push(`${call} ${file}`);
      }
    }
    expect(missing).toEqual([]);
    // And it records nothing the hook did not do (a realpath shows as its steps).
    const direct = reads.filter(([op]) => op !== "realpath").map(([, file]) => file);
    expect(direct.filter((p) => !touched.has(p))).toEqual([]);
    expect(recorded.size).toBeGreaterThan(100);
  });
});

/** Every path realpath(3) reads a link of on its way to resolving `file` (glibc's walk: one
 * component at a time, following each link from where it points). */
function realpathSteps(file: string): string[] {
  const steps: string[] = [];
  const parts = file.split("/").filter(Boolean);
  let resolved = "";
  for (let hops = 0; parts.length > 0 && hops < 1000; hops++) {
    const part = parts.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      resolved = path.dirname(resolved || "/");
      if (resolved === "/") resolved = "";
      continue;
    }
    const next = `${resolved}/${part}`;
    steps.push(next);
    let target: string;
    try {
      target = fs.readlinkSync(next);
    } catch {
      resolved = next;
      continue;
    }
    parts.unshift(...target.split("/").filter(Boolean));
    if (target.startsWith("/")) resolved = "";
  }
  return steps;
}
