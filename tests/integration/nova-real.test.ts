// Debian's real nova (python3-nova, installed by scripts/setup.sh) judges what we publish: the
// device_spec values the seed host's selection sends, parsed by nova.pci.whitelist.Whitelist as
// nova-compute does at start-up, admit the selected GPU and not its HDMI audio companion (issue 12
// point 4: a VM opens an IOMMU group whole, so nova must never hand the companion to another VM).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  novaPciEntries,
  novaRelationData,
  SUBORDINATE_CONFIGURATION_KEY,
} from "../../src/plan/nova";
import { selectFunctions } from "../../src/plan/select";
import type { BoundDevice } from "../../src/plan/types";
import { seedHost, sel } from "../support/host-facts";

/** Debian's interpreter, where python3-nova lives (not a pyenv or venv python on PATH). */
const PYTHON = "/usr/bin/python3";

/** Which of `devices` the real Whitelist admits, given the device_spec values of nova.conf. */
function admittedByNova(specs: string[], devices: BoundDevice[]): Record<string, boolean> {
  const script = [
    "import json, sys",
    "from nova.pci import whitelist",
    "specs, devices = json.load(sys.stdin)",
    "wl = whitelist.Whitelist(specs)",
    "print(json.dumps({d['address']: wl.device_assignable(d) for d in devices}))",
  ].join("\n");
  const input = JSON.stringify([
    specs,
    devices.map((d) => ({
      vendor_id: d.vendorId,
      product_id: d.deviceId,
      address: d.address,
      parent_addr: null,
    })),
  ]);
  const run = spawnSync(PYTHON, ["-c", script], { input, encoding: "utf8" });
  if (run.status !== 0) {
    throw new Error(
      `${PYTHON} with nova.pci.whitelist failed (is python3-nova installed? scripts/setup.sh installs it):\n${run.stderr}`,
    );
  }
  return JSON.parse(run.stdout) as Record<string, boolean>;
}

/** Importing nova loads oslo and nova.objects: seconds on a busy machine. */
const NOVA_TIMEOUT_MS = 120_000;

describe("Debian's nova (python3-nova) admits what the charm offers", () => {
  it(
    "python3-nova is installed (scripts/setup.sh)",
    () => {
      expect(existsSync(PYTHON), `${PYTHON} is missing`).toBe(true);
      const probe = spawnSync(PYTHON, ["-c", "import nova.pci.whitelist"], { encoding: "utf8" });
      expect(probe.status, `python3-nova is missing: ${probe.stderr}`).toBe(0);
    },
    NOVA_TIMEOUT_MS,
  );

  it(
    "the GPU selected by ids on the seed host: nova admits the GPU, not its audio companion",
    () => {
      const facts = seedHost();
      const selection = selectFunctions(
        [sel({ vendorId: "10de", productId: "1bb0", address: "0000:83:00.0", source: "gpu" })],
        facts,
      );
      // Both go to vfio-pci: the group needs the audio there.
      expect(selection.bind.map((b) => [b.address, b.reason])).toEqual([
        ["0000:83:00.0", "selected"],
        ["0000:83:00.1", "companion"],
      ]);
      const { data } = novaRelationData(selection.bind, () => true, "device_spec");
      const pairs = JSON.parse(data[SUBORDINATE_CONFIGURATION_KEY]!).nova["/etc/nova/nova.conf"]
        .sections.pci as [string, string][];
      const specs = pairs.filter(([k]) => k === "device_spec").map(([, v]) => v);
      expect(admittedByNova(specs, selection.bind)).toEqual({
        "0000:83:00.0": true,
        "0000:83:00.1": false,
      });
      // No alias asks for the audio either, so no flavor can.
      expect(novaPciEntries(selection.bind).aliases.map((a) => a.product_id)).toEqual(["1bb0"]);
    },
    NOVA_TIMEOUT_MS,
  );

  it(
    "the check can fail: the old publication (a spec per companion) admits the audio",
    () => {
      const facts = seedHost();
      const { bind } = selectFunctions([sel({ address: "0000:83:00.0", source: "gpu" })], facts);
      const asBefore = bind.map((b) => ({ ...b, reason: "selected" as const }));
      const specs = novaPciEntries(asBefore).deviceSpecs.map((s) => JSON.stringify(s));
      expect(admittedByNova(specs, bind)["0000:83:00.1"]).toBe(true);
    },
    NOVA_TIMEOUT_MS,
  );
});
