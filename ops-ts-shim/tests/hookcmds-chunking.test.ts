import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { ACTION_SET_CHUNK_BYTES, actionSet, argvCost } from "../src/hookcmds";
import { createSpawnRunner, type HookToolRunner } from "../src/runner";

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

  it("each call really execs here: the kernel takes a full chunk plus an environment", () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "action-set-"));
    try {
      const log = path.join(bin, "calls");
      fs.writeFileSync(path.join(bin, "action-set"), `#!/bin/sh\necho "$#" >> '${log}'\n`, {
        mode: 0o755,
      });
      // A hook's environment is a few KiB; give it 64 KiB to be sure the budget leaves room.
      const env = { PATH: `${bin}:/usr/bin:/bin`, PADDING: "x".repeat(64 * 1024) };
      actionSet(createSpawnRunner(env), bigResults());
      const counts = fs.readFileSync(log, "utf8").trim().split("\n").map(Number);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(80_000);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it("still refuses a leaf that is also a parent, in linear time", () => {
    const runner: HookToolRunner = () => ({ exitCode: 0, stdout: "", stderr: "" });
    expect(() => actionSet(runner, { a: "1", "a.b": "2" })).toThrow(
      /both a value and the parent of "a.b"/,
    );
  });
});
