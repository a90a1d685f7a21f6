// The quiet-hook memo's parts, in process: the read door records what each read answered and a
// replay tells a changed answer from an unchanged one; the key covers every input that is not a
// file; the memo file round-trips and refuses what is not one; and a whole hook's recorded reads
// (prepareHost on the seed host) replay true until the host changes under them.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  accessExecutable,
  countChange,
  digest,
  existsSync,
  type Footprint,
  MAX_RECORDED_READS,
  markVolatile,
  now,
  opendirSync,
  readdirSync,
  readFileSync,
  readHead,
  readlinkSync,
  realpathSync,
  replayRead,
  startRecording,
  statSync,
  stopRecording,
} from "../../src/host/fs";
import { readPciFunctions } from "../../src/host/pci";
import { OWNED } from "../../src/host/root";
import { EMPTY_MEMORY, prepareHost } from "../../src/host-preparation";
import { notQuiet } from "../../src/quiet/keep";
import { memoHook, memoKey, memoReads, renderMemo } from "../../src/quiet/memo";
import { useCleanups } from "../support/cleanups";
import { recordingRunner } from "../support/fault-injection/apply-scenarios";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost, syntheticHost } from "../support/hosts/presets";
import { useTempDirs } from "../support/temp-files";

const temp = useTempDirs();
const cleanups = useCleanups();

afterEach(() => {
  stopRecording();
});

/** Records what `run` reads. */
function recording(run: () => void): Footprint {
  startRecording();
  run();
  const seen = stopRecording();
  if (seen === null) throw new Error("the recording started above is gone");
  return seen;
}

const tryRead = (read: () => unknown) => {
  try {
    read();
  } catch {}
};

describe("the read door (host/fs.ts)", () => {
  it("records each kind of read, and a replay says whether it still answers the same", () => {
    const dir = temp("quiet-door-");
    const file = path.join(dir, "uevent");
    const link = path.join(dir, "driver");
    const program = path.join(dir, "tool");
    fs.writeFileSync(file, "DRIVER=nouveau\n");
    fs.symlinkSync("../../bus/pci/drivers/nouveau", link);
    fs.writeFileSync(program, "#!/bin/sh\n", { mode: 0o755 });
    const seen = recording(() => {
      expect(readFileSync(file, "latin1")).toBe("DRIVER=nouveau\n");
      expect(readHead(file, Buffer.alloc(6)).valueOf()).toBe(6);
      expect(readlinkSync(link)).toBe("../../bus/pci/drivers/nouveau");
      expect(readdirSync(dir).sort()).toEqual(["driver", "tool", "uevent"]);
      expect(existsSync(path.join(dir, "absent"))).toBe(false);
      expect(statSync(file).size).toBe(15);
      expect(realpathSync(file)).toBe(fs.realpathSync(file));
      accessExecutable(program);
      tryRead(() => readFileSync(path.join(dir, "absent")));
    });
    expect(seen.volatile).toBeNull();
    expect(seen.reads.map(([op]) => op)).toEqual([
      "read",
      "head6",
      "link",
      "list",
      "exists",
      "stat",
      "realpath",
      "exec",
      "read",
    ]);
    expect(seen.reads[8]).toEqual(["read", path.join(dir, "absent"), "!ENOENT"]);
    expect(seen.reads.every(replayRead)).toBe(true);

    // Each change is seen by the replay of the read that depended on it.
    fs.writeFileSync(file, "DRIVER=vfio-pci\n");
    fs.rmSync(link);
    fs.symlinkSync("../../bus/pci/drivers/vfio-pci", link);
    fs.chmodSync(program, 0o644);
    fs.writeFileSync(path.join(dir, "absent"), "");
    expect(seen.reads.map((r) => [r[0], replayRead(r)])).toEqual([
      ["read", false],
      ["head6", true], // its first 6 bytes are still "DRIVER"
      ["link", false],
      ["list", false], // a new entry
      ["exists", false],
      ["stat", false],
      ["realpath", true],
      ["exec", false],
      ["read", false], // absent no more
    ]);
  });

  it("marks a dispatch volatile when it reads what a replay cannot read again", () => {
    const dir = temp("quiet-volatile-");
    expect(recording(() => now()).volatile).toBe("it read the clock");
    expect(recording(() => opendirSync(dir).closeSync()).volatile).toMatch(/in pieces/);
    const odd = path.join(dir, "a\tb");
    fs.writeFileSync(odd, "");
    expect(recording(() => readFileSync(odd)).volatile).toMatch(/a path with a tab/);
    const file = path.join(dir, "f");
    fs.writeFileSync(file, "1");
    const moved = recording(() => {
      readFileSync(file);
      fs.writeFileSync(file, "2");
      readFileSync(file);
    });
    expect(moved.volatile).toBe(`${file} changed while the hook read it`);
    expect(recording(() => markVolatile("why")).volatile).toBe("why");
  });

  it("stops recording a hook that reads more than a memo is worth", () => {
    const dir = temp("quiet-many-");
    const seen = recording(() => {
      for (let i = 0; i <= MAX_RECORDED_READS; i++) existsSync(path.join(dir, String(i)));
    });
    expect(seen.volatile).toBe(`it read more than ${MAX_RECORDED_READS} files`);
    expect(seen.reads.length).toBe(MAX_RECORDED_READS);
  });

  it("does not record a host of more than 4,000 functions past listing them", () => {
    const host = makeTempHost(syntheticHost(4_500));
    cleanups.push(host.cleanup);
    const seen = recording(() => readPciFunctions(host.root));
    expect(seen.volatile).toMatch(/^a host of 4\d{3} PCI functions/);
    expect(seen.reads.length).toBe(1); // the listing of /sys/bus/pci/devices
  });

  it("counts changes, and records nothing while nobody records", () => {
    expect(recording(() => countChange()).changes).toBe(1);
    countChange();
    expect(stopRecording()).toBeNull();
  });

  it("digests bytes the same wherever they lie in memory (four at a time when aligned)", () => {
    const bytes = Buffer.from("PCI_SLOT_NAME=0000:83:00.0\nDRIVER=vfio-pci\n");
    const shifted = Buffer.alloc(bytes.length + 3);
    bytes.copy(shifted, 3);
    const unaligned = shifted.subarray(3);
    expect(unaligned.byteOffset & 3).not.toBe(0);
    expect(digest(unaligned)).toBe(digest(new Uint8Array(bytes)));
    expect(digest(bytes.subarray(0, bytes.length - 1))).not.toBe(digest(bytes));
    bytes[5] = 0x20;
    expect(digest(bytes)).not.toBe(digest(unaligned));
  });

  it("replays an operation it does not know as changed", () => {
    expect(replayRead(["chmod", "/", "ok"])).toBe(false);
  });
});

describe("the memo's key and file (quiet/memo.ts)", () => {
  const env = { JUJU_UNIT_NAME: "pci-passthrough/0", PATH: "/usr/bin", JUJU_CONTEXT_ID: "a-1" };
  const key = memoKey("charm1", "update-status", env, "config-get\t{}\n");

  it("changes with every input but the uniter's id of the run and the order of the variables", () => {
    expect(
      memoKey("charm1", "update-status", { ...env, JUJU_CONTEXT_ID: "a-2" }, "config-get\t{}\n"),
    ).toBe(key);
    const reordered = { PATH: env.PATH, JUJU_CONTEXT_ID: "b", JUJU_UNIT_NAME: env.JUJU_UNIT_NAME };
    expect(memoKey("charm1", "update-status", reordered, "config-get\t{}\n")).toBe(key);
    const others = [
      memoKey("charm2", "update-status", env, "config-get\t{}\n"),
      memoKey("charm1", "config-changed", env, "config-get\t{}\n"),
      memoKey("charm1", "update-status", { ...env, PATH: "/bin" }, "config-get\t{}\n"),
      memoKey("charm1", "update-status", { ...env, JUJU_REMOTE_UNIT: "x/0" }, "config-get\t{}\n"),
      memoKey("charm1", "update-status", env, 'config-get\t{"devices":"10de:1bb0"}\n'),
    ];
    expect(new Set([key, ...others]).size).toBe(6);
  });

  it("stands for hooks only", () => {
    expect(memoHook("hooks/update-status")).toBe("update-status");
    expect(memoHook("actions/list-devices")).toBeNull();
    expect(memoHook("hooks/../x")).toBeNull();
    expect(memoHook(undefined)).toBeNull();
  });

  it("round-trips, and refuses another key, a torn file or a garbled line", () => {
    const reads = [
      ["read", "/sys/bus/pci/devices/0000:83:00.0/uevent", "00a1b2c3d4e5f6"],
      ["link", "/sys/bus/pci/devices/0000:83:00.0/driver", "!ENOENT"],
    ] as const;
    const text = renderMemo(key, reads);
    expect(memoReads(text, key)).toEqual(reads);
    expect(memoReads(text, "another")).toBeNull();
    expect(memoReads(text.slice(0, -1), key)).toBeNull();
    expect(memoReads(text.replace("\t!ENOENT", ""), key)).toBeNull();
  });
});

describe("a whole hook's reads (prepareHost on the seed host)", () => {
  const hook = (root: string) =>
    prepareHost({ devices: "0000:83:00.0" }, EMPTY_MEMORY, {
      root,
      runner: recordingRunner(),
      log: () => {},
    });

  it("replay true on the same host, false once a read's answer changed", () => {
    const host = makeTempHost(seedHost());
    cleanups.push(host.cleanup);
    hook(host.root); // the first hook writes the files; the next reads them back
    const seen = recording(() => hook(host.root));
    expect(seen.volatile).toBeNull();
    expect(seen.changes).toBe(0);
    expect(seen.reads.length).toBeGreaterThan(50);
    expect(seen.reads.every(replayRead)).toBe(true);
    // Someone edits a file the charm owns: the replay sees it (and so the next hook runs, and
    // puts it back).
    const owned = path.join(host.root, OWNED.modprobeConf);
    fs.appendFileSync(owned, "# edited by hand\n");
    expect(new Set(seen.reads.filter((r) => !replayRead(r)).map((r) => r[1]))).toEqual(
      new Set([owned]),
    );
    // The GPU moves to another driver.
    const driver = path.join(host.root, "sys/bus/pci/devices/0000:83:00.0/driver");
    const before = fs.readlinkSync(driver);
    fs.rmSync(driver);
    fs.symlinkSync(before.replace(/[^/]+$/, "nouveau"), driver);
    expect(seen.reads.filter((r) => !replayRead(r)).length).toBeGreaterThan(1);
  });
});

describe("what a run must not have done to stand as a memo (quiet/keep.ts)", () => {
  const quiet: Footprint = { reads: [], changes: 0, volatile: null };
  it("names the first reason", () => {
    expect(notQuiet(0, quiet, [])).toBeNull();
    expect(notQuiet(1, quiet, [])).toBe("it exited 1");
    expect(notQuiet(0, quiet, ["status-set"])).toBe("it started status-set");
    expect(notQuiet(0, { ...quiet, changes: 2 }, [])).toBe("it made 2 changes to the host");
    expect(notQuiet(0, { ...quiet, volatile: "it read the clock" }, [])).toBe("it read the clock");
  });
});
