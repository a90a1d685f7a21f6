import { describe, expect, it } from "vitest";
import {
  ActionResultKeyError,
  actionSetArguments,
  flattenActionResults,
  HookCmdError,
  hookcmds,
} from "../src/index";
import { createSpawnRunner } from "../src/runner";
import { recordingRunner } from "./fixtures/recording-runner";

describe("hook tools are invoked exactly as Juju documents them", () => {
  it("config-get: JSON, all keys including unset ones", () => {
    const { runner, argvs } = recordingRunner({ "config-get": '{"a":1,"b":null}\n' });
    expect(hookcmds.configGet(runner)).toEqual({ a: 1, b: null });
    expect(argvs()).toEqual([["config-get", "--format=json", "--all"]]);
  });

  it("action-get, action-fail, action-log", () => {
    const { runner, argvs } = recordingRunner({ "action-get": '{"x":"1"}' });
    expect(hookcmds.actionGet(runner)).toEqual({ x: "1" });
    hookcmds.actionFail(runner, "-starts with a dash");
    hookcmds.actionLog(runner, "--also");
    expect(argvs()).toEqual([
      ["action-get", "--format=json"],
      ["action-fail", "--", "-starts with a dash"],
      ["action-log", "--", "--also"],
    ]);
  });

  it("action-set: nested results flattened to dotted key=value arguments", () => {
    const { runner, argvs } = recordingRunner();
    hookcmds.actionSet(runner, {
      devices: { "0000:83:00.0": undefined, count: 2, bound: { driver: "vfio-pci" } },
      ok: true,
      names: ["a", "b"],
      note: "a=b",
    });
    expect(argvs()).toEqual([
      [
        "action-set",
        "devices.count=2",
        "devices.bound.driver=vfio-pci",
        "ok=true",
        'names=["a","b"]',
        "note=a=b",
      ],
    ]);
  });

  it("action-set with nothing to set runs nothing", () => {
    const { runner, argvs } = recordingRunner();
    hookcmds.actionSet(runner, {});
    expect(argvs()).toEqual([]);
  });

  it("status-set: optional --application, then status, --, message", () => {
    const { runner, argvs } = recordingRunner();
    hookcmds.statusSet(runner, "blocked", "-devices: nothing matches");
    hookcmds.statusSet(runner, "active", "", { application: true });
    expect(argvs()).toEqual([
      ["status-set", "blocked", "--", "-devices: nothing matches"],
      ["status-set", "--application", "active", "--", ""],
    ]);
    expect(() => hookcmds.statusSet(runner, "error" as "active", "x")).toThrow(/cannot be set/);
    expect(argvs()).toHaveLength(2);
  });

  it("juju-log, is-leader, application-version-set, juju-reboot", () => {
    const { runner, argvs } = recordingRunner({ "is-leader": "true\n" });
    hookcmds.jujuLog(runner, "WARNING", "-x");
    expect(hookcmds.isLeader(runner)).toBe(true);
    hookcmds.applicationVersionSet(runner, "1.2.3");
    hookcmds.jujuReboot(runner);
    hookcmds.jujuReboot(runner, { now: true });
    expect(argvs()).toEqual([
      ["juju-log", "--log-level", "WARNING", "--", "-x"],
      ["is-leader", "--format=json"],
      ["application-version-set", "--", "1.2.3"],
      ["juju-reboot"],
      ["juju-reboot", "--now"],
    ]);
  });

  it("relation-ids, relation-list, relation-get", () => {
    const { runner, argvs } = recordingRunner({
      "relation-ids": '["nova-compute:3","nova-compute:10"]',
      "relation-list": '["nova-compute/0"]',
      "relation-get": '{"k":"v"}',
    });
    expect(hookcmds.relationIds(runner, "nova-compute")).toEqual([3, 10]);
    expect(hookcmds.relationList(runner, 3)).toEqual(["nova-compute/0"]);
    expect(hookcmds.relationGet(runner, 3, "nova-compute/0")).toEqual({ k: "v" });
    hookcmds.relationGet(runner, 3, "nova-compute", { app: true });
    expect(argvs()).toEqual([
      ["relation-ids", "--format=json", "nova-compute"],
      ["relation-list", "--format=json", "-r", "3"],
      ["relation-get", "--format=json", "-r", "3", "-", "nova-compute/0"],
      ["relation-get", "--format=json", "-r", "3", "--app", "-", "nova-compute"],
    ]);
  });

  it("relation-set: --file - with JSON on stdin, null becomes an empty value (delete)", () => {
    const { runner, calls } = recordingRunner();
    hookcmds.relationSet(runner, 3, { a: "1", gone: null });
    hookcmds.relationSet(runner, 3, { b: "2" }, { app: true });
    expect(calls.map((c) => c.argv)).toEqual([
      ["relation-set", "-r", "3", "--file", "-"],
      ["relation-set", "-r", "3", "--app", "--file", "-"],
    ]);
    expect(JSON.parse(calls[0]!.input!)).toEqual({ a: "1", gone: "" });
  });

  it("state-get (null means empty), state-set --file -, state-delete", () => {
    const { runner, calls } = recordingRunner({ "state-get": "null\n" });
    expect(hookcmds.stateGet(runner)).toEqual({});
    hookcmds.stateSet(runner, { k: '{"x":1}' });
    hookcmds.stateDelete(runner, "k");
    expect(calls.map((c) => c.argv)).toEqual([
      ["state-get", "--format=json"],
      ["state-set", "--file", "-"],
      ["state-delete", "k"],
    ]);
    expect(JSON.parse(calls[1]!.input!)).toEqual({ k: '{"x":1}' });
  });
});

describe("action result keys are checked before anything runs", () => {
  it.each([
    ["Upper", { Upper: 1 }],
    ["under_score", { under_score: 1 }],
    ["-lead", { "-lead": 1 }],
    ["trail-", { "trail-": 1 }],
    ["a..b", { "a..b": 1 }],
    ["nested.Bad", { nested: { Bad: 1 } }],
    ["stdout", { stdout: "x" }],
    ["out.stderr-encoding", { out: { "stderr-encoding": "x" } }],
  ])("refuses %s", (key, results) => {
    const { runner, argvs } = recordingRunner();
    const attempt = () => hookcmds.actionSet(runner, results);
    expect(attempt).toThrow(ActionResultKeyError);
    expect(attempt).toThrow(`"${key}"`);
    expect(argvs()).toEqual([]);
  });

  it("refuses duplicates after flattening, and values that are also parents", () => {
    expect(() => flattenActionResults({ a: { b: 1 }, "a.b": 2 })).toThrow(/set twice/);
    expect(() => flattenActionResults({ a: 1, "a.b": 2 })).toThrow(/both a value and the parent/);
    // Either order: the dotted key may come first or last (the checks start at the first dot).
    expect(() => flattenActionResults({ "a.b": 2, a: { b: 1 } })).toThrow(/set twice/);
    expect(() => flattenActionResults({ "a.b": 2, a: 1 })).toThrow(/both a value and the parent/);
    expect(() => flattenActionResults({ x: { "a.b": 2 }, y: 1, a: { b: { c: 1 } } })).not.toThrow();
  });

  it("gives action-set the flattened pairs in the same order, by the short path or the checked one", () => {
    const plain = {
      count: 2,
      devices: { "a-1": { x: "1", y: [1, 2] }, "b-2": { x: null, z: true } },
    };
    const dotted = { "devices.c-3": { x: "3" }, ...plain };
    for (const results of [plain, dotted]) {
      expect(actionSetArguments(results)).toEqual(
        [...flattenActionResults(results)].map(([k, v]) => `${k}=${v}`),
      );
    }
    expect(actionSetArguments(plain)).toEqual([
      "count=2",
      "devices.a-1.x=1",
      "devices.a-1.y=[1,2]",
      "devices.b-2.x=null",
      "devices.b-2.z=true",
    ]);
    expect(() => actionSetArguments({ "a.b": 1, a: { b: 2 } })).toThrow(/set twice/);
    expect(() => actionSetArguments({ a: { "b.c": 1, b: 2 } })).toThrow(/both a value/);
    expect(() => actionSetArguments({ a: { Bad: 1 } })).toThrow('"a.Bad"');
  });

  it("checks every occurrence of a key name, not only the first", () => {
    // Names are checked once each; a bad name deep in the tenth entry is still found.
    const results: Record<string, unknown> = {};
    for (let i = 0; i < 10; i++) results[`dev-${i}`] = { ok: 1, ...(i === 9 ? { Bad: 2 } : {}) };
    expect(() => flattenActionResults(results)).toThrow('"dev-9.Bad"');
  });

  it("accepts digits and inner hyphens", () => {
    expect([...flattenActionResults({ "5-o-0": { "pci-0": "x" } }).keys()]).toEqual([
      "5-o-0.pci-0",
    ]);
  });
});

describe("a failing tool", () => {
  it("throws HookCmdError carrying argv, exit code and stderr", () => {
    const { runner } = recordingRunner({
      "status-set": { exitCode: 2, stdout: "", stderr: 'ERROR invalid status "x"\n' },
    });
    let caught: unknown;
    try {
      hookcmds.statusSet(runner, "active", "fine");
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(HookCmdError);
    const error = caught as HookCmdError;
    expect(error.cmd).toEqual(["status-set", "active", "--", "fine"]);
    expect(error.exitCode).toBe(2);
    expect(error.stderr).toBe('ERROR invalid status "x"\n');
    expect(error.message).toBe(
      'hook tool `status-set active -- fine` failed with exit code 2: ERROR invalid status "x"',
    );
  });

  it("a real process: non-zero exit and a missing executable (127)", () => {
    const runner = createSpawnRunner({ PATH: "/usr/bin:/bin" });
    const failed = runner(["sh", "-c", "echo oops >&2; exit 3"]);
    expect(failed).toEqual({ exitCode: 3, stdout: "", stderr: "oops\n" });
    expect(runner(["sh", "-c", "cat"], "piped")).toMatchObject({ exitCode: 0, stdout: "piped" });
    const missing = runner(["no-such-hook-tool"]);
    expect(missing.exitCode).toBe(127);
    expect(() => hookcmds.isLeader(runner)).toThrow(HookCmdError);
  });

  it("invalid JSON from a tool is reported, not silently ignored", () => {
    const { runner } = recordingRunner({ "config-get": "not json" });
    expect(() => hookcmds.configGet(runner)).toThrow(/printed invalid JSON/);
  });
});
