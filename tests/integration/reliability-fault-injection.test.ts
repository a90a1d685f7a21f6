// Fault injection, in-process: for every call the apply step makes that writes, renames, removes
// or syncs (the FsOps seam), fail exactly that call with ENOSPC, EIO and EACCES; and fail each
// regeneration command. After each failure: every managed file holds its old or its new bytes,
// nothing outside the managed set changed, the hook reports an error naming the path (a failed
// command is reported, not thrown: see the last test), and the next hook (real fs, the stored
// state Juju kept: a failed hook's state is never committed) converges
// to exactly what a clean run leaves, running update-grub / update-initramfs as a clean run does.
// The injection points are enumerated by a clean, counting run of each scenario.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FileApplyError } from "../../src/apply/files";
import { recordingRunner, runHook } from "../support/fault-injection/apply-scenarios";
import { errnoError, type FsCall, faultyFs } from "../support/fault-injection/faulty-fs";
import {
  afterFailureProblems,
  buildScenarios,
  callDirectory,
  convergeProblems,
  copyTree,
  type FaultScenario,
  MANAGED,
  MANAGED_DIRS,
  normalizedCall,
} from "../support/fault-injection/host-trees";
import { hostTempDir } from "../support/hosts/build-host";

const ERRNOS = ["ENOSPC", "EIO", "EACCES"] as const;

// tmpfs when there is one: thousands of real fsyncs on a disk would dominate the suite.
const work = fs.mkdtempSync(path.join(hostTempDir(), "pci-fault-"));
const scenarios = buildScenarios(work);
let runs = 0;
let passed = 0;
const points = scenarios.reduce((n, s) => n + s.clean.calls.length + s.clean.ran.length, 0);

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
  // One line per scenario: a single line listing them all ran to well over a thousand characters.
  console.log(
    `fault injection (errno): ${points} injection points; ${runs} failing hooks, ${passed} passed (${runs === 0 ? 0 : Math.round((100 * passed) / runs)}%)\n${scenarios
      .map((s) => `  ${s.name}: ${s.clean.calls.length} fs calls + ${s.clean.ran.length} commands`)
      .join("\n")}`,
  );
});

let scratchCount = 0;
function scratch(s: FaultScenario): string {
  const root = path.join(work, `run-${scratchCount++}`);
  copyTree(s.template, root);
  return root;
}

const label = (c: FsCall) => `${c.op}(${c.path}${c.flags ? `, ${c.flags}` : ""})`;

describe.each(scenarios)("$name", (s) => {
  it("has injection points (the clean run writes files and regenerates)", () => {
    expect(s.clean.calls.length).toBeGreaterThan(0);
    expect(s.clean.ran.length).toBeGreaterThan(0);
    for (const op of ["openSync", "writeSync", "fsyncSync", "closeSync", "chmodSync"] as const) {
      if (s.hook.kind === "prepare") expect(s.clean.calls.map((c) => c.op)).toContain(op);
    }
  });

  const cases = s.clean.calls.flatMap((call, at) =>
    ERRNOS.map((code) => ({ at, code, call, name: `${code} at #${at} ${label(call)}` })),
  );

  it.each(cases)("$name", ({ at, code, call }) => {
    runs++;
    const root = scratch(s);
    const fsOps = faultyFs({
      at,
      run: (c) => {
        throw errnoError(code, c);
      },
    });
    let error: unknown = null;
    try {
      runHook(
        { ...s.hook, memory: structuredClone(s.hook.memory) },
        root,
        fsOps,
        recordingRunner(),
      );
    } catch (err) {
      error = err;
    }
    // The failed call really was the one enumerated (same sequence as the clean run).
    expect(label(normalizedCall(fsOps.calls[at]!, root))).toBe(label(call));
    if (error === null) {
      // Only a directory fsync may be absorbed: it is best effort by design (files/syncDir),
      // the file itself is already synced and renamed.
      expect(call.flags, `${label(call)} failed and the hook did not notice`).toBe("r");
      expect(call.op).not.toBe("closeSync");
    } else {
      expect(error).toBeInstanceOf(FileApplyError);
      const e = error as FileApplyError;
      expect([...MANAGED, ...MANAGED_DIRS]).toContain(e.hostPath);
      expect(e.message).toContain(e.hostPath);
      expect(e.message).toContain(code);
      expect(path.dirname(e.hostPath)).toBe(callDirectory(call));
    }
    expect(afterFailureProblems(s, root, false)).toEqual([]);
    expect(convergeProblems(s, root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
    passed++;
  });

  it.each(s.clean.ran.map((argv, at) => ({ at, argv, name: `\`${argv.join(" ")}\` fails` })))(
    "$name",
    ({ at, argv }) => {
      runs++;
      const root = scratch(s);
      const runner = recordingRunner({
        at,
        run: () => ({ exitCode: 1, stdout: "", stderr: "E: injected failure\n" }),
      });
      // Not a hook error: Juju would drop the stored state, and the next hook would take the
      // files just written for an operator's edit. The failure is reported, the state kept.
      const result = runHook(
        { ...s.hook, memory: structuredClone(s.hook.memory) },
        root,
        faultyFs(),
        runner,
      );
      const failed =
        result.outcome.kind === "prepared" || result.outcome.kind === "removed"
          ? result.outcome.failed
          : [];
      expect(failed.map((f) => f.argv)).toEqual([argv]);
      expect(failed[0]!.message).toContain(argv.join(" "));
      expect(failed[0]!.message).toContain("injected failure");
      expect(afterFailureProblems(s, root, false)).toEqual([]);
      // From the state the failed hook committed: only the failed command runs again.
      const again = path.join(work, `again-${scratchCount++}`);
      copyTree(root, again);
      expect(convergeProblems(s, again, { memory: result.memory, ran: [argv] })).toEqual([]);
      // From the state before it (a hook killed before Juju committed anything): all of it.
      expect(convergeProblems(s, root)).toEqual([]);
      fs.rmSync(root, { recursive: true, force: true });
      fs.rmSync(again, { recursive: true, force: true });
      passed++;
    },
  );
});
