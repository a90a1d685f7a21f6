// Writes to sysfs attributes (driver_override, <driver>/unbind, drivers_probe) and reads the
// `driver` link back. Sysfs attributes are not files: they cannot be created, truncated or renamed
// into, a write is one call into the kernel's store() and its errno is the kernel's answer. So this
// module opens with O_WRONLY only, writes once, and turns the errno into a typed error that names
// the path and says what the kernel meant. It makes no decisions: the rebind plan says what to write.
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { basename, join } from "node:path";
import { countChange, existsSync, readlinkSync } from "../host/fs";
import { deviceAttr, driverAttr, under } from "../host/root";

/** What the kernel said, in operator words, for the errnos a sysfs store() returns. */
const KERNEL_SAYS: Record<string, string> = {
  EBUSY: "in use (a VM or the host holds it)",
  ENODEV: "no such device for that driver (not bound there, or the driver refused it)",
  EINVAL: "the kernel rejected the value",
  ENOENT: "device vanished (the attribute is gone)",
  EACCES: "permission denied (the charm must run as root)",
  EPERM: "not permitted (the charm must run as root; lockdown may forbid it)",
  ENOSPC: "no room (the kernel refused the value's length)",
  EIO: "I/O error from the device",
};

/** A sysfs write or read the kernel refused: the host path, the value, the errno and its meaning. */
export class SysfsError extends Error {
  override readonly name = "SysfsError";
  constructor(
    /** Host path (`/sys/bus/pci/...`), not the root-joined one. */
    readonly path: string,
    /** The value written, or null for a read. */
    readonly value: string | null,
    /** errno name (`EBUSY`) or `SHORT_WRITE`. */
    readonly code: string,
    /** What the kernel meant, in operator words. */
    readonly kernelSays: string,
  ) {
    super(
      value === null
        ? `reading ${path} failed: ${code}: ${kernelSays}`
        : `writing ${JSON.stringify(value)} to ${path} failed: ${code}: ${kernelSays}`,
    );
  }
}

/** Makes a SysfsError from a thrown Node error (exported so test doubles can raise the same one). */
export function sysfsError(hostPath: string, value: string | null, code: string): SysfsError {
  return new SysfsError(hostPath, value, code, KERNEL_SAYS[code] ?? "the kernel refused it");
}

/** The few sysfs operations the rebind action needs; everything resolves under `root`. */
export interface SysfsWriter {
  /** The root the host paths hang off (`/` on a real host). */
  readonly root: string;
  /** Writes `value` to the attribute at host path `hostPath` in one write; throws SysfsError. */
  writeAttr(hostPath: string, value: string): void;
  /** The driver bound to a PCI function (basename of its `driver` link), or null when unbound. */
  readDriver(address: string): string | null;
  /** True when `/sys/bus/pci/drivers/<name>` exists (the driver is registered: built in or loaded). */
  driverRegistered(name: string): boolean;
}

function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" ? code : "UNKNOWN";
}

/** The real writer: plain open(O_WRONLY) + one write() + close, under `root`. */
export function createSysfsWriter(root: string): SysfsWriter {
  return {
    root,
    writeAttr(hostPath: string, value: string): void {
      const full = under(root, hostPath);
      let fd: number;
      try {
        // No O_CREAT: a missing attribute means the device (or driver) is gone, and creating a
        // regular file in its place would hide that. No O_TRUNC: sysfs ignores it anyway.
        countChange();
        fd = openSync(full, constants.O_WRONLY);
      } catch (err) {
        throw sysfsError(hostPath, value, errnoOf(err));
      }
      try {
        const bytes = Buffer.from(value, "utf8");
        let written: number;
        try {
          written = writeSync(fd, bytes, 0, bytes.length, null);
        } catch (err) {
          throw sysfsError(hostPath, value, errnoOf(err));
        }
        // A store() that consumed less than we gave did not take the value; writing the rest
        // would be a second, different command to the kernel.
        if (written !== bytes.length) {
          throw new SysfsError(
            hostPath,
            value,
            "SHORT_WRITE",
            `the kernel took ${written} of ${bytes.length} bytes`,
          );
        }
      } finally {
        closeSync(fd);
      }
    },
    readDriver(address: string): string | null {
      const devPath = deviceAttr(address, "");
      const devDir = under(root, devPath);
      if (!existsSync(devDir)) throw sysfsError(devPath.replace(/\/$/, ""), null, "ENOENT");
      try {
        const link = join(devDir, "driver");
        const target = readlinkSync(link);
        // A link to a driver that is gone binds nothing; the facts readers say "no driver" too,
        // and both must agree or rebind would see a change that never happened.
        return existsSync(link) ? basename(target) : null;
      } catch (err) {
        if (errnoOf(err) === "ENOENT") return null;
        throw sysfsError(deviceAttr(address, "driver"), null, errnoOf(err));
      }
    },
    driverRegistered(name: string): boolean {
      return existsSync(under(root, driverAttr(name, "")));
    },
  };
}
