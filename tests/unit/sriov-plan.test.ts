// SR-IOV: the `vfs` / `physical-network` options, the plan (which PF, how many VFs, where they go,
// what is refused or kept for the host) and the boot files that carry it. Facts are built in code
// (sysfs shapes: an E810 PF with sriov_offset 16 / stride 1, as the ice driver reports).
import { describe, expect, it } from "vitest";
import { type Config, parseConfig } from "../../src/config";
import type { HostFacts, PciFunction } from "../../src/host/facts";
import { OWNED } from "../../src/host/root";
import { vfAddresses } from "../../src/pci-vocabulary";
import { planHost } from "../../src/plan/plan-host";
import { renderSriovRules } from "../../src/plan/render-sriov";
import { selectForHost, sriovReady } from "../../src/plan/sriov";
import { statusFor } from "../../src/plan/status";
import { fn, host, MODULES_ALIAS, moduleAliases, seedHost, sel } from "../support/host-facts";

/** An E810 PF (8086:1592, VFs 8086:1889), 256 VFs possible, `numVfs` enabled now. */
function e810(address: string, numVfs = 0, extra: Partial<PciFunction> = {}): PciFunction {
  return fn(address, "8086:1592", "020000", {
    driver: "ice",
    iommuGroup: Number.parseInt(address.slice(5, 7), 16),
    sriov: { totalVfs: 256, numVfs, offset: 16, stride: 1, vfDeviceId: "1889" },
    ...extra,
  });
}

/** The VFs the kernel made for a PF (offset 16, stride 1), each in its own group. */
function vfsOf(pf: string, n: number, driver: string | null, group0: number): PciFunction[] {
  return vfAddresses(pf, 16, 1, n)!.map((address, i) =>
    fn(address, "8086:1889", "020000", { driver, physfn: pf, iommuGroup: group0 + i }),
  );
}

function config(raw: Record<string, unknown>): Config {
  const parsed = parseConfig(raw);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.config;
}

function errorsOf(devices: string) {
  const parsed = parseConfig({ devices });
  return parsed.ok ? [] : parsed.errors;
}

describe("VF addresses before the VFs exist (routing id = PF + offset + i × stride)", () => {
  it("follows the kernel's numbering, the bus taking the carry", () => {
    expect(vfAddresses("0000:3b:00.0", 16, 1, 3)).toEqual([
      "0000:3b:02.0",
      "0000:3b:02.1",
      "0000:3b:02.2",
    ]);
    // 256 routing ids per bus: VF 240 of a PF at 3b:00.0 with offset 16 is the next bus's first.
    expect(vfAddresses("0000:3b:00.0", 16, 1, 241)!.at(-1)).toBe("0000:3c:00.0");
    expect(vfAddresses("0000:3b:00.1", 2, 2, 2)).toEqual(["0000:3b:00.3", "0000:3b:00.5"]);
  });

  it("refuses VFs that would fall past bus ff", () => {
    expect(vfAddresses("0000:ff:00.0", 16, 1, 300)).toBeNull();
  });
});

describe("config: vfs and physical-network", () => {
  it("takes vfs and physical-network on an entry with an address", () => {
    const c = config({
      devices:
        '- {address: "0000:3b:00.0", vfs: 8}\n- {address: "0000:5e:00.*", vfs: 4, physical-network: physnet1}',
    });
    expect(c.devices.map((d) => [d.vfs, d.physicalNetwork])).toEqual([
      [8, null],
      [4, "physnet1"],
    ]);
  });

  it.each([
    ["0", "vfs: 0"],
    ['"4"', "a string"],
    ["2.5", "a fraction"],
    ["-1", "negative"],
    ["70000", "past 16 bits"],
    ["yes", "a boolean"],
  ])("refuses vfs: %s (%s), naming the option and the value", (value) => {
    const errors = errorsOf(`- {address: "0000:3b:00.0", vfs: ${value}}`);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.option).toBe("devices");
    expect(errors[0]!.problem).toMatch(/vfs .*not a whole number from 1 to 65535/);
  });

  it("refuses vfs without an address (every PF of that model, the host's ports too)", () => {
    const [e] = errorsOf('- {vendor-id: "8086", product-id: "1592", vfs: 4}');
    expect(e!.problem).toMatch(/vfs: 4 but no address/);
    expect(e!.fix).toMatch(/add the PF's address/);
  });

  it("refuses physical-network without vfs, and a name neutron could not have", () => {
    expect(errorsOf('- {address: "0000:3b:00.0", physical-network: physnet1}')[0]!.problem).toMatch(
      /without vfs/,
    );
    expect(
      errorsOf('- {address: "0000:3b:00.0", vfs: 2, physical-network: "phys net"}')[0]!.problem,
    ).toMatch(/physical-network "phys net"/);
  });

  it("points numvfs / physical_network at the right keys", () => {
    expect(errorsOf('- {address: "0000:3b:00.0", numvfs: 2}')[0]!.fix).toMatch(/"vfs"/);
    expect(errorsOf('- {address: "0000:3b:00.0", physical_network: p}')[0]!.fix).toMatch(
      /"physical-network"/,
    );
  });
});

describe("the SR-IOV plan", () => {
  const twoPfs = () =>
    host([
      ...seedHost().functions,
      e810("0000:3b:00.0"),
      e810("0000:3c:00.0"),
      fn("0000:5e:00.0", "8086:10d3", "020000", { driver: "e1000e", iommuGroup: 94 }),
    ]);

  it("gives VFs to the PF, never the PF: VFs go to vfio-pci by address, type-VF, with their PF", () => {
    const s = selectForHost([sel({ address: "0000:3b:00.0", vfs: 4, source: "x" })], twoPfs());
    expect(s.problems).toEqual([]);
    expect(s.sriov.pfs).toMatchObject([
      {
        address: "0000:3b:00.0",
        numVfs: 4,
        currentVfs: 0,
        vfDeviceId: "1889",
        vfDriver: "vfio-pci",
        alias: "network",
        vfAddresses: ["0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3"],
      },
    ]);
    expect(s.bind.map((b) => [b.address, b.deviceId, b.deviceType, b.physfn])).toEqual(
      ["0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3"].map((a) => [
        a,
        "1889",
        "type-VF",
        "0000:3b:00.0",
      ]),
    );
    expect(s.bind.some((b) => b.address === "0000:3b:00.0")).toBe(false);
  });

  it("with physical-network the VFs stay on the host VF driver: nothing for vfio-pci", () => {
    const s = selectForHost(
      [sel({ address: "0000:3b:00.0", vfs: 4, physicalNetwork: "physnet1", source: "x" })],
      twoPfs(),
    );
    expect(s.sriov.pfs[0]).toMatchObject({ vfDriver: "host", physicalNetwork: "physnet1" });
    expect(s.bind).toEqual([]);
  });

  it("refuses more VFs than sriov_totalvfs, naming the entry, the PF and the limit", () => {
    const s = selectForHost([sel({ address: "0000:3b:00.0", vfs: 300, source: "x" })], twoPfs());
    expect(s.problems.map((p) => [p.option, p.message])).toEqual([
      [
        "devices",
        expect.stringMatching(
          /entry #1 "x" asks for vfs: 300 on 0000:3b:00.0 \(8086:1592\), which offers at most 256 \(sriov_totalvfs\)/,
        ),
      ],
    ]);
    expect(s.sriov.pfs).toEqual([]);
  });

  it("refuses a function without SR-IOV, and a VF named instead of its PF", () => {
    const facts = host([...twoPfs().functions, ...vfsOf("0000:3c:00.0", 2, "iavf", 200)]);
    const noSriov = selectForHost([sel({ address: "0000:5e:00.0", vfs: 2, source: "x" })], facts);
    expect(noSriov.problems[0]!.message).toMatch(/0000:5e:00.0 \(8086:10d3\), which has no SR-IOV/);
    const vf = selectForHost([sel({ address: "0000:3c:02.0", vfs: 2, source: "x" })], facts);
    expect(vf.problems[0]!.message).toMatch(/itself a VF of 0000:3c:00.0/);
  });

  it("a glob over the PF's bus takes its existing VFs as the entry's, not as refusals", () => {
    const facts = host([...twoPfs().functions, ...vfsOf("0000:3c:00.0", 2, "iavf", 200)]);
    const s = selectForHost([sel({ address: "0000:3c:*.*", vfs: 2, source: "x" })], facts);
    expect(s.problems).toEqual([]);
    expect(s.sriov.pfs.map((p) => p.address)).toEqual(["0000:3c:00.0"]);
  });

  it("a PF whose VF the host uses is kept for the host, unless the entry forces it", () => {
    const facts = host([...twoPfs().functions, ...vfsOf("0000:3c:00.0", 2, "iavf", 200)]);
    const usage = new Map([["0000:3c:02.1", ["network interface ens1v1 has addresses 10.0.0.5"]]]);
    const kept = selectForHost(
      [sel({ address: "0000:3c:00.0", vfs: 8, source: "x" })],
      facts,
      usage,
    );
    expect(kept.sriov.pfs).toEqual([]);
    expect(kept.withheld).toMatchObject([
      {
        address: "0000:3c:00.0",
        forceable: true,
        reasons: [expect.stringMatching(/its VF 0000:3c:02.1 is in use/)],
      },
    ]);
    const forced = selectForHost(
      [sel({ address: "0000:3c:00.0", vfs: 8, force: true, source: "x" })],
      facts,
      usage,
    );
    expect(forced.sriov.pfs.map((p) => p.numVfs)).toEqual([8]);
  });

  it("an entry without vfs cannot also take a PF or VF the vfs entry manages", () => {
    const s = selectForHost(
      [
        sel({ index: 0, address: "0000:3b:00.0", vfs: 2, source: "a" }),
        sel({ index: 1, vendorId: "8086", productId: "1592", source: "b" }),
      ],
      twoPfs(),
    );
    expect(s.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/^0000:3b:00.0 is a PF or VF that an entry with vfs manages/),
    ]);
    // The other PF of that model is still the plain entry's.
    expect(s.bind.map((b) => b.address)).toContain("0000:3c:00.0");
  });

  it("is ready for nova only when every VF exists on its planned driver", () => {
    const planned = (facts: ReturnType<typeof twoPfs>) =>
      selectForHost([sel({ address: "0000:3b:00.0", vfs: 2, source: "x" })], facts).sriov.pfs[0]!;
    const before = twoPfs();
    expect(sriovReady(planned(before), before)).toBe(false);
    const onIavf = host([
      ...before.functions.filter((f) => f.address !== "0000:3b:00.0"),
      e810("0000:3b:00.0", 2),
      ...vfsOf("0000:3b:00.0", 2, "iavf", 300),
    ]);
    expect(sriovReady(planned(onIavf), onIavf)).toBe(false);
    const onVfio = host([
      ...before.functions.filter((f) => f.address !== "0000:3b:00.0"),
      e810("0000:3b:00.0", 2),
      ...vfsOf("0000:3b:00.0", 2, "vfio-pci", 300),
    ]);
    expect(sriovReady(planned(onVfio), onVfio)).toBe(true);
  });
});

describe("the boot files", () => {
  const facts = () => host([...seedHost().functions, e810("0000:3b:00.0"), e810("0000:3c:00.0")]);
  const planOn = (devices: string, on: HostFacts) =>
    planHost(config({ devices }), on, moduleAliases(MODULES_ALIAS, on), { boundIds: {} });
  const plan = (devices: string) => planOn(devices, facts());

  it("one udev line per PF, on bind (and add once bound), with the PF's ids; no per-VF lines", () => {
    const p = plan(
      '- {address: "0000:3b:00.0", vfs: 64}\n- {address: "0000:3c:00.0", vfs: 2, physical-network: physnet1}',
    );
    expect(p.problems).toEqual([]);
    const rules = p.files.find((f) => f.path === OWNED.sriovRule)!.content;
    const lines = rules.split("\n").filter((l) => l.startsWith("ACTION"));
    expect(lines).toEqual([
      'ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="0000:3b:00.0", ATTR{vendor}=="0x8086", ATTR{device}=="0x1592", DRIVER=="?*", DRIVER!="vfio-pci", RUN+="/usr/local/lib/pci-passthrough/sriov-vfs %k 64 vfio-pci 8086:1889"',
      'ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="0000:3c:00.0", ATTR{vendor}=="0x8086", ATTR{device}=="0x1592", DRIVER=="?*", DRIVER!="vfio-pci", RUN+="/usr/local/lib/pci-passthrough/sriov-vfs %k 2 host 8086:1889"',
    ]);
    expect(p.files.map((f) => f.path)).toEqual(
      expect.arrayContaining([OWNED.sriovHelper, OWNED.initramfsHook]),
    );
    // The per-address vfio-pci rule is for whole functions only: the VFs are the helper's.
    expect(p.files.some((f) => f.path === OWNED.udevRule)).toBe(false);
    const hook = p.files.find((f) => f.path === OWNED.initramfsHook)!.content;
    expect(hook).toContain(`copy_file config ${OWNED.sriovRule}`);
    expect(hook).toContain(`copy_exec ${OWNED.sriovHelper}`);
    expect(p.feeds[OWNED.sriovRule]).toEqual(["initramfs"]);
    expect(p.bind).toHaveLength(64);
  });

  it("never blacklists the VF driver (iavf): the helper keeps drivers off the VFs it steers", () => {
    const booted = host([
      ...seedHost().functions,
      e810("0000:3b:00.0", 4),
      ...vfsOf("0000:3b:00.0", 4, "vfio-pci", 300),
    ]);
    const p = planOn('- {address: "0000:3b:00.0", vfs: 4}', booted);
    expect(p.bind).toHaveLength(4);
    expect(p.blacklist).toEqual([]);
    expect(p.files.find((f) => f.path === OWNED.modprobeConf)).toBeUndefined();
  });

  it("the boot that creates the VFs changes no planned file: the next hook writes nothing", () => {
    const devices =
      '- {address: "0000:3b:00.0", vfs: 4}\n- {address: "0000:3c:00.0", vfs: 2, physical-network: p1}';
    const before = plan(devices);
    const after = planOn(
      devices,
      host([
        ...seedHost().functions,
        e810("0000:3b:00.0", 4),
        e810("0000:3c:00.0", 2),
        ...vfsOf("0000:3b:00.0", 4, "vfio-pci", 300),
        ...vfsOf("0000:3c:00.0", 2, "iavf", 400),
      ]),
    );
    expect(after.files).toEqual(before.files);
    expect(after.kernelParams).toEqual(before.kernelParams);
  });

  it("removal puts the host back: no SR-IOV file planned, so the next boot makes no VF", () => {
    const p = plan("");
    expect(p.files.map((f) => f.path)).not.toContain(OWNED.sriovRule);
    expect(p.files.map((f) => f.path)).not.toContain(OWNED.sriovHelper);
    expect(p.sriov).toEqual([]);
  });

  it("the status asks for the boot (or the action) while the PF lacks its VFs", () => {
    const p = plan('- {address: "0000:3b:00.0", vfs: 4}');
    const status = statusFor({ kind: "prepared", plan: p, facts: facts(), failed: [] });
    expect(status.name).toBe("blocked");
    expect(status.message).toContain("0000:3b:00.0 has 0 VFs, 4 planned");
    expect(status.message).not.toMatch(/0000:3b:02.0/);
  });

  it("refuses to render a rule from values that did not pass validation", () => {
    const pf = plan('- {address: "0000:3b:00.0", vfs: 4}').sriov[0]!;
    expect(() => renderSriovRules([{ ...pf, numVfs: 0 }])).toThrow(/number of VFs/);
    expect(() => renderSriovRules([{ ...pf, announcedVfDeviceId: '1889"' }])).toThrow(/VF id/);
  });
});
