// Entry point bundled into dist/charm.js; ./dispatch runs it for every hook and action.
import { main, type ParamValidator } from "ops-ts-shim";
// src/generated/ is not in git: `npm run gen` makes it from actions.yaml and src/schemas/, and
// `npm ci` (the prepare script) and every build run that (src/generated/README.md).
import { declaredActions } from "./generated/actions";
import { actionCode, PciPassthroughCharm } from "./pci-passthrough-charm";
import { beginQuietRecord, settleQuietHook } from "./quiet/keep";

/** An action's parameter check, loading the action code only when an action runs. */
function lazyValidator(action: string): ParamValidator {
  const validate: ParamValidator = (raw: unknown) => {
    const real = (actionCode().ACTION_PARAM_VALIDATORS as Record<string, ParamValidator>)[action];
    if (!real) return true;
    const ok = real(raw);
    validate.errors = real.errors ?? null;
    return ok;
  };
  return validate;
}

/** Actions that run stoppable (rebind writes to sysfs step by step: SIGTERM lets it finish or
 * undo the function it is moving). Such an action goes on in a worker thread after this script's
 * top level returns; any other is done by then, so dist/actions.js exits at once
 * (scripts/build.mjs), which reads this list from the bundle's exports. */
export const STOPPABLE_ACTIONS = ["rebind"];

// A hook the quiet-hook probe (src/quiet/probe.ts) looked at first: it read the prefetched lines
// and this run records its reads, to be kept as the hook's memo if it changes nothing.
const quiet = beginQuietRecord();

// The actions come with the bundle (generated from the same actions.yaml the pack step ships), so
// an action's dispatch does not parse YAML to learn that it is declared; their params are checked
// before any handler runs (and so before any host read).
const exitCode = main(PciPassthroughCharm, {
  actions: declaredActions,
  actionParamValidators: Object.fromEntries(
    Object.keys(declaredActions).map((a) => [a, lazyValidator(a)]),
  ),
  stoppableActions: STOPPABLE_ACTIONS,
  ...(quiet ? { prefetched: quiet.prefetched } : {}),
});
process.exitCode = quiet ? settleQuietHook(quiet, exitCode) : exitCode;
