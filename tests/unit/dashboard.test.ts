// Issue 26: the Grafana dashboard the cos-agent relation hands to Grafana (src/cos/dashboard.json).
// Every panel query is PromQL Prometheus accepts (each loaded as a recording rule by Debian's
// promtool), names only metrics the exporter exposes, and reads the datasource COS provides.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { Exporter } from "../../src/exporter/server";
import { useCleanups } from "../support/cleanups";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import { requireTool } from "../support/tools";
import { tempDir } from "../support/tree";

const TOP = path.resolve(__dirname, "..", "..");
const dashboard = JSON.parse(
  fs.readFileSync(path.join(TOP, "src", "cos", "dashboard.json"), "utf8"),
);

interface Panel {
  title: string;
  type: string;
  datasource?: { uid: string };
  targets?: Array<{ expr: string }>;
}
const panels = dashboard.panels as Panel[];
const exprs = panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
);

const cleanups = useCleanups();

describe("the Grafana dashboard", () => {
  it("queries only valid PromQL: promtool loads each query as a recording rule", () => {
    requireTool("promtool", "prometheus");
    expect(exprs.length).toBeGreaterThan(10);
    const { dir, cleanup } = tempDir("pci-dashboard-");
    cleanups.push(cleanup);
    const file = path.join(dir, "queries.json");
    fs.writeFileSync(
      file,
      JSON.stringify({
        groups: [
          { name: "dashboard", rules: exprs.map((e, i) => ({ record: `q${i}`, expr: e.expr })) },
        ],
      }),
    );
    const r = spawnSync("promtool", ["check", "rules", file], { encoding: "utf8" });
    expect(r.stdout + r.stderr).toContain(`SUCCESS: ${exprs.length} rules found`);
  });

  it("names only metrics the exporter exposes", () => {
    const host = makeTempHost(seedHost());
    cleanups.push(host.cleanup);
    const exposed = new Set(
      new Exporter(host.root)
        .scrape()
        .split("\n")
        .filter((l) => l.startsWith("# TYPE "))
        .map((l) => l.split(" ")[2]),
    );
    const named = new Set(exprs.flatMap((e) => e.expr.match(/pci_passthrough_[a-z_]+/g) ?? []));
    expect([...named].filter((m) => !exposed.has(m))).toEqual([]);
  });

  it("reads the Prometheus datasource COS provides, on every panel and query", () => {
    for (const p of panels.filter((x) => x.type !== "row")) {
      // Grafana's variable syntax, not a template literal.
      expect(p.datasource?.uid, p.title).toBe(`$\{prometheusds}`);
    }
    expect(dashboard.templating.list.map((v: { name: string }) => v.name)).toEqual([
      "prometheusds",
      "juju_unit",
    ]);
  });
});
