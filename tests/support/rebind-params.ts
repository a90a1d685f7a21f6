// The rebind action takes checked params (the handler parses them before reading the host):
// tests that call rebindAction directly write them as raw `juju run` params and check them here.
import { parseRebindParams, type RebindParams } from "../../src/actions/rebind-plan";

/** The raw params, checked as the handler checks them; throws (failing the test) if refused. */
export function rebindParams(raw: unknown): RebindParams {
  const checked = parseRebindParams(raw);
  if (!checked.ok) throw new Error(`test params refused: ${JSON.stringify(checked.errors)}`);
  return checked.params;
}
