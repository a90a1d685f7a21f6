/**
 * The README's "on a fresh Debian 12 machine" for Node.js: a clean Debian 12 root made with
 * debootstrap (no Node.js, no npm) runs scripts/setup-node.sh, then `npm ci` and `npm run pack`,
 * chrooted (scripts/vm/fresh-debian.sh; its root is cached under .cache/fresh-debian/ by recipe).
 * No QEMU: it is here because it is heavy (debootstrap once, then about 200 MB of npm packages
 * from a download cache) and needs root, like the rest of this tier.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO, SCRIPTS } from "./lib/paths";
import { progress } from "./lib/progress";

/** package.json's engines floor, as [major, minor]. */
function enginesFloor(): [number, number] {
  const pkg = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as {
    engines: { node: string };
  };
  const [major, minor] = pkg.engines.node.replace(/^>=/, "").split(".").map(Number);
  return [major!, minor ?? 0];
}

describe("a fresh Debian 12 root (debootstrap, chroot)", () => {
  it("gets a Node.js >= package.json's floor from setup-node.sh, then npm ci and npm run pack work", () => {
    progress("fresh-debian.sh: debootstrap root (cached), setup-node.sh, npm ci, npm run pack");
    const run = spawnSync("bash", [path.join(SCRIPTS, "fresh-debian.sh")], {
      encoding: "utf8",
      timeout: 1_500_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    const report = run.stdout.split("\n").filter((l) => l.startsWith("fresh-debian: "));
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(report).toContain("fresh-debian: before: no node, no npm");

    const after = report.find((l) => l.startsWith("fresh-debian: after: "));
    const version = /node v(\d+)\.(\d+)\.\d+ at \/usr\/local\/bin\/node, npm \d+/.exec(after ?? "");
    expect(version, after).not.toBeNull();
    const [major, minor] = [Number(version![1]), Number(version![2])];
    const [floorMajor, floorMinor] = enginesFloor();
    expect(major > floorMajor || (major === floorMajor && minor >= floorMinor), after).toBe(true);

    // The second run finds what the first installed and changes nothing.
    expect(run.stdout).toMatch(
      /^again: setup-node: node v\d+\.\d+\.\d+ \(>= [\d.]+\) and npm [\d.]+ on PATH$/m,
    );
    for (const arch of ["amd64", "arm64"]) {
      expect(report.join("\n")).toMatch(
        new RegExp(`fresh-debian: packed: build/pci-passthrough_${arch}\\.charm \\d+ bytes`),
      );
    }
  }, 1_500_000);
});
