import { describe, expect, it } from "vitest";
import { JujuContext, JujuContextError } from "../src/index";

const base = {
  JUJU_DISPATCH_PATH: "hooks/config-changed",
  JUJU_HOOK_NAME: "config-changed",
  JUJU_UNIT_NAME: "pci-passthrough/3",
  JUJU_CHARM_DIR: "/var/lib/juju/agents/unit-pci-passthrough-3/charm",
  JUJU_MODEL_NAME: "openstack",
  JUJU_MODEL_UUID: "uuid-1",
  JUJU_VERSION: "3.6.4",
};

describe("JujuContext.fromEnv", () => {
  it("reads a plain hook", () => {
    const ctx = JujuContext.fromEnv(base);
    expect(ctx).toMatchObject({
      dispatchPath: "hooks/config-changed",
      hookName: "config-changed",
      unitName: "pci-passthrough/3",
      appName: "pci-passthrough",
      charmDir: "/var/lib/juju/agents/unit-pci-passthrough-3/charm",
      modelName: "openstack",
      jujuVersion: "3.6.4",
      actionName: null,
      relationId: null,
      remoteUnit: null,
      debug: false,
    });
    expect(Object.isFrozen(ctx)).toBe(true);
    expect(() => {
      (ctx as { unitName: string }).unitName = "x/1";
    }).toThrow();
  });

  it("parses a relation hook: the id after the colon, remote app from the unit when absent", () => {
    const ctx = JujuContext.fromEnv({
      ...base,
      JUJU_DISPATCH_PATH: "hooks/nova-compute-relation-departed",
      JUJU_HOOK_NAME: "nova-compute-relation-departed",
      JUJU_RELATION: "nova-compute",
      JUJU_RELATION_ID: "nova-compute:12",
      JUJU_REMOTE_UNIT: "nova-compute-kvm/4",
      JUJU_DEPARTING_UNIT: "nova-compute-kvm/4",
    });
    expect(ctx.relationName).toBe("nova-compute");
    expect(ctx.relationId).toBe(12);
    expect(ctx.remoteUnit).toBe("nova-compute-kvm/4");
    expect(ctx.remoteApp).toBe("nova-compute-kvm");
    expect(ctx.departingUnit).toBe("nova-compute-kvm/4");
  });

  it("reads an action (Juju leaves JUJU_HOOK_NAME empty)", () => {
    const ctx = JujuContext.fromEnv({
      ...base,
      JUJU_DISPATCH_PATH: "actions/list-devices",
      JUJU_HOOK_NAME: "",
      JUJU_ACTION_NAME: "list-devices",
      JUJU_ACTION_UUID: "17",
    });
    expect(ctx.hookName).toBe("");
    expect(ctx.actionName).toBe("list-devices");
    expect(ctx.actionId).toBe("17");
  });

  it("derives the hook name from the dispatch path when JUJU_HOOK_NAME is absent", () => {
    const { JUJU_HOOK_NAME: _drop, ...env } = base;
    expect(JujuContext.fromEnv({ ...env, JUJU_DISPATCH_PATH: "hooks/install" }).hookName).toBe(
      "install",
    );
  });

  it("treats empty variables as unset and honours JUJU_DEBUG", () => {
    const ctx = JujuContext.fromEnv({ ...base, JUJU_REMOTE_UNIT: "", JUJU_DEBUG: "1" });
    expect(ctx.remoteUnit).toBeNull();
    expect(ctx.debug).toBe(true);
  });

  it.each([
    [{ JUJU_DISPATCH_PATH: undefined }, /JUJU_DISPATCH_PATH is not set/],
    [{ JUJU_UNIT_NAME: undefined }, /JUJU_UNIT_NAME is not set/],
    [{ JUJU_UNIT_NAME: "no-number" }, /not a unit name/],
    [{ JUJU_RELATION_ID: "db:x" }, /not a relation id/],
    [
      { JUJU_HOOK_NAME: "db-relation-changed", JUJU_DISPATCH_PATH: "hooks/db-relation-changed" },
      /without JUJU_RELATION/,
    ],
  ])("refuses a broken environment %#", (override, message) => {
    expect(() => JujuContext.fromEnv({ ...base, ...override })).toThrow(JujuContextError);
    expect(() => JujuContext.fromEnv({ ...base, ...override })).toThrow(message);
  });
});
