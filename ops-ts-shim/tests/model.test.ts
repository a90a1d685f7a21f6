import { describe, expect, it } from "vitest";
import {
  ActiveStatus,
  BlockedStatus,
  CharmBase,
  CollectStatusEvent,
  type Framework,
  MaintenanceStatus,
  StatusBase,
  StoredState,
  StoredStateError,
  WaitingStatus,
} from "../src/index";
import { Context } from "../src/testing";
import { recordingRunner } from "./fixtures/recording-runner";

const METADATA = `
name: model-test
requires:
  db:
    interface: db
`;
const CONFIG = `
options:
  statuses:
    type: string
    default: ""
`;

describe("status priority", () => {
  it("error > blocked > maintenance > waiting > active > unknown; the first wins a tie", () => {
    const event = new CollectStatusEvent();
    expect(event.highest()).toBeNull();
    const first = new ActiveStatus("first");
    event.addStatus(first);
    event.addStatus(new ActiveStatus("second"));
    expect(event.highest()).toBe(first);
    event.addStatus(new StatusBase("unknown"));
    expect(event.highest()).toBe(first);
    event.addStatus(new WaitingStatus("w"));
    expect(event.highest()?.name).toBe("waiting");
    event.addStatus(new MaintenanceStatus("m"));
    expect(event.highest()?.name).toBe("maintenance");
    event.addStatus(new BlockedStatus("b"));
    event.addStatus(new MaintenanceStatus("m2"));
    expect(event.highest()?.name).toBe("blocked");
    event.addStatus(new StatusBase("error", "e"));
    expect(event.highest()?.name).toBe("error");
    expect(event.statuses).toHaveLength(8);
  });

  /** Offers the statuses named in config "statuses" ("blocked:msg,active:ok"), in order. */
  class StatusCharm extends CharmBase {
    constructor(framework: Framework) {
      super(framework);
      framework.observe("collect-unit-status", (event) => {
        for (const item of String(this.model.config().statuses).split(",").filter(Boolean)) {
          const [name, message] = item.split(":");
          event.addStatus(new StatusBase(name as "active", message ?? ""));
        }
      });
    }
  }
  const ctx = new Context(StatusCharm, { metadata: METADATA, config: CONFIG });

  it("sets the winner with exactly one status-set", () => {
    const out = ctx.run("update-status", {
      config: { statuses: "active:ok,waiting:for db,blocked:set devices,maintenance:busy" },
    });
    expect(out.unitStatus).toEqual(new BlockedStatus("set devices"));
    expect(out.hookToolCalls.filter((c) => c[0] === "status-set")).toEqual([
      ["status-set", "blocked", "--", "set devices"],
    ]);
  });

  it("sets nothing when the status is what the shim set last time, or when none is offered", () => {
    const first = ctx.run("update-status", { config: { statuses: "active:ok" } });
    const second = ctx.run("update-status", first);
    expect(second.hookToolCalls.map((c) => c[0])).toEqual(["config-get", "state-get"]);
    expect(second.unitStatus).toEqual(new ActiveStatus("ok"));
    const changedMessage = ctx.run("update-status", {
      ...first,
      config: { statuses: "active:ok!" },
    });
    expect(changedMessage.hookToolCalls.filter((c) => c[0] === "status-set")).toHaveLength(1);
    const none = ctx.run("update-status", { config: { statuses: "" } });
    expect(none.hookToolCalls.map((c) => c[0])).toEqual(["config-get"]);
    expect(none.unitStatus.name).toBe("unknown");
  });

  it("refuses to set error status (Juju owns it)", () => {
    expect(() => ctx.run("update-status", { config: { statuses: "error:bad" } })).toThrow(
      /cannot set "error" status/,
    );
  });
});

describe("StoredState", () => {
  it("loads lazily with one state-get and writes one state-set holding only changed keys", () => {
    const { runner, calls } = recordingRunner({
      "state-get": JSON.stringify({
        same: "1",
        changes: '"old"',
        gone: "true",
        foreign: "plain text",
      }),
    });
    const stored = new StoredState(runner);
    expect(calls).toEqual([]);
    expect(stored.get("same")).toBe(1);
    expect(stored.get("foreign")).toBe("plain text");
    stored.set("same", 1);
    stored.set("changes", "new");
    stored.set("added", { devices: ["0000:83:00.0"] });
    stored.delete("gone");
    stored.delete("never-there");
    stored.commit();
    expect(calls.map((c) => c.argv)).toEqual([
      ["state-get", "--format=json"],
      ["state-set", "--file", "-"],
      ["state-delete", "gone"],
    ]);
    expect(JSON.parse(calls[1]!.input!)).toEqual({
      changes: '"new"',
      added: '{"devices":["0000:83:00.0"]}',
    });
    stored.commit();
    expect(calls).toHaveLength(3);
  });

  it("never calls anything when unused, and nothing at commit when nothing changed", () => {
    const { runner, calls } = recordingRunner({ "state-get": '{"a":"[1,2]"}' });
    const unused = new StoredState(runner);
    unused.commit();
    expect(calls).toEqual([]);
    const read = new StoredState(runner);
    const value = read.get<number[]>("a")!;
    value.push(3); // a copy: mutating it changes nothing stored
    read.set("a", [1, 2]);
    read.commit();
    expect(calls.map((c) => c.argv[0])).toEqual(["state-get"]);
  });

  it("refuses values that do not survive JSON", () => {
    const stored = new StoredState(recordingRunner({ "state-get": "{}" }).runner);
    expect(() => stored.set("f", () => 1)).toThrow(StoredStateError);
    expect(() => stored.set("u", undefined)).toThrow(/use delete\(\)/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => stored.set("c", cyclic)).toThrow(/cannot store "c"/);
  });

  it("round-trips through the harness: written once, then zero state-set when unchanged", () => {
    class Counter extends CharmBase {
      constructor(framework: Framework) {
        super(framework);
        framework.observe("config-changed", () => {
          const seen = this.model.stored.get<string[]>("seen") ?? [];
          if (!seen.includes("config")) this.model.stored.set("seen", [...seen, "config"]);
        });
      }
    }
    const ctx = new Context(Counter, { metadata: METADATA, config: CONFIG });
    const first = ctx.run("config-changed", { stored: { other: { keep: true } } });
    expect(first.stored).toEqual({ other: { keep: true }, seen: ["config"] });
    expect(first.hookToolCalls).toEqual([
      ["state-get", "--format=json"],
      ["state-set", "--file", "-"],
    ]);
    const second = ctx.run("config-changed", first);
    expect(second.stored).toEqual(first.stored);
    expect(second.hookToolCalls).toEqual([["state-get", "--format=json"]]);
  });
});

describe("Model", () => {
  class Reader extends CharmBase {
    static result: unknown;
    constructor(framework: Framework) {
      super(framework);
      framework.observe("update-status", () => {
        const m = this.model;
        m.config();
        m.config();
        m.isLeader();
        m.isLeader();
        const relations = m.relations("db");
        m.relations("db");
        Reader.result = {
          unit: m.unitName,
          app: m.appName,
          relations: relations.map((r) => ({ id: r.id, app: r.app, units: r.units })),
          data: relations[0]!.remoteUnitData("pg/0"),
          appData: relations[0]!.remoteAppData(),
          unknownEndpoint: (() => {
            try {
              m.relations("nope");
            } catch (e) {
              return (e as Error).message;
            }
          })(),
          tooMany: (() => {
            try {
              m.getRelation("db");
            } catch (e) {
              return (e as Error).message;
            }
          })(),
          byId: m.getRelation("db", 5)?.id,
        };
        relations[0]!.remoteUnitData("pg/0");
        m.setWorkloadVersion("1.0");
      });
    }
  }
  const ctx = new Context(Reader, { metadata: METADATA, config: CONFIG });

  it("reads everything once per dispatch and knows its relations", () => {
    const out = ctx.run("update-status", {
      leader: true,
      relations: [
        {
          endpoint: "db",
          id: 5,
          remoteUnitsData: { "pg/0": { host: "10.0.0.5" } },
          remoteAppData: { v: "14" },
        },
        { endpoint: "db", id: 6, remoteApp: "other", remoteUnits: [] },
      ],
    });
    expect(Reader.result).toEqual({
      unit: "model-test/0",
      app: "model-test",
      relations: [
        { id: 5, app: "pg", units: ["pg/0"] },
        { id: 6, app: null, units: [] },
      ],
      data: { host: "10.0.0.5" },
      appData: { v: "14" },
      unknownEndpoint: 'relation endpoint "nope" is not declared in metadata.yaml (declared: db)',
      tooMany: 'endpoint "db" has 2 relations (ids 5, 6); pass the relation id',
      byId: 5,
    });
    const tools = out.hookToolCalls.map((c) => c[0]);
    expect(tools.filter((t) => t === "config-get")).toHaveLength(1);
    expect(tools.filter((t) => t === "is-leader")).toHaveLength(1);
    expect(tools.filter((t) => t === "relation-ids")).toHaveLength(1);
    expect(tools.filter((t) => t === "relation-get")).toHaveLength(2);
    expect(out.workloadVersion).toBe("1.0");
    const again = ctx.run("update-status", { ...out, relations: out.relations });
    expect(again.hookToolCalls.map((c) => c[0])).not.toContain("application-version-set");
  });

  it("setLocalUnitData sends only real changes and null deletes", () => {
    class Writer extends CharmBase {
      constructor(framework: Framework) {
        super(framework);
        framework.observe("db-relation-changed", (event) => {
          event.relation.setLocalUnitData({
            same: "1",
            changed: "new",
            removed: null,
            absent: null,
          });
          event.relation.setLocalUnitData({ same: "1", changed: "new" });
        });
      }
    }
    const out = new Context(Writer, { metadata: METADATA }).run("db-relation-changed", {
      relations: [{ endpoint: "db", localUnitData: { same: "1", changed: "old", removed: "x" } }],
    });
    expect(out.relations[0]!.localUnitData).toEqual({ same: "1", changed: "new" });
    expect(out.hookToolCalls.filter((c) => c[0] === "relation-set")).toEqual([
      ["relation-set", "-r", "1", "--file", "-"],
    ]);
  });
});
