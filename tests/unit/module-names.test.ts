// Module names are module names (issue 12 point 3): a bound driver counts through its sysfs
// module link (driver i801_smbus is module i2c_i801, xhci_hcd is xhci_pci, proc_thermal_pci is
// processor_thermal_device_pci), and every name written into modprobe.d or modprobe.blacklist=
// exists in the target kernel's modules.dep or modules.builtin; any other is reported, not written.
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { readModuleNames } from "../../src/host/modules";
import { moduleFiles, OWNED } from "../../src/host/root";
import { normaliseModule } from "../../src/module-name-vocabulary";
import type { HostSpec } from "../support/hosts/build-host";
import { laptopHost } from "../support/hosts/presets";
import { useTempHosts } from "../support/hosts/use-temp-hosts";
import { planOnTree } from "../support/plan-on-tree";

const tempHost = useTempHosts();

/** The laptop without the PCH's shared SRAM beside its USB controller (older PCHs have none): the
 * SRAM is the chipset's, so on the laptop itself the USB controller's group is refused. */
function usbLaptop(): HostSpec {
  const spec = laptopHost();
  spec.pci = spec.pci!.filter((p) => p.address !== "0000:00:14.2");
  return spec;
}

function planOn(spec: HostSpec, raw: Record<string, string>, edit?: (root: string) => void) {
  const { root } = tempHost(spec);
  edit?.(root);
  const { facts, plan, file } = planOnTree(root, raw);
  const drivers = facts.functions.flatMap((f) => (f.driver === null ? [] : [f.driver]));
  /** Every module name the plan writes, from modprobe.d and the kernel command line. */
  const written = [
    ...[...file(OWNED.modprobeConf).matchAll(/^(?:blacklist|softdep) (\S+)/gm)].map((m) => m[1]!),
    ...(/modprobe\.blacklist=(\S+?)"?$/m.exec(file(OWNED.grubDropIn))?.[1]?.split(",") ?? []),
  ];
  // `known` answers for the names asked (and the drivers' modules): these, and what was written.
  const asked = ["vfio-pci", "i801_smbus", ...written];
  const names = readModuleNames(root, facts.kernelRelease, drivers, undefined, asked);
  return { root, facts, plan, file, written, names };
}

describe("module names", () => {
  it("maps bound drivers to their modules through /sys/bus/pci/drivers/<driver>/module", () => {
    const { names } = planOn(laptopHost(), {});
    expect(names.names.ofDriver.get("i801_smbus")).toBe("i2c_i801");
    expect(names.names.ofDriver.get("xhci_hcd")).toBe("xhci_pci");
    expect(names.names.ofDriver.get("proc_thermal_pci")).toBe("processor_thermal_device_pci");
    expect(names.names.ofDriver.get("intel-spi")).toBe("spi_intel_pci");
    expect(names.names.ofDriver.get("pcieport")).toBeNull();
    expect(names.names.known?.has(normaliseModule("i2c_i801"))).toBe(true);
    expect(names.names.known?.has(normaliseModule("i801_smbus"))).toBe(false);
    expect(names.names.known?.has(normaliseModule("vfio-pci"))).toBe(true);
  });

  it("the USB controller on xhci_hcd: softdep and blacklist say xhci_pci", () => {
    const { plan, file, written, names } = planOn(usbLaptop(), { devices: "0000:00:14.0" });
    expect(plan.bind.map((b) => b.address)).toEqual(["0000:00:14.0"]);
    expect(file(OWNED.modprobeConf)).toContain("softdep xhci_pci pre: vfio-pci");
    expect(file(OWNED.grubDropIn)).toContain("modprobe.blacklist=xhci_pci");
    expect(written.join(" ")).not.toContain("xhci_hcd");
    for (const m of written) expect(names.names.known?.has(normaliseModule(m)), m).toBe(true);
  });

  it("the thermal device on proc_thermal_pci: processor_thermal_device_pci, never the driver", () => {
    const { file, written } = planOn(laptopHost(), { devices: "0000:00:04.0" });
    expect(file(OWNED.modprobeConf)).toContain(
      "softdep processor_thermal_device_pci pre: vfio-pci",
    );
    expect(written).not.toContain("proc_thermal_pci");
  });

  it("a name the kernel does not have (stale modules.alias) is reported, not written", () => {
    const { plan, written } = planOn(usbLaptop(), { devices: "0000:00:14.0" }, (root) => {
      const dep = path.join(root, moduleFiles("6.1.0-56-amd64").dep);
      const kept = fs
        .readFileSync(dep, "utf8")
        .split("\n")
        .filter((l) => !l.includes("/xhci_pci.ko"));
      fs.writeFileSync(dep, kept.join("\n"));
    });
    expect(written).not.toContain("xhci_pci");
    expect(plan.notes.join("\n")).toContain(
      "not written (no such module in kernel 6.1.0-56-amd64's modules.dep or modules.builtin): xhci_pci",
    );
  });

  it("an explicit blacklist of a driver name that is no module is reported, not written", () => {
    const { plan, written } = planOn(usbLaptop(), {
      devices: "0000:00:14.0",
      "blacklist-drivers": "xhci_hcd",
    });
    expect(written).not.toContain("xhci_hcd");
    expect(plan.notes.join("\n")).toMatch(/not written .*: xhci_hcd/);
  });

  it("without modules.dep and modules.builtin nothing can be checked, so no name is written", () => {
    const { plan, written } = planOn(usbLaptop(), { devices: "0000:00:14.0" }, (root) => {
      const files = moduleFiles("6.1.0-56-amd64");
      fs.rmSync(path.join(root, files.dep));
      fs.rmSync(path.join(root, files.builtin));
    });
    expect(written).toEqual([]);
    expect(plan.notes.join("\n")).toMatch(/not written .*xhci_pci/);
  });
});
