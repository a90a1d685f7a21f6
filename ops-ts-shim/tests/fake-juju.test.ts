import { describe, expect, it } from "vitest";
import {
  buildFakeUnit,
  commitHook,
  type FakeUnitState,
  hookEnvironment,
  runFakeHookTool,
} from "../src/testing";

function unit(): FakeUnitState {
  return buildFakeUnit({
    unitName: "demo/0",
    configSpec: { options: { a: { type: "string", default: "x" }, b: { type: "int" } } },
    relations: [{ endpoint: "db", id: 3, remoteUnitsData: { "pg/0": { host: "h" } } }],
  });
}

const run = (
  state: FakeUnitState,
  argv: string[],
  env: Record<string, string> = {},
  stdin?: string,
) => runFakeHookTool(state, argv, { env, stdin });

describe("the fake hook tools behave like Juju's", () => {
  it("config-get: smart/json/yaml output, --all shows unset options, key lookup", () => {
    const s = unit();
    expect(run(s, ["config-get", "--format=json"]).stdout).toBe('{"a":"x"}\n');
    expect(run(s, ["config-get", "--format", "json", "--all"]).stdout).toBe('{"a":"x","b":null}\n');
    expect(run(s, ["config-get", "a"]).stdout).toBe("x\n");
    expect(run(s, ["config-get", "--format=yaml", "-a"]).stdout).toBe("a: x\nb: null\n");
    expect(run(s, ["config-get", "--format=json", "missing"]).stdout).toBe("null\n");
  });

  it("usage errors exit 2 with ERROR on stderr; run errors exit 1", () => {
    const s = unit();
    expect(run(s, ["config-get", "--bogus"])).toEqual({
      exitCode: 2,
      stdout: "",
      stderr: "ERROR flag provided but not defined: --bogus\n",
    });
    expect(run(s, ["config-get", "--all", "a"]).stderr).toBe(
      'ERROR cannot use argument --all together with key "a"\n',
    );
    expect(run(s, ["config-get", "a", "b"]).stderr).toBe('ERROR unrecognized args: ["b"]\n');
    expect(run(s, ["config-get", "--format=xml"]).stderr).toMatch(/unknown format "xml"/);
    expect(run(s, ["config-get", "--format"]).stderr).toBe(
      "ERROR flag needs an argument: --format\n",
    );
    expect(run(s, ["status-set", "bogus"])).toMatchObject({
      exitCode: 2,
      stderr:
        'ERROR invalid status "bogus", expected one of [maintenance blocked waiting active]\n',
    });
    expect(run(s, ["status-set", "--application", "active"])).toMatchObject({
      exitCode: 1,
      stderr: "ERROR this unit is not the leader\n",
    });
    expect(run(s, ["no-such-tool"]).exitCode).toBe(127);
  });

  it("status-set: `--` lets a message start with a dash; history is kept", () => {
    const s = unit();
    expect(run(s, ["status-set", "blocked", "--", "-x: bad"]).exitCode).toBe(0);
    expect(run(s, ["status-set", "active"]).exitCode).toBe(0);
    expect(s.unitStatus).toEqual({ status: "active", message: "" });
    expect(s.statusHistory).toEqual([
      { status: "blocked", message: "-x: bad", application: false },
      { status: "active", message: "", application: false },
    ]);
    expect(run(s, ["status-set", "active", "-x"]).stderr).toMatch(
      /flag provided but not defined: -x/,
    );
  });

  it("action tools: refused outside an action, Juju's key rules inside", () => {
    const s = unit();
    expect(run(s, ["action-get"])).toMatchObject({
      exitCode: 1,
      stderr: "ERROR not running an action\n",
    });
    expect(run(s, ["action-log", "--", "x"]).stderr).toBe("ERROR not running an action\n");
    const env = hookEnvironment(
      s,
      { name: "go-action", params: { n: { deep: 1 } } },
      { charmDir: "/c" },
    );
    expect(run(s, ["action-get", "--format=json"], env).stdout).toBe('{"n":{"deep":1}}\n');
    expect(run(s, ["action-get", "n.deep"], env).stdout).toBe("1\n");
    expect(run(s, ["action-set", "Bad=1"], env)).toEqual({
      exitCode: 2,
      stdout: "",
      stderr:
        'ERROR key "Bad" must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric and hyphens\n',
    });
    expect(run(s, ["action-set", "out.stdout=1"], env).stderr).toBe(
      'ERROR cannot set reserved action key "stdout"\n',
    );
    expect(run(s, ["action-set", "novalue"], env).stderr).toBe(
      'ERROR argument "novalue" must be of the form key...=value\n',
    );
    expect(run(s, ["action-set", "a.b=1", "a.c=x=y", "top=t"], env).exitCode).toBe(0);
    expect(run(s, ["action-log", "--", "-step", "one"], env).exitCode).toBe(0);
    expect(run(s, ["action-fail"], env).exitCode).toBe(0);
    expect(s.actions["1"]).toMatchObject({
      results: { a: { b: "1", c: "x=y" }, top: "t" },
      logs: ["-step one"],
      failed: true,
      failureMessage: "action failed without reason given, check action for errors",
    });
    expect(run(s, ["juju-reboot"], env).stderr).toBe(
      "ERROR juju-reboot is not supported when running an action.\n",
    );
  });

  it("relation tools: ids, list, get, set with --file and the hook's default relation", () => {
    const s = unit();
    expect(run(s, ["relation-ids", "--format=json", "db"]).stdout).toBe('["db:3"]\n');
    expect(run(s, ["relation-ids"]).stderr).toBe("ERROR no endpoint name specified\n");
    expect(run(s, ["relation-list", "--format=json"]).stderr).toBe(
      "ERROR no relation id specified\n",
    );
    expect(run(s, ["relation-list", "--format=json", "-r", "db:3"]).stdout).toBe('["pg/0"]\n');
    expect(run(s, ["relation-list", "-r", "9"]).stderr).toBe(
      'ERROR invalid value "9" for flag -r: unknown relation id\n',
    );
    expect(run(s, ["relation-get", "--format=json", "-r", "3", "-", "pg/0"]).stdout).toBe(
      '{"host":"h"}\n',
    );
    expect(run(s, ["relation-get", "-r", "3", "host", "pg/0"]).stdout).toBe("h\n");
    expect(run(s, ["relation-get", "-r", "3", "-", "pg"]).stderr).toBe(
      'ERROR expected unit name, got application name "pg"\n',
    );
    const env = hookEnvironment(s, "db-relation-changed", { charmDir: "/c" });
    expect(run(s, ["relation-get", "--format=json"], env).stdout).toBe('{"host":"h"}\n');
    expect(
      run(s, ["relation-set", "--file", "-", "extra=1"], env, "a: 1\nb: two\nc: null\n").exitCode,
    ).toBe(0);
    // The hook sees its own writes; the controller has them once the hook exits 0.
    expect(run(s, ["relation-get", "--format=json", "-", "demo/0"], env).stdout).toBe(
      '{"a":"1","b":"two","extra":"1"}\n',
    );
    expect(s.relations[0]!.localUnitData).toEqual({});
    commitHook(s, 0);
    expect(s.relations[0]!.localUnitData).toEqual({ a: "1", b: "two", extra: "1" });
    expect(
      run(s, ["relation-set", "-r", "3", "--file", "-"], {}, '{"a":"","b":"3"}').exitCode,
    ).toBe(0);
    commitHook(s, 0);
    expect(s.relations[0]!.localUnitData).toEqual({ b: "3", extra: "1" });
    expect(run(s, ["relation-set", "-r", "3", "k"]).stderr).toBe(
      'ERROR expected "key=value", got "k"\n',
    );
    expect(run(s, ["relation-set", "-r", "3", "--app", "k=v"]).stderr).toBe(
      "ERROR cannot write relation settings\n",
    );
    expect(run(s, ["relation-get", "--format=json", "-r", "3", "-", "demo/0"]).stdout).toBe(
      '{"b":"3","extra":"1"}\n',
    );
  });

  it("state tools, is-leader, application-version-set, juju-reboot", () => {
    const s = unit();
    expect(run(s, ["state-get", "--format=json"]).stdout).toBe("{}\n");
    expect(run(s, ["state-set", "--file", "-", "k2=v2"], {}, '{"k":"{\\"x\\":1}"}').exitCode).toBe(
      0,
    );
    expect(run(s, ["state-get", "k"]).stdout).toBe('{"x":1}\n');
    expect(run(s, ["state-get", "--strict", "nope"]).stderr).toBe('ERROR "nope" not found\n');
    expect(run(s, ["state-delete", "k"]).exitCode).toBe(0);
    commitHook(s, 0);
    expect(s.stored).toEqual({ k2: "v2" });
    expect(run(s, ["is-leader"]).stdout).toBe("False\n");
    expect(run(s, ["is-leader", "--format=json"]).stdout).toBe("false\n");
    expect(run(s, ["application-version-set", "--", "-rc1"]).exitCode).toBe(0);
    expect(s.workloadVersion).toBe("-rc1");
    expect(run(s, ["juju-reboot", "--now"]).exitCode).toBe(0);
    expect(s.reboot).toBe("now");
  });

  it("juju-log: levels as Juju reads them, and every call is recorded", () => {
    const s = unit();
    run(s, ["juju-log", "--log-level", "warning", "--", "-careful"]);
    run(s, ["juju-log", "-l", "DEBUG", "two", "words"]);
    run(s, ["juju-log", "--log-level", "LOUD", "x"]);
    expect(s.logs).toEqual([
      { level: "WARNING", message: "-careful" },
      { level: "DEBUG", message: "two words" },
      { level: "WARNING", message: 'Specified log level of "LOUD" is not valid' },
      { level: "INFO", message: "x" },
    ]);
    expect(s.calls.map((c) => c.argv[0])).toEqual(["juju-log", "juju-log", "juju-log"]);
  });
});

describe("Juju's rules the fake enforces (issue 13)", () => {
  it("state-set: quota.CheckTupleSize per call; state-get of a missing key prints an empty string", () => {
    const s = unit();
    expect(run(s, ["state-set", `${"k".repeat(257)}=v`]).stderr).toBe(
      "ERROR max allowed key length (256) exceeded\n",
    );
    expect(run(s, ["state-set", `k=${"v".repeat(64 * 1024 + 1)}`]).stderr).toBe(
      "ERROR max allowed value length (65536) exceeded\n",
    );
    expect(run(s, ["state-set", `k=${"v".repeat(64 * 1024)}`]).exitCode).toBe(0);
    expect(run(s, ["state-get", "--format=json", "missing"]).stdout).toBe('""\n');
  });

  it("stored and relation writes land only when the hook exits 0; max-charm-state-size at commit", () => {
    const s = unit();
    run(s, ["state-set", "a=1"]);
    run(s, ["relation-set", "-r", "3", "x=1"]);
    expect(run(s, ["state-get", "a"]).stdout).toBe("1\n"); // the hook sees its own write
    expect(commitHook(s, 1)).toBeNull();
    expect(s.stored).toEqual({});
    expect(s.relations[0]!.localUnitData).toEqual({});
    s.maxCharmStateSize = 10;
    run(s, ["state-set", "big=0123456789"]);
    expect(commitHook(s, 0)).toMatch(/^persisting charm state: max allowed size \(10\) exceeded/);
    expect(s.stored).toEqual({});
  });

  it("leader-only: relation-get --app of the unit's own application, status-set --application", () => {
    const s = unit();
    expect(run(s, ["relation-get", "-r", "3", "--app", "-", "demo"]).stderr).toMatch(
      /^ERROR cannot read settings for application "demo" in relation "db:3": permission denied/,
    );
    expect(run(s, ["status-set", "--application", "active"]).stderr).toBe(
      "ERROR this unit is not the leader\n",
    );
    s.leader = true;
    expect(run(s, ["relation-get", "-r", "3", "--app", "-", "demo"]).exitCode).toBe(0);
  });
});
