// plan/ reads nothing, not even through a reader it was handed: planHost's inputs are data (the
// module answers and module names too, read before planning by host/), checked two ways. The
// types: `npx tsc` fails when any parameter of planHost can hold a function (a reader, a lazy
// index). The values: what a hook hands it on a real host tree holds no function.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config";
import { readHostFacts, readHostUsage } from "../../src/host/read-facts";
import { readVfCountClaims } from "../../src/host/vf-count-owners";
import { planModulesFor } from "../../src/host-preparation";
import { planHost } from "../../src/plan/plan-host";
import { useCleanups } from "../support/cleanups";
import { makeTempHost } from "../support/hosts/build-host";
import { amdHost } from "../support/hosts/presets";

type Fn = (...args: never[]) => unknown;

/** true when a value of type T can hold a function anywhere; Map, Set and arrays are containers
 * of data (their own methods aside), a RegExp is data (a compiled address glob of the config). */
type HoldsFunction<T> = T extends Fn
  ? true
  : T extends RegExp
    ? false
    : T extends ReadonlyMap<infer K, infer V>
      ? HoldsFunction<K> | HoldsFunction<V>
      : T extends ReadonlySet<infer V>
        ? HoldsFunction<V>
        : T extends readonly (infer E)[]
          ? HoldsFunction<E>
          : T extends object
            ? { [K in keyof T]-?: HoldsFunction<T[K]> }[keyof T]
            : false;

// Compile-time: a parameter of planHost that can hold a function makes this `never`.
const PLAN_INPUTS_ARE_DATA: HoldsFunction<Parameters<typeof planHost>[number]> extends false
  ? true
  : never = true;

/** The paths of every function inside `value`. */
function functionsIn(value: unknown, path = "input", seen = new Set<unknown>()): string[] {
  if (typeof value === "function") return [path];
  if (value === null || typeof value !== "object" || seen.has(value)) return [];
  seen.add(value);
  if (value instanceof Map) {
    return [...value].flatMap(([k, v]) => [
      ...functionsIn(k, `${path}.key`, seen),
      ...functionsIn(v, `${path}[${String(k)}]`, seen),
    ]);
  }
  if (value instanceof Set) return [...value].flatMap((v) => functionsIn(v, `${path}{}`, seen));
  return Object.entries(value).flatMap(([k, v]) => functionsIn(v, `${path}.${k}`, seen));
}

const cleanups = useCleanups();

describe("planHost's inputs are data", () => {
  it("the types hold no function", () => {
    expect(PLAN_INPUTS_ARE_DATA).toBe(true);
  });

  it("what a hook hands it holds no function (and the check finds one)", () => {
    const built = makeTempHost(amdHost());
    cleanups.push(built.cleanup);
    const parsed = parseConfig({ devices: '- {address: "0000:41:00.1", vfs: 4}\n- 1002:73bf' });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const { facts } = readHostFacts(built.root);
    const modules = planModulesFor(parsed.config, built.root, facts, null)!;
    const inputs: Parameters<typeof planHost> = [
      parsed.config,
      facts,
      modules.aliases,
      { boundIds: {} },
      {
        usage: readHostUsage(built.root, { functions: facts.functions }),
        moduleNames: modules.names,
        vfCountClaims: readVfCountClaims(built.root, []),
      },
    ];
    expect(functionsIn(inputs)).toEqual([]);
    expect(planHost(...inputs).blacklist).toEqual(["amdgpu", "snd_hda_intel"]);
    expect(functionsIn([{ modulesFor: () => [] }])).toEqual(["input.0.modulesFor"]);
  });
});
