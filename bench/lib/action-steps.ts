// list-devices and verify-iommu in process, step by step as the glue (src/charm-actions.ts) takes
// them: the host read, the config, what the host uses, the modules, the one plan both show (its decisions), then
// each action's own read and its pure work. The scale and SR-IOV benchmarks time each step.
import { listDevices, parseListDevicesParams } from "../../src/actions/list-devices";
import { verifyIommu } from "../../src/actions/verify-iommu";
import { parseConfig } from "../../src/config";
import { readInterruptRemapping } from "../../src/host/interrupt-remapping";
import { loadPciIds, readHostFacts, readHostUsage } from "../../src/host/read-facts";
import { planModulesFor } from "../../src/host-preparation";
import { decideHost } from "../../src/plan/plan-host";

/** Runs one named step (the caller times it) and hands back its value. */
export type Step = <T>(name: string, fn: () => T) => T;

const SHARED = ["readHostFacts", "parseConfig", "readHostUsage", "planModulesFor", "decideHost"];

/** The steps each action's time is made of. */
export const ACTION_STEPS = {
  "list-devices": [...SHARED, "loadPciIds", "listDevices (pure)"],
  "verify-iommu": [...SHARED, "readInterruptRemapping", "verifyIommu (pure)"],
};

/** Both actions on the host at `root` with `config`, each step through `step`. */
export function actionSteps(root: string, config: Record<string, unknown>, step: Step) {
  const { facts } = step("readHostFacts", () => readHostFacts(root));
  const parsed = step("parseConfig", () => parseConfig(config));
  if (!parsed.ok) throw new Error(`bench config refused: ${JSON.stringify(parsed.errors)}`);
  const usage = step("readHostUsage", () => readHostUsage(root, { functions: facts.functions }));
  // As the glue: the modules read first, then the one plan both show.
  const modules = step("planModulesFor", () => planModulesFor(parsed.config, root, facts, null));
  const plan = step("decideHost", () =>
    decideHost(
      parsed.config,
      facts,
      modules?.aliases ?? null,
      { boundIds: {} },
      { usage, moduleNames: modules?.names ?? null },
    ),
  );
  const names = step("loadPciIds", () => loadPciIds(root));
  const params = parseListDevicesParams({});
  if (!params.ok) throw new Error("list-devices params refused");
  const list = step("listDevices (pure)", () =>
    listDevices({
      params: params.params,
      facts,
      usage,
      modules: modules?.aliases ?? null,
      names,
      selection: plan.bind,
      sriov: plan.sriov,
      withheld: plan.withheld,
    }),
  );
  const interruptRemapping = step("readInterruptRemapping", () =>
    readInterruptRemapping(root, facts.arch),
  );
  const verify = step("verifyIommu (pure)", () =>
    verifyIommu({
      facts,
      plannedCmdline: plan.kernelParams,
      selection: plan.bind,
      withheld: plan.withheld,
      usage,
      interruptRemapping,
      sriov: plan.sriov,
    }),
  );
  return {
    selected: plan.bind.length,
    results: {
      "list-devices": list.results as Record<string, unknown>,
      "verify-iommu": verify.results as Record<string, unknown>,
    },
  };
}
