// Beside ovn-chassis, through the real charm (Scenario style): its netplan file gives the PF
// sriov_totalvfs VFs at every boot (sriov-numvfs=auto), `vfs` asks for fewer. The unit blocks with
// the exact setting, writes none of its files, sriov-vfs refuses to write the count, and nova-config
// prints the same line (issue 21, item 4).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ResultTree } from "../../src/actions/results";
import { NEIGHBOURS, OWNED, under } from "../../src/host/root";
import { useCleanups } from "../support/cleanups";
import { makeTempHost } from "../support/hosts/build-host";
import { amdHost } from "../support/hosts/presets";
import { charmContext, useRoot } from "../support/scenario";

const PF = "0000:41:00.1";
const OVN = `/etc/netplan/${NEIGHBOURS.ovnChassisNetplanName}`;
const OVN_FILE = readFileSync(
  join(__dirname, "..", "fixtures", "vf-count-owners", "150-charm-ovn.yaml"),
  "utf8",
);
const LINE = 'juju config ovn-chassis sriov-numvfs="enp65s0f0:64 enp65s0f1:8"';
const config = (n: number) => ({
  devices: `- {address: "${PF}", vfs: ${n}, physical-network: physnet1}`,
});

const cleanups = useCleanups();
afterEach(() => {
  vi.unstubAllEnvs();
});

function onHostWithOvn(): string {
  const spec = amdHost();
  const host = makeTempHost({ ...spec, files: { ...(spec.files ?? {}), [OVN]: OVN_FILE } });
  cleanups.push(host.cleanup);
  useRoot(host.root);
  return host.root;
}

describe("beside ovn-chassis (sriov-numvfs=auto)", () => {
  it("config-changed: blocked with the exact line, none of the charm's files written", () => {
    const root = onHostWithOvn();
    const out = charmContext().run("config-changed", { config: config(8) });
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toContain("ovn-chassis sets 64");
    expect(out.unitStatus.message).toContain(LINE);
    for (const path of Object.values(OWNED)) expect(existsSync(under(root, path))).toBe(false);
  });

  it("when vfs agrees with it: the SR-IOV rule is written", () => {
    const root = onHostWithOvn();
    const out = charmContext().run("config-changed", { config: config(64) });
    expect(out.unitStatus.message).not.toContain("ovn-chassis");
    expect(readFileSync(under(root, OWNED.sriovRule), "utf8")).toContain(PF);
  });

  it("sriov-vfs refuses to write a count ovn-chassis undoes at the next boot", () => {
    const root = onHostWithOvn();
    const out = charmContext().run(
      { name: "sriov-vfs-action", params: { force: true } },
      { config: config(8) },
    );
    expect(out.actionFailure).toContain(LINE);
    expect(
      readFileSync(under(root, `/sys/bus/pci/devices/${PF}/sriov_numvfs`), "utf8").trim(),
    ).toBe("0");
  });

  it("nova-config prints the line, and the disagreement", () => {
    onHostWithOvn();
    const out = charmContext().run(
      { name: "nova-config-action", params: { scope: "host" } },
      { config: config(8) },
    );
    const counts = out.actionResults!["vf-counts"] as ResultTree;
    expect(counts["ovn-chassis"]).toBe(LINE);
    expect((counts.disagree as ResultTree)["1"]).toContain("ovn-chassis sets 64");
  });
});
