// The in-place sysfs writer on real files: one write, no creation, errno → typed error; and the
// FakeKernel double that the rebind tests rely on behaves like the kernel.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSysfsWriter, SysfsError, sysfsError } from "../../src/apply/sysfs";
import { addDriver, FakeKernel, failingWriter, writeSysfsTree } from "../support/fake-kernel";
import { fn, host } from "../support/host-facts";

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "sysfs-writer-"));
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const facts = () =>
  host([
    fn("0000:83:00.0", "10de:1bb0", "030000", { driver: "nouveau", iommuGroup: 60 }),
    fn("0000:83:00.1", "10de:10f0", "040300", { driver: "snd_hda_intel", iommuGroup: 60 }),
    fn("0000:3b:00.0", "8086:1592", "020000", {
      driver: "ice",
      iommuGroup: 20,
      sriov: { totalVfs: 64, numVfs: 4 },
    }),
  ]);

describe("createSysfsWriter", () => {
  it("writes the value once into an existing attribute, without truncating or creating", () => {
    writeSysfsTree(root, facts());
    const w = createSysfsWriter(root);
    const attr = path.join(root, "sys/bus/pci/devices/0000:83:00.0/driver_override");
    w.writeAttr("/sys/bus/pci/devices/0000:83:00.0/driver_override", "vfio-pci");
    expect(fs.readFileSync(attr, "utf8")).toBe("vfio-pci");
    // No O_TRUNC and no temp-file rename: on a plain file a shorter value overwrites in place and
    // leaves the old tail, exactly what a sysfs store() ignores.
    w.writeAttr("/sys/bus/pci/devices/0000:83:00.0/driver_override", "\n");
    expect(fs.readFileSync(attr, "utf8")).toBe("\nfio-pci");
    expect(fs.lstatSync(path.join(root, "sys/bus/pci/devices/0000:83:00.0")).isSymbolicLink()).toBe(
      true,
    );
  });

  it("refuses to create a missing attribute and says the device vanished", () => {
    writeSysfsTree(root, facts());
    const w = createSysfsWriter(root);
    const attr = "/sys/bus/pci/devices/0000:99:00.0/driver_override";
    let caught: unknown;
    try {
      w.writeAttr(attr, "vfio-pci");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SysfsError);
    const e = caught as SysfsError;
    expect(e.code).toBe("ENOENT");
    expect(e.path).toBe(attr);
    expect(e.message).toContain("device vanished");
    expect(e.message).toContain(attr);
    expect(fs.existsSync(path.join(root, attr))).toBe(false);
  });

  it("maps a real write errno from the kernel (ENOSPC from /dev/full) and names the path", () => {
    const w = createSysfsWriter("/");
    expect(() => w.writeAttr("/dev/full", "x")).toThrowError(
      /writing "x" to \/dev\/full failed: ENOSPC/,
    );
  });

  it("maps the errnos sysfs stores return to operator words", () => {
    expect(sysfsError("/p", "v", "EBUSY").message).toContain("in use (a VM or the host holds it)");
    expect(sysfsError("/p", "v", "ENODEV").message).toContain("ENODEV");
    expect(sysfsError("/p", "v", "EINVAL").message).toContain("rejected the value");
    expect(sysfsError("/p", "v", "EWHATEVER").message).toContain("the kernel refused it");
  });

  it("reads the driver link back: name, null when unbound, ENOENT when the device is gone", () => {
    const f = facts();
    f.functions.push(fn("0000:84:00.0", "10de:1bb0", "030000"));
    writeSysfsTree(root, f);
    const w = createSysfsWriter(root);
    expect(w.readDriver("0000:83:00.0")).toBe("nouveau");
    expect(w.readDriver("0000:84:00.0")).toBeNull();
    expect(() => w.readDriver("0000:99:00.0")).toThrowError(/device vanished/);
    expect(w.driverRegistered("nouveau")).toBe(true);
    expect(w.driverRegistered("vfio-pci")).toBe(false);
  });
});

describe("FakeKernel (the double the rebind tests trust)", () => {
  const defaults = new Map<string, string | null>([
    ["0000:83:00.0", "nouveau"],
    ["0000:83:00.1", "snd_hda_intel"],
    ["0000:3b:00.0", "ice"],
  ]);

  it("binds through driver_override + unbind + drivers_probe and makes /dev/vfio/<group>", () => {
    writeSysfsTree(root, facts(), ["vfio-pci"]);
    const k = new FakeKernel(root, defaults);
    const a = "0000:83:00.0";
    k.writeAttr(`/sys/bus/pci/devices/${a}/driver_override`, "vfio-pci");
    expect(k.override(a)).toBe("vfio-pci");
    expect(k.readDriver(a)).toBe("nouveau"); // the override alone unbinds nothing
    k.writeAttr("/sys/bus/pci/drivers/nouveau/unbind", a);
    expect(k.readDriver(a)).toBeNull();
    expect(k.vfioNode(60)).toBe(false);
    k.writeAttr("/sys/bus/pci/drivers_probe", a);
    expect(k.readDriver(a)).toBe("vfio-pci");
    expect(k.vfioNode(60)).toBe(true);
    // Back: clear, unbind, probe → the default driver; the node goes with the last vfio member.
    k.writeAttr(`/sys/bus/pci/devices/${a}/driver_override`, "\n");
    expect(k.override(a)).toBe("(null)");
    k.writeAttr("/sys/bus/pci/drivers/vfio-pci/unbind", a);
    expect(k.vfioNode(60)).toBe(false);
    k.writeAttr("/sys/bus/pci/drivers_probe", a);
    expect(k.readDriver(a)).toBe("nouveau");
  });

  it("answers ENODEV to an unbind from a driver the function is not on", () => {
    writeSysfsTree(root, facts(), ["vfio-pci"]);
    const k = new FakeKernel(root, defaults);
    expect(() => k.writeAttr("/sys/bus/pci/drivers/vfio-pci/unbind", "0000:83:00.0")).toThrowError(
      /ENODEV/,
    );
    expect(k.readDriver("0000:83:00.0")).toBe("nouveau");
  });

  it("refuses a PF with VFs enabled on vfio-pci with EBUSY, leaving it unbound", () => {
    writeSysfsTree(root, facts(), ["vfio-pci"]);
    const k = new FakeKernel(root, defaults);
    const a = "0000:3b:00.0";
    k.writeAttr(`/sys/bus/pci/devices/${a}/driver_override`, "vfio-pci");
    k.writeAttr("/sys/bus/pci/drivers/ice/unbind", a);
    expect(() => k.writeAttr("/sys/bus/pci/drivers_probe", a)).toThrowError(/EBUSY.*in use/);
    expect(k.readDriver(a)).toBeNull();
  });

  it("leaves the function unbound when the override names an unregistered driver", () => {
    writeSysfsTree(root, facts());
    const k = new FakeKernel(root, defaults);
    const a = "0000:83:00.0";
    k.writeAttr(`/sys/bus/pci/devices/${a}/driver_override`, "vfio-pci");
    k.writeAttr("/sys/bus/pci/drivers/nouveau/unbind", a);
    k.writeAttr("/sys/bus/pci/drivers_probe", a);
    expect(k.readDriver(a)).toBeNull();
    addDriver(root, "vfio-pci");
    k.writeAttr("/sys/bus/pci/drivers_probe", a);
    expect(k.readDriver(a)).toBe("vfio-pci");
  });

  it("failingWriter raises the chosen errno once and passes the rest through", () => {
    writeSysfsTree(root, facts(), ["vfio-pci"]);
    const k = new FakeKernel(root, defaults);
    const w = failingWriter(k, (p) => p.endsWith("drivers_probe"), "EINVAL", { once: true });
    expect(() => w.writeAttr("/sys/bus/pci/drivers_probe", "0000:83:00.0")).toThrowError(/EINVAL/);
    w.writeAttr("/sys/bus/pci/drivers_probe", "0000:83:00.0");
    expect(w.failures).toBe(1);
    expect(k.writes).toHaveLength(1);
  });
});
