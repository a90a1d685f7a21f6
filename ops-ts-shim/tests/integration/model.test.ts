// Several simulated units sharing a peer relation, as Juju's controller ties them: bags seen by
// the others only once the hook committed, the application bag the leader's alone, the hooks those
// changes cause, a vanished unit's departed hooks, and juju-reboot's reboot followed by `start`.
// The "charm" is a shell script per (unit, hook) calling the real fake tool executables.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createModelSimulator,
  createUnitSimulator,
  type ModelSimulator,
} from "../../src/testing/simulator";
import type { EventSpec } from "../../src/testing/unit-spec";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "shim-model-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

type Script = (unit: string, event: string) => string;

/** A model of `names` (the first leads) whose hooks run `script(unit, hook)` in sh. */
function model(
  names: string[],
  script: Script,
  onReboot?: (machine: string) => void,
  manualReboots = false,
): { m: ModelSimulator; out: Map<string, string[]> } {
  const m = createModelSimulator({
    peers: [{ endpoint: "fleet", id: 7 }],
    onReboot,
    manualReboots,
  });
  const out = new Map<string, string[]>();
  names.forEach((name, i) => {
    const simDir = join(dir, name.replace("/", "-"));
    mkdirSync(join(simDir, "charm"), { recursive: true });
    const sim = createUnitSimulator({ dir: simDir, unitName: name });
    const run = (event: EventSpec) => {
      const hook = typeof event === "string" ? event : event.name;
      const r = spawnSync("sh", ["-c", script(name, hook)], {
        env: sim.env(event),
        encoding: "utf8",
      });
      out.set(name, [...(out.get(name) ?? []), `${hook}: ${r.stdout.trim()}`]);
      sim.finish(r.status);
      return r.status ?? -1;
    };
    m.addUnit(name, { sim, run }, { leader: i === 0 });
  });
  return { m, out };
}

describe("model simulator: peer relations across units", { timeout: 120_000 }, () => {
  it("shows a unit's committed bag to its peers and queues relation-changed naming it", () => {
    const { m, out } = model(["app/0", "app/1"], (unit, hook) => {
      if (unit === "app/1" && hook === "config-changed")
        return "relation-set -r fleet:7 reboot-request=yes";
      if (hook === "fleet-relation-changed")
        return 'echo "$JUJU_REMOTE_UNIT=$(relation-get -r 7 reboot-request "$JUJU_REMOTE_UNIT")"';
      return "true";
    });
    const joined = m.settle();
    // Juju's order for two units joining: created, then joined+changed on each side.
    expect(joined.map((r) => `${r.unit} ${r.event}`)).toContain("app/0 fleet-relation-joined");
    expect(m.dispatch("app/1", "config-changed")).toBe(0);
    const ran = m.settle();
    expect(ran.map((r) => [r.unit, r.event, r.remoteUnit])).toEqual([
      ["app/0", "fleet-relation-changed", "app/1"],
    ]);
    expect(out.get("app/0")!.at(-1)).toBe("fleet-relation-changed: app/1=yes");
  });

  it("never shows a failed hook's writes, and queues nothing for them", () => {
    const { m } = model(["app/0", "app/1"], (unit, hook) =>
      unit === "app/1" && hook === "config-changed"
        ? "relation-set -r 7 reboot-request=yes; exit 1"
        : "true",
    );
    m.settle();
    expect(m.dispatch("app/1", "config-changed")).toBe(1);
    expect(m.settle()).toEqual([]);
    const rel = m.unit("app/0").sim.readState().relations[0]!;
    expect(rel.remoteUnitsData["app/1"]).toEqual({});
  });

  it("lets every unit read the application bag and only the leader write it", () => {
    const { m, out } = model(["app/0", "app/1"], (unit, hook) => {
      if (hook === "config-changed" && unit === "app/0")
        return "relation-set -r 7 --app reboot-lock=app/1";
      if (hook === "config-changed" && unit === "app/1")
        return "relation-set -r 7 --app reboot-lock=app/1 2>&1; echo rc=$?";
      if (hook === "fleet-relation-changed" && unit === "app/1")
        return 'echo "remote=[$JUJU_REMOTE_UNIT] lock=$(relation-get -r 7 --app reboot-lock app)"';
      return "true";
    });
    m.settle();
    // Outside a peer relation a non-leader may not read its own app's bag; inside one it may.
    m.dispatch("app/1", "config-changed");
    expect(out.get("app/1")!.at(-1)).toBe(
      "config-changed: ERROR cannot write relation settings\nrc=1",
    );
    expect(m.dispatch("app/0", "config-changed")).toBe(0);
    const ran = m.settle();
    expect(ran.map((r) => [r.unit, r.event, r.remoteUnit])).toEqual([
      ["app/1", "fleet-relation-changed", null],
    ]);
    expect(out.get("app/1")!.at(-1)).toBe("fleet-relation-changed: remote=[] lock=app/1");
  });

  it("tells the others a unit vanished, with its bag readable during relation-departed", () => {
    const { m, out } = model(["app/0", "app/1", "app/2"], (_unit, hook) => {
      if (hook === "config-changed") return "relation-set -r 7 reboot-request=yes";
      if (hook === "fleet-relation-departed")
        return 'echo "gone=$JUJU_DEPARTING_UNIT units=$(relation-list -r 7 --format=json) req=$(relation-get -r 7 reboot-request app/2)"';
      return "true";
    });
    m.settle();
    m.dispatch("app/2", "config-changed");
    m.settle();
    m.removeUnit("app/2");
    const ran = m.settle();
    expect(ran.map((r) => `${r.unit} ${r.event}`)).toEqual([
      "app/0 fleet-relation-departed",
      "app/1 fleet-relation-departed",
    ]);
    expect(out.get("app/0")!.at(-1)).toBe(
      'fleet-relation-departed: gone=app/2 units=["app/1"] req=yes',
    );
    // After the departed hooks the vanished unit's bag is gone.
    expect(m.unit("app/0").sim.readState().relations[0]!.remoteUnitsData["app/2"]).toBeUndefined();
  });

  it("moves leadership: the new leader writes, the old one may not", () => {
    const { m, out } = model(["app/0", "app/1"], (_unit, hook) =>
      hook === "leader-elected" || hook === "update-status"
        ? "relation-set -r 7 --app who=$JUJU_UNIT_NAME 2>&1; echo rc=$?"
        : "true",
    );
    m.settle();
    m.setLeader("app/1");
    m.settle();
    expect(out.get("app/1")!.at(-1)).toBe("leader-elected: rc=0");
    m.dispatch("app/0", "update-status");
    expect(out.get("app/0")!.at(-1)).toBe(
      "update-status: ERROR cannot write relation settings\nrc=1",
    );
  });

  it("reboots the machine after a hook that ran juju-reboot, then runs start", () => {
    const rebooted: string[] = [];
    const { m } = model(
      ["app/0", "app/1"],
      (unit, hook) => (unit === "app/1" && hook === "update-status" ? "juju-reboot" : "true"),
      (machine) => rebooted.push(machine),
    );
    m.settle();
    expect(m.dispatch("app/1", "update-status")).toBe(0);
    const ran = m.settle();
    expect(rebooted).toEqual(["machine-of-app/1"]);
    expect(ran.map((r) => `${r.unit} ${r.event}`)).toEqual(["app/1 start"]);
    expect(m.unit("app/1").sim.readState().reboot).toBeNull();
  });

  it("drops the reboot of a hook that failed, and refuses juju-reboot in an action", () => {
    const { m, out } = model(["app/0"], (_unit, hook) =>
      hook === "update-status"
        ? "juju-reboot; exit 1"
        : hook === "reboot-plan-action"
          ? "juju-reboot 2>&1; echo rc=$?"
          : "true",
    );
    m.settle();
    expect(m.dispatch("app/0", "update-status")).toBe(1);
    expect(m.dispatch("app/0", "reboot-plan-action")).toBe(0);
    expect(out.get("app/0")!.at(-1)).toBe(
      "reboot-plan-action: ERROR juju-reboot is not supported when running an action.\nrc=1",
    );
    expect(m.settle()).toEqual([]);
    expect(m.reboots).toEqual([]);
  });

  it("keeps a machine down for its reboot: its hooks wait, the others run, start comes first", () => {
    const { m } = model(
      ["app/0", "app/1"],
      (unit, hook) => {
        if (unit === "app/1" && hook === "update-status") return "juju-reboot";
        if (unit === "app/0" && hook === "config-changed") return "relation-set -r 7 x=1";
        return "true";
      },
      undefined,
      true,
    );
    m.settle();
    m.dispatch("app/1", "update-status");
    expect([...m.down]).toEqual(["machine-of-app/1"]);
    m.dispatch("app/0", "config-changed");
    expect(m.settle()).toEqual([]); // app/1's relation-changed waits for its machine
    expect(() => m.dispatch("app/1", "update-status")).toThrow(/down for a reboot/);
    m.bootMachine("machine-of-app/1");
    expect(m.settle().map((r) => `${r.unit} ${r.event}`)).toEqual([
      "app/1 start",
      "app/1 fleet-relation-changed",
    ]);
  });
});
