// The README tells a newcomer what the two commands install; scripts/setup.sh is what they do
// install. The two lists must not drift apart.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const repo = path.resolve(import.meta.dirname, "../..");
const read = (file: string) => readFileSync(path.join(repo, file), "utf8");

/** The words of setup.sh's DEBIAN_PACKAGES=( … ) array, comments and line breaks aside. */
function setupPackages(script: string): string[] {
  const body = /^DEBIAN_PACKAGES=\(([^)]*)\)/m.exec(script)?.[1];
  if (body === undefined) throw new Error("scripts/setup.sh has no DEBIAN_PACKAGES=( … ) array");
  return body
    .split("\n")
    .map((line) => line.replace(/#.*/, ""))
    .join(" ")
    .split(/\s+/)
    .filter(Boolean);
}

/** The package list the README gives in "(`scripts/setup.sh`: `…` from Debian". */
function readmePackages(readme: string): string[] {
  const list = /`scripts\/setup\.sh`:\s*`([^`]+)`\s*from Debian/.exec(readme)?.[1];
  if (list === undefined) throw new Error("README.md no longer lists setup.sh's Debian packages");
  return list.split(/\s+/).filter(Boolean);
}

describe("README", () => {
  it("lists exactly the Debian packages scripts/setup.sh installs", () => {
    const setup = setupPackages(read("scripts/setup.sh"));
    expect(setup.length).toBeGreaterThan(5);
    expect([...readmePackages(read("README.md"))].sort()).toEqual([...setup].sort());
  });
});
