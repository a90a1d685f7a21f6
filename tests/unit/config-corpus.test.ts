// The bad-input corpus: every file in tests/fixtures/bad-config is a config the charm must refuse,
// naming the option and showing the value. Config-only errors come from parseConfig; the ones that
// depend on the host (a bridge, the console GPU, a stranded device, a swapped card) from planHost.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseConfig } from "../../src/config";
import type { HostFacts } from "../../src/host/facts";
import { planHost } from "../../src/plan/plan-host";
import { MODULES_ALIAS, moduleAliases, seedHost } from "../support/host-facts";

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "bad-config");
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml"))
  .sort();

interface Case {
  option: string;
  expect: string;
  host?: string;
  previous?: Record<string, string>;
  config: Record<string, unknown>;
}

const hosts: Record<string, () => HostFacts> = {
  seed: () => seedHost(),
  "seed-swapped": () => {
    const facts = seedHost();
    const slot = facts.functions.find((f) => f.address === "0000:83:00.0")!;
    Object.assign(slot, { vendorId: "8086", deviceId: "1593", classCode: "020000", driver: "ice" });
    return facts;
  },
  "seed-no-vfio": () => seedHost({ vfioPci: "missing" }),
};

describe("bad-config corpus", () => {
  it("has at least 50 cases", () => {
    expect(files.length).toBeGreaterThanOrEqual(50);
  });

  it.each(files)("%s is refused, naming the option and the value", (file) => {
    const c = parse(readFileSync(join(dir, file), "utf8")) as Case;
    const parsed = parseConfig(c.config);
    if (c.host === undefined) {
      expect(parsed.ok, `${file} parsed`).toBe(false);
      if (parsed.ok) return;
      for (const e of parsed.errors) {
        expect(e.value.length + e.problem.length).toBeGreaterThan(0);
        expect(e.problem.length).toBeGreaterThan(0);
        expect(e.fix.length).toBeGreaterThan(0);
      }
      const named = parsed.errors.filter((e) => e.option === c.option);
      expect(named, JSON.stringify(parsed.errors)).not.toEqual([]);
      const texts = named.map(
        (e) => `${e.option}=${JSON.stringify(e.value)} ${e.value} ${e.problem}; ${e.fix}`,
      );
      expect(
        texts.some((t) => t.includes(c.expect)),
        texts.join("\n"),
      ).toBe(true);
      return;
    }
    if (!parsed.ok) throw new Error(`${file} should parse: ${JSON.stringify(parsed.errors)}`);
    const facts = hosts[c.host]!();
    const plan = planHost(parsed.config, facts, moduleAliases(MODULES_ALIAS, facts), {
      boundIds: c.previous ?? {},
    });
    const named = plan.problems.filter((p) => p.option === c.option);
    expect(named, JSON.stringify(plan.problems)).not.toEqual([]);
    expect(
      named.some((p) => p.message.includes(c.expect)),
      JSON.stringify(named),
    ).toBe(true);
  });
});
