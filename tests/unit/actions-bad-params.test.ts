// The bad-input corpus: every file in tests/fixtures/bad-action-params is one invalid call of an
// action, with the message fragment the operator must see. Each must fail with that message,
// leave the host untouched (rebind runs against a reacting FakeKernel tree), and return results
// under keys Juju accepts.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseListDevicesParams } from "../../src/actions/list-devices";
import { paramErrorMessage, parsedOnce } from "../../src/actions/params";
import { rebindAction } from "../../src/actions/rebind";
import { parseRebindParams } from "../../src/actions/rebind-plan";
import { failure, invalidResultKeys } from "../../src/actions/results";
import { parseVerifyIommuParams } from "../../src/actions/verify-iommu";
import { FakeKernel, writeSysfsTree } from "../support/fake-kernel";
import { seedHost } from "../support/host-facts";
import { diffTrees, snapshotTree } from "../support/tree";

const DIR = path.join(__dirname, "../fixtures/bad-action-params");
const cases = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((file) => {
    const doc = parse(fs.readFileSync(path.join(DIR, file), "utf8")) as {
      action: string;
      expect: string;
      params: unknown;
    };
    return { file, ...doc };
  });

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "bad-params-"));
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe("bad action params corpus", () => {
  it("has cases for every action with params", () => {
    expect(new Set(cases.map((c) => c.action))).toEqual(
      new Set(["rebind", "list-devices", "verify-iommu"]),
    );
    expect(cases.length).toBeGreaterThanOrEqual(20);
  });

  for (const c of cases) {
    it(`${c.file}: ${c.expect}`, () => {
      if (c.action === "rebind") {
        const facts = seedHost();
        writeSysfsTree(root, facts, ["vfio-pci"]);
        const kernel = new FakeKernel(
          root,
          new Map(facts.functions.map((f) => [f.address, f.driver])),
        );
        const before = snapshotTree(root);
        // As the handler does it: params checked first, the action only on valid ones.
        const checked = parseRebindParams(c.params);
        const reply = !checked.ok
          ? failure(paramErrorMessage("rebind", checked.errors))
          : rebindAction({
              params: checked.params,
              facts,
              usage: new Map(),
              selection: [],
              sysfs: kernel,
              run: () => {
                throw new Error("no command may run for a bad call");
              },
            });
        expect(reply.ok).toBe(false);
        expect(reply.message).toContain(c.expect);
        expect(kernel.writes).toEqual([]);
        expect(diffTrees(before, snapshotTree(root))).toEqual([]);
        expect(invalidResultKeys(reply.results)).toEqual([]);
        return;
      }
      const checked =
        c.action === "list-devices"
          ? parseListDevicesParams(c.params)
          : parseVerifyIommuParams(c.params);
      expect(checked.ok).toBe(false);
      if (checked.ok) return;
      expect(paramErrorMessage(c.action, checked.errors)).toContain(c.expect);
    });
  }
});

describe("an action's params are parsed once per dispatch", () => {
  it("the handler takes what the shim's check made of the same params object", () => {
    let runs = 0;
    const once = parsedOnce((raw) => {
      runs++;
      return parseRebindParams(raw);
    });
    const params = { devices: "0000:83:00.0", to: "host" };
    const checked = once(params);
    expect(once(params)).toBe(checked);
    expect(runs).toBe(1);
    // Another call (another action-get) is parsed afresh.
    once({ ...params });
    expect(runs).toBe(2);
  });
});
