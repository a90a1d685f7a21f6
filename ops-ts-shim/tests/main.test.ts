import { describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import {
  type ActionsSpec,
  CharmBase,
  type CharmMetadata,
  type Framework,
  type HookEvent,
  main,
  resolveEvent,
  UnknownEventError,
} from "../src/index";
import {
  buildFakeUnit,
  type FakeUnitState,
  hookEnvironment,
  runFakeHookTool,
} from "../src/testing";
import { capturingStderr } from "./capture-stderr";
import { ACTIONS, CONFIG, METADATA } from "./fixtures/demo-charm";

const metadata = parse(METADATA) as CharmMetadata;
const actions = parse(ACTIONS) as ActionsSpec;

/** Records which handlers ran, with the event object they got. */
class SpyCharm extends CharmBase {
  static seen: Array<{ observed: string; event: HookEvent }> = [];
  constructor(framework: Framework) {
    super(framework);
    for (const name of [
      "install",
      "config-changed",
      "leader-elected",
      "backend-relation-joined",
      "backend-relation-departed",
      "juju-info-relation-created",
      "greet-action",
    ] as const) {
      framework.observe(name, (event) => SpyCharm.seen.push({ observed: name, event }));
    }
  }
}

function dispatch(
  event: string | { name: string; relationId?: number; remoteUnit?: string | null },
  charm: typeof CharmBase = SpyCharm,
  setup: (state: FakeUnitState) => void = () => {},
): { exitCode: number; state: FakeUnitState } {
  SpyCharm.seen = [];
  const state = buildFakeUnit({
    unitName: "demo/0",
    configSpec: parse(CONFIG),
    relations: [
      { endpoint: "backend", id: 7, remoteUnits: ["nova/0", "nova/1"] },
      { endpoint: "juju-info", id: 2, remoteUnits: ["nova/0"] },
    ],
  });
  setup(state);
  const env = hookEnvironment(state, event, { charmDir: "/nonexistent" });
  const exitCode = main(charm, {
    env,
    metadata,
    actions,
    runner: (argv, input) => runFakeHookTool(state, argv, { stdin: input, env }),
  });
  return { exitCode, state };
}

describe("dispatch path → event", () => {
  const resolve = (path: string) =>
    resolveEvent(
      path,
      () => metadata,
      () => actions,
    );

  it("maps standard hooks, relation hooks of declared endpoints, and declared actions", () => {
    expect(resolve("hooks/install")).toEqual({ type: "hook", name: "install" });
    expect(resolve("hooks/update-status")).toEqual({ type: "hook", name: "update-status" });
    expect(resolve("hooks/backend-relation-changed")).toEqual({
      type: "relation",
      name: "backend-relation-changed",
      endpoint: "backend",
      kind: "changed",
    });
    expect(resolve("hooks/juju-info-relation-broken")).toMatchObject({ endpoint: "juju-info" });
    expect(resolve("actions/greet")).toEqual({
      type: "action",
      name: "greet-action",
      action: "greet",
    });
  });

  it.each([
    ["hooks/frobnicate", /unknown hook "frobnicate".*endpoints: juju-info, backend/],
    ["hooks/database-relation-joined", /unknown hook "database-relation-joined"/],
    ["hooks/backend-relation-exploded", /unknown hook/],
    [
      "actions/reboot-everything",
      /unknown action "reboot-everything": actions.yaml declares greet/,
    ],
    ["install", /neither hooks\/<name> nor actions\/<name>/],
    ["bin/install", /neither hooks/],
  ])("refuses %s", (path, message) => {
    expect(() => resolve(path)).toThrow(UnknownEventError);
    expect(() => resolve(path)).toThrow(message);
  });

  it("runs the handler with a typed event", () => {
    const { exitCode } = dispatch("install");
    expect(exitCode).toBe(0);
    expect(SpyCharm.seen.map((s) => [s.observed, s.event.name, s.event.kind])).toEqual([
      ["install", "install", "install"],
    ]);
  });

  it("gives relation handlers the relation, remote unit and app", () => {
    const { exitCode } = dispatch({ name: "backend-relation-joined", remoteUnit: "nova/1" });
    expect(exitCode).toBe(0);
    const event = SpyCharm.seen[0]!.event as unknown as {
      kind: string;
      remoteUnit: string;
      remoteApp: string;
      relation: { id: number; units: string[]; app: string };
    };
    expect(event.kind).toBe("relation-joined");
    expect(event.remoteUnit).toBe("nova/1");
    expect(event.remoteApp).toBe("nova");
    expect(event.relation.id).toBe(7);
    expect(event.relation.units).toEqual(["nova/0", "nova/1"]);
  });

  it("relation-created has no remote unit; departed names the departing unit", () => {
    dispatch("juju-info-relation-created");
    expect(SpyCharm.seen[0]!.event).toMatchObject({ remoteUnit: null, remoteApp: "nova" });
    dispatch({ name: "backend-relation-departed", remoteUnit: "nova/1" });
    expect(SpyCharm.seen[0]!.event).toMatchObject({ departingUnit: "nova/1" });
  });

  it("an unknown hook is ignored as ops ignores it: logged, no handler, exit 0", () => {
    const { exitCode, state } = dispatch("frobnicate");
    expect(exitCode).toBe(0);
    expect(SpyCharm.seen).toEqual([]);
    expect(state.logs).toEqual([
      {
        level: "WARNING",
        message: expect.stringMatching(/^hooks\/frobnicate ignored: unknown hook "frobnicate"/),
      },
    ]);
    expect(state.calls.map((c) => c.argv[0])).not.toContain("state-set");
  });

  it("an undeclared action is ignored too, but the action says why (exit 0)", () => {
    const { result, stderr } = capturingStderr(() => dispatch("reboot-everything-action"));
    const { exitCode, state } = result;
    expect(exitCode).toBe(0);
    expect(stderr).toMatch(/^actions\/reboot-everything ignored: unknown action/);
    expect(state.logs[0]!.message).toMatch(/unknown action "reboot-everything"/);
    expect(state.actions["1"]).toMatchObject({
      failed: true,
      failureMessage: expect.stringMatching(/^actions\/reboot-everything ignored: unknown action/),
    });
  });

  it("an observed but standard event with no handler is fine (exit 0)", () => {
    expect(dispatch("update-status").exitCode).toBe(0);
    expect(dispatch("pre-series-upgrade").exitCode).toBe(0);
  });
});

describe("errors in charm code", () => {
  class Crashing extends CharmBase {
    constructor(framework: Framework) {
      super(framework);
      framework.observe("install", () => {
        throw new TypeError("devices is not iterable");
      });
      framework.observe("greet-action", () => {
        throw new Error("no such device 0000:83:00.0");
      });
      framework.observe("config-changed", (async () => {}) as () => void);
    }
  }

  it("a hook handler's error: ERROR with the message, the stack at DEBUG, exit 1, no commit", () => {
    const { exitCode, state } = dispatch("install", Crashing);
    expect(exitCode).toBe(1);
    expect(state.logs[0]).toEqual({
      level: "ERROR",
      message: "install failed: TypeError: devices is not iterable",
    });
    expect(state.logs[1]!.level).toBe("DEBUG");
    expect(state.logs[1]!.message).toMatch(/TypeError: devices is not iterable\n\s+at /);
    expect(state.calls.map((c) => c.argv[0])).not.toContain("state-set");
  });

  it("an action handler's error fails the action with the message and exits 0 (Juju would replace it with 'exit status 1')", () => {
    const { result, stderr } = capturingStderr(() => dispatch("greet-action", Crashing));
    const { exitCode, state } = result;
    expect(exitCode).toBe(0);
    expect(stderr).toBe("Error: no such device 0000:83:00.0\n");
    expect(state.logs[0]!.level).toBe("ERROR");
    expect(state.actions["1"]).toMatchObject({
      failed: true,
      failureMessage: "Error: no such device 0000:83:00.0",
    });
  });

  it("an async handler is refused (the hook would end before it finished)", () => {
    const { exitCode, state } = dispatch("config-changed", Crashing);
    expect(exitCode).toBe(1);
    expect(state.logs[0]!.message).toMatch(/returned a promise; handlers must be synchronous/);
  });

  it("a charm constructor error is reported too", () => {
    class Broken extends CharmBase {
      constructor(framework: Framework) {
        super(framework);
        throw new Error("cannot start");
      }
    }
    expect(dispatch("install", Broken).exitCode).toBe(1);
  });

  it("a missing Juju environment returns 1 without throwing", () => {
    const calls: string[][] = [];
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const code = main(SpyCharm, {
      env: {},
      runner: (argv) => {
        calls.push([...argv]);
        return { exitCode: 0, stdout: "", stderr: "" };
      },
    });
    const written = stderr.mock.calls.map((c) => String(c[0]));
    stderr.mockRestore();
    expect(code).toBe(1);
    expect(written.join("")).toMatch(/JUJU_DISPATCH_PATH is not set/);
    expect(calls[0]!.slice(0, 4)).toEqual(["juju-log", "--log-level", "ERROR", "--"]);
    expect(calls[0]![4]).toMatch(/JUJU_DISPATCH_PATH is not set/);
  });
});

describe("action parameter validation", () => {
  const validator = Object.assign(
    (params: unknown) => {
      const ok = typeof (params as { name?: unknown }).name === "string";
      validator.errors = ok ? null : [{ instancePath: "/name", message: "must be string" }];
      return ok;
    },
    { errors: null as Array<{ instancePath: string; message: string }> | null },
  );

  /** Dispatches greet-action with `params` through main() under `check` as greet's validator. */
  function greet(params: Record<string, unknown>, check: typeof validator | typeof sentence) {
    SpyCharm.seen = [];
    const state = buildFakeUnit({ unitName: "demo/0" });
    const env = hookEnvironment(state, { name: "greet-action", params }, { charmDir: "/x" });
    const code = main(SpyCharm, {
      env,
      metadata,
      actions,
      actionParamValidators: { greet: check },
      runner: (argv, input) => runFakeHookTool(state, argv, { stdin: input, env }),
    });
    return { code, failure: state.actions["1"]!.failureMessage };
  }
  /** A validator whose reason is the charm's own sentence (no instancePath). */
  const sentence = Object.assign(() => false, {
    errors: [{ message: 'name "" is empty: give the name to greet' }],
  });

  it("a rejected action fails with the validator's reasons and runs no handler", () => {
    const { code, failure } = greet({ name: 5 }, validator);
    expect(code).toBe(0);
    expect(SpyCharm.seen).toEqual([]);
    expect(failure).toBe(
      "invalid parameters for greet: /name must be string; see `juju actions --schema`",
    );
  });

  it("a reason without a path is the charm's own sentence, said as it is", () => {
    const { failure } = greet({ name: "" }, sentence);
    expect(SpyCharm.seen).toEqual([]);
    expect(failure).toBe(
      'invalid parameters for greet: name "" is empty: give the name to greet; see `juju actions --schema`',
    );
  });

  it("accepted params reach the handler", () => {
    greet({ name: "bob" }, validator);
    expect(SpyCharm.seen[0]!.event).toMatchObject({
      params: { name: "bob" },
      actionName: "greet",
      id: "1",
    });
  });
});

describe("metadata from the charm directory", () => {
  it("reads metadata.yaml/actions.yaml from JUJU_CHARM_DIR when not passed in", async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "shim-meta-"));
    try {
      writeFileSync(join(dir, "metadata.yaml"), METADATA);
      writeFileSync(join(dir, "actions.yaml"), ACTIONS);
      const state = buildFakeUnit({ unitName: "demo/0", relations: [{ endpoint: "backend" }] });
      for (const [event, expected] of [
        ["backend-relation-changed", 0],
        ["greet-action", 0],
        ["nope-relation-changed", 0],
      ] as const) {
        const env = hookEnvironment(state, event, { charmDir: dir });
        const code = main(SpyCharm, {
          env,
          runner: (argv, input) => runFakeHookTool(state, argv, { stdin: input, env }),
        });
        expect([event, code]).toEqual([event, expected]);
      }
      // Only the undeclared endpoint was ignored: metadata.yaml was read.
      expect(state.logs.filter((l) => l.message.includes("ignored")).map((l) => l.message)).toEqual(
        [expect.stringMatching(/^hooks\/nope-relation-changed ignored: unknown hook/)],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
