// What this unit puts in its `cos-agent` unit databag: one key, `config`, holding JSON with the
// fields the cos_agent library's provider writes (charms.grafana_agent.v0.cos_agent,
// CosAgentProviderUnitData; the interface's schema in canonical/charm-relation-interfaces,
// interfaces/cos_agent/v0): metrics_alert_rules, log_alert_rules, dashboards, subordinate,
// metrics_scrape_jobs, log_slots, tracing_protocols. Written here in our own code, matching them:
// - scrape jobs are Prometheus scrape_configs; the job name is "<app>_<index>_<name>", as the
//   provider renames every job;
// - alert rules get the Juju topology as cosl's AlertRules gives it: group names
//   "<model>_<uuid[:8]>_<app>_<group>_alerts" (then non [a-zA-Z0-9_:] → "_"), the juju_model,
//   juju_model_uuid, juju_application and juju_charm labels on each rule (unless set), and the
//   model, uuid and application matchers where the expression says %%juju_topology%%;
// - each dashboard is base64 of the xz-compressed bytes of its JSON file (lzma.compress).
// Pure: the rules (parsed), the dashboard's bytes and the topology come in.
import { EXPORTER_LISTEN_HOST } from "../plan/exporter-files";
import { xzStore } from "./xz";

/** The unit databag key the library nests everything under. */
export const COS_AGENT_KEY = "config";

/** The endpoint in metadata.yaml. */
export const COS_AGENT_ENDPOINT = "cos-agent";

export interface Topology {
  model: string;
  modelUuid: string;
  application: string;
  charmName: string;
}

/** A Prometheus rule file as parsed (`groups:` form). */
export interface RuleFile {
  groups: Array<{ name: string; rules: Array<Record<string, unknown>> }>;
}

/** The JSON under `config`, field for field as the library's model dumps it. */
export interface CosAgentProviderUnitData {
  metrics_alert_rules: RuleFile | Record<string, never>;
  log_alert_rules: Record<string, never>;
  dashboards: string[];
  subordinate: boolean;
  metrics_scrape_jobs: Array<Record<string, unknown>>;
  log_slots: string[];
  tracing_protocols: null;
}

const sanitize = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_");

/** The rules with the Juju topology in names, labels and expressions. */
export function withTopology(rules: RuleFile, topology: Topology): RuleFile {
  const identifier = [topology.model, topology.modelUuid.slice(0, 8), topology.application]
    .join("_")
    .replace(/\//g, "_");
  const labels: Record<string, string> = {
    juju_model: topology.model,
    juju_model_uuid: topology.modelUuid,
    juju_application: topology.application,
    juju_charm: topology.charmName,
  };
  const matchers = (["juju_model", "juju_model_uuid", "juju_application"] as const)
    .filter((k) => labels[k])
    .map((k) => `${k}="${labels[k]!.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`)
    .join(",");
  return {
    groups: rules.groups.map((group) => ({
      name: sanitize(`${identifier}_${group.name}_alerts`),
      rules: group.rules.map((rule) => {
        const own = (rule.labels ?? {}) as Record<string, string>;
        const merged: Record<string, string> = { ...own };
        for (const [k, v] of Object.entries(labels)) if (v && !(k in merged)) merged[k] = v;
        return {
          ...rule,
          expr: String(rule.expr).replace(/%%juju_topology%%/g, matchers),
          labels: merged,
        };
      }),
    })),
  };
}

/** The `config` value: what the agent needs to scrape the exporter, load the rules and the
 * dashboard. `dashboards` are the raw bytes of each dashboard file. */
export function cosAgentUnitData(options: {
  topology: Topology;
  port: number;
  rules: RuleFile;
  dashboards: Uint8Array[];
}): CosAgentProviderUnitData {
  return {
    metrics_alert_rules: withTopology(options.rules, options.topology),
    log_alert_rules: {},
    dashboards: options.dashboards.map((bytes) => xzStore(bytes).toString("base64")),
    subordinate: true,
    metrics_scrape_jobs: [
      {
        metrics_path: "/metrics",
        static_configs: [{ targets: [`${EXPORTER_LISTEN_HOST}:${options.port}`] }],
        job_name: `${options.topology.application}_0_exporter`,
      },
    ],
    log_slots: [],
    tracing_protocols: null,
  };
}
