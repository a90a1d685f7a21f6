// The reboot options and the pure reboot decision (issue 24): windows in local time, the lock's
// arbitration (vanished holders recovered, never every unit), the checks, the loop guard.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config";
import { insideWindow, parseRebootPolicy, type RebootPolicy } from "../../src/config/reboot";
import type { ConfigError } from "../../src/config/types";
import type { RebootFacts } from "../../src/host/reboot-facts";
import {
  arbitrateLock,
  decideReboot,
  EMPTY_REBOOT_MEMORY,
  type LockView,
  lockLimit,
  type RebootInputs,
  rebootStatus,
} from "../../src/plan/reboot";

const policy = (raw: Record<string, unknown>): RebootPolicy => {
  const errors: ConfigError[] = [];
  const p = parseRebootPolicy(raw, errors);
  expect(errors).toEqual([]);
  return p!;
};
const errorsOf = (raw: Record<string, unknown>): string[] => {
  const errors: ConfigError[] = [];
  parseRebootPolicy(raw, errors);
  return errors.map((e) => `${e.option}: ${e.problem}`);
};
const SAT = 6;
const SUN = 0;

describe("reboot options", () => {
  it("defaults to manual, any time, no containers, one at a time", () => {
    expect(policy({})).toEqual({
      mode: "manual",
      windows: [],
      windowText: "",
      allowJujuContainers: false,
      maxUnavailable: 1,
    });
  });

  it("reads windows with day lists, ranges, several windows and midnight", () => {
    const p = policy({
      reboot: "when-idle",
      "reboot-window": "Sat,Sun 01:00-05:00; Mon-Fri 23:30-00:30",
    });
    expect(insideWindow(p.windows, { day: SAT, minutes: 60 })).toBe(true);
    expect(insideWindow(p.windows, { day: SAT, minutes: 5 * 60 })).toBe(false); // the end is out
    expect(insideWindow(p.windows, { day: SUN, minutes: 4 * 60 + 59 })).toBe(true);
    expect(insideWindow(p.windows, { day: 5, minutes: 23 * 60 + 45 })).toBe(true); // Fri night
    expect(insideWindow(p.windows, { day: SAT, minutes: 15 })).toBe(true); // … into Saturday
    expect(insideWindow(p.windows, { day: 1, minutes: 15 })).toBe(false); // Sun night not listed
    expect(insideWindow(policy({ "reboot-window": "" }).windows, { day: 3, minutes: 0 })).toBe(
      true,
    );
    expect(policy({ "reboot-window": "Fri-Mon 02:00-03:00" }).windows[0]!.days).toEqual([
      0, 1, 5, 6,
    ]);
  });

  it("names the option and the fix for each bad value", () => {
    expect(errorsOf({ reboot: "always" })).toEqual(["reboot: is not one of manual, when-idle"]);
    expect(errorsOf({ "reboot-window": "Caturday 01:00-02:00" })).toEqual([
      'reboot-window: "caturday" is not a day or a range of days (Mon, Tue, Wed, Thu, Fri, Sat, Sun)',
    ]);
    expect(errorsOf({ "reboot-window": "01:00-01:00" })).toEqual([
      'reboot-window: "01:00-01:00" is empty (it ends when it starts)',
    ]);
    expect(errorsOf({ "reboot-window": "1am-5am" })).toEqual([
      'reboot-window: "1am-5am" is not [days] HH:MM-HH:MM',
    ]);
    expect(errorsOf({ "reboot-max-unavailable": 0 })).toEqual([
      "reboot-max-unavailable: is not a whole number of at least 1",
    ]);
    const parsed = parseConfig({ reboot: "sometimes" });
    expect(parsed.ok).toBe(false); // a bad reboot option changes nothing on the host either
  });
});

const lock = (l: Partial<LockView>): LockView => ({
  self: "app/1",
  leader: true,
  units: ["app/0", "app/1", "app/2"],
  holders: [],
  requests: [],
  ...l,
});

describe("the reboot lock", () => {
  it("never lets every unit go, and lets a lone unit go", () => {
    const p = policy({ "reboot-max-unavailable": 5 });
    expect(lockLimit(p, 1)).toBe(1);
    expect(lockLimit(p, 2)).toBe(1);
    expect(lockLimit(p, 4)).toBe(3);
    expect(lockLimit(policy({}), 10)).toBe(1);
  });

  it("grants in unit order up to the limit, keeps holders still asking", () => {
    const d = arbitrateLock(
      lock({
        units: ["app/0", "app/1", "app/2", "app/10"],
        holders: ["app/2"],
        requests: ["app/10", "app/2", "app/1"],
      }),
      policy({ "reboot-max-unavailable": 2 }),
    );
    expect(d).toEqual({ holders: ["app/2", "app/1"], granted: ["app/1"], released: [], limit: 2 });
  });

  it("recovers a vanished holder's lock and frees a released one", () => {
    const d = arbitrateLock(
      lock({ units: ["app/0", "app/1"], holders: ["app/7", "app/0"], requests: ["app/1"] }),
      policy({}),
    );
    expect(d.released).toEqual([
      { unit: "app/7", why: "it left the application" },
      { unit: "app/0", why: "it released it" },
    ]);
    expect(d.holders).toEqual(["app/1"]);
  });
});

const idle: RebootFacts = {
  bootId: "aaaaaaaa-1111",
  guests: { kind: "listed", domains: [] },
  vfioHolders: [],
  jujuContainers: [],
  localTime: { day: SAT, minutes: 120, text: "Sat 02:00" },
};
const bring = { kernelParams: ["intel_iommu=on"], vfio: ["0000:83:00.0"], vfs: [] };
const inputs = (over: Partial<RebootInputs>): RebootInputs => ({
  policy: policy({ reboot: "when-idle" }),
  pending: ["kernel command line lacks intel_iommu=on"],
  futile: null,
  bring,
  hostFacts: { cmdline: "BOOT_IMAGE=/vmlinuz ro" },
  facts: idle,
  memory: EMPTY_REBOOT_MEMORY,
  lock: lock({ holders: [] }),
  ...over,
});

describe("decideReboot", () => {
  it("asks for the lock when the host checks pass, and reboots once it holds it", () => {
    const ask = decideReboot(inputs({}), 1);
    expect(ask.verdict.kind).toBe("held");
    expect(ask.request).toBe(true);
    const go = decideReboot(inputs({ lock: lock({ holders: ["app/1"], requests: ["app/1"] }) }), 1);
    expect(go.verdict.kind).toBe("reboot");
    expect(go.memory.requested).toEqual({ bootId: "aaaaaaaa-1111", bring });
  });

  it("does not ask for the lock while a guest runs, and gives it back if one arrived", () => {
    const facts: RebootFacts = {
      ...idle,
      guests: { kind: "listed", domains: [{ name: "instance-1", state: "paused" }] },
      vfioHolders: [
        {
          group: 12,
          pid: 77,
          command: "qemu-system-x86_64 -name guest=instance-1",
          instance: "instance-1",
        },
      ],
    };
    const d = decideReboot(inputs({ facts, lock: lock({ holders: ["app/1"] }) }), 1);
    expect(d.request).toBe(false);
    expect(d.verdict).toMatchObject({ kind: "held", waitingOnly: false });
    const status = rebootStatus({ name: "blocked", message: "reboot required: x" }, d.verdict);
    expect(status.message).toBe(
      "reboot required: x; reboot=when-idle holds the reboot: libvirt domain instance-1 is paused: migrate or stop it first; pid 77 (qemu-system-x86_64 -name guest=instance-1, instance instance-1) holds /dev/vfio/12",
    );
  });

  it("holds when libvirt cannot be asked, and outside the window (waiting)", () => {
    const unknown = decideReboot(
      inputs({ facts: { ...idle, guests: { kind: "unknown", why: "libvirtd is down" } } }),
      1,
    );
    expect(unknown.checks.find((c) => c.check === "guests")).toEqual({
      check: "guests",
      ok: false,
      detail: "cannot ask libvirt: libvirtd is down",
    });
    const late = decideReboot(
      inputs({ policy: policy({ reboot: "when-idle", "reboot-window": "Sun 01:00-03:00" }) }),
      1,
    );
    expect(late.verdict).toMatchObject({ kind: "held", waitingOnly: true });
    expect(late.request).toBe(false);
    expect(
      rebootStatus({ name: "blocked", message: "reboot required: x" }, late.verdict).name,
    ).toBe("waiting");
  });

  it("stays manual when asked to, and when a reboot would not help", () => {
    expect(decideReboot(inputs({ policy: policy({}) }), 1).verdict.kind).toBe("manual");
    expect(decideReboot(inputs({ futile: "update-grub failed" }), 1).verdict).toEqual({
      kind: "manual",
      why: "update-grub failed",
    });
  });

  it("verifies the new boot, or blocks for good when it did not bring what was written", () => {
    const memory = { requested: { bootId: "old-boot-id", bring }, failed: null };
    const ok = decideReboot(inputs({ memory, pending: [] }), 1);
    expect(ok.verdict.kind).toBe("verified");
    expect(ok.request).toBe(false);
    expect(ok.memory).toEqual(EMPTY_REBOOT_MEMORY);

    const bad = decideReboot(inputs({ memory }), 1);
    expect(bad.verdict.kind).toBe("loop");
    expect(bad.request).toBe(true); // keeps the lock: the next host would fail alike
    expect(bad.memory.failed?.message).toContain(
      'did not bring what was written: kernel command line lacks intel_iommu=on; the running kernel\'s command line is "BOOT_IMAGE=/vmlinuz ro"',
    );
    // Later hooks: same bring, never again, even holding the lock.
    const again = decideReboot(
      inputs({ memory: bad.memory, lock: lock({ holders: ["app/1"], requests: ["app/1"] }) }),
      1,
    );
    expect(again.verdict.kind).toBe("loop");
    // Something new to bring (a changed config) may reboot again.
    const other = decideReboot(
      inputs({
        memory: bad.memory,
        bring: { ...bring, vfio: ["0000:84:00.0"] },
        lock: lock({ holders: ["app/1"], requests: ["app/1"] }),
      }),
      1,
    );
    expect(other.verdict.kind).toBe("reboot");
  });
});
