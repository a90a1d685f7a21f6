import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUnitSimulator, type UnitSimulator } from "../../src/testing/simulator";
import { bundleCharm } from "../fixtures/bundle-charm";
import { ACTIONS, CONFIG, METADATA } from "../fixtures/demo-charm";

let dir: string;
let charmJs: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "shim-sim-"));
  charmJs = join(dir, "charm.cjs");
  // Bundled like the real charm: one file, no node_modules at run time.
  bundleCharm(charmJs, 'import "./demo-entry";');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function simulator(name: string, options: Partial<Parameters<typeof createUnitSimulator>[0]> = {}) {
  const simDir = join(dir, name);
  const charmDir = join(simDir, "charm");
  mkdirSync(charmDir, { recursive: true });
  writeFileSync(join(charmDir, "metadata.yaml"), METADATA);
  writeFileSync(join(charmDir, "config.yaml"), CONFIG);
  writeFileSync(join(charmDir, "actions.yaml"), ACTIONS);
  return createUnitSimulator({
    dir: simDir,
    unitName: "demo/0",
    configYaml: CONFIG,
    charmDir,
    ...options,
  });
}

/** Runs the bundled charm as Juju would: absolute interpreter, the simulator's environment. */
function dispatch(sim: UnitSimulator, env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, [charmJs], { env, cwd: sim.charmDir, encoding: "utf8" });
  sim.finish(r.status);
  return r;
}

// Each dispatch starts several node processes; on a busy 2-core machine that takes seconds.
describe("unit simulator: fake hook tools as real processes", { timeout: 60_000 }, () => {
  it("runs install then an idle config-changed, and records every call", () => {
    const sim = simulator("basic");
    const install = dispatch(sim, sim.env("install"));
    expect(install.status).toBe(0);
    let state = sim.readState();
    expect(state.logs).toEqual([{ level: "INFO", message: "installed demo" }]);
    expect(state.unitStatus).toEqual({ status: "active", message: "greeting is hello" });
    expect(JSON.parse(state.stored.installed!)).toBe(true);

    const before = state.calls.length;
    expect(dispatch(sim, sim.env("config-changed")).status).toBe(0);
    state = sim.readState();
    const idle = state.calls.slice(before).map((c) => c.argv);
    // The first config-changed stores count once; the second is the idle one.
    expect(dispatch(sim, sim.env("config-changed")).status).toBe(0);
    const calls = sim
      .readState()
      .calls.slice(before + idle.length)
      .map((c) => c.argv);
    expect(calls).toEqual([
      ["config-get", "--format=json", "--all"],
      ["state-get", "--format=json"],
    ]);
    expect(sim.readState().statusHistory).toHaveLength(1);
  });

  it("works with no node on PATH (tools use an absolute interpreter)", () => {
    const sim = simulator("no-node");
    const env = sim.env("install", { path: "/nonexistent" });
    expect(env.PATH).toBe(`${sim.binDir}:/nonexistent`);
    const which = spawnSync("/bin/sh", ["-c", "command -v node || echo none"], {
      env,
      encoding: "utf8",
    });
    expect(which.stdout.trim()).toBe("none");
    const result = dispatch(sim, env);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(sim.readState().unitStatus.status).toBe("active");
  });

  it("sets the JUJU_* environment as Juju does", () => {
    const sim = simulator("env", {
      relations: [{ endpoint: "backend", id: 4, remoteUnits: ["nova/2"] }],
    });
    const env = sim.env("backend-relation-departed");
    expect(env).toMatchObject({
      JUJU_DISPATCH_PATH: "hooks/backend-relation-departed",
      JUJU_HOOK_NAME: "backend-relation-departed",
      JUJU_UNIT_NAME: "demo/0",
      JUJU_CHARM_DIR: sim.charmDir,
      CHARM_DIR: sim.charmDir,
      JUJU_RELATION: "backend",
      JUJU_RELATION_ID: "backend:4",
      JUJU_REMOTE_UNIT: "nova/2",
      JUJU_REMOTE_APP: "nova",
      JUJU_DEPARTING_UNIT: "nova/2",
      JUJU_MODEL_NAME: "test-model",
      JUJU_VERSION: "3.6.4",
    });
    const action = sim.env({ name: "greet-action", params: { name: "x" } });
    expect(action).toMatchObject({
      JUJU_DISPATCH_PATH: "actions/greet",
      JUJU_HOOK_NAME: "",
      JUJU_ACTION_NAME: "greet",
      JUJU_ACTION_UUID: "1",
    });
  });

  it("relation data and actions end to end", () => {
    const sim = simulator("relations", {
      config: { greeting: "ahoy" },
      relations: [{ endpoint: "backend", remoteUnitsData: { "nova/0": { say: "hi" } } }],
    });
    expect(dispatch(sim, sim.env("backend-relation-joined")).status).toBe(0);
    expect(dispatch(sim, sim.env("backend-relation-changed")).status).toBe(0);
    expect(sim.readState().relations[0]!.localUnitData).toEqual({
      greeting: "ahoy",
      joined: "nova/0",
      echo: "hi",
    });
    const relationSet = sim.readState().calls.find((c) => c.argv[0] === "relation-set")!;
    expect(relationSet.argv).toEqual(["relation-set", "-r", "1", "--file", "-"]);
    expect(JSON.parse(relationSet.stdin!)).toEqual({ greeting: "ahoy", joined: "nova/0" });

    expect(dispatch(sim, sim.env({ name: "greet-action", params: { name: "sim" } })).status).toBe(
      0,
    );
    expect(sim.readState().lastAction).toMatchObject({
      name: "greet",
      results: { message: "ahoy, sim", meta: { n: "1" } },
      logs: ["greeting sim"],
      failed: false,
    });
    const explode = dispatch(sim, sim.env("explode-action"));
    expect(explode.status).toBe(0);
    expect(explode.stderr).toContain("kaboom: the demo action always fails");
    expect(sim.readState().lastAction).toMatchObject({
      failed: true,
      failureMessage: "Error: kaboom: the demo action always fails",
    });
  });

  it("an unknown event is ignored with a clear log line and exit 0, as ops does", () => {
    const sim = simulator("unknown");
    expect(dispatch(sim, sim.env("frobnicate")).status).toBe(0);
    expect(sim.readState().logs[0]).toEqual({
      level: "WARNING",
      message: expect.stringMatching(/^hooks\/frobnicate ignored: unknown hook "frobnicate"/),
    });
  });

  it("the tools refuse what Juju refuses when run by hand", () => {
    const sim = simulator("by-hand");
    const env = sim.env("install");
    const tool = (...argv: string[]) =>
      spawnSync(join(sim.binDir, argv[0]!), argv.slice(1), { env, encoding: "utf8" });
    expect(tool("status-set", "--colour", "active")).toMatchObject({
      status: 2,
      stderr: "ERROR flag provided but not defined: --colour\n",
    });
    expect(tool("action-set", "Key=1")).toMatchObject({
      status: 2,
      stderr: expect.stringMatching(/^ERROR key "Key" must start/),
    });
    expect(tool("action-get")).toMatchObject({
      status: 1,
      stderr: "ERROR not running an action\n",
    });
    expect(tool("status-set", "happy")).toMatchObject({
      status: 2,
      stderr: expect.stringMatching(/invalid status "happy"/),
    });
    expect(tool("config-get", "greeting")).toMatchObject({ status: 0, stdout: "hello\n" });
    expect(tool("is-leader")).toMatchObject({ status: 0, stdout: "False\n" });
    sim.updateState((s) => {
      s.leader = true;
    });
    expect(tool("is-leader", "--format=json").stdout).toBe("true\n");
    expect(sim.readState().calls.map((c) => [c.argv[0], c.exitCode])).toEqual([
      ["status-set", 2],
      ["action-set", 2],
      ["action-get", 1],
      ["status-set", 2],
      ["config-get", 0],
      ["is-leader", 0],
      ["is-leader", 0],
    ]);
  });

  // dispatch's prefetch runs tools beside the charm's own: each read-modify-write of the state
  // file must hold its lock, or two tools that read the same state lose one of their changes.
  it("tools running at the same time lose no change of each other's", () => {
    const sim = simulator("concurrent");
    const env = sim.env("install");
    const r = spawnSync(
      "/bin/sh",
      ["-c", 'for i in $(seq 1 12); do juju-log "line $i" & state-set "k$i=v" & done; wait'],
      { env, encoding: "utf8" },
    );
    expect(r.status, r.stderr).toBe(0);
    const state = sim.readState();
    expect(state.calls).toHaveLength(24);
    expect(state.logs.map((l) => l.message).sort()).toEqual(
      Array.from({ length: 12 }, (_, i) => `line ${i + 1}`).sort(),
    );
    expect(Object.keys(state.pending?.stored ?? {})).toHaveLength(12);
    expect(readdirSync(join(dir, "concurrent")).filter((n) => n.endsWith(".lock"))).toEqual([]);
  });

  it("a lock left by a killed tool does not block the next one", () => {
    const sim = simulator("stale-lock");
    const env = sim.env("install");
    // A pid that cannot be alive (above pid_max's ceiling).
    writeFileSync(`${sim.stateFile}.lock`, "4194305");
    const r = spawnSync(join(sim.binDir, "juju-log"), ["after"], { env, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(sim.readState().logs.at(-1)?.message).toBe("after");
  });
});
