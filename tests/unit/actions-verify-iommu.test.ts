// verify-iommu: IOMMU on, command line vs plan, interrupt remapping, and per selected function its
// ids, driver, group, viability (offenders named with drivers), group members, /dev/vfio and host use.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { invalidResultKeys, type ResultTree } from "../../src/actions/results";
import { compareCmdline, type VerifyIommuInput, verifyIommu } from "../../src/actions/verify-iommu";
import type { HostFacts, HostUsage } from "../../src/host/facts";
import {
  interpretInterruptRemapping,
  readInterruptRemapping,
} from "../../src/host/interrupt-remapping";
import type { BoundDevice } from "../../src/plan/types";
import { bound as boundDevice, notOnVfioYet } from "../support/bound-devices";
import { fn, host, moveToGroup, seedHost } from "../support/host-facts";

const PLANNED = ["intel_iommu=on", "iommu=pt"];
const RUNNING =
  "BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=LABEL=cloudimg-rootfs ro intel_iommu=on iommu=pt";

/** A selected GPU function (alias gpu) with the given ids. */
const bound = (address: string, ids = "10de:1bb0", extra: Partial<BoundDevice> = {}) =>
  boundDevice(address, ids, "gpu", extra);

/** The seed host after a good boot: both functions of 83:00 on vfio-pci, /dev/vfio/60 there. */
function readyHost(): HostFacts {
  const facts = seedHost({ cmdline: RUNNING, vfioDevices: new Set([60]) });
  for (const f of facts.functions) {
    if (f.iommuGroup === 60) f.driver = "vfio-pci";
  }
  return facts;
}

const SELECTION = [
  bound("0000:83:00.0"),
  bound("0000:83:00.1", "10de:10f0", { reason: "companion", follows: "0000:83:00.0" }),
];

function verify(over: Partial<VerifyIommuInput> = {}) {
  return verifyIommu({
    facts: readyHost(),
    plannedCmdline: PLANNED,
    selection: SELECTION,
    usage: new Map(),
    interruptRemapping: { state: "enabled", evidence: "test" },
    ...over,
  });
}

const checks = (r: ReturnType<typeof verify>) =>
  r.problems.map((p) => `${p.check} ${p.device ?? "-"}`);

describe("verifyIommu", () => {
  it("is ok on a prepared host, with structured results under valid keys", () => {
    const r = verify();
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.message).toBe(
      "passthrough ready: IOMMU on (dmar0, dmar1), 2 selected functions on vfio-pci in viable groups",
    );
    // One function is one function (the demo and tier 2 select a single NIC).
    expect(verify({ selection: SELECTION.slice(0, 1) }).message).toMatch(
      /, 1 selected function on vfio-pci in viable group$/,
    );
    expect(r.results).toMatchObject({
      ok: "yes",
      iommu: { enabled: "yes", units: "dmar0, dmar1" },
      cmdline: { missing: "none", planned: "intel_iommu=on iommu=pt" },
      "interrupt-remapping": { state: "enabled" },
      "vfio-pci": "builtin",
    });
    const gpu = (r.results.devices as ResultTree)["0000-83-00-0"] as ResultTree;
    expect(gpu).toMatchObject({
      present: "yes",
      driver: "vfio-pci",
      "iommu-group": "60",
      viable: "yes",
      "vfio-device": "yes",
      ok: "yes",
    });
    expect(gpu["group-members"]).toEqual({
      "1": { address: "0000:83:00.1", driver: "vfio-pci", selected: "yes", "blocks-group": "no" },
    });
    expect(invalidResultKeys(r.results)).toEqual([]);
  });

  it("reports the IOMMU off when there are no groups", () => {
    const facts = readyHost();
    facts.iommuGroups.clear();
    facts.iommuUnits = [];
    for (const f of facts.functions) f.iommuGroup = null;
    const r = verify({ facts });
    expect(r.ok).toBe(false);
    expect(r.problems[0]!.message).toContain("the IOMMU is off");
    expect(checks(r)).toContain("group 0000:83:00.0");
    expect(r.results.iommu).toMatchObject({ enabled: "no", units: "none" });
  });

  it("lists each planned parameter the running kernel lacks", () => {
    const facts = readyHost();
    facts.cmdline = "root=/dev/sda1 intel_iommu=off";
    const r = verify({ facts, plannedCmdline: [...PLANNED, "vfio-pci.ids=10de:1bb0"] });
    expect(r.missingParams).toEqual(["intel_iommu=on", "iommu=pt", "vfio-pci.ids=10de:1bb0"]);
    expect(r.problems[0]!.message).toBe(
      "the running kernel was not booted with intel_iommu=on (it has intel_iommu=off instead); reboot so the charm's grub drop-in takes effect",
    );
    expect(r.results.cmdline).toMatchObject({
      missing: "intel_iommu=on iommu=pt vfio-pci.ids=10de:1bb0",
    });
  });

  it("compares parameter names as the kernel does (dashes = underscores, quotes stripped)", () => {
    expect(
      compareCmdline('vfio-iommu-type1.allow-unsafe-interrupts=1 x="a b"', [
        "vfio_iommu_type1.allow_unsafe_interrupts=1",
        'x="a b"',
      ]).missing,
    ).toEqual([]);
  });

  it("fails without interrupt remapping unless unsafe interrupts are allowed", () => {
    const off = verify({ interruptRemapping: { state: "disabled", evidence: "x" } });
    expect(checks(off)).toEqual(["interrupt-remapping -"]);
    expect(off.problems[0]!.message).toContain("allow-unsafe-interrupts=true");
    const facts = readyHost();
    facts.cmdline = `${RUNNING} vfio_iommu_type1.allow_unsafe_interrupts=1`;
    const allowed = verify({ facts, interruptRemapping: { state: "disabled", evidence: "x" } });
    expect(allowed.ok).toBe(true);
    expect(allowed.notes.join()).toContain("weaker isolation");
    const unknown = verify({ interruptRemapping: null });
    expect(unknown.ok).toBe(true);
    expect(unknown.notes).toContain("interrupt remapping: unknown (not read)");
  });

  it("names a selected function that is missing or holds other ids", () => {
    const r = verify({
      selection: [bound("0000:99:00.0"), ...SELECTION.slice(1), bound("0000:83:00.0", "10de:1b80")],
    });
    expect(checks(r)).toEqual(["present 0000:99:00.0", "ids 0000:83:00.0"]);
    expect(r.problems[1]!.message).toContain("has ids 10de:1bb0, expected 10de:1b80");
    expect((r.results.devices as ResultTree)["0000-99-00-0"]).toEqual({
      address: "0000:99:00.0",
      present: "no",
      ok: "no",
    });
  });

  it("flags a function not on vfio-pci, a non-viable group with each offender's driver, no /dev/vfio", () => {
    const facts = seedHost({ cmdline: RUNNING });
    const r = verify({ facts });
    expect(checks(r)).toEqual([...notOnVfioYet("0000:83:00.0"), ...notOnVfioYet("0000:83:00.1")]);
    expect(r.problems[0]!.message).toContain("is on nouveau, not vfio-pci");
    // The audio is selected (a companion): it waits for the reboot like the GPU. Telling the
    // operator to "select it too" would contradict the selection.
    expect(r.problems[1]!.message).toContain(
      "IOMMU group 60 is not viable: 0000:83:00.1 on snd_hda_intel: selected, not on vfio-pci yet; reboot, or run the rebind action",
    );
    expect(r.problems.map((p) => p.message).join("\n")).not.toContain("select them too");
    expect(r.problems.map((p) => p.message).join("\n")).not.toContain("select it too");
    expect(r.problems[2]!.message).toContain("/dev/vfio/60 is missing");
  });

  it("accepts bridges, pcieport, pci-stub and unbound members in a viable group", () => {
    const facts = host(
      [
        fn("0000:80:03.0", "8086:2033", "060400", { driver: "pcieport", iommuGroup: 7 }),
        fn("0000:83:00.0", "10de:1bb0", "030000", { driver: "vfio-pci", iommuGroup: 7 }),
        fn("0000:83:00.1", "10de:10f0", "040300", { driver: "pci-stub", iommuGroup: 7 }),
        fn("0000:83:00.2", "10de:1ad6", "0c0330", { driver: null, iommuGroup: 7 }),
        fn("0000:83:00.3", "10de:1ad7", "0c8000", { driver: "nvidia-gpu", iommuGroup: 7 }),
      ],
      { cmdline: RUNNING, vfioDevices: new Set([7]) },
    );
    const r = verify({ facts, selection: [bound("0000:83:00.0")] });
    expect(checks(r)).toEqual(["viability 0000:83:00.0"]);
    expect(r.problems[0]!.message).toContain("not viable: 0000:83:00.3 on nvidia-gpu must be");
    expect(r.devices[0]!.groupMembers.map((c) => [c.address, c.harmless])).toEqual([
      ["0000:80:03.0", true],
      ["0000:83:00.1", true],
      ["0000:83:00.2", true],
      ["0000:83:00.3", false],
    ]);
  });

  it("flags a group shared with a device the host uses, and a selected device the host uses", () => {
    const facts = readyHost();
    moveToGroup(facts, "0000:3d:00.0", 60);
    facts.functions.find((f) => f.address === "0000:3d:00.0")!.driver = "vfio-pci";
    const usage: HostUsage = new Map([
      ["0000:3d:00.0", ["network interface eno1 has addresses 10.0.0.5"]],
      ["0000:83:00.1", ["console framebuffer fb0"]],
    ]);
    const r = verify({ facts, usage });
    expect(r.problems.map((p) => p.message)).toEqual([
      "0000:83:00.0: IOMMU group 60 also holds 0000:3d:00.0, which the host uses (network interface eno1 has addresses 10.0.0.5)",
      "0000:83:00.0: IOMMU group 60 also holds 0000:83:00.1, which the host uses (console framebuffer fb0)",
      "0000:83:00.1: the host uses it: console framebuffer fb0",
      "0000:83:00.1: IOMMU group 60 also holds 0000:3d:00.0, which the host uses (network interface eno1 has addresses 10.0.0.5)",
    ]);
  });

  it("notes groups without a listed IOMMU unit", () => {
    const r = verify({ facts: { ...readyHost(), iommuUnits: [] } });
    expect(r.ok).toBe(true);
    expect(r.notes[0]).toContain("lists no unit");
    expect(r.results.iommu).toMatchObject({ enabled: "yes", units: "none" });
  });

  it("reports a kernel without vfio-pci and notes an empty selection", () => {
    const r = verify({ facts: { ...readyHost(), vfioPci: "missing" } });
    expect(checks(r)).toContain("vfio-pci -");
    const empty = verify({ selection: [] });
    expect(empty.ok).toBe(true);
    expect(empty.notes).toContain(
      "the `devices` option selects nothing: only the IOMMU was checked",
    );
  });
});

describe("interrupt remapping", () => {
  const IR_ON = `            CPU0       CPU1
  0:         36          0   IO-APIC   2-edge      timer
 24:          0          0  DMAR-MSI    0-edge      dmar0
 25:       1021          0  IR-PCI-MSIX-0000:00:14.0    0-edge      xhci_hcd
`;
  const IR_OFF = `            CPU0
  0:         36   IO-APIC   2-edge      timer
 25:       1021   PCI-MSI 327680-edge      xhci_hcd
`;

  it("reads the running state from /proc/interrupts chip names", () => {
    expect(interpretInterruptRemapping(IR_ON, new Map()).state).toBe("enabled");
    expect(interpretInterruptRemapping(IR_OFF, new Map()).state).toBe("disabled");
  });

  it("falls back to the VT-d ecap IR bit as 'supported', else unknown", () => {
    expect(interpretInterruptRemapping(null, new Map([["dmar0", "f0205e"]])).state).toBe(
      "supported",
    );
    expect(interpretInterruptRemapping(null, new Map([["dmar0", "f02050"]])).state).toBe("unknown");
    expect(interpretInterruptRemapping("", new Map()).state).toBe("unknown");
  });

  it("reads both sources under a root", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "ir-"));
    try {
      fs.mkdirSync(path.join(root, "sys/class/iommu/dmar0/intel-iommu"), { recursive: true });
      fs.writeFileSync(path.join(root, "sys/class/iommu/dmar0/intel-iommu/ecap"), "f0205e\n");
      expect(readInterruptRemapping(root).state).toBe("supported");
      fs.mkdirSync(path.join(root, "proc"));
      fs.writeFileSync(path.join(root, "proc/interrupts"), IR_OFF);
      expect(readInterruptRemapping(root)).toEqual({
        state: "disabled",
        evidence: "/proc/interrupts lists MSI/IO-APIC interrupts without the IR- prefix",
      });
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
