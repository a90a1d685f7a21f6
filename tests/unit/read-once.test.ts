// Each host file read once per dispatch: the kernel facts (vfio-pci built in?) and the plan's module
// names both come from modules.builtin/modules.dep, read once and handed on as data; and an entry
// that matches nothing here reads no module file and no driver link. Counted at node:fs itself,
// so any reader of host/ that opens a file again is caught, not only the ones named here.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../src/config";
import { readHostFacts } from "../../src/host/read-facts";
import { EMPTY_MEMORY, planModulesFor, prepareHost } from "../../src/host-preparation";
import { useCleanups } from "../support/cleanups";
import { recordingRunner } from "../support/fault-injection/apply-scenarios";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import { charmContext, useRoot } from "../support/scenario";

/** Host paths (relative to the root) node:fs was asked to read, open or readlink, in order;
 * `stats`: the ones it was asked to stat (a stat is how a big file is known unchanged). */
const seen = vi.hoisted(() => ({ root: "", paths: [] as string[], stats: [] as string[] }));

vi.mock("node:fs", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs")>();
  const note = (file: unknown) => {
    if (seen.root !== "" && typeof file === "string" && file.startsWith(seen.root)) {
      seen.paths.push(file.slice(seen.root.length));
    }
  };
  const counted = {
    ...real,
    readFileSync: ((file: unknown, ...rest: unknown[]) => {
      note(file);
      return (real.readFileSync as (...a: unknown[]) => unknown)(file, ...rest);
    }) as typeof real.readFileSync,
    openSync: ((file: unknown, ...rest: unknown[]) => {
      note(file);
      return (real.openSync as (...a: unknown[]) => unknown)(file, ...rest);
    }) as typeof real.openSync,
    readlinkSync: ((file: unknown, ...rest: unknown[]) => {
      note(file);
      return (real.readlinkSync as (...a: unknown[]) => unknown)(file, ...rest);
    }) as typeof real.readlinkSync,
    statSync: ((file: unknown, ...rest: unknown[]) => {
      if (seen.root !== "" && typeof file === "string" && file.startsWith(seen.root)) {
        seen.stats.push(file.slice(seen.root.length));
      }
      return (real.statSync as (...a: unknown[]) => unknown)(file, ...rest);
    }) as typeof real.statSync,
  };
  return { ...counted, default: counted };
});

const cleanups = useCleanups();
const RELEASE = "6.8.0-45-generic";
const BUILTIN = `/lib/modules/${RELEASE}/modules.builtin`;
const DEP = `/lib/modules/${RELEASE}/modules.dep`;

afterEach(() => {
  seen.root = "";
  seen.paths = [];
  seen.stats = [];
  vi.unstubAllEnvs();
});

function seed(): string {
  const built = makeTempHost(seedHost());
  cleanups.push(built.cleanup);
  return built.root;
}

/** Counts of each path read while `run` runs. */
function reads(root: string, run: () => void): Map<string, number> {
  seen.root = root;
  seen.paths = [];
  run();
  const counts = new Map<string, number>();
  for (const p of seen.paths) counts.set(p, (counts.get(p) ?? 0) + 1);
  seen.root = "";
  return counts;
}

const twice = (counts: Map<string, number>) => [...counts].filter(([, n]) => n > 1);

const hook = (root: string, config: Record<string, unknown>, memory = prepared(root, config)) =>
  prepareHost(config, memory, { root, runner: recordingRunner(), log: () => {} });

function prepared(root: string, config: Record<string, unknown>) {
  return prepareHost(config, EMPTY_MEMORY, {
    root,
    runner: recordingRunner(),
    log: () => {},
  }).memory;
}

describe("a dispatch reads each host file once", () => {
  it("a no-op config-changed with a selection: modules.builtin and modules.dep once, nothing twice", () => {
    const root = seed();
    const config = { devices: "0000:83:00.0" };
    const memory = prepared(root, config);
    let outcome = "";
    const counts = reads(root, () => {
      outcome = hook(root, config, memory).outcome.kind;
    });
    expect(outcome).toBe("prepared");
    expect(twice(counts)).toEqual([]);
    // modules.builtin once (vfio-pci built in?); modules.dep not at all: the plan's module names
    // are the last hook's answers while both listings are the same files.
    expect(counts.get(BUILTIN)).toBe(1);
    expect(counts.has(DEP)).toBe(false);
  });

  it("the first hook reads both listings once; a rewritten modules.dep is read and believed", () => {
    const root = seed();
    const config = { devices: "0000:83:00.0" };
    let first: ReturnType<typeof hook> | null = null;
    const counts = reads(root, () => {
      first = prepareHost(config, EMPTY_MEMORY, { root, runner: recordingRunner(), log: () => {} });
    });
    // (A hook that writes reads its own files back; the listings are read once all the same.)
    expect(counts.get(BUILTIN)).toBe(1);
    expect(counts.get(DEP)).toBe(1);
    const memory = first!.memory;
    expect(first!.plan!.softdeps).toContain("nouveau");
    // depmod without nouveau (a new file): the next hook reads it and no longer names nouveau.
    const dep = path.join(root, DEP);
    const text = fs.readFileSync(dep, "latin1");
    fs.rmSync(dep);
    fs.writeFileSync(
      dep,
      text
        .split("\n")
        .filter((l) => !l.includes("/nouveau.ko"))
        .join("\n"),
    );
    let next: ReturnType<typeof hook> | null = null;
    const after = reads(root, () => {
      next = hook(root, config, memory);
    });
    expect(after.get(DEP)).toBe(1);
    expect(next!.plan!.softdeps).not.toContain("nouveau");
    expect(next!.plan!.notes.join("\n")).toContain("nouveau");
  });

  it("an action's read (facts, then the plan's modules): the listing read by the facts is reused", () => {
    const root = seed();
    const parsed = parseConfig({ devices: "0000:83:00.0" });
    if (!parsed.ok) throw new Error("config refused");
    const counts = reads(root, () => {
      const { facts, moduleListing } = readHostFacts(root);
      planModulesFor(parsed.config, root, facts, null, moduleListing);
    });
    expect(twice(counts)).toEqual([]);
    expect(counts.get(BUILTIN)).toBe(1);
  });

  it("the facts alone read modules.builtin and, vfio-pci being built in, not modules.dep", () => {
    const root = seed();
    const counts = reads(root, () => readHostFacts(root));
    expect(counts.get(BUILTIN)).toBe(1);
    expect(counts.has(DEP)).toBe(false);
  });

  it("an entry that matches nothing here reads no module file and no driver link", () => {
    const root = seed();
    const config = { devices: "0000:99:00.0" };
    const memory = prepared(root, config);
    let plan: unknown = null;
    const counts = reads(root, () => {
      plan = hook(root, config, memory).plan;
    });
    expect(plan).not.toBeNull();
    expect(counts.has(DEP)).toBe(false);
    expect(counts.has(`/lib/modules/${RELEASE}/modules.alias`)).toBe(false);
    expect([...counts.keys()].filter((p) => path.basename(p) === "module")).toEqual([]);
    // With a match, the same hook reads them: the count above is not blind.
    const matching = { devices: "0000:83:00.0" };
    const withMatch = reads(root, () => hook(root, matching, prepared(root, matching)));
    expect(withMatch.has(DEP)).toBe(true);
    expect([...withMatch.keys()].some((p) => path.basename(p) === "module")).toBe(true);
  });
});

describe("dpkg's status: one stat per hook, read only when it changed", () => {
  const DPKG_STATUS = "/var/lib/dpkg/status";

  it("a hook that offers a device to nova stats it once, for the relation and the fleet alike", () => {
    const root = seed();
    fs.mkdirSync(path.join(root, "var/lib/dpkg"), { recursive: true });
    fs.writeFileSync(
      path.join(root, DPKG_STATUS),
      "Package: nova-common\nStatus: install ok installed\nVersion: 3:29.0.1-0ubuntu1\n\n",
    );
    useRoot(root);
    const config = { devices: "0000:83:00.0" };
    const first = charmContext().run("config-changed", { config });
    // The release is remembered with the file's stamp: the plan offers something.
    expect(first.stored["nova-release"]).toMatchObject({ release: { upstream: [29, 0, 1] } });
    seen.root = root;
    const idle = charmContext().run("update-status", first);
    seen.root = "";
    expect(idle.stored["nova-release"]).toEqual(first.stored["nova-release"]);
    expect(seen.stats.filter((p) => p === DPKG_STATUS)).toEqual([DPKG_STATUS]);
    // Unchanged since the last hook: not read at all.
    expect(seen.paths.filter((p) => p === DPKG_STATUS)).toEqual([]);
  });
});
