// The charm's own commands (update-grub, update-initramfs, modprobe) start the one way the shim
// starts hook tools (runProcess): exit codes, output, and the shell's 127 for a missing program.
import { NOT_FOUND_EXIT } from "ops-ts-shim";
import { describe, expect, it } from "vitest";
import { CommandError, spawnRunner } from "../../src/apply/commands";

describe("spawnRunner", () => {
  it("returns what the program printed and how it exited, never throwing", () => {
    expect(spawnRunner(["sh", "-c", "echo out; echo err >&2; exit 3"])).toEqual({
      exitCode: 3,
      stdout: "out\n",
      stderr: "err\n",
    });
  });

  it("says a missing program is missing (127), naming it", () => {
    const r = spawnRunner(["update-grub-that-is-not-there"]);
    expect(r.exitCode).toBe(NOT_FOUND_EXIT);
    expect(r.stderr).toContain("update-grub-that-is-not-there");
  });

  it("turns a failure into an operator's message with the last lines it printed", () => {
    const argv = ["sh", "-c", "echo one; echo two >&2; exit 1"];
    expect(new CommandError(argv, spawnRunner(argv)).message).toBe(
      "`sh -c echo one; echo two >&2; exit 1` failed with exit code 1: two",
    );
  });
});
