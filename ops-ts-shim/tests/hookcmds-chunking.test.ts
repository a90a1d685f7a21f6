import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ACTION_SET_CHUNK_BYTES, actionSet, argvCost } from "../src/hookcmds";
import {
  createSpawnRunner,
  EXEC_ARGV_MARGIN,
  execArgLimit,
  execArgvBudget,
  type HookToolRunner,
} from "../src/runner";

/** 40,000 devices of two keys each: about 2.7 MiB of argv, so several calls. */
function bigResults(): Record<string, unknown> {
  const devices: Record<string, Record<string, string>> = {};
  for (let i = 0; i < 40_000; i++) devices[`d${i}`] = { driver: "vfio-pci", group: String(i) };
  return { devices };
}

describe("action-set with large results", () => {
  it("splits into calls that each stay under the argv budget, losing no key", () => {
    const calls: string[][] = [];
    const runner: HookToolRunner = (argv) => {
      calls.push([...argv]);
      return { exitCode: 0, stdout: "", stderr: "" };
    };
    actionSet(runner, bigResults());
    expect(calls.length).toBeGreaterThan(1);
    for (const call of calls) {
      expect(call[0]).toBe("action-set");
      const bytes = call.slice(1).reduce((n, a) => n + argvCost(a), 0);
      expect(bytes).toBeLessThanOrEqual(ACTION_SET_CHUNK_BYTES);
    }
    const keys = calls.flatMap((c) => c.slice(1).map((a) => a.slice(0, a.indexOf("="))));
    expect(keys.length).toBe(80_000);
    expect(new Set(keys).size).toBe(80_000);
  });

  /** Runs action-set on bigResults() through `runner(env)` with a real (sh) action-set tool and
   * a 64 KiB environment (a hook's is a few KiB); returns how many arguments each call had. */
  function execBig(runner: (env: NodeJS.ProcessEnv) => HookToolRunner): number[] {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "action-set-"));
    try {
      const log = path.join(bin, "calls");
      fs.writeFileSync(path.join(bin, "action-set"), `#!/bin/sh\necho "$#" >> '${log}'\n`, {
        mode: 0o755,
      });
      const env = { PATH: `${bin}:/usr/bin:/bin`, PADDING: "x".repeat(64 * 1024) };
      actionSet(runner(env), bigResults());
      return fs.readFileSync(log, "utf8").trim().split("\n").map(Number);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  }

  it("each call really execs here: the kernel takes a full chunk plus an environment", () => {
    // A runner that does not say what its exec allows: the fixed ACTION_SET_CHUNK_BYTES.
    const counts = execBig((env) => {
      const spawn = createSpawnRunner(env);
      return (argv, input) => spawn(argv, input);
    });
    expect(counts.length).toBe(3);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(80_000);
  });

  it("the real runner fills each call to the limit this process's stack allows, and it execs", () => {
    let budget = 0;
    const counts = execBig((env) => {
      const runner = createSpawnRunner(env);
      budget = runner.argvBudget ?? 0;
      return runner;
    });
    const limit = execArgLimit(fs.readFileSync("/proc/self/limits", "utf8"));
    // The 64 KiB of padding and the margin are left out of the budget, and nothing else.
    expect(budget).toBeLessThan(limit - 64 * 1024 - EXEC_ARGV_MARGIN);
    expect(budget).toBeGreaterThan(limit - 80 * 1024 - EXEC_ARGV_MARGIN);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(80_000);
    // bigResults() is ~2.7 MiB of argv: fewer calls than at 1 MiB when the stack allows more.
    expect(counts.length).toBe(Math.ceil(2_770_000 / budget));
  });

  it("reads the kernel's limit from the stack rlimit: a quarter, at most 6 MiB, at least 128 KiB", () => {
    const limits = (soft: string) =>
      `Limit                     Soft Limit           Hard Limit           Units     \nMax stack size            ${soft}              unlimited            bytes     \n`;
    expect(execArgLimit(limits("8388608"))).toBe(2 * 1024 * 1024);
    expect(execArgLimit(limits("unlimited"))).toBe(6 * 1024 * 1024);
    expect(execArgLimit(limits("65536"))).toBe(128 * 1024);
    expect(execArgLimit("")).toBe(2 * 1024 * 1024);
    const env = { A: "x".repeat(1000) };
    expect(execArgvBudget(env, limits("8388608"))).toBe(
      2 * 1024 * 1024 - (1 + 1000 + 10) - EXEC_ARGV_MARGIN,
    );
  });

  it("still refuses a leaf that is also a parent, in linear time", () => {
    const runner: HookToolRunner = () => ({ exitCode: 0, stdout: "", stderr: "" });
    expect(() => actionSet(runner, { a: "1", "a.b": "2" })).toThrow(
      /both a value and the parent of "a.b"/,
    );
  });
});
