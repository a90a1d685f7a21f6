import { describe, expect, it } from "vitest";
import { ACTION_SET_CHUNK_BYTES, actionSet } from "../src/hookcmds";
import type { HookToolRunner } from "../src/runner";

describe("action-set with large results", () => {
  it("splits into calls that each stay under the argv budget, losing no key", () => {
    const calls: string[][] = [];
    const runner: HookToolRunner = (argv) => {
      calls.push([...argv]);
      return { exitCode: 0, stdout: "", stderr: "" };
    };
    const devices: Record<string, Record<string, string>> = {};
    for (let i = 0; i < 10_000; i++) devices[`d${i}`] = { driver: "vfio-pci", group: String(i) };
    actionSet(runner, { devices });
    expect(calls.length).toBeGreaterThan(1);
    for (const call of calls) {
      expect(call[0]).toBe("action-set");
      const bytes = call.slice(1).reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
      expect(bytes).toBeLessThanOrEqual(ACTION_SET_CHUNK_BYTES);
    }
    const keys = calls.flatMap((c) => c.slice(1).map((a) => a.slice(0, a.indexOf("="))));
    expect(keys.length).toBe(20_000);
    expect(new Set(keys).size).toBe(20_000);
  });

  it("still refuses a leaf that is also a parent, in linear time", () => {
    const runner: HookToolRunner = () => ({ exitCode: 0, stdout: "", stderr: "" });
    expect(() => actionSet(runner, { a: "1", "a.b": "2" })).toThrow(
      /both a value and the parent of "a.b"/,
    );
  });
});
