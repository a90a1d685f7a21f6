// The actions end to end on the shared host trees (tests/support/hosts): the real readers read the
// tree, the actions decide, and rebind's writes land on FakeKernel, which reacts as Linux does; the
// facts are then read again, so what verify-iommu sees afterwards is what the kernel made.
import { describe, expect, it } from "vitest";
import { listDevices } from "../../src/actions/list-devices";
import { rebindAction } from "../../src/actions/rebind";
import type { ResultTree } from "../../src/actions/results";
import { verifyIommu } from "../../src/actions/verify-iommu";
import type { HostFacts } from "../../src/host/facts";
import { readInterruptRemapping } from "../../src/host/interrupt-remapping";
import { readModuleAliases } from "../../src/host/modules";
import { loadPciIds, readHostFacts, readHostUsage } from "../../src/host/read-facts";
import { selectFunctions } from "../../src/plan/select";
import { notOnVfioYet } from "../support/bound-devices";
import { useCleanups } from "../support/cleanups";
import { addDriver, FakeKernel } from "../support/fake-kernel";
import { sel } from "../support/host-facts";
import { type HostSpec, makeTempHost } from "../support/hosts/build-host";
import {
  amdHost,
  gpuLessHost,
  iommuOffHost,
  seedHost,
  sharedGroupHost,
} from "../support/hosts/presets";
import { rebindParams } from "../support/rebind-params";

const cleanups = useCleanups();

/** A built host, its facts as the readers see them, and a kernel that reacts to writes. */
function onHost(spec: HostSpec) {
  const built = makeTempHost(spec, "actions-host-");
  cleanups.push(built.cleanup);
  const root = built.root;
  const read = () => {
    const { facts } = readHostFacts(root);
    return { facts, usage: readHostUsage(root, { functions: facts.functions }) };
  };
  const first = read().facts;
  const kernel = new FakeKernel(root, new Map(first.functions.map((f) => [f.address, f.driver])));
  const rebind = (
    rawParams: Record<string, unknown>,
    selection = [] as ReturnType<typeof select>,
  ) => {
    const { facts, usage } = read();
    return rebindAction({
      params: rebindParams(rawParams),
      facts,
      usage,
      selection,
      sysfs: kernel,
      run: null,
    });
  };
  const select = (facts: HostFacts, ids: string, address: string) =>
    selectFunctions(
      [sel({ vendorId: ids.slice(0, 4), productId: ids.slice(5), address, source: ids })],
      facts,
    ).bind;
  const verify = (planned: string[], selectionOf: (f: HostFacts) => ReturnType<typeof select>) => {
    const { facts, usage } = read();
    return verifyIommu({
      facts,
      plannedCmdline: planned,
      selection: selectionOf(facts),
      usage,
      interruptRemapping: readInterruptRemapping(root),
    });
  };
  return { root, read, kernel, rebind, select, verify };
}

const devices = (r: ResultTree) => r.devices as Record<string, Record<string, string>>;

describe("seed host: list, verify, rebind there and back", () => {
  it("lists the host as the readers see it, with host uses and selection", () => {
    const h = onHost(seedHost());
    const { facts, usage } = h.read();
    const { results } = listDevices({
      params: { classPrefixes: null, vendor: null, selectedOnly: false, eachVf: false },
      facts,
      usage,
      modules: readModuleAliases(
        h.root,
        facts.kernelRelease,
        facts.functions.map((f) => f.modalias),
        null,
      ).aliases,
      names: loadPciIds(h.root),
      selection: h.select(facts, "10de:1bb0", "0000:83:00.0"),
    });
    expect(devices(results)["0000-83-00-0"]).toMatchObject({
      "class-name": "gpu",
      driver: "nouveau",
      modules: "nouveau, nvidiafb",
      "iommu-group": "42",
      "numa-node": "1",
      selected: "yes",
    });
    expect(devices(results)["0000-83-00-1"]).toMatchObject({
      selected: "yes",
      "selected-as": "companion of 0000:83:00.0",
    });
    expect(devices(results)["0000-03-00-0"]).toMatchObject({ "boot-vga": "yes" });
    expect(devices(results)["0000-03-00-0"]!["host-use"]).toContain("console framebuffer fb0");
    expect(devices(results)["0000-18-00-0"]!["host-use"]).toContain("network interface eno1 is up");
    expect(devices(results)["0000-00-1f-2"]!["host-use"]).toContain("disk controller for /");
  });

  it("moves the selected GPU to vfio-pci, verify-iommu then sees it bound and viable", () => {
    const h = onHost(seedHost());
    const planned = ["intel_iommu=on", "iommu=pt"];
    const selectionOf = (f: HostFacts) => h.select(f, "10de:1bb0", "0000:83:00.0");

    const before = h.verify(planned, selectionOf);
    expect(before.ok).toBe(false);
    expect(before.problems.map((p) => `${p.check} ${p.device ?? "-"}`)).toEqual([
      "cmdline -",
      "cmdline -",
      ...notOnVfioYet("0000:83:00.0"),
      ...notOnVfioYet("0000:83:00.1"),
    ]);

    const reply = h.rebind({}, selectionOf(h.read().facts));
    expect(reply.ok).toBe(true);
    expect(devices(reply.results)).toMatchObject({
      "0000-83-00-0": { before: "nouveau", after: "vfio-pci" },
      "0000-83-00-1": { before: "snd_hda_intel", after: "vfio-pci" },
    });

    const after = h.verify(planned, selectionOf);
    // Only the reboot-bound part is left: the running kernel's command line.
    expect(after.problems.map((p) => p.check)).toEqual(["cmdline", "cmdline"]);
    expect(after.devices.map((d) => [d.address, d.driver, d.viable, d.vfioDevice])).toEqual([
      ["0000:83:00.0", "vfio-pci", true, true],
      ["0000:83:00.1", "vfio-pci", true, true],
    ]);
    // The other card was not touched.
    expect(h.read().facts.functions.find((f) => f.address === "0000:84:00.0")!.driver).toBe(
      "nouveau",
    );

    const back = h.rebind({ to: "host", devices: "0000:83:00.0" });
    expect(back.ok).toBe(true);
    expect(devices(back.results)).toMatchObject({
      "0000-83-00-0": { after: "nouveau", status: "moved" },
      "0000-83-00-1": { after: "snd_hda_intel", reason: "group-member" },
    });
    expect(h.kernel.vfioNode(42)).toBe(false);
    expect(h.rebind({ to: "host", devices: "0000:83:00.0" }).message).toBe(
      "every device is already where asked; nothing was changed",
    );
  });

  it("refuses the management NIC, the console GPU and the root disk's controller, naming why", () => {
    const h = onHost(seedHost());
    const nic = h.rebind({ devices: "0000:18:00.0" });
    expect(nic.ok).toBe(false);
    expect(nic.message).toContain("0000:18:00.0: network interface eno1 is up");
    expect(nic.message).toContain("network interface eno1 has addresses 10.0.0.5");
    expect(nic.message).toMatch(/network interface eno1 carries \d+ routes?/);
    const vga = h.rebind({ devices: "0000:03:00.0" });
    expect(vga.message).toContain("boot VGA");
    expect(vga.message).toContain("console framebuffer fb0");
    const disk = h.rebind({ devices: "0000:00:1f.2" });
    expect(disk.message).toContain("0000:00:1f.2: disk controller for /");
    expect(h.kernel.writes).toEqual([]);
  });
});

describe("other hosts", () => {
  it("a bonded NIC is refused as enslaved", () => {
    const h = onHost(gpuLessHost());
    expect(h.rebind({ devices: "0000:01:00.1" }).message).toContain(
      "network interface eno2 is enslaved to bond0",
    );
  });

  it("a PF with VFs is refused even with force; swap on the NVMe is named", () => {
    const h = onHost(amdHost());
    const pf = h.rebind({ devices: "0000:41:00.0", force: true });
    expect(pf.ok).toBe(false);
    expect(pf.message).toContain(
      "SR-IOV PF with 4 VFs enabled: vfio-pci refuses such a PF (EBUSY)",
    );
    const nvme = h.rebind({ devices: "0000:43:00.0" });
    expect(nvme.message).toContain("disk controller for swap on");
    expect(h.kernel.writes).toEqual([]);
    // A VF of that PF is fine to take.
    const vf = h.rebind({ devices: "0000:41:02.1" });
    expect(vf.ok).toBe(true);
    expect(h.kernel.readDriver("0000:41:02.1")).toBe("vfio-pci");
  });

  it("a shared group: the down NIC is refused for its up group-mate; force moves both", () => {
    const h = onHost(sharedGroupHost());
    const r = h.rebind({ devices: "0000:01:01.0" });
    expect(r.ok).toBe(false);
    expect(r.message).toContain(
      "0000:01:01.0: its IOMMU group 5 also holds 0000:01:02.0, which the host uses",
    );
    expect(r.message).toContain("0000:01:02.0: network interface eth1 is up");
    // vfio-pci is a module here and not loaded: under a test root nobody may modprobe it.
    const unloaded = h.rebind({ devices: "0000:01:01.0", force: true });
    expect(unloaded.message).toContain("/sys/bus/pci/drivers/vfio-pci is missing under the root");
    expect(h.kernel.writes).toEqual([]);
    addDriver(h.root, "vfio-pci");
    const forced = h.rebind({ devices: "0000:01:01.0", force: true });
    expect(forced.ok).toBe(true);
    expect(Object.keys(devices(forced.results))).toEqual(["0000-01-01-0", "0000-01-02-0"]);
    expect(devices(forced.results)["0000-01-02-0"]).toMatchObject({
      reason: "group-member",
      after: "vfio-pci",
    });
    expect(forced.results.warnings).toBeDefined();
    // The bridge in the group stays with the host: it never blocks viability.
    expect(h.kernel.readDriver("0000:00:05.0")).toBeNull();
  });

  it("with the IOMMU off: rebind refuses, verify-iommu says why (and that remapping is off)", () => {
    const h = onHost(iommuOffHost());
    const r = h.rebind({ devices: "0000:83:00.0", force: true });
    expect(r.message).toContain("no IOMMU group (the IOMMU is off in the running kernel)");
    const v = h.verify(["intel_iommu=on"], (f) => h.select(f, "10de:1bb0", "0000:83:00.0"));
    expect(v.ok).toBe(false);
    expect(v.problems.map((p) => p.check)).toEqual(
      expect.arrayContaining(["iommu", "cmdline", "interrupt-remapping", "group"]),
    );
  });
});
