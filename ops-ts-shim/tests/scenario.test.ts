import { describe, expect, it } from "vitest";
import { ActiveStatus, BlockedStatus } from "../src/index";
import { Context, InconsistentScenarioError, UncaughtCharmError } from "../src/testing";
import { capturingStderr } from "./capture-stderr";
import { ACTIONS, CONFIG, DemoCharm, METADATA } from "./fixtures/demo-charm";

const ctx = new Context(DemoCharm, { metadata: METADATA, config: CONFIG, actions: ACTIONS });

describe("consistency checker", () => {
  const problemsOf = (run: () => unknown): string[] => {
    try {
      run();
    } catch (e) {
      if (e instanceof InconsistentScenarioError) return e.problems;
      throw e;
    }
    throw new Error("expected an InconsistentScenarioError");
  };

  it("refuses config keys config.yaml does not declare", () => {
    expect(problemsOf(() => ctx.run("config-changed", { config: { colour: "red" } }))).toEqual([
      'config option "colour" is not declared in config.yaml (declared: greeting, count, ratio, enabled)',
    ]);
  });

  it("refuses values of the wrong type, listing every problem at once", () => {
    expect(
      problemsOf(() =>
        ctx.run("config-changed", {
          config: { greeting: 3, count: 1.5, ratio: "0.5", enabled: "yes" },
        }),
      ),
    ).toEqual([
      'config option "greeting" is declared as string but the test sets number 3',
      'config option "count" is declared as int but the test sets number 1.5',
      'config option "ratio" is declared as float but the test sets string "0.5"',
      'config option "enabled" is declared as boolean but the test sets string "yes"',
    ]);
  });

  it("accepts well-typed config (an int is a valid float)", () => {
    expect(() =>
      ctx.run("config-changed", { config: { greeting: "hi", count: 2, ratio: 1, enabled: false } }),
    ).not.toThrow();
  });

  it("refuses unknown endpoints, relation events without a relation, unknown events", () => {
    expect(
      problemsOf(() =>
        ctx.run("backend-relation-joined", { relations: [{ endpoint: "database" }] }),
      ),
    ).toEqual([
      'relation endpoint "database" is not declared in metadata.yaml (declared: juju-info, backend)',
      'event backend-relation-joined needs a relation on "backend" in the state',
    ]);
    expect(problemsOf(() => ctx.run("db-relation-joined"))).toEqual([
      'event db-relation-joined: endpoint "db" is not declared in metadata.yaml',
    ]);
    expect(problemsOf(() => ctx.run("frobnicate"))).toEqual([
      '"frobnicate" is not a Juju event this charm can receive',
    ]);
    expect(
      problemsOf(() =>
        ctx.run(
          { name: "backend-relation-changed", relationId: 9 },
          { relations: [{ endpoint: "backend" }] },
        ),
      ),
    ).toEqual([
      'event backend-relation-changed needs a relation on "backend" with id 9 in the state',
    ]);
  });

  it("refuses undeclared actions and bad action params", () => {
    expect(problemsOf(() => ctx.run("dance-action"))).toEqual([
      'action "dance" is not declared in actions.yaml (declared: greet, explode, bad-results)',
    ]);
    expect(
      problemsOf(() => ctx.run("greet-action", { actionParams: { name: 1, volume: 11 } })),
    ).toEqual([
      'action greet parameter "name" is declared as string but the test passes number 1',
      'action greet has no parameter "volume" (declared: name, loud)',
    ]);
    expect(problemsOf(() => ctx.run("install", { actionParams: {} }))).toEqual([
      "actionParams are given but install is not an action event",
    ]);
  });

  it("refuses duplicate relation ids and data for units not in the relation", () => {
    expect(
      problemsOf(() =>
        ctx.run("install", {
          relations: [
            { endpoint: "backend", id: 1, remoteUnits: ["a/0"], remoteUnitsData: { "b/0": {} } },
            { endpoint: "juju-info", id: 1 },
          ],
        }),
      ),
    ).toEqual([
      'relation backend:1 has data for "b/0", which is not in its remoteUnits',
      "relation id 1 is used twice",
    ]);
  });
});

describe("running the demo charm", () => {
  it("install: stored state, a log line, and the collected status", () => {
    const out = ctx.run("install");
    expect(out.stored).toEqual({ installed: true });
    expect(out.logs).toEqual([{ level: "INFO", message: "installed demo" }]);
    expect(out.unitStatus).toEqual(new ActiveStatus("greeting is hello"));
    expect(out.exitCode).toBe(0);
  });

  it("a no-op config-changed makes at most 3 hook-tool calls (here: 2)", () => {
    const first = ctx.run("config-changed", { config: { count: 3 } });
    expect(first.hookToolCalls.length).toBeGreaterThan(2);
    const idle = ctx.run("config-changed", first);
    expect(idle.hookToolCalls).toEqual([
      ["config-get", "--format=json", "--all"],
      ["state-get", "--format=json"],
    ]);
    expect(idle.stored).toEqual({ count: 3 });
  });

  it("status follows config", () => {
    const out = ctx.run("config-changed", { config: { enabled: false } });
    expect(out.unitStatus).toEqual(new BlockedStatus("enabled is false: set enabled=true"));
  });

  it("relation-joined publishes data; relation-changed echoes the remote unit", () => {
    const joined = ctx.run("backend-relation-joined", {
      config: { greeting: "ahoy" },
      relations: [{ endpoint: "backend", remoteUnits: ["nova/0"] }],
    });
    expect(joined.relations[0]!.localUnitData).toEqual({ greeting: "ahoy", joined: "nova/0" });
    const changed = ctx.run("backend-relation-changed", {
      ...joined,
      relations: [{ ...joined.relations[0]!, remoteUnitsData: { "nova/0": { say: "hi" } } }],
    });
    expect(changed.relations[0]!.localUnitData).toEqual({
      greeting: "ahoy",
      joined: "nova/0",
      echo: "hi",
    });
  });

  it("relation-broken still gives the handler the broken relation", () => {
    const out = ctx.run(
      { name: "backend-relation-broken", relationId: 4 },
      {
        relations: [{ endpoint: "backend", id: 4 }],
      },
    );
    expect(out.stored).toEqual({ broken: 4 });
  });

  it("an action: params in, nested results, progress logs out", () => {
    const out = ctx.run("greet-action", { actionParams: { name: "ops", loud: true } });
    expect(out.actionResults).toEqual({ message: "HELLO, OPS", meta: { n: "1" } });
    expect(out.actionLogs).toEqual(["greeting ops"]);
    expect(out.actionFailure).toBeNull();
    expect(out.hookToolCalls[0]).toEqual(["action-get", "--format=json"]);
  });

  /** Runs `event`, which must make the charm raise: the UncaughtCharmError the run throws. */
  const charmErrorOn = (event: string): UncaughtCharmError => {
    try {
      capturingStderr(() => ctx.run(event));
    } catch (e) {
      expect(e).toBeInstanceOf(UncaughtCharmError);
      return e as UncaughtCharmError;
    }
    throw new Error(`${event} ran without the charm raising`);
  };

  it("an action that raises: UncaughtCharmError, and the action is failed with the message", () => {
    const error = charmErrorOn("explode-action");
    expect(error.message).toMatch(/charm failed on explode-action \(exit 0\): .*kaboom/);
    expect(error.state.actionFailure).toBe("Error: kaboom: the demo action always fails");
  });

  it("a bad action result key is a clear error and nothing is sent to action-set", () => {
    const error = charmErrorOn("bad-results-action");
    expect(error.state.actionFailure).toMatch(
      /ActionResultKeyError: action result key "Bad_Key" is invalid/,
    );
    expect(error!.state.hookToolCalls.map((c) => c[0])).not.toContain("action-set");
  });
});
