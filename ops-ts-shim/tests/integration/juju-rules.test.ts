// Issue 13: each rule Juju (or Linux, under Juju) holds a charm to is enforced by BOTH simulators,
// so a charm that breaks it fails its tests. The charm here breaks them on purpose, calling the
// hook tools itself; every test shows the refusal, with Juju's (or the kernel's) words.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Context, type OutputState, UncaughtCharmError } from "../../src/testing";
import { createUnitSimulator, type UnitSimulatorOptions } from "../../src/testing/simulator";
import { capturingStderr } from "../capture-stderr";
import { bundleCharm } from "../fixtures/bundle-charm";
import {
  MISBEHAVING_ACTIONS,
  MISBEHAVING_METADATA,
  MisbehavingCharm,
} from "../fixtures/misbehaving-charm";

const DB = [{ endpoint: "db", remoteApp: "postgresql", localAppData: { secret: "s3" } }];

/** The error a scenario run ends with (the charm raised: its test would fail). main() also writes
 * it to stderr, as Juju's log would keep it: captured and checked here, so a passing run's log
 * holds no error lines it provoked on purpose. */
function refusal(run: () => unknown): string {
  const { result, stderr } = capturingStderr(() => {
    try {
      run();
    } catch (e) {
      if (e instanceof UncaughtCharmError) return e.message;
      throw e;
    }
    return "(no refusal: the charm's test would pass)";
  });
  if (result.startsWith("(no refusal")) return result;
  expect(stderr).toContain("HookCmdError");
  return result;
}

describe("the in-memory fake refuses a charm that breaks the rules", () => {
  const ctx = new Context(MisbehavingCharm, {
    metadata: MISBEHAVING_METADATA,
    actions: MISBEHAVING_ACTIONS,
  });

  it("action-set with one argument over MAX_ARG_STRLEN (128 KiB): execve fails, E2BIG", () => {
    expect(refusal(() => ctx.run("one-huge-result-action"))).toMatch(
      /cannot run action-set: spawnSync action-set E2BIG \(an argument of 131077 bytes/,
    );
  });

  it("action-set whose arguments together pass the argv limit: E2BIG", () => {
    expect(refusal(() => ctx.run("huge-argv-action"))).toMatch(
      /spawnSync action-set E2BIG \(arguments and environment of \d+ bytes/,
    );
  });

  it("results over what the controller stores for one action: the action fails, results lost", () => {
    const out = ctx.run({ name: "many-results-action", params: { calls: 170 } });
    expect(out.actionFailure).toMatch(
      /^cannot finish action: its results \(\d+ bytes\) exceed the 16777216 bytes/,
    );
    expect(out.actionResults).toEqual({});
    // Under the limit, the same charm is fine.
    const small = ctx.run({ name: "many-results-action", params: { calls: 2 } });
    expect(small.actionFailure).toBeNull();
  });

  it("state-set over Juju's quota (quota.CheckTupleSize: 64 KiB a value) is refused", () => {
    expect(refusal(() => ctx.run("big-state-action"))).toMatch(
      /ERROR max allowed value length \(65536\) exceeded/,
    );
  });

  it("a failed hook keeps its status and log (at once) and loses its state (Flush on exit 0)", () => {
    let output: OutputState | undefined;
    try {
      ctx.run("install");
    } catch (e) {
      if (!(e instanceof UncaughtCharmError)) throw e;
      output = e.state;
    }
    expect(output?.unitStatus).toMatchObject({ name: "maintenance", message: "installing" });
    expect(output?.logs).toContainEqual({ level: "INFO", message: "installing" });
    expect(output?.stored).toEqual({});
  });

  it("status-set --application and relation-get --app of its own app: the leader only", () => {
    expect(refusal(() => ctx.run("app-status-action"))).toMatch(
      /ERROR this unit is not the leader/,
    );
    expect(refusal(() => ctx.run("read-own-app-action", { relations: DB }))).toMatch(
      /ERROR cannot read settings for application "misbehaving" in relation "db:\d+": permission denied/,
    );
    expect(ctx.run("app-status-action", { leader: true }).actionFailure).toBeNull();
    expect(
      ctx.run("read-own-app-action", { leader: true, relations: DB }).actionFailure,
    ).toBeNull();
  });
});

describe("the process-level simulator refuses it too", { timeout: 120_000 }, () => {
  let dir: string;
  let charmJs: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "shim-rules-"));
    charmJs = join(dir, "charm.cjs");
    bundleCharm(
      charmJs,
      `import { main } from "../../src/index";
import { MisbehavingCharm } from "./misbehaving-charm";
process.exitCode = main(MisbehavingCharm);`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function unit(name: string, options: Partial<UnitSimulatorOptions> = {}) {
    const simDir = join(dir, name);
    const charmDir = join(simDir, "charm");
    mkdirSync(charmDir, { recursive: true });
    writeFileSync(join(charmDir, "metadata.yaml"), MISBEHAVING_METADATA);
    writeFileSync(join(charmDir, "actions.yaml"), MISBEHAVING_ACTIONS);
    const sim = createUnitSimulator({
      dir: simDir,
      unitName: "misbehaving/0",
      charmDir,
      ...options,
    });
    return {
      sim,
      run(event: Parameters<typeof sim.env>[0]) {
        const r = spawnSync(process.execPath, [charmJs], {
          env: sim.env(event),
          cwd: charmDir,
          encoding: "utf8",
        });
        sim.finish(r.status);
        return { exitCode: r.status, action: sim.readState().lastAction! };
      },
    };
  }

  it("the kernel itself refuses one action-set argument over 128 KiB (E2BIG)", () => {
    const { action } = unit("one-huge").run("one-huge-result-action");
    expect(action.failed).toBe(true);
    expect(action.failureMessage).toMatch(/cannot run action-set: spawnSync action-set E2BIG/);
  });

  it("results over the controller's limit (lowered here to 300 KiB) fail the action", () => {
    const u = unit("many", { maxActionResultsSize: 300 * 1024 });
    const over = u.run({ name: "many-results-action", params: { calls: 4 } });
    expect(over.action).toMatchObject({ failed: true, results: {} });
    expect(over.action.failureMessage).toMatch(/exceed the 307200 bytes the controller can store/);
    expect(u.run({ name: "many-results-action", params: { calls: 2 } }).action.failed).toBe(false);
  });

  it("the whole state over max-charm-state-size: Juju refuses to commit the hook", () => {
    const u = unit("state-total", { maxCharmStateSize: 150 * 1024 });
    u.run("update-status");
    const state = u.sim.readState();
    expect(state.flushErrors).toEqual([
      expect.stringMatching(/^persisting charm state: max allowed size \(153600\) exceeded/),
    ]);
    expect(state.stored).toEqual({});
  });

  it("a failed hook keeps its status and log and loses its state", () => {
    const u = unit("failed-install");
    expect(u.run("install").exitCode).toBe(1);
    const state = u.sim.readState();
    expect(state.unitStatus).toEqual({ status: "maintenance", message: "installing" });
    expect(state.logs).toContainEqual({ level: "INFO", message: "installing" });
    expect(state.stored).toEqual({});
  });

  it("status-set --application and relation-get --app of its own app: the leader only", () => {
    const follower = unit("follower", { relations: DB });
    expect(follower.run("app-status-action").action.failureMessage).toMatch(
      /ERROR this unit is not the leader/,
    );
    expect(follower.run("read-own-app-action").action.failureMessage).toMatch(/permission denied/);
    const leader = unit("leader", { relations: DB, leader: true });
    expect(leader.run("app-status-action").action.failed).toBe(false);
    expect(leader.run("read-own-app-action").action.failed).toBe(false);
  });
});
