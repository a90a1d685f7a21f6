// The charm under the shim's Scenario harness: a state goes in, one event runs through the real
// main()/Model against an in-memory Juju, a new state comes out. The host is a real temp tree.
import * as fs from "node:fs";
import * as path from "node:path";
import { Context } from "ops-ts-shim/testing";
import { vi } from "vitest";
import { PciPassthroughCharm } from "../../src/pci-passthrough-charm";

const TOP = path.resolve(__dirname, "..", "..");
const read = (f: string) => fs.readFileSync(path.join(TOP, f), "utf8");

/** A Scenario context for this charm, consistency-checked against the real yaml files. */
export function charmContext(): Context {
  return new Context(PciPassthroughCharm, {
    metadata: read("metadata.yaml"),
    config: read("config.yaml"),
    actions: read("actions.yaml"),
    unitName: "pci-passthrough/0",
  });
}

/** Points the charm at a sandbox root; update-grub & co. are skipped (logged) there. */
export function useRoot(root: string): void {
  vi.stubEnv("PCI_PASSTHROUGH_ROOT", root);
  vi.stubEnv("PCI_PASSTHROUGH_RUN_COMMANDS", "");
}
