// Issue 6: the exact relation data the charm publishes to nova-compute, through the real charm.
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { useCleanups } from "../support/cleanups";
import type { HostSpec } from "../support/hosts/build-host";
import { makeTempHost } from "../support/hosts/build-host";
import { seedHost } from "../support/hosts/presets";
import { novaComputeRelation } from "../support/relations";
import { charmContext, useRoot } from "../support/scenario";

const RELEASE = "6.8.0-45-generic";
const BOOTED = `BOOT_IMAGE=/vmlinuz-${RELEASE} root=/dev/sda1 ro intel_iommu=on iommu=pt`;

/** The seed host after the reboot: the listed functions are on vfio-pci, the kernel has our params. */
function bootedSeedHost(onVfio: string[]): HostSpec {
  const spec = seedHost();
  return {
    ...spec,
    cmdline: BOOTED,
    pci: spec.pci!.map((p) => (onVfio.includes(p.address) ? { ...p, driver: "vfio-pci" } : p)),
  };
}

function published(devices: string, onVfio: string[]) {
  const host = makeTempHost(bootedSeedHost(onVfio));
  cleanups.push(host.cleanup);
  useRoot(host.root);
  const out = charmContext().run("nova-compute-relation-joined", {
    config: { devices },
    relations: [novaComputeRelation()],
  });
  const raw = out.relations[0]!.localUnitData.subordinate_configuration;
  return { out, raw, parsed: raw === undefined ? undefined : JSON.parse(raw) };
}

const cleanups = useCleanups();
afterEach(() => {
  vi.unstubAllEnvs();
});

/** The [pci] pairs as nova-compute will render them: [key, parsed JSON value]. */
function pciPairs(parsed: {
  nova: { "/etc/nova/nova.conf": { sections: { pci: [string, string][] } } };
}) {
  expect(Object.keys(parsed)).toEqual(["nova"]);
  return parsed.nova["/etc/nova/nova.conf"].sections.pci.map(([k, v]) => [k, JSON.parse(v)]);
}

describe("nova-compute relation data", () => {
  // Changed deliberately (issue 12 point 4): the HDMI audio companion was offered too.
  it("one GPU with its HDMI audio: both on vfio-pci, only the GPU offered to nova", () => {
    const { out, parsed } = published("0000:83:00.0", ["0000:83:00.0", "0000:83:00.1"]);
    expect(pciPairs(parsed)).toEqual([
      ["passthrough_whitelist", { vendor_id: "10de", product_id: "1bb0", address: "0000:83:00.0" }],
      ["alias", { name: "gpu", vendor_id: "10de", product_id: "1bb0", device_type: "type-PCI" }],
    ]);
    expect(out.unitStatus.name).toBe("active");
    expect(out.unitStatus.message).toMatch(/^2 devices .* on vfio-pci; IOMMU on/);
  });

  it("two identical GPUs, one selected by address: only that address is offered", () => {
    const { parsed } = published("0000:84:00.0", ["0000:84:00.0", "0000:84:00.1"]);
    const specs = pciPairs(parsed)
      .filter(([k]) => k === "passthrough_whitelist")
      .map(([, v]) => v.address);
    expect(specs).toEqual(["0000:84:00.0"]);
  });

  it("a device not on vfio-pci yet is not offered, and the status says why", () => {
    const { out, parsed } = published("0000:83:00.0", []);
    expect(pciPairs(parsed)).toEqual([]);
    expect(out.unitStatus.name).toBe("blocked");
    expect(out.unitStatus.message).toContain("waiting for reboot before offering devices to nova");
  });

  it("no devices selected: an empty [pci] list, so nova-compute re-renders without stale lines", () => {
    const { out, parsed } = published("", []);
    expect(pciPairs(parsed)).toEqual([]);
    expect(out.unitStatus.message).toMatch(/^no matching devices on this host; IOMMU on/);
  });

  it("removal clears the key", () => {
    const { out } = published("0000:83:00.0", ["0000:83:00.0", "0000:83:00.1"]);
    const after = charmContext().run("stop", out);
    expect(after.relations[0]!.localUnitData.subordinate_configuration).toBeUndefined();
  });

  it("an idle hook republishes nothing and calls no relation tool", () => {
    const { out } = published("0000:83:00.0", ["0000:83:00.0", "0000:83:00.1"]);
    const idle = charmContext().run("update-status", out);
    expect(idle.hookToolCalls.map((c) => c[0])).toEqual(["config-get", "state-get"]);
  });
  it("reads dpkg's status again only when the file changed", () => {
    const host = makeTempHost(bootedSeedHost(["0000:83:00.0", "0000:83:00.1"]));
    cleanups.push(host.cleanup);
    useRoot(host.root);
    const status = path.join(host.root, "var/lib/dpkg/status");
    const novaCommon = (version: string) =>
      `Package: nova-common\nStatus: install ok installed\nVersion: ${version}\n\n`;
    fs.mkdirSync(path.dirname(status), { recursive: true });
    fs.writeFileSync(status, novaCommon("3:29.0.1-0ubuntu1"));
    const optionNames = (out: { relations: { localUnitData: Record<string, string> }[] }) => [
      ...new Set(
        JSON.parse(out.relations[0]!.localUnitData.subordinate_configuration!).nova[
          "/etc/nova/nova.conf"
        ].sections.pci.map(([k]: [string, string]) => k),
      ),
    ];
    const hook = (stored?: Record<string, unknown>) =>
      charmContext().run("nova-compute-relation-joined", {
        config: { devices: "0000:83:00.0" },
        relations: [novaComputeRelation()],
        ...(stored ? { stored } : {}),
      });
    const first = hook();
    expect(optionNames(first)).toEqual(["device_spec", "alias"]);
    const remembered = first.stored["nova-release"] as { stamp: string; release: unknown };
    expect(remembered.release).toMatchObject({ package: "nova-common", upstream: [29, 0, 1] });
    // Same file: the remembered answer is used, even one that says Yoga (proof of no re-read).
    const yoga = {
      ...remembered,
      release: { ...(remembered.release as object), upstream: [25, 2, 0] },
    };
    expect(optionNames(hook({ ...first.stored, "nova-release": yoga }))).toEqual([
      "passthrough_whitelist",
      "alias",
    ]);
    // dpkg replaced the file (an upgrade): read again.
    fs.writeFileSync(`${status}.new`, novaCommon("3:30.0.0-0ubuntu1"));
    fs.renameSync(`${status}.new`, status);
    const upgraded = hook({ ...first.stored, "nova-release": yoga });
    expect(optionNames(upgraded)).toEqual(["device_spec", "alias"]);
    expect(upgraded.stored["nova-release"]).toMatchObject({ release: { upstream: [30, 0, 0] } });
  });
});
