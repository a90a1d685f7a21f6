// `juju run` glue: each action reads the host facts, makes the one plan a hook would make on them
// (snapshot), hands both to its pure decision in actions/, and reports the structured result (or
// action-fail with the reason). Actions never run host preparation and never write files; only
// rebind and sriov-vfs write to sysfs.
import { type ActionEvent, type Model, type ParamValidator, stopSignal } from "ops-ts-shim";
import { fleetConfig } from "./actions/fleet-config";
import { listDevices, parseListDevicesParams } from "./actions/list-devices";
import { novaConfig, parseNovaConfigParams } from "./actions/nova-config";
import { type Checked, type ParamError, paramErrorMessage, parsedOnce } from "./actions/params";
import { rebindAction } from "./actions/rebind";
import { parseRebindParams } from "./actions/rebind-plan";
import { parseRebootPlanParams, rebootPlanReply } from "./actions/reboot-plan";
import { type ActionReply, failure, listResult, type ResultTree } from "./actions/results";
import { parseSriovVfsParams, sriovVfsAction } from "./actions/sriov-vfs";
import { parseVerifyIommuParams, verifyIommu } from "./actions/verify-iommu";
import { createSysfsWriter } from "./apply/sysfs";
import { type Config, parseConfig } from "./config";
import { fleetRelation, readFleetOffers, readFleetSummary } from "./fleet-relation";
import type { HostFacts, HostReadProblem, HostUsage, ModuleAliases } from "./host/facts";
import { readInterruptRemapping } from "./host/interrupt-remapping";
import { type RememberedModules, readModuleAliases } from "./host/modules";
import { readNovaRelease } from "./host/nova-release";
import { loadPciIds, readHostFacts, readHostUsage } from "./host/read-facts";
import { readVfCountClaims, type VfCountClaim } from "./host/vf-count-owners";
import { readVfioGroupUsers } from "./host/vfio-users";
import { type PreparationDeps, planModulesFor } from "./host-preparation";
import { handleReboot } from "./host-reboot";
import { NOVA_ENDPOINT, placementOn } from "./nova-relation";
import { buildOffer } from "./plan/fleet";
import { novaFeatures } from "./plan/nova";
import { decideHost } from "./plan/plan-host";
import { type PlannedPf, sriovReady } from "./plan/sriov";
import { type FailedCommand, formatConfigError, NO_GRUB } from "./plan/status";
import type { BoundDevice, HostDecisions, WithheldFunction } from "./plan/types";
import { vfCountDisagreements, vfCountProblems } from "./plan/vf-count-owners";
import { clip } from "./text";

export type ActionName =
  | "list-devices"
  | "verify-iommu"
  | "rebind"
  | "nova-config"
  | "sriov-vfs"
  | "reboot-plan";

export interface ActionContext {
  model: Model;
  deps: PreparationDeps;
  /** What the hooks learnt from modules.alias (the preparation memory); null before any. */
  rememberedModules: RememberedModules | null;
  /** The last hook found no update-grub on this host (the preparation memory). */
  noGrub: boolean;
}

/** Runs one action and reports it to Juju: its params first (no host is read for a bad call),
 * then the action on what it needs of the host. */
export function runActionHandler(name: ActionName, event: ActionEvent, ctx: ActionContext): void {
  const reply = ACTIONS[name].reply(event.params, ctx);
  event.setResults(reply.results);
  if (!reply.ok) event.fail(clip(reply.message, MAX_FAIL_MESSAGE, "see the results"));
}

/** `juju run` prints the failure message whole: keep it readable (and one argv word); every
 * problem is also in the results. */
const MAX_FAIL_MESSAGE = 2000;

/** What every action starts from: the host as it is, and the one plan a hook would make on it
 * now. Built once per dispatch: every action takes what it shows from `plan` (selection,
 * withheld, SR-IOV, kernel parameters), none selects again. */
interface Snapshot {
  facts: HostFacts;
  /** What the host uses (network, disks, console): the plan withholds those, as hooks do. */
  usage: HostUsage;
  /** What the readers could not read (each names the path): shown in the results, not only the log. */
  readProblems: string[];
  config: Config | null;
  configProblem: string | null;
  /** The plan a hook would make on this host now (nothing bound remembered: an action judges the
   * host as it is), its decisions: no action shows the files' bytes, so none are rendered; null
   * when the config is invalid (list-devices still shows the host). */
  plan: HostDecisions | null;
  /** modules.alias's answers the plan was made with (null: it needed none, no selection). */
  moduleAliases: ModuleAliases | null;
  /** What the host's other owners of VF counts set at boot (read when an entry asks for VFs). */
  vfCountClaims: VfCountClaim[];
}

/** The plan's selection, or nothing without a plan (an invalid config selects nothing). */
function selectionOf(snap: Snapshot): {
  selection: BoundDevice[];
  withheld: WithheldFunction[];
  sriov: PlannedPf[];
} {
  return {
    selection: snap.plan?.bind ?? [],
    withheld: snap.plan?.withheld ?? [],
    sriov: snap.plan?.sriov ?? [],
  };
}

function snapshot(ctx: ActionContext): Snapshot {
  const { facts, problems, moduleListing } = readHostFacts(ctx.deps.root);
  const usage = readHostUsage(ctx.deps.root, { functions: facts.functions, problems });
  for (const p of problems) ctx.deps.log("WARNING", p.message);
  const readProblems = problems.map((p) => p.message);
  const parsed = parseConfig(ctx.model.config());
  if (!parsed.ok) {
    return {
      facts,
      usage,
      readProblems,
      config: null,
      configProblem: formatConfigError(parsed.errors[0]!),
      plan: null,
      moduleAliases: null,
      vfCountClaims: [],
    };
  }
  const claimProblems: HostReadProblem[] = [];
  const vfCountClaims = parsed.config.devices.some((d) => d.vfs !== null)
    ? readVfCountClaims(ctx.deps.root, claimProblems)
    : [];
  for (const p of claimProblems) ctx.deps.log("WARNING", p.message);
  readProblems.push(...claimProblems.map((p) => p.message));
  // As a hook reads them (the hooks' remembered answers too); actions keep nothing.
  const modules = planModulesFor(
    parsed.config,
    ctx.deps.root,
    facts,
    ctx.rememberedModules,
    moduleListing,
  );
  for (const p of modules?.problems ?? []) ctx.deps.log("WARNING", p.message);
  const plan = decideHost(parsed.config, facts, modules?.aliases ?? null, NOTHING_BOUND, {
    usage,
    moduleNames: modules?.names ?? null,
    vfCountClaims,
  });
  return {
    facts,
    usage,
    readProblems,
    config: parsed.config,
    configProblem: null,
    plan,
    moduleAliases: modules?.aliases ?? null,
    vfCountClaims,
  };
}

/** An action judges the host as it is: no binding remembered. */
const NOTHING_BOUND = { boundIds: {} };

/** modules.alias's answers for every function list-devices shows: the plan's when it asked them,
 * else read now (what the hooks remembered while the file is unchanged, the file itself for
 * anything else: a real one is a megabyte). Actions only read: what they learn is not stored. */
function aliasesToShow(ctx: ActionContext, snap: Snapshot): ModuleAliases {
  if (snap.moduleAliases) return snap.moduleAliases;
  const { aliases, problems } = readModuleAliases(
    ctx.deps.root,
    snap.facts.kernelRelease,
    snap.facts.functions.map((f) => f.modalias),
    ctx.rememberedModules,
  );
  for (const p of problems) ctx.deps.log("WARNING", p.message);
  return aliases;
}

/** Every action has one shape: `parse` turns the raw params into checked, typed ones (the
 * validator generated from actions.yaml, then the action's own syntax), and `run` acts on them. */
interface Action {
  /** The params as raw values → null when valid, else the errors in operator words. */
  check(raw: unknown): ParamError[] | null;
  /** The reply to one call: refused with the param errors, or the action's own reply. */
  reply(raw: unknown, ctx: ActionContext): ActionReply;
}

function action<P>(
  name: ActionName,
  parse: (raw: unknown) => Checked<P>,
  run: (params: P, ctx: ActionContext) => ActionReply,
): Action {
  // The shim's validator (check) and the handler (reply) get the same params object from one
  // action-get: it is parsed once, and the handler takes what the check made of it.
  const once = parsedOnce(parse);
  return {
    check: (raw) => {
      const checked = once(raw);
      return checked.ok ? null : checked.errors;
    },
    reply: (raw, ctx) => {
      const checked = once(raw);
      return checked.ok
        ? run(checked.params, ctx)
        : failure(paramErrorMessage(name, checked.errors));
    },
  };
}

const ACTIONS: Record<ActionName, Action> = {
  "list-devices": action("list-devices", parseListDevicesParams, (params, ctx) => {
    const snap = snapshot(ctx);
    const result = listDevices({
      params,
      facts: snap.facts,
      usage: snap.usage,
      modules: aliasesToShow(ctx, snap),
      names: loadPciIds(ctx.deps.root),
      ...selectionOf(snap),
    });
    return { ok: true, message: "", results: withSnapshotNotes(result.results, snap) };
  }),

  "verify-iommu": action("verify-iommu", parseVerifyIommuParams, (params, ctx) => {
    const snap = snapshot(ctx);
    const plan = snap.plan;
    if (!plan)
      return failure(
        `the charm config is invalid, so there is no plan to verify: ${snap.configProblem}`,
      );
    const result = verifyIommu({
      facts: snap.facts,
      plannedCmdline: plan.kernelParams,
      selection: plan.bind,
      withheld: plan.withheld,
      usage: snap.usage,
      interruptRemapping: readInterruptRemapping(ctx.deps.root, snap.facts.arch),
      noGrub: ctx.noGrub,
      sriov: plan.sriov,
      eachVf: params.eachVf,
    });
    return {
      ok: result.ok,
      message: result.message,
      results: withSnapshotNotes(result.results, snap),
    };
  }),

  rebind: action("rebind", parseRebindParams, (params, ctx) => {
    const snap = snapshot(ctx);
    return rebindAction({
      params,
      facts: snap.facts,
      usage: snap.usage,
      selection: snap.plan?.bind ?? [],
      withheld: snap.plan?.withheld ?? [],
      sysfs: createSysfsWriter(ctx.deps.root),
      run: ctx.deps.runner,
      stop: stopSignal,
    });
  }),

  "sriov-vfs": action("sriov-vfs", parseSriovVfsParams, (params, ctx) => {
    const snap = snapshot(ctx);
    if (!snap.plan)
      return failure(`the charm config is invalid, so there is no plan: ${snap.configProblem}`);
    const sriov = snap.plan.sriov;
    // Never write a count another owner sets differently at every boot: the next boot undoes it.
    const named = sriov.filter((pf) => params.pf === null || pf.address === params.pf);
    const against = vfCountDisagreements(named, snap.facts, snap.vfCountClaims);
    if (against.length > 0) {
      const problems = vfCountProblems(against, snap.vfCountClaims);
      return {
        ok: false,
        message: problems.map((p) => p.message).join(" "),
        results: { refused: listResult(problems, (p) => p.message) },
      };
    }
    return sriovVfsAction({
      params,
      facts: snap.facts,
      sriov,
      usage: snap.usage,
      groupUsers: (groups) => readVfioGroupUsers(ctx.deps.root, groups),
      sysfs: createSysfsWriter(ctx.deps.root),
    });
  }),

  "reboot-plan": action("reboot-plan", parseRebootPlanParams, (_params, ctx) => {
    const snap = snapshot(ctx);
    const { config, plan } = snap;
    if (!config || !plan) return failure(`the charm config is invalid: ${snap.configProblem}`);
    // What a hook would find, with nothing applied: the files are as the hooks left them.
    const failed: FailedCommand[] = ctx.noGrub
      ? [{ kind: "grub", argv: ["update-grub"], notFound: true, message: NO_GRUB }]
      : [];
    const assessment = handleReboot(
      ctx.model,
      {
        outcome: { kind: "prepared", plan, facts: snap.facts, failed },
        config,
      },
      ctx.deps,
      { act: false },
    );
    if (!assessment) return failure("no reboot assessment: the host was not prepared");
    const reply = rebootPlanReply({
      policy: config.reboot,
      plan,
      facts: snap.facts,
      pending: assessment.pending,
      decision: assessment.decision,
      lock: assessment.lock,
      limit: assessment.limit,
      rebootFacts: assessment.facts,
      memory: assessment.memory,
    });
    return { ...reply, results: withSnapshotNotes(reply.results, snap) };
  }),

  "nova-config": action("nova-config", parseNovaConfigParams, (params, ctx) => {
    const snap = snapshot(ctx);
    const { config, plan, facts } = snap;
    if (!config || !plan) return failure(`the charm config is invalid: ${snap.configProblem}`);
    const onVfio = new Set(
      facts.functions.filter((f) => f.driver === "vfio-pci").map((f) => f.address),
    );
    const installed = readNovaRelease(ctx.deps.root);
    // As the nova-compute relation decides it: once sent, report_in_placement stays True.
    const placement = placementOn(ctx.model, config);
    if (params.scope === "cloud") {
      // This host's offer as the hooks would publish it now; the others' from their bags.
      const own = buildOffer({
        bound: plan.bind,
        withheld: plan.withheld,
        sriov: plan.sriov,
        onVfio: (a) => onVfio.has(a),
        pfReady: (pf) => sriovReady(pf, facts),
        release: installed,
        placement: novaFeatures(installed, placement).placement,
      });
      return fleetConfig({
        summary: readFleetSummary(ctx.model),
        offers: readFleetOffers(ctx.model, own),
        related: fleetRelation(ctx.model) !== null,
      });
    }
    return novaConfig({
      bound: plan.bind,
      onVfio: (address) => onVfio.has(address),
      setting: config.novaPciOption,
      reportInPlacement: placement,
      installed,
      related: ctx.model.relations(NOVA_ENDPOINT).length > 0,
      sriov: {
        pfs: plan.sriov,
        ready: (pf) => sriovReady(pf, facts),
        netdev: (pf) =>
          facts.functions.find((f) => f.address === pf.address)?.netInterfaces[0] ?? null,
      },
      vfCounts: { claims: snap.vfCountClaims, facts },
    });
  }),
};

/** The validators main() runs on an action's params before any handler: the same checks as the
 * handler's, so Juju's `juju run` refusal and ours say the same thing in the same words. */
export const ACTION_PARAM_VALIDATORS: Record<ActionName, ParamValidator> = Object.fromEntries(
  Object.entries(ACTIONS).map(([name, a]) => [name, paramValidator(a)]),
) as Record<ActionName, ParamValidator>;

function paramValidator(a: Action): ParamValidator {
  const validate: ParamValidator = (raw: unknown) => {
    const errors = a.check(raw);
    validate.errors = errors === null ? null : errors.map((e) => ({ message: e.message }));
    return errors === null;
  };
  return validate;
}

/** Adds what the operator must know about the snapshot itself: an invalid config (the selection
 * is then empty) and every sysfs file that could not be read (a function may be missing). */
function withSnapshotNotes(results: ResultTree, snap: Snapshot): ResultTree {
  const extra: ResultTree = {};
  if (snap.configProblem) extra["config-problem"] = snap.configProblem;
  if (snap.readProblems.length > 0)
    extra["read-problems"] = listResult(snap.readProblems, (m) => m);
  return { ...results, ...extra };
}
