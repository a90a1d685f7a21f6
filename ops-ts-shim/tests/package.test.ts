import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = join(import.meta.dirname, "..", "src");

describe("the package", () => {
  it("resolves by name through the workspace link and its exports map", async () => {
    const shim = await import("ops-ts-shim");
    const testing = await import("ops-ts-shim/testing");
    const simulator = await import("ops-ts-shim/testing/simulator");
    expect(typeof shim.main).toBe("function");
    expect(typeof shim.CharmBase).toBe("function");
    expect(typeof testing.Context).toBe("function");
    expect(typeof simulator.createUnitSimulator).toBe("function");
  });

  it("imports nothing from the charm, and only node built-ins, yaml and (for the simulator) esbuild", () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith(".ts")) files.push(path);
      }
    };
    walk(SRC);
    const offending: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      for (const match of text.matchAll(/from\s+"([^"]+)"/g)) {
        const spec = match[1]!;
        const ok =
          spec.startsWith("node:") ||
          spec === "yaml" ||
          (spec === "esbuild" && file.includes(join("testing", "simulator"))) ||
          (spec.startsWith(".") && join(file, "..", spec).startsWith(SRC));
        if (!ok) offending.push(`${file}: ${spec}`);
      }
    }
    expect(files.length).toBeGreaterThan(10);
    expect(offending).toEqual([]);
  });

  it("keeps the testing helpers out of the runtime entry (the charm bundle)", () => {
    const index = readFileSync(join(SRC, "index.ts"), "utf8");
    expect(index).not.toMatch(/from "\.\/testing/);
    expect(index).not.toMatch(/esbuild/);
  });
});
