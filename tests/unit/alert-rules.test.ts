// Issue 26: the alert rules the cos-agent relation hands to Prometheus (src/cos/alert-rules.yaml),
// judged by Debian's promtool: they load (`promtool check rules`) and each alert fires, and stays
// silent, when tests/fixtures/alert-rules/tests.yaml says (`promtool test rules`).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { useCleanups } from "../support/cleanups";
import { requireTool } from "../support/tools";
import { tempDir } from "../support/tree";

const TOP = path.resolve(__dirname, "..", "..");
const RULES = path.join(TOP, "src", "cos", "alert-rules.yaml");
const TESTS = path.join(TOP, "tests", "fixtures", "alert-rules", "tests.yaml");

const cleanups = useCleanups();

/** The rules as Prometheus gets them without Juju topology (the marker dropped), in a temp dir
 * beside the promtool tests pointed at them. */
function workDir(): { rules: string; tests: string } {
  const { dir, cleanup } = tempDir("pci-rules-");
  cleanups.push(cleanup);
  const rules = path.join(dir, "rules.yaml");
  fs.writeFileSync(rules, fs.readFileSync(RULES, "utf8").replace(/%%juju_topology%%,?/g, ""));
  const spec = parse(fs.readFileSync(TESTS, "utf8"));
  const tests = path.join(dir, "tests.yaml");
  fs.writeFileSync(tests, JSON.stringify({ rule_files: [rules], ...spec }));
  return { rules, tests };
}

describe("alert rules", () => {
  it("load in Prometheus: promtool check rules", () => {
    requireTool("promtool", "prometheus");
    const { rules } = workDir();
    const r = spawnSync("promtool", ["check", "rules", rules], { encoding: "utf8" });
    expect(r.stdout + r.stderr).toContain("SUCCESS: 8 rules found");
    expect(r.status).toBe(0);
  });

  it("fire and stay silent as their unit tests say: promtool test rules", () => {
    requireTool("promtool", "prometheus");
    const { tests } = workDir();
    const r = spawnSync("promtool", ["test", "rules", tests], { encoding: "utf8" });
    expect(r.stdout + r.stderr).toMatch(/SUCCESS/);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it("cover every alert the issue names, each with a summary and a description", () => {
    const groups = parse(fs.readFileSync(RULES, "utf8")).groups as Array<{
      rules: Array<{ alert: string; annotations: Record<string, string> }>;
    }>;
    const alerts = groups.flatMap((g) => g.rules);
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        "PciPassthroughFunctionNotOnPlannedDriver",
        "PciPassthroughRebootPendingTooLong",
        "PciPassthroughIommuGroupNotViable",
        "PciPassthroughVfsMissing",
        "PciPassthroughExporterDown",
      ]),
    );
    // Every alert is tested: its name appears in the promtool tests.
    const tested = fs.readFileSync(TESTS, "utf8");
    for (const a of alerts) {
      expect(tested, a.alert).toContain(`alertname: ${a.alert}`);
      expect(a.annotations.summary, a.alert).toBeTruthy();
      expect(a.annotations.description, a.alert).toBeTruthy();
    }
  });
});
