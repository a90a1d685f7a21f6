import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CommandRunner } from "../../src/apply/commands";
import { type FsOps, realFs } from "../../src/apply/files";
import {
  applyHostFiles,
  EMPTY_FILES_STATE,
  fingerprint,
  NotOursError,
} from "../../src/apply/host-files";
import { OWNED, SHARED } from "../../src/host/root";
import type { FileSpec, HostPlan } from "../../src/plan/types";
import { diffTrees, snapshotTree, tempDir, writeTree } from "../support/tree";

const HEADER = "# Managed by the pci-passthrough Juju charm. Do not edit.\n";

function plan(grubParams: string, bound: boolean): Pick<HostPlan, "files" | "feeds"> {
  const files: FileSpec[] = [
    {
      path: OWNED.grubDropIn,
      content: `${HEADER}GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT ${grubParams}"\n`,
      mode: 0o644,
    },
  ];
  if (bound) {
    files.push({ path: OWNED.udevRule, content: `${HEADER}ACTION=="add"\n`, mode: 0o644 });
    files.push({ path: OWNED.initramfsHook, content: `#!/bin/sh\n${HEADER}`, mode: 0o755 });
    files.push({ path: OWNED.bindHelper, content: `#!/bin/sh\n${HEADER}`, mode: 0o755 });
  }
  return {
    files,
    feeds: {
      [OWNED.grubDropIn]: ["grub"],
      [OWNED.udevRule]: ["initramfs"],
      [OWNED.initramfsHook]: ["initramfs"],
    },
  };
}

/** Counts every mutating filesystem call, so "a no-op writes nothing" is a number, not a hope,
 * and every whole-file read by path, so "each file is read once" is one too. */
function countingFs(): { fs: FsOps; writes: () => number; reads: () => Map<string, number> } {
  let writes = 0;
  const reads = new Map<string, number>();
  const count =
    <A extends unknown[], R>(f: (...a: A) => R) =>
    (...a: A): R => {
      writes++;
      return f(...a);
    };
  return {
    fs: {
      ...realFs,
      openSync: (p, flags, mode) => {
        if (flags !== "r") writes++;
        return realFs.openSync(p, flags, mode);
      },
      renameSync: count(realFs.renameSync),
      unlinkSync: count(realFs.unlinkSync),
      chmodSync: count(realFs.chmodSync),
      readFileSync: (p) => {
        reads.set(p, (reads.get(p) ?? 0) + 1);
        return realFs.readFileSync(p);
      },
    },
    writes: () => writes,
    reads: () => reads,
  };
}

describe("applyHostFiles", () => {
  let root: string;
  let cleanup: () => void;
  let commands: string[][];
  const runner: CommandRunner = (argv) => {
    commands.push(argv);
    return { exitCode: 0, stdout: "", stderr: "" };
  };
  beforeEach(() => {
    ({ dir: root, cleanup } = tempDir());
    commands = [];
    writeTree(root, {
      "/etc/default/grub": 'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\n',
      "/etc/default/grub.d/50-cloudimg-settings.cfg":
        'GRUB_CMDLINE_LINUX_DEFAULT="console=tty1 console=ttyS0"\n',
      "/etc/modprobe.d/blacklist.conf": "blacklist evbug\n",
    });
  });
  afterEach(() => cleanup());

  it("writes the files, regenerates both, and asks for a reboot", () => {
    const report = applyHostFiles(plan("intel_iommu=on", true), EMPTY_FILES_STATE, {
      root,
      runner,
    });
    expect(commands).toEqual([["update-initramfs", "-u", "-k", "all"], ["update-grub"]]);
    expect(report.regenerated).toEqual(["initramfs", "grub"]);
    expect(fs.readFileSync(path.join(root, OWNED.grubDropIn), "utf8")).toContain("intel_iommu=on");
    expect(fs.statSync(path.join(root, OWNED.initramfsHook)).mode & 0o777).toBe(0o755);
    expect(fs.readFileSync(path.join(root, SHARED.rebootRequiredPkgs), "utf8")).toBe(
      "pci-passthrough\n",
    );
  });

  it("a second identical run writes nothing and runs nothing", () => {
    const first = applyHostFiles(plan("intel_iommu=on", true), EMPTY_FILES_STATE, { root, runner });
    commands = [];
    const counting = countingFs();
    const second = applyHostFiles(plan("intel_iommu=on", true), first.state, {
      root,
      runner,
      fs: counting.fs,
    });
    expect(counting.writes()).toBe(0);
    expect(commands).toEqual([]);
    expect(second.files.every((f) => f.action === "unchanged")).toBe(true);
    // Each owned file is read once: the ownership check's bytes are the ones compared.
    const readTwice = [...counting.reads()].filter(([, n]) => n > 1).map(([p]) => p);
    expect(readTwice).toEqual([]);
    expect(counting.reads().get(path.join(root, OWNED.grubDropIn))).toBe(1);
  });

  it("regenerates only what a change feeds", () => {
    const first = applyHostFiles(plan("intel_iommu=on", true), EMPTY_FILES_STATE, { root, runner });
    commands = [];
    applyHostFiles(plan("intel_iommu=on iommu=pt", true), first.state, { root, runner });
    expect(commands).toEqual([["update-grub"]]);
  });

  it("a program not on the host is not run again for the same inputs, until it appears", () => {
    const noGrub: CommandRunner = (argv) => {
      commands.push(argv);
      return argv[0] === "update-grub"
        ? { exitCode: 127, stdout: "", stderr: "spawnSync update-grub ENOENT" }
        : { exitCode: 0, stdout: "", stderr: "" };
    };
    let grubThere = false;
    const deps = { root, runner: noGrub, hasProgram: () => grubThere };
    const first = applyHostFiles(plan("intel_iommu=on", true), EMPTY_FILES_STATE, deps);
    expect(commands).toEqual([["update-initramfs", "-u", "-k", "all"], ["update-grub"]]);
    expect(first.failed.map((f) => [f.message, f.remembered])).toEqual([
      ["`update-grub` was not run: update-grub is not on this host (not found on PATH)", undefined],
    ]);
    expect(first.state.notFound).toEqual({ grub: expect.any(String) });

    // The next hook, nothing changed: it runs nothing, writes nothing, and repeats the finding.
    commands = [];
    const counting = countingFs();
    const second = applyHostFiles(plan("intel_iommu=on", true), first.state, {
      ...deps,
      fs: counting.fs,
    });
    expect(commands).toEqual([]);
    expect(counting.writes()).toBe(0);
    expect(second.failed.map((f) => [f.result.exitCode, f.remembered])).toEqual([[127, true]]);
    expect(second.state).toEqual(first.state);

    // New inputs: tried again (grub may have come with them).
    const third = applyHostFiles(plan("intel_iommu=on iommu=pt", true), first.state, deps);
    expect(commands).toEqual([["update-grub"]]);

    // grub installed, same inputs: it runs, and the finding is forgotten.
    commands = [];
    grubThere = true;
    const ok: CommandRunner = (argv) => {
      commands.push(argv);
      return { exitCode: 0, stdout: "", stderr: "" };
    };
    const fourth = applyHostFiles(plan("intel_iommu=on iommu=pt", true), third.state, {
      ...deps,
      runner: ok,
    });
    expect(commands).toEqual([["update-grub"]]);
    expect(fourth.failed).toEqual([]);
    expect(fourth.state.notFound).toBeUndefined();
  });

  it("reruns a regeneration that a killed hook never finished", () => {
    const first = applyHostFiles(plan("intel_iommu=on", false), EMPTY_FILES_STATE, {
      root,
      runner,
    });
    // The files changed but the hook died before its state was saved: the old state comes back.
    applyHostFiles(plan("intel_iommu=on iommu=pt", false), first.state, { root, runner });
    commands = [];
    applyHostFiles(plan("intel_iommu=on iommu=pt", false), first.state, { root, runner });
    expect(commands).toEqual([["update-grub"]]);
  });

  it("removal restores the original tree byte for byte (bar reboot-required)", () => {
    const before = snapshotTree(root);
    const installed = applyHostFiles(plan("intel_iommu=on", true), EMPTY_FILES_STATE, {
      root,
      runner,
    });
    commands = [];
    const removed = applyHostFiles({ files: [], feeds: {} }, installed.state, { root, runner });
    expect(commands).toEqual([["update-initramfs", "-u", "-k", "all"], ["update-grub"]]);
    expect(removed.files.filter((f) => f.action === "removed").map((f) => f.path)).toEqual([
      OWNED.grubDropIn,
      OWNED.initramfsHook,
      OWNED.udevRule,
      OWNED.bindHelper,
      "/usr/local/lib/pci-passthrough",
    ]);
    const after = snapshotTree(root, { skip: (rel) => rel.startsWith("var") });
    // Directories the charm created stay (they are shared: /etc/udev/rules.d etc.); files are gone.
    expect(diffTrees(before, after).filter((l) => !isCreatedDir(root, l))).toEqual([]);
    expect(fs.existsSync(path.join(root, SHARED.rebootRequired))).toBe(true);
    // The charm's own directory goes too (tier 2 found it left behind, empty).
    expect(fs.existsSync(path.join(root, "/usr/local/lib/pci-passthrough"))).toBe(false);
  });

  it("refuses a foreign file at our path and writes nothing at all", () => {
    writeTree(root, { [OWNED.udevRule]: "# the operator's own rule\n" });
    const before = snapshotTree(root);
    expect(() =>
      applyHostFiles(plan("intel_iommu=on", true), EMPTY_FILES_STATE, { root, runner }),
    ).toThrow(NotOursError);
    expect(diffTrees(before, snapshotTree(root))).toEqual([]);
    expect(commands).toEqual([]);
  });

  it("keeps an operator's edit to a managed file and says which file", () => {
    const first = applyHostFiles(plan("intel_iommu=on", true), EMPTY_FILES_STATE, { root, runner });
    fs.appendFileSync(path.join(root, OWNED.grubDropIn), "GRUB_TIMEOUT=1\n");
    expect(() =>
      applyHostFiles(plan("intel_iommu=on iommu=pt", true), first.state, { root, runner }),
    ).toThrow(/99-pci-passthrough.cfg was edited/);
    expect(fs.readFileSync(path.join(root, OWNED.grubDropIn), "utf8")).toContain("GRUB_TIMEOUT=1");
  });

  it("takes back its own file after stored state was lost (header present)", () => {
    applyHostFiles(plan("intel_iommu=on", false), EMPTY_FILES_STATE, { root, runner });
    expect(() =>
      applyHostFiles(plan("intel_iommu=on iommu=pt", false), EMPTY_FILES_STATE, { root, runner }),
    ).not.toThrow();
  });

  it("does not touch the operator's grub files", () => {
    const grub = fs.readFileSync(path.join(root, "/etc/default/grub"));
    applyHostFiles(plan("intel_iommu=on", true), EMPTY_FILES_STATE, { root, runner });
    expect(fs.readFileSync(path.join(root, "/etc/default/grub")).equals(grub)).toBe(true);
  });
});

function isCreatedDir(root: string, line: string): boolean {
  if (!line.startsWith("+ ")) return false;
  return fs.statSync(path.join(root, line.slice(2))).isDirectory();
}

describe("applyHostFiles around files that are not ours", () => {
  let root: string;
  let cleanup: () => void;
  const runner: CommandRunner = () => ({ exitCode: 0, stdout: "", stderr: "" });
  beforeEach(() => {
    ({ dir: root, cleanup } = tempDir());
  });
  afterEach(() => cleanup());

  it("leaves a foreign file alone when the plan does not need its path", () => {
    writeTree(root, { [OWNED.modprobeConf]: "options kvm ignore_msrs=1\n" });
    const report = applyHostFiles(plan("intel_iommu=on", false), EMPTY_FILES_STATE, {
      root,
      runner,
    });
    expect(fs.readFileSync(path.join(root, OWNED.modprobeConf), "utf8")).toBe(
      "options kvm ignore_msrs=1\n",
    );
    expect(report.files.map((f) => f.path)).not.toContain(OWNED.modprobeConf);
  });

  it("removal keeps an operator's edit and removes the rest", () => {
    const installed = applyHostFiles(plan("intel_iommu=on", true), EMPTY_FILES_STATE, {
      root,
      runner,
    });
    fs.appendFileSync(path.join(root, OWNED.udevRule), "# keep me\n");
    const removed = applyHostFiles({ files: [], feeds: {} }, installed.state, { root, runner });
    expect(removed.files).toContainEqual({ path: OWNED.udevRule, action: "kept" });
    expect(fs.readFileSync(path.join(root, OWNED.udevRule), "utf8")).toContain("# keep me");
    expect(fs.existsSync(path.join(root, OWNED.grubDropIn))).toBe(false);
  });
});

describe("fingerprint", () => {
  it("is cyrb53 (the published values) plus the byte length", () => {
    // From the algorithm's own README (seed 0), so a slip in a constant cannot pass.
    expect(fingerprint("a")).toBe(`cyrb53:${(7929297801672961).toString(16).padStart(14, "0")}:1`);
    expect(fingerprint("revenge")).toBe(
      `cyrb53:${(4051478007546757).toString(16).padStart(14, "0")}:7`,
    );
    expect(fingerprint("revenue")).toBe(
      `cyrb53:${(8309097637345594).toString(16).padStart(14, "0")}:7`,
    );
  });

  it("hashes bytes: the same for a string and its UTF-8 buffer, different for one edit", () => {
    const text = "options vfio-pci ids=10de:1bb0 # ünïcode\n";
    expect(fingerprint(Buffer.from(text, "utf8"))).toBe(fingerprint(text));
    expect(fingerprint(text.replace("1bb0", "1bb1"))).not.toBe(fingerprint(text));
    expect(fingerprint("")).toMatch(/^cyrb53:[0-9a-f]{14}:0$/);
  });
});
