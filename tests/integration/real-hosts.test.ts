// The packed charm, run as Juju runs it, on recordings of real machines (tests/support/real-hosts/corpus.ts:
// Debian source packages, unpacked at test time). Each host gets several selections an operator
// would write for it; the tests assert invariants that must hold on any host, not golden output.
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type CharmUnderTest,
  type DispatchResult,
  deployPackedCharm,
} from "../support/charm-process";
import {
  corpusKernel,
  danglingDrivers,
  type RealHostManifest,
  realHostManifests,
  type UnpackedHost,
  unpackRealHost,
} from "../support/real-hosts/corpus";
import {
  chipsetCompanions,
  type HostRun,
  kernelModuleNames,
  matchedBy,
  pciAliases,
  readWrittenFiles,
  recordedFunctions,
  unknownModuleNames,
  usedDriversBlacklisted,
  usedFunctionsBound,
} from "../support/real-hosts/invariants";
import { pendingFinding } from "../support/real-hosts/pending";

const kernel = corpusKernel();
const knownModules = kernelModuleNames(kernel.moduleDir);
const aliases = pciAliases(kernel.moduleDir);

/** Asserts an invariant: no violations, and the failure lists each one in full. */
function holds(violations: string[]): void {
  expect(violations, `\n  ${violations.join("\n  ")}\n`).toEqual([]);
}

/** A crash shows as a non-zero exit or a JavaScript stack on stderr. */
function crashed(r: DispatchResult): string | null {
  if (r.exitCode !== 0) return `exit ${r.exitCode}: ${r.stderr.slice(0, 400)}`;
  if (/\bat .*\.(c?js|ts):\d+|TypeError|ReferenceError|RangeError/.test(r.stderr))
    return `stack on stderr: ${r.stderr.slice(0, 400)}`;
  return null;
}

interface SelectionRun {
  run: HostRun;
  /** The recording has /sys/kernel/iommu_groups (none of today's do). */
  groupsDirRecorded: boolean;
  hooks: DispatchResult[];
  status: { status: string; message: string };
  listDevices: {
    failed: boolean;
    results: Record<string, unknown>;
    dispatch: DispatchResult;
  } | null;
  verifyIommu: {
    failed: boolean;
    failureMessage: string | null;
    results: Record<string, unknown>;
    dispatch: DispatchResult;
  };
}

/** config-changed with `devices` (the hook every change of the option runs; install runs the same
 * reconcile), then verify-iommu, and list-devices when asked, on a fresh copy of the host. */
function runSelection(m: RealHostManifest, devices: string, withList: boolean): SelectionRun {
  const host: UnpackedHost = unpackRealHost(m);
  let unit: CharmUnderTest | null = null;
  try {
    unit = deployPackedCharm(host.root, { config: { devices } });
    const hooks = [unit.dispatch("config-changed")];
    const state = unit.sim.readState();
    const action = (name: string) => {
      const dispatch = unit!.dispatch({ name: `${name}-action`, params: {} });
      const a = unit!.sim.readState().lastAction!;
      return {
        failed: a.failed,
        failureMessage: a.failureMessage,
        results: a.results as Record<string, unknown>,
        dispatch,
      };
    };
    const listDevices = withList ? action("list-devices") : null;
    const verifyIommu = action("verify-iommu");
    const functions = recordedFunctions(host.root);
    return {
      groupsDirRecorded: fs.existsSync(path.join(host.root, "sys/kernel/iommu_groups")),
      run: {
        functions,
        uses: m.uses,
        selection: matchedBy(devices, functions),
        written: readWrittenFiles(host.root),
        knownModules,
        aliases,
      },
      hooks,
      status: { status: state.unitStatus.status, message: state.unitStatus.message },
      listDevices,
      verifyIommu,
    };
  } finally {
    unit?.cleanup();
    host.cleanup();
  }
}

/** Every address mentioned in a text, full form. */
function addressesIn(text: string): string[] {
  return [...text.matchAll(/\b[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\b/g)].map((m) => m[0]);
}

/** Everything verify-iommu said: its failure message and every result value. */
function verifyText(v: SelectionRun["verifyIommu"]): string {
  return `${v.failureMessage ?? ""}\n${JSON.stringify(v.results)}`;
}

/** Point 1: a selected function the host keeps is named in the status, with the override. */
function keptNotNamed(r: SelectionRun): string[] {
  const out: string[] = [];
  for (const address of Object.keys(r.run.uses)) {
    if (!r.run.selection.has(address) || r.run.written.boundAtBoot.has(address)) continue;
    if (!r.status.message.includes(address))
      out.push(
        `the host keeps the selected ${address}, but the status does not name it: "${r.status.message}"`,
      );
    else if (!/\bforce\b/.test(r.status.message))
      out.push(
        `the status names the kept ${address} but not the override (force): "${r.status.message}"`,
      );
  }
  return out;
}

/** Point 6: /sys/kernel/iommu_groups that does not exist is not "empty". */
function absentGroupsCalledEmpty(recorded: boolean, texts: string[]): string[] {
  if (recorded) return [];
  return texts
    .filter((t) => /iommu_groups (is|are) empty/.test(t))
    .map(
      (t) =>
        `/sys/kernel/iommu_groups does not exist, yet: ${t.match(/.{0,80}iommu_groups (is|are) empty.{0,40}/)?.[0]}`,
    );
}

/** verify-iommu's advice must not contradict itself or the selection. */
function contradictoryAdvice(r: SelectionRun): string[] {
  const out: string[] = [];
  const v = r.verifyIommu;
  const text = verifyText(v);
  for (const sentence of text.split(/(?<=[.;])\s|\\n|\n/)) {
    if (!/select them too/i.test(sentence)) continue;
    for (const address of addressesIn(sentence)) {
      if (r.run.written.boundAtBoot.has(address))
        out.push(
          `"select them too" names ${address}, which is already selected: ${sentence.trim()}`,
        );
    }
  }
  const iommu = (v.results["iommu"] ?? {}) as Record<string, string>;
  const devices = Object.values(
    (v.results["devices"] ?? {}) as Record<string, Record<string, string>>,
  );
  if (iommu["enabled"] === "no") {
    for (const d of devices) {
      if (d["viable"] === "yes" && d["iommu-group"] !== "none")
        out.push(
          `the IOMMU reads as off, yet ${d["address"]} is "group ${d["iommu-group"]}, viable"`,
        );
    }
  }
  if (/kernel\s{2}|linux-modules-extra-(\s|$|")/.test(text))
    out.push(
      `the kernel release is missing from: ${text.match(/.{0,60}(kernel\s{2}|linux-modules-extra-).{0,40}/)?.[0]}`,
    );
  return out;
}

const manifests = realHostManifests();

/** `it`, or `it.todo` naming the finding while the invariant is pending (tests/support/real-hosts/pending.ts). */
function check(hostId: string, devices: string, title: string, body: () => void): void {
  const finding = pendingFinding(hostId, devices, title);
  if (finding === null) it(title, body);
  else it.todo(`${title} — pending: ${finding}`);
}

describe.each(manifests.map((m) => [m.id, m] as const))("real host %s", (_id, m) => {
  const runs = new Map<string, SelectionRun>();
  beforeAll(() => {
    for (const [i, sel] of m.selections.entries()) {
      runs.set(sel.devices, runSelection(m, sel.devices, i === 0));
    }
  }, 240_000);

  describe.each(m.selections.map((s) => [s.name, s.devices] as const))(
    "%s (devices=%s)",
    (_name, devices) => {
      const r = () => runs.get(devices)!;

      check(m.id, devices, "config-changed runs without a crash or a hook error", () => {
        holds(
          r()
            .hooks.map(crashed)
            .filter((p) => p !== null),
        );
        expect(r().status.status).not.toBe("error");
        expect(r().status.message.length).toBeGreaterThan(0);
      });

      check(m.id, devices, "nothing the host uses is bound to vfio-pci at boot", () => {
        holds(usedFunctionsBound(r().run));
      });

      check(m.id, devices, "no driver of a function the host uses is blacklisted", () => {
        holds(usedDriversBlacklisted(r().run));
      });

      check(
        m.id,
        devices,
        "no host bridge, ISA/LPC bridge or SMBus is dragged along as a companion",
        () => {
          holds(chipsetCompanions(r().run));
        },
      );

      check(
        m.id,
        devices,
        "every module name written exists in the kernel's modules.dep or modules.builtin",
        () => {
          holds(unknownModuleNames(r().run));
        },
      );

      check(m.id, devices, "verify-iommu runs without a crash", () => {
        expect(crashed(r().verifyIommu.dispatch)).toBeNull();
      });

      check(m.id, devices, "verify-iommu's advice is not contradictory", () => {
        holds(contradictoryAdvice(r()));
      });

      check(
        m.id,
        devices,
        "the status names each selected function the host keeps, and the override",
        () => {
          holds(keptNotNamed(r()));
        },
      );

      check(m.id, devices, "an absent /sys/kernel/iommu_groups is not called empty", () => {
        holds(
          absentGroupsCalledEmpty(r().groupsDirRecorded, [
            r().status.message,
            verifyText(r().verifyIommu),
          ]),
        );
      });
    },
  );

  /** list-devices does not depend on the selection: run once, with the first. */
  const listed = () => runs.get(m.selections[0]!.devices)!.listDevices!;

  check(m.id, "", "list-devices runs without a crash", () => {
    expect(crashed(listed().dispatch)).toBeNull();
    expect(listed().failed).toBe(false);
  });

  check(m.id, "", "list-devices lists every recorded function whose ids are readable", () => {
    const r = runs.get(m.selections[0]!.devices)!;
    const listedAddresses = new Set(
      Object.values(
        (listed().results["devices"] ?? {}) as Record<string, Record<string, string>>,
      ).map((d) => d["address"]),
    );
    const readable = r.run.functions.filter((f) => f.ids !== null).map((f) => f.address);
    holds(readable.filter((a) => !listedAddresses.has(a)).map((a) => `${a} is not listed`));
  });

  check(m.id, "", "list-devices says the host uses each function it uses", () => {
    const devices = Object.values(
      (listed().results["devices"] ?? {}) as Record<string, Record<string, string>>,
    );
    const silent = Object.keys(m.uses).filter(
      (address) => !devices.some((d) => d["address"] === address && (d["host-use"] ?? "") !== ""),
    );
    holds(silent.map((a) => `${a} shows no host use, yet ${m.uses[a]}`));
  });
});

/** What the charm said on a recording with nothing added (no osrelease, no module index, no
 * /proc/cmdline on four of them, driver links into missing directories). */
interface RawRun {
  dispatches: DispatchResult[];
  status: string;
  statusMessage: string;
  /** install's and config-changed's juju-log lines. */
  logs: string[];
  verify: SelectionRun["verifyIommu"];
  cmdlineRecorded: boolean;
  groupsDirRecorded: boolean;
  /** Missing driver directory → how many recorded devices link to it. */
  danglingDrivers: string[];
}

function runRaw(m: RealHostManifest): RawRun {
  const host = unpackRealHost(m, { additions: false });
  const unit = deployPackedCharm(host.root, { config: { devices: m.selections[0]!.devices } });
  try {
    const hooks = [unit.dispatch("install"), unit.dispatch("config-changed")];
    const state = unit.sim.readState();
    // Both hooks' log lines: each reads the host afresh, and a warning is said when it changes.
    const logs = state.calls
      .filter((c) => c.argv[0] === "juju-log")
      .map((c) => c.argv.slice(1).join(" "));
    const list = unit.dispatch({ name: "list-devices-action", params: {} });
    const verifyDispatch = unit.dispatch({ name: "verify-iommu-action", params: {} });
    const a = unit.sim.readState().lastAction!;
    return {
      dispatches: [...hooks, list, verifyDispatch],
      status: state.unitStatus.status,
      statusMessage: state.unitStatus.message,
      logs,
      verify: {
        failed: a.failed,
        failureMessage: a.failureMessage,
        results: a.results as Record<string, unknown>,
        dispatch: verifyDispatch,
      },
      cmdlineRecorded: fs.existsSync(path.join(host.root, "proc/cmdline")),
      groupsDirRecorded: fs.existsSync(path.join(host.root, "sys/kernel/iommu_groups")),
      danglingDrivers: danglingDrivers(host.root),
    };
  } finally {
    unit.cleanup();
    host.cleanup();
  }
}

describe.each(manifests.map((m) => [m.id, m] as const))(
  "real host %s as recorded, with nothing added",
  (_id, m) => {
    let raw: RawRun;
    beforeAll(() => {
      raw = runRaw(m);
    }, 120_000);
    const said = () => [raw.statusMessage, ...raw.logs, verifyText(raw.verify)];

    check(m.id, "raw", "every hook and action runs without a crash or a hook error", () => {
      holds(raw.dispatches.map(crashed).filter((p) => p !== null));
      expect(raw.status).not.toBe("error");
    });

    check(m.id, "raw", "a missing osrelease does not read as a kernel with an empty name", () => {
      holds(
        said()
          .filter((t) => /kernel\s{2}|kernel \(\)|linux-modules-extra-(?![0-9a-z])/.test(t))
          .map((t) => `empty kernel release in: ${t.slice(0, 200)}`),
      );
    });

    check(m.id, "raw", "a missing /proc/cmdline reads as unknown, not as not booted with", () => {
      if (raw.cmdlineRecorded) return;
      holds(
        said()
          .filter((t) => /not booted with/.test(t))
          .map(
            (t) =>
              `no /proc/cmdline was recorded, yet: ${t.match(/.{0,60}not booted with.{0,40}/)?.[0]}`,
          ),
      );
    });

    check(
      m.id,
      "raw",
      "driver links into missing driver directories are stated once, not per device",
      () => {
        const mentions = raw.logs.filter((line) =>
          raw.danglingDrivers.some(
            (d) => line.includes(`"${d}"`) || line.includes(`/drivers/${d}`),
          ),
        );
        holds(
          mentions.length <= raw.danglingDrivers.length
            ? []
            : [
                `${mentions.length} log lines for ${raw.danglingDrivers.length} missing drivers, e.g. ${mentions[0]}`,
              ],
        );
      },
    );

    check(m.id, "raw", "an absent /sys/kernel/iommu_groups is not called empty", () => {
      holds(absentGroupsCalledEmpty(raw.groupsDirRecorded, said()));
    });
  },
);
