// Test doubles for the sysfs writer. On a temp tree nothing reacts to a write, so FakeKernel wraps
// the real writer (real open/write on the real files) and then does what the kernel would do:
// driver_override stores the name ("(null)" when cleared), <driver>/unbind drops the `driver` link
// (ENODEV when the function is not bound there), drivers_probe binds the override's driver or the
// default one, vfio-pci refuses a PF with VFs enabled (EBUSY), and /dev/vfio/<group> appears and
// goes with the group's vfio-pci members. failingWriter injects a kernel refusal on a chosen write.
import * as fs from "node:fs";
import * as path from "node:path";
import { createSysfsWriter, type SysfsWriter, sysfsError } from "../../src/apply/sysfs";
import type { HostFacts } from "../../src/host/facts";
import { pciUevent, setUeventDriver } from "./hosts/build-host";

const DEVICES = "/sys/bus/pci/devices";
const DRIVERS = "/sys/bus/pci/drivers";
const PROBE = "/sys/bus/pci/drivers_probe";

/** Writes a minimal sysfs-shaped tree for `facts` under `root` (real symlinks for links). Used until
 * the shared host builder is available; the kernel semantics live in FakeKernel, not here. */
export function writeSysfsTree(root: string, facts: HostFacts, extraDrivers: string[] = []): void {
  const j = (p: string) => path.join(root, p);
  fs.mkdirSync(j(DEVICES), { recursive: true });
  fs.mkdirSync(j(DRIVERS), { recursive: true });
  fs.mkdirSync(j("/dev/vfio"), { recursive: true });
  fs.writeFileSync(j(PROBE), "");
  const drivers = new Set(extraDrivers);
  for (const f of facts.functions) if (f.driver) drivers.add(f.driver);
  for (const d of drivers) addDriver(root, d);
  for (const f of facts.functions) {
    const real = `/sys/devices/pci${f.address.slice(0, 7)}/${f.address}`;
    fs.mkdirSync(j(real), { recursive: true });
    const attrs: Record<string, string> = {
      vendor: `0x${f.vendorId}`,
      device: `0x${f.deviceId}`,
      class: `0x${f.classCode}`,
      driver_override: f.driverOverride ?? "(null)",
      numa_node: String(f.numaNode ?? -1),
      modalias: f.modalias,
      uevent: pciUevent(
        {
          address: f.address,
          vendor: f.vendorId,
          device: f.deviceId,
          subsystemVendor: f.subsystemVendorId ?? "0000",
          subsystemDevice: f.subsystemDeviceId ?? "0000",
          class: f.classCode,
        },
        f.driver,
        f.modalias,
      ).trimEnd(),
    };
    if (f.sriov) {
      attrs.sriov_numvfs = String(f.sriov.numVfs);
      attrs.sriov_totalvfs = String(f.sriov.totalVfs);
    }
    for (const [name, value] of Object.entries(attrs))
      fs.writeFileSync(j(`${real}/${name}`), `${value}\n`);
    fs.symlinkSync(path.relative(j(DEVICES), j(real)), j(`${DEVICES}/${f.address}`));
    if (f.driver) bindLink(root, f.address, f.driver);
    if (f.iommuGroup !== null) {
      const g = `/sys/kernel/iommu_groups/${f.iommuGroup}`;
      fs.mkdirSync(j(`${g}/devices`), { recursive: true });
      fs.symlinkSync(path.relative(j(`${g}/devices`), j(real)), j(`${g}/devices/${f.address}`));
      fs.symlinkSync(path.relative(j(real), j(g)), j(`${real}/iommu_group`));
    }
  }
  for (const g of facts.vfioDevices) fs.writeFileSync(j(`/dev/vfio/${g}`), "");
}

/** Registers a driver in the tree (as loading its module would). */
export function addDriver(root: string, driver: string): void {
  const dir = path.join(root, DRIVERS, driver);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ["bind", "unbind", "new_id", "remove_id"]) {
    if (!fs.existsSync(path.join(dir, f))) fs.writeFileSync(path.join(dir, f), "");
  }
}

function deviceDir(root: string, address: string): string {
  return fs.realpathSync(path.join(root, DEVICES, address));
}

function bindLink(root: string, address: string, driver: string): void {
  const dev = deviceDir(root, address);
  const drvDir = path.join(root, DRIVERS, driver);
  fs.symlinkSync(path.relative(dev, drvDir), path.join(dev, "driver"));
  fs.symlinkSync(path.relative(drvDir, dev), path.join(drvDir, address));
  setUeventDriver(dev, driver);
}

/** A writer that behaves like the kernel on a temp tree; `writes` records every accepted write. */
export class FakeKernel implements SysfsWriter {
  readonly root: string;
  readonly writes: { path: string; value: string }[] = [];
  private readonly inner: SysfsWriter;

  /** `defaults`: the driver the kernel would pick for each function when no override is set
   * (what its modalias matches); functions not listed get none. */
  constructor(
    root: string,
    private readonly defaults: Map<string, string | null>,
  ) {
    this.root = root;
    this.inner = createSysfsWriter(root);
  }

  readDriver(address: string): string | null {
    return this.inner.readDriver(address);
  }

  driverRegistered(name: string): boolean {
    return this.inner.driverRegistered(name);
  }

  /** The function's driver_override as the kernel would show it. */
  override(address: string): string {
    return fs
      .readFileSync(path.join(deviceDir(this.root, address), "driver_override"), "utf8")
      .trim();
  }

  /** True when /dev/vfio/<group> exists. */
  vfioNode(group: number): boolean {
    return fs.existsSync(path.join(this.root, `/dev/vfio/${group}`));
  }

  writeAttr(hostPath: string, value: string): void {
    // The real write first: it fails as the real writer would when the attribute is missing.
    this.inner.writeAttr(hostPath, value);
    const dev = new RegExp(`^${DEVICES}/([^/]+)/driver_override$`).exec(hostPath);
    const unbind = new RegExp(`^${DRIVERS}/([^/]+)/unbind$`).exec(hostPath);
    if (dev) {
      // drivers/pci/pci-sysfs.c: trailing newline stripped; empty clears it, shown as "(null)".
      const name = value.replace(/\n$/, "");
      fs.writeFileSync(path.join(this.root, hostPath), name === "" ? "(null)\n" : `${name}\n`);
    } else if (unbind) {
      this.clear(hostPath);
      this.unbind(unbind[1]!, value.trim(), hostPath, value);
    } else if (hostPath === PROBE) {
      this.clear(hostPath);
      this.probe(value.trim(), hostPath, value);
    }
    this.writes.push({ path: hostPath, value });
  }

  /** unbind and drivers_probe are write-only triggers: nothing stays in them. */
  private clear(hostPath: string): void {
    fs.writeFileSync(path.join(this.root, hostPath), "");
  }

  private unbind(driver: string, address: string, hostPath: string, value: string): void {
    if (this.readDriver(address) !== driver) throw sysfsError(hostPath, value, "ENODEV");
    const dev = deviceDir(this.root, address);
    fs.unlinkSync(path.join(dev, "driver"));
    setUeventDriver(dev, null);
    fs.rmSync(path.join(this.root, DRIVERS, driver, address), { force: true });
    if (driver === "vfio-pci") {
      const group = this.group(address);
      const stillVfio = this.groupMembers(group).some((a) => this.readDriver(a) === "vfio-pci");
      if (group !== null && !stillVfio)
        fs.rmSync(path.join(this.root, `/dev/vfio/${group}`), { force: true });
    }
  }

  private probe(address: string, hostPath: string, value: string): void {
    if (!fs.existsSync(path.join(this.root, DEVICES, address)))
      throw sysfsError(hostPath, value, "ENODEV");
    if (this.readDriver(address) !== null) return;
    const override = this.override(address);
    const wanted = override === "(null)" ? (this.defaults.get(address) ?? null) : override;
    if (wanted === null || !this.driverRegistered(wanted)) return;
    if (wanted === "vfio-pci") {
      const numvfs = path.join(deviceDir(this.root, address), "sriov_numvfs");
      if (fs.existsSync(numvfs) && Number(fs.readFileSync(numvfs, "utf8")) > 0) {
        // vfio_pci_probe: "Cannot bind to PF with SR-IOV enabled" → -EBUSY.
        throw sysfsError(hostPath, value, "EBUSY");
      }
    }
    bindLink(this.root, address, wanted);
    const group = this.group(address);
    if (wanted === "vfio-pci" && group !== null) {
      fs.mkdirSync(path.join(this.root, "/dev/vfio"), { recursive: true });
      fs.writeFileSync(path.join(this.root, `/dev/vfio/${group}`), "");
    }
  }

  private group(address: string): number | null {
    try {
      return Number(
        path.basename(fs.readlinkSync(path.join(deviceDir(this.root, address), "iommu_group"))),
      );
    } catch {
      return null;
    }
  }

  private groupMembers(group: number | null): string[] {
    if (group === null) return [];
    return fs.readdirSync(path.join(this.root, `/sys/kernel/iommu_groups/${group}/devices`));
  }
}

/** Wraps a writer so that the write matching `when` fails with `code` (once, or every time). */
export function failingWriter(
  inner: SysfsWriter,
  when: (hostPath: string, value: string) => boolean,
  code = "EBUSY",
  options: { once?: boolean } = {},
): SysfsWriter & { failures: number } {
  let fired = false;
  const out = {
    root: inner.root,
    failures: 0,
    readDriver: (a: string) => inner.readDriver(a),
    driverRegistered: (n: string) => inner.driverRegistered(n),
    writeAttr(hostPath: string, value: string) {
      if (when(hostPath, value) && !(options.once && fired)) {
        fired = true;
        out.failures++;
        throw sysfsError(hostPath, value, code);
      }
      inner.writeAttr(hostPath, value);
    },
  };
  return out;
}
