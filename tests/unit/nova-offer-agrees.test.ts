// One "offered to nova" rule (plan/nova.ts novaOffer): what the nova-compute relation publishes in
// a hook and what the nova-config action says it sends are the same [pci] lines, on a host where
// that is easy to get wrong: VFs the charm creates, a VF selected by address still on its host
// driver, one already on vfio-pci, a companion-free GPU, and a selected function the host keeps.
import { describe, expect, it } from "vitest";
import { buildOffer } from "../../src/plan/fleet";
import {
  NO_NOVA_FEATURES,
  novaOffer,
  offeredToNova,
  SUBORDINATE_CONFIGURATION_KEY,
} from "../../src/plan/nova";
import { sriovReady } from "../../src/plan/sriov";
import { useCleanups } from "../support/cleanups";
import { makeTempHost } from "../support/hosts/build-host";
import { amdHost } from "../support/hosts/presets";
import { planOnTree } from "../support/plan-on-tree";
import { novaComputeRelation } from "../support/relations";
import { charmContext, useRoot } from "../support/scenario";

const cleanups = useCleanups();

/** amdHost with nova 31 installed and one VF of the management PF already on vfio-pci. */
function host(): string {
  const spec = amdHost();
  const h = makeTempHost(
    {
      ...spec,
      pci: spec.pci!.map((p) => (p.address === "0000:41:02.2" ? { ...p, driver: "vfio-pci" } : p)),
      files: {
        ...(spec.files ?? {}),
        "/var/lib/dpkg/status":
          "Package: nova-common\nStatus: install ok installed\nVersion: 3:31.0.0-0ubuntu1\n\n",
      },
    },
    "pci-nova-offer-",
  );
  cleanups.push(h.cleanup);
  useRoot(h.root);
  return h.root;
}

const DEVICES = [
  '- {address: "0000:41:00.1", vfs: 4, alias: vf-x710}', // VFs the charm creates (none yet)
  '- {address: "0000:41:02.1", alias: vf-iavf}', // a VF on iavf: not on vfio-pci yet
  '- {address: "0000:41:02.2", alias: vf-iavf}', // a VF already on vfio-pci
  '- {address: "0000:43:00.0", alias: disk}', // the root disk: withheld
].join("\n");

/** The [pci] lines of the relation data, as nova-compute's template renders them. */
function relationLines(data: Record<string, string>): string[] {
  const value = JSON.parse(data[SUBORDINATE_CONFIGURATION_KEY]!) as Record<
    string,
    Record<string, { sections: { pci: [string, string][] } }>
  >;
  const [service] = Object.values(value);
  const [file] = Object.values(service!);
  return file!.sections.pci.map(([k, v]) => `${k} = ${v}`);
}

describe("the nova-compute relation and nova-config say the same", () => {
  for (const placement of [false, true]) {
    it(`one rule for both (pci-report-in-placement ${placement ? "on, then off" : "off"})`, () => {
      host();
      const ctx = charmContext();
      const config = { devices: DEVICES, "pci-report-in-placement": placement };
      let state = ctx.run("config-changed", { config, relations: [novaComputeRelation()] });
      if (placement) {
        // Turned off again: nova-compute refuses report_in_placement going back to False, so
        // the relation keeps sending True; nova-config must say so too.
        state = ctx.run("config-changed", {
          ...state,
          config: { ...config, "pci-report-in-placement": false },
        });
      }
      expect(state.unitStatus.message).toContain("0000:43:00.0");
      const published = relationLines(state.relations[0]!.localUnitData);

      const action = ctx.run("nova-config-action", { ...state, actionParams: { scope: "host" } });
      expect(action.actionFailure).toBeNull();
      const shown = String(action.actionResults!["nova-conf"]).split("\n").slice(1);
      expect(shown).toEqual(published);

      // What the lines are: the PF's compact spec for the VFs to come, the VF on vfio-pci; not the
      // VF still on iavf, not the root disk.
      const text = published.join("\n");
      expect(text).toContain('"address":"0000:41:00.1"');
      expect(text).toContain('"address":"0000:41:02.2"');
      expect(text).not.toContain("0000:41:02.1");
      expect(text).not.toContain("0000:43:00.0");
      expect(text.includes("report_in_placement = True")).toBe(placement);
    });
  }
});

describe("the fleet offer counts what the relation offers", () => {
  it("offered per alias: the relation's functions; the rest of the selection pending", () => {
    const { plan, facts } = planOnTree(host(), { devices: DEVICES });
    const onVfio = (a: string) =>
      facts.functions.find((f) => f.address === a)?.driver === "vfio-pci";
    const pfReady = (pf: (typeof plan.sriov)[number]) => sriovReady(pf, facts);
    const sent = novaOffer(
      plan.bind,
      onVfio,
      { pfs: plan.sriov, ready: pfReady },
      NO_NOVA_FEATURES,
    ).offered.filter(offeredToNova);
    const perAlias = (devices: Array<{ alias: string }>) => {
      const counts: Record<string, number> = {};
      for (const d of devices) counts[d.alias] = (counts[d.alias] ?? 0) + 1;
      return counts;
    };
    const offer = buildOffer({
      bound: plan.bind,
      withheld: plan.withheld,
      sriov: plan.sriov,
      onVfio,
      pfReady,
      release: null,
      placement: false,
    });
    const counted = (key: "offered" | "pending") =>
      Object.fromEntries(offer.aliases.filter((a) => a[key] > 0).map((a) => [a.name, a[key]]));
    expect(counted("offered")).toEqual(perAlias(sent));
    // The VF still on iavf is selected, not offered: pending, in both views.
    const sentAddresses = new Set(sent.map((d) => d.address));
    const waiting = plan.bind.filter((d) => offeredToNova(d) && !sentAddresses.has(d.address));
    expect(waiting.map((d) => d.address)).toEqual(["0000:41:02.1"]);
    expect(counted("pending")).toEqual(perAlias(waiting));
    // The VFs the charm creates are offered through their PF's spec before they exist.
    expect(counted("offered")["vf-x710"]).toBe(4);
  });
});
