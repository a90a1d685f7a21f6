// Peer relations as Juju keeps them: every unit reads the application bag, only the leader writes
// it; relation-list names the other units; committed writes reach the other units with
// relation-changed (a unit bag: JUJU_REMOTE_UNIT is the writer; the app bag: no remote unit).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ActiveStatus, CharmBase, type Framework, WaitingStatus } from "../src/index";
import {
  ApplicationContext,
  buildFakeUnit,
  Context,
  commitHook,
  type FakeUnitState,
  hookEnvironment,
  InconsistentScenarioError,
  peerRelationFor,
  RELATION_SETTINGS_QUOTA,
  runFakeHookTool,
} from "../src/testing";
import { createUnitSimulator, syncPeers } from "../src/testing/simulator";

const METADATA = `
name: tally
peers:
  cluster:
    interface: tally-cluster
requires:
  db:
    interface: db
`;

/** Each unit publishes its number; the leader sums every unit's and publishes the total. */
class TallyCharm extends CharmBase {
  constructor(framework: Framework) {
    super(framework);
    const sync = () => {
      const peers = this.model.getRelation("cluster");
      if (!peers) return;
      const mine = this.model.unitName.split("/")[1]!;
      peers.setLocalUnitData({ n: mine });
      if (this.model.isLeader()) {
        let total = Number(mine);
        for (const unit of peers.units) total += Number(peers.remoteUnitData(unit).n ?? 0);
        peers.setLocalAppData({ total: String(total), units: String(peers.units.length + 1) });
      }
    };
    for (const e of ["install", "leader-elected", "cluster-relation-changed"] as const) {
      framework.observe(e, sync);
    }
    framework.observe("collect-unit-status", (e) => {
      const total = this.model.getRelation("cluster")?.localAppData().total;
      e.addStatus(total ? new ActiveStatus(`total ${total}`) : new WaitingStatus("no total yet"));
    });
  }
}

const run = (s: FakeUnitState, argv: string[], env: Record<string, string> = {}, stdin?: string) =>
  runFakeHookTool(s, argv, { env, stdin });

describe("the fake hook tools on a peer relation", () => {
  const peerUnit = (leader: boolean): FakeUnitState => {
    const s = buildFakeUnit({ unitName: "tally/1", leader });
    s.relations = [peerRelationFor("tally/1", ["tally/0", "tally/1", "tally/2"], "cluster", 4)];
    s.relations[0]!.localAppData = { total: "3" };
    s.relations[0]!.remoteUnitsData["tally/0"] = { n: "0" };
    return s;
  };

  it("relation-list names the other units; --app names the unit's own application", () => {
    const s = peerUnit(false);
    expect(run(s, ["relation-list", "--format=json", "-r", "4"]).stdout).toBe(
      '["tally/0","tally/2"]\n',
    );
    expect(run(s, ["relation-list", "--format=json", "-r", "4", "--app"]).stdout).toBe('"tally"\n');
  });

  it("a non-leader reads the application bag of a peer relation (not of any other)", () => {
    const s = peerUnit(false);
    expect(run(s, ["relation-get", "--format=json", "-r", "4", "--app", "-", "tally"])).toEqual({
      exitCode: 0,
      stdout: '{"total":"3"}\n',
      stderr: "",
    });
    // In a peer hook with no remote unit, Juju's default target is the (own) application.
    const env = hookEnvironment(
      s,
      { name: "cluster-relation-changed", remoteUnit: null },
      {
        charmDir: "/c",
      },
    );
    expect(run(s, ["relation-get", "--format=json"], env).stdout).toBe('{"total":"3"}\n');
    s.relations.push({ ...peerRelationFor("tally/1", ["tally/1"], "db", 5), peer: false });
    expect(run(s, ["relation-get", "-r", "5", "--app", "-", "tally"]).stderr).toMatch(
      /permission denied/,
    );
  });

  it("only the leader writes the application bag", () => {
    const s = peerUnit(false);
    expect(run(s, ["relation-set", "-r", "4", "--app", "total=9"])).toEqual({
      exitCode: 1,
      stdout: "",
      stderr: "ERROR cannot write relation settings\n",
    });
    const l = peerUnit(true);
    expect(run(l, ["relation-set", "-r", "4", "--app", "total=9"]).exitCode).toBe(0);
    commitHook(l, 0);
    expect(l.relations[0]!.localAppData).toEqual({ total: "9" });
  });

  it("a settings bag over one controller document (16 MiB) fails the hook's commit", () => {
    const s = peerUnit(true);
    const big = "x".repeat(RELATION_SETTINGS_QUOTA.maxSize);
    expect(
      run(s, ["relation-set", "-r", "4", "--app", "--file", "-"], {}, JSON.stringify({ big }))
        .exitCode,
    ).toBe(0);
    expect(commitHook(s, 0)).toMatch(
      /application settings: 16777225 bytes exceed the 16777216 bytes/,
    );
    expect(s.relations[0]!.localAppData).toEqual({ total: "3" });
  });

  it("the scenario consistency check wants peer: true exactly on peer endpoints", () => {
    const ctx = new Context(TallyCharm, { metadata: METADATA, unitName: "tally/0" });
    expect(() => ctx.run("install", { relations: [{ endpoint: "cluster" }] })).toThrow(
      InconsistentScenarioError,
    );
    expect(() => ctx.run("install", { relations: [{ endpoint: "db", peer: true }] })).toThrow(
      /declares "db" under requires/,
    );
    const out = ctx.run("install", { relations: [{ endpoint: "cluster", peer: true }] });
    expect(out.relations[0]!.remoteUnits).toEqual([]);
    expect(out.relations[0]!.localUnitData).toEqual({ n: "0" });
  });
});

describe("an application of several units (ApplicationContext)", () => {
  const units = ["tally/0", "tally/1", "tally/2", "tally/3"];

  it("every unit's number reaches the leader, whose total reaches every unit", () => {
    const app = new ApplicationContext(TallyCharm, {
      metadata: METADATA,
      units,
      peer: "cluster",
      leader: "tally/2",
    });
    app.runAll("install");
    app.settle();
    for (const unit of units) {
      expect(app.output(unit).relations[0]!.localAppData).toEqual({ total: "6", units: "4" });
      expect(app.output(unit).unitStatus).toEqual(new ActiveStatus("total 6"));
    }
    // Non-leaders got the leader's bag through relation-changed without a remote unit.
    const calls = app.output("tally/0").hookToolCalls;
    expect(calls).toContainEqual([
      "relation-get",
      "--format=json",
      "-r",
      "1",
      "--app",
      "-",
      "tally",
    ]);
    expect(calls.some((c) => c[0] === "relation-set" && c.includes("--app"))).toBe(false);
  });

  it("leadership moves: leader-elected runs on the new leader, which takes over the bag", () => {
    const app = new ApplicationContext(TallyCharm, { metadata: METADATA, units, peer: "cluster" });
    app.runAll("install");
    app.settle();
    const out = app.elect("tally/3");
    expect(out.leader).toBe(true);
    expect(app.history.at(-1)).toEqual({ unit: "tally/3", event: "leader-elected" });
    expect(app.state("tally/0").leader).toBe(false);
  });
});

describe("the process-level simulator shares peer data between units (syncPeers)", () => {
  const dir = mkdtempSync(join(tmpdir(), "peers-sim-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("a unit's committed write reaches the others, with the hooks Juju would run", () => {
    const names = ["tally/0", "tally/1", "tally/2"];
    const sims = names.map((unitName, i) =>
      createUnitSimulator({
        dir: join(dir, String(i)),
        unitName,
        leader: i === 0,
        relations: [
          {
            endpoint: "cluster",
            id: 2,
            peer: true,
            remoteUnits: names.filter((n) => n !== unitName),
          },
        ],
      }),
    );
    const [leader, second] = [sims[0]!, sims[1]!];
    // What the charm would do in a hook, through the tools' state: a unit key and the app bag.
    leader.updateState((s) => {
      runFakeHookTool(s, ["relation-set", "-r", "2", "n=0"]);
      runFakeHookTool(s, ["relation-set", "-r", "2", "--app", "total=0"]);
    });
    leader.finish(0);
    const events = syncPeers(sims, leader);
    expect(events).toEqual([
      {
        unit: "tally/1",
        event: { name: "cluster-relation-changed", relationId: 2, remoteUnit: "tally/0" },
      },
      {
        unit: "tally/1",
        event: { name: "cluster-relation-changed", relationId: 2, remoteUnit: null },
      },
      {
        unit: "tally/2",
        event: { name: "cluster-relation-changed", relationId: 2, remoteUnit: "tally/0" },
      },
      {
        unit: "tally/2",
        event: { name: "cluster-relation-changed", relationId: 2, remoteUnit: null },
      },
    ]);
    const seen = second.readState().relations[0]!;
    expect(seen.remoteUnitsData["tally/0"]).toEqual({ n: "0" });
    expect(seen.localAppData).toEqual({ total: "0" });
    // A dropped (failed) hook's writes never reach anyone.
    second.updateState((s) => {
      runFakeHookTool(s, ["relation-set", "-r", "2", "n=1"]);
    });
    second.finish(1);
    expect(syncPeers(sims, second)).toEqual([]);
  });
});
