// Issue 26: the cos-agent relation through the real charm. The unit databag is checked against
// the interface's schema (tests/fixtures/cos-agent, copied in shape from the interface's
// specification and the provider library), the dashboard is decoded by Python's own lzma (as the
// agent decodes it), the rules are read by Debian's promtool, and relating / unrelating installs
// and removes the exporter's files.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import Ajv from "ajv";
import { Context } from "ops-ts-shim/testing";
import { afterEach, describe, expect, it, vi } from "vitest";
import { COS_RELATED_KEY } from "../../src/cos-agent-relation";
import { EXPORTER_OWNED } from "../../src/host/root";
import { PciPassthroughCharm } from "../../src/pci-passthrough-charm";
import { EXPORTER_NODE_FLAGS, EXPORTER_PLAN_COMMENT } from "../../src/plan/exporter-files";
import { useCleanups } from "../support/cleanups";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import { cosAgentRelation } from "../support/relations";
import { useRoot } from "../support/scenario";
import { requireTool } from "../support/tools";
import { tempDir } from "../support/tree";

const TOP = path.resolve(__dirname, "..", "..");
const read = (f: string) => fs.readFileSync(path.join(TOP, f), "utf8");
const SCHEMA = JSON.parse(read("tests/fixtures/cos-agent/provider-unit.schema.json"));

const cleanups = useCleanups();
afterEach(() => {
  vi.unstubAllEnvs();
});

/** A charm directory holding what the packed charm carries for the relation (cos/). */
function charmDir(): string {
  const { dir, cleanup } = tempDir("pci-cos-charm-");
  cleanups.push(cleanup);
  fs.mkdirSync(path.join(dir, "cos"));
  for (const f of ["alert-rules.yaml", "dashboard.json"]) {
    fs.copyFileSync(path.join(TOP, "src", "cos", f), path.join(dir, "cos", f));
  }
  return dir;
}

function context(dir: string): Context {
  return new Context(PciPassthroughCharm, {
    metadata: read("metadata.yaml"),
    config: read("config.yaml"),
    actions: read("actions.yaml"),
    unitName: "pci-passthrough/0",
    charmDir: dir,
  });
}

function related(config: Record<string, unknown> = { devices: "0000:83:00.0" }) {
  const host = makeTempHost(seedHost());
  cleanups.push(host.cleanup);
  useRoot(host.root);
  const dir = charmDir();
  const out = context(dir).run("cos-agent-relation-joined", {
    config,
    relations: [cosAgentRelation(3)],
  });
  const bag = out.relations[0]!.localUnitData;
  return { out, bag, root: host.root, dir };
}

describe("cos-agent unit databag", () => {
  it("matches the interface's provider schema, with the library's fields and nothing else", () => {
    const { bag } = related();
    const ajv = new Ajv({ strict: false });
    ajv.addSchema(SCHEMA, "provider-unit");
    expect(ajv.validate("provider-unit", bag), ajv.errorsText()).toBe(true);
    expect(Object.keys(bag)).toEqual(["config"]);
    const config = JSON.parse(bag.config!);
    expect(
      ajv.validate({ $ref: "provider-unit#/definitions/config" }, config),
      ajv.errorsText(),
    ).toBe(true);
    expect(Object.keys(config)).toEqual([
      "metrics_alert_rules",
      "log_alert_rules",
      "dashboards",
      "subordinate",
      "metrics_scrape_jobs",
      "log_slots",
      "tracing_protocols",
    ]);
    expect(config.subordinate).toBe(true);
    expect(config.log_alert_rules).toEqual({});
    expect(config.log_slots).toEqual([]);
  });

  it("scrapes the exporter on 127.0.0.1 at exporter-port, job named as the provider names it", () => {
    const { bag } = related({ devices: "0000:83:00.0", "exporter-port": 19999 });
    expect(JSON.parse(bag.config!).metrics_scrape_jobs).toEqual([
      {
        metrics_path: "/metrics",
        static_configs: [{ targets: ["127.0.0.1:19999"] }],
        job_name: "pci-passthrough_0_exporter",
      },
    ]);
  });

  it("carries the dashboard as base64 of lzma.compress, which Python's lzma decodes to the file", () => {
    requireTool("python3", "python3");
    const { bag } = related();
    const [encoded] = JSON.parse(bag.config!).dashboards as string[];
    const decoded = spawnSync(
      "python3",
      [
        "-c",
        "import base64,lzma,sys; sys.stdout.buffer.write(lzma.decompress(base64.b64decode(sys.stdin.read())))",
      ],
      { input: encoded, encoding: "utf8" },
    );
    expect(decoded.stderr).toBe("");
    expect(decoded.stdout).toBe(read("src/cos/dashboard.json"));
  });

  it("gives the rules the Juju topology as cosl does: group names, labels, expression matchers", () => {
    requireTool("promtool", "prometheus");
    const { bag } = related();
    const rules = JSON.parse(bag.config!).metrics_alert_rules;
    const group = rules.groups[0];
    // The Scenario model: its name and uuid as the harness sets them.
    expect(group.name).toMatch(
      /^[A-Za-z0-9_:]+_[0-9a-f]{8}_pci_passthrough_pci_passthrough_alerts$/,
    );
    for (const rule of group.rules) {
      expect(rule.labels).toMatchObject({
        juju_application: "pci-passthrough",
        juju_charm: "pci-passthrough",
      });
      expect(rule.labels.juju_model).toBeTruthy();
      expect(rule.labels.juju_model_uuid).toBeTruthy();
      expect(rule.expr).not.toContain("%%juju_topology%%");
      expect(rule.expr).toContain(`juju_application="pci-passthrough"`);
    }
    // What the agent forwards to Prometheus loads there.
    const { dir, cleanup } = tempDir("pci-cos-rules-");
    cleanups.push(cleanup);
    fs.writeFileSync(path.join(dir, "rules.json"), JSON.stringify(rules));
    const check = spawnSync("promtool", ["check", "rules", path.join(dir, "rules.json")], {
      encoding: "utf8",
    });
    expect(check.stdout + check.stderr).toMatch(/SUCCESS: 8 rules found/);
    expect(check.status).toBe(0);
  });
});

describe("the exporter follows the relation", () => {
  it("relating installs the unit and the plan summary; unrelating removes both", () => {
    const { out, root, dir } = related();
    expect(out.stored[COS_RELATED_KEY]).toBe(true);
    const unit = fs.readFileSync(path.join(root, EXPORTER_OWNED.unit), "utf8");
    expect(unit).toContain(
      `ExecStart=${process.execPath} ${EXPORTER_NODE_FLAGS.join(" ")} ${dir}/dist/exporter.js --listen 127.0.0.1:9847`,
    );
    expect(unit).toMatch(/^# Managed by the pci-passthrough charm/);
    const plan = JSON.parse(fs.readFileSync(path.join(root, EXPORTER_OWNED.plan), "utf8"));
    expect(plan.comment).toBe(EXPORTER_PLAN_COMMENT);
    expect(plan.functions.map((f: { a: string }) => f.a)).toEqual(["0000:83:00.0", "0000:83:00.1"]);
    expect(plan.kernelParams).toEqual(["intel_iommu=on", "iommu=pt"]);
    expect(out.logs.map((l) => l.message).join("\n")).toMatch(
      /skipped `systemctl daemon-reload`[\s\S]*skipped `systemctl enable pci-passthrough-exporter.service`[\s\S]*skipped `systemctl restart pci-passthrough-exporter.service`/,
    );

    const broken = context(dir).run(
      { name: "cos-agent-relation-broken", relationId: 3 },
      { config: out.config, stored: out.stored, relations: [cosAgentRelation(3)] },
    );
    expect(broken.stored[COS_RELATED_KEY]).toBeUndefined();
    expect(fs.existsSync(path.join(root, EXPORTER_OWNED.unit))).toBe(false);
    expect(fs.existsSync(path.join(root, EXPORTER_OWNED.plan))).toBe(false);
    expect(broken.logs.map((l) => l.message).join("\n")).toMatch(
      /skipped `systemctl disable --now pci-passthrough-exporter.service`[\s\S]*skipped `systemctl daemon-reload`/,
    );
  });

  it("a bad exporter-port blocks naming the option, and changes nothing", () => {
    const { out, root } = related({ devices: "0000:83:00.0", "exporter-port": 70000 });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toContain("exporter-port");
    expect(out.unitStatus.message).toContain("70000");
    expect(fs.existsSync(path.join(root, EXPORTER_OWNED.unit))).toBe(false);
  });
});
