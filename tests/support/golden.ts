// Golden files: what a renderer writes, kept as text in tests/fixtures/golden/ and compared byte
// for byte, so a change to a file the charm installs shows up as a diff to review. UPDATE_GOLDEN=1
// rewrites them (then read the diff before committing).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";

const GOLDEN_DIR = path.resolve(__dirname, "..", "fixtures", "golden");

/** Compares `actual` with tests/fixtures/golden/<name>; UPDATE_GOLDEN=1 writes it instead. */
export function expectGolden(name: string, actual: string): void {
  const file = path.join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file))
    throw new Error(`no golden file ${file}: run with UPDATE_GOLDEN=1 and review it`);
  expect(actual).toBe(readFileSync(file, "utf8"));
}
