// Every action has one shape: its params are checked first, and a bad call reads nothing of the
// host. Run on a root with no /sys at all: any host read would add `read-problems` to the
// results ("/sys/bus/pci/devices does not exist"), so results that hold only the refusal show
// that the host was never read — in the charm's handler, and in the shim before any handler.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Context } from "ops-ts-shim/testing";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ACTION_PARAM_VALIDATORS } from "../../src/charm-actions";
import { PciPassthroughCharm } from "../../src/pci-passthrough-charm";
import { charmContext, useRoot } from "../support/scenario";

const TOP = path.resolve(__dirname, "..", "..");
const read = (f: string) => fs.readFileSync(path.join(TOP, f), "utf8");

let root: string;
afterEach(() => {
  vi.unstubAllEnvs();
  fs.rmSync(root, { recursive: true, force: true });
});

function emptyRoot(): void {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "no-host-"));
  useRoot(root);
}

/** Valid for Juju (types, enums), refused by the action's own syntax. */
const BAD_CALLS: Array<[string, Record<string, unknown>, string]> = [
  ["rebind", { devices: "10de:1bb" }, 'devices entry "10de:1bb" is neither'],
  ["rebind", { devices: "0000:83:00.*" }, "exact addresses, not the globs"],
  ["list-devices", { class: "gpus" }, 'class "gpus" is neither a class word'],
  ["list-devices", { vendor: "nvidia" }, 'vendor "nvidia" is not a vendor id'],
];

describe("a bad call is refused before the host is read", () => {
  it.each(BAD_CALLS)("%s %j, by the handler", (action, params, expected) => {
    emptyRoot();
    const out = charmContext().run({ name: `${action}-action`, params });
    expect(out.actionFailure).toContain(expected);
    expect(out.actionResults).toEqual({ ok: "no", message: out.actionFailure });
  });

  it.each(BAD_CALLS)("%s %j, by the validator main() runs first", (action, params, expected) => {
    emptyRoot();
    const ctx = new Context(PciPassthroughCharm, {
      metadata: read("metadata.yaml"),
      config: read("config.yaml"),
      actions: read("actions.yaml"),
      unitName: "pci-passthrough/0",
      actionParamValidators: ACTION_PARAM_VALIDATORS,
    });
    const out = ctx.run({ name: `${action}-action`, params });
    expect(out.actionFailure).toContain(`invalid parameters for ${action}: `);
    expect(out.actionFailure).toContain(expected);
    expect(out.actionResults ?? {}).toEqual({});
  });

  it("a good call does read the host (the empty root shows in the results)", () => {
    emptyRoot();
    const out = charmContext().run({ name: "list-devices-action", params: {} });
    expect(JSON.stringify(out.actionResults)).toContain("does not exist");
  });
});
