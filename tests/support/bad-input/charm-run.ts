// The charm in-process, through the shim's real main() against the in-memory fake Juju (the one
// the Scenario harness and the simulator share), WITHOUT the Scenario consistency checker: the
// bad-input corpus holds values Juju's own CLI would refuse (a boolean for a string option),
// and the charm must still refuse them cleanly if they ever reach it.
import * as fs from "node:fs";
import * as path from "node:path";
import { main } from "ops-ts-shim";
import {
  buildFakeUnit,
  type EventSpec,
  type FakeUnitState,
  hookEnvironment,
  type RelationSpec,
  runFakeHookTool,
} from "ops-ts-shim/testing";
import { parse } from "yaml";
import { PciPassthroughCharm } from "../../../src/pci-passthrough-charm";

const TOP = path.resolve(__dirname, "..", "..", "..");
const yamlOf = (f: string) => parse(fs.readFileSync(path.join(TOP, f), "utf8"));
const METADATA = yamlOf("metadata.yaml");
const ACTIONS = yamlOf("actions.yaml");
const CONFIG = yamlOf("config.yaml");

export interface UnitInput {
  config?: Record<string, unknown>;
  stored?: Record<string, unknown>;
  relations?: RelationSpec[];
}

export interface CharmRun {
  exitCode: number;
  state: FakeUnitState;
  /** The action run, for action events. */
  action: FakeUnitState["actions"][string] | null;
  /** Commands the charm would have run (the sandbox root skips and logs them). */
  skippedCommands: string[];
}

/** Runs one event of the charm against `root` (PCI_PASSTHROUGH_ROOT) and returns the unit. */
export function runCharm(event: EventSpec, unit: UnitInput, root: string): CharmRun {
  const fake = buildFakeUnit({
    unitName: "pci-passthrough/0",
    config: unit.config,
    configSpec: CONFIG,
    stored: unit.stored,
    relations: unit.relations ?? [{ endpoint: "juju-info", remoteApp: "nova-compute" }],
  });
  const env = hookEnvironment(fake, event, {
    charmDir: "/var/lib/juju/agents/unit-pci-passthrough-0/charm",
    principalUnit: "nova-compute/0",
  });
  const saved = {
    root: process.env.PCI_PASSTHROUGH_ROOT,
    run: process.env.PCI_PASSTHROUGH_RUN_COMMANDS,
  };
  process.env.PCI_PASSTHROUGH_ROOT = root;
  delete process.env.PCI_PASSTHROUGH_RUN_COMMANDS;
  try {
    const exitCode = main(PciPassthroughCharm, {
      env,
      runner: (argv, input) => runFakeHookTool(fake, argv, { stdin: input, env }),
      metadata: METADATA,
      actions: ACTIONS,
    });
    const id = env.JUJU_ACTION_UUID;
    return {
      exitCode,
      state: fake,
      action: id ? (fake.actions[id] ?? null) : null,
      skippedCommands: fake.logs
        .map((l) => /^skipped `([^`]+)`/.exec(l.message)?.[1])
        .filter((c): c is string => c !== undefined),
    };
  } finally {
    if (saved.root === undefined) delete process.env.PCI_PASSTHROUGH_ROOT;
    else process.env.PCI_PASSTHROUGH_ROOT = saved.root;
    if (saved.run === undefined) delete process.env.PCI_PASSTHROUGH_RUN_COMMANDS;
    else process.env.PCI_PASSTHROUGH_RUN_COMMANDS = saved.run;
  }
}
