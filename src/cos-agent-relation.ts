// The `cos-agent` relation: this unit's scrape job, alert rules and dashboard in its unit databag
// (what is in it: src/cos/cos-agent-data.ts). The rules and the dashboard ship in the charm as
// files (cos/), read only when the value is published: relation hooks, config-changed and
// upgrade-charm, as the library's provider refreshes.

import { join } from "node:path";
import type { Model } from "ops-ts-shim";
import {
  COS_AGENT_ENDPOINT,
  COS_AGENT_KEY,
  cosAgentUnitData,
  type RuleFile,
  type Topology,
} from "./cos/cos-agent-data";
import { readFileSync } from "./host/fs";

/** Where the charm carries its rules and dashboard (scripts/charm-files.mjs puts them there). */
export const COS_FILES = {
  rules: "cos/alert-rules.yaml",
  dashboard: "cos/dashboard.json",
} as const;

/** Stored-state key: whether the unit is related over cos-agent (the exporter runs while it is),
 * kept so other hooks need no relation-ids call to know. */
export const COS_RELATED_KEY = "cos-agent-related";

/** The `config` value for this unit, from the charm's own files. */
export function cosAgentConfigValue(charmDir: string, topology: Topology, port: number): string {
  const { parse } = require("yaml") as typeof import("yaml");
  const rules = parse(readFileSync(join(charmDir, COS_FILES.rules), "utf8")) as RuleFile;
  const dashboard = readFileSync(join(charmDir, COS_FILES.dashboard));
  return JSON.stringify(cosAgentUnitData({ topology, port, rules, dashboards: [dashboard] }));
}

/** Writes the value into every cos-agent relation's unit databag (only where it differs). */
export function publishCosAgent(model: Model, value: string): void {
  for (const relation of model.relations(COS_AGENT_ENDPOINT)) {
    relation.setLocalUnitData({ [COS_AGENT_KEY]: value });
  }
}
