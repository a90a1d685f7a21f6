// The arrange step of the tests that check a plan on a real host tree: read the tree as a hook
// reads it (facts, what the host uses, modules.alias's answers and driver → module names),
// parse the config, plan, and say the status. One copy, so it follows the hook when the hook
// changes (src/host-preparation.ts).
import { type Config, parseConfig } from "../../src/config";
import type { HostFacts, HostUsage } from "../../src/host/facts";
import { readHostFacts, readHostUsage } from "../../src/host/read-facts";
import { planModulesFor } from "../../src/host-preparation";
import { type PlanContext, planHost } from "../../src/plan/plan-host";
import { statusFor } from "../../src/plan/status";

export interface PlannedTree {
  root: string;
  facts: HostFacts;
  /** What readHostFacts could not read (each a problem the hook would report). */
  readProblems: ReturnType<typeof readHostFacts>["problems"];
  usage: HostUsage;
  config: Config;
  plan: ReturnType<typeof planHost>;
  status: ReturnType<typeof statusFor>;
  /** The content the plan gives the owned file at `path`; "" when it writes none. */
  file(path: string): string;
}

/** Plans `raw` config on the host tree at `root` as the install hook does; throws on a config
 * parseConfig refuses (a test of refusals calls parseConfig itself). */
export function planOnTree(
  root: string,
  raw: Record<string, unknown>,
  context: Omit<PlanContext, "usage" | "moduleNames"> = {},
): PlannedTree {
  const parsed = parseConfig(raw);
  if (!parsed.ok) throw new Error(`config refused: ${JSON.stringify(parsed.errors)}`);
  const { facts, problems } = readHostFacts(root);
  const usage = readHostUsage(root, { functions: facts.functions });
  const modules = planModulesFor(parsed.config, root, facts, null);
  const plan = planHost(
    parsed.config,
    facts,
    modules?.aliases ?? null,
    { boundIds: {} },
    { ...context, usage, moduleNames: modules?.names ?? null },
  );
  const status = statusFor({ kind: "prepared", plan, facts, failed: [] });
  return {
    root,
    facts,
    readProblems: problems,
    usage,
    config: parsed.config,
    plan,
    status,
    file: (path) => plan.files.find((f) => f.path === path)?.content ?? "",
  };
}
