// A new boot of a fake host tree, as the charm's files would make it (or fail to): a new boot
// id; the command line grub would build from the charm's drop-in (unless the boot ignores it, as
// with a boot loader that is not grub or a later drop-in that overrides it); the functions the
// charm's udev rule names on vfio-pci with their /dev/vfio group node (only when the IOMMU
// parameters came: without them vfio-pci gets no group). And fake libvirt/LXD evidence for the
// reboot checks: a `virsh` on PATH answering from a file, an `[lxc monitor]` process in /proc.
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { OWNED, READ } from "../../src/host/root";
import { fileText } from "./tree";

const at = (root: string, p: string) => path.join(root, p);

/** Writes a boot id (a fresh one unless given). */
export function setBootId(root: string, id: string = randomUUID()): string {
  fs.mkdirSync(path.dirname(at(root, READ.bootId)), { recursive: true });
  fs.writeFileSync(at(root, READ.bootId), `${id}\n`);
  return id;
}

/** The parameters the charm's grub drop-in appends (empty when there is none). */
export function dropInParams(root: string): string[] {
  const text = fileText(root, OWNED.grubDropIn);
  // GRUB_CMDLINE_LINUX_DEFAULT="${GRUB_CMDLINE_LINUX_DEFAULT:+$GRUB_CMDLINE_LINUX_DEFAULT }PARAMS"
  const m = /GRUB_CMDLINE_LINUX_DEFAULT="\$\{[^}]*\}([^"]*)"/.exec(text);
  return m ? m[1]!.split(/\s+/).filter(Boolean) : [];
}

/** The addresses the charm's udev rule binds to vfio-pci at boot. */
export function ruleAddresses(root: string): string[] {
  const text = fileText(root, OWNED.udevRule);
  return [...text.matchAll(/KERNEL=="([0-9a-f:.]+)"/g)].map((m) => m[1]!);
}

/** Boots the fake host again; returns the new boot id. */
export function bootHost(root: string, options: { ignoreDropIn?: boolean } = {}): string {
  const cmdlineFile = at(root, READ.cmdline);
  const base = fs
    .readFileSync(cmdlineFile, "utf8")
    .trim()
    .split(/\s+/)
    .filter((p) => !dropInParams(root).includes(p));
  const params = options.ignoreDropIn ? [] : dropInParams(root);
  fs.writeFileSync(cmdlineFile, `${[...base, ...params].join(" ")}\n`);
  if (!options.ignoreDropIn && params.length > 0) {
    for (const address of ruleAddresses(root)) {
      const dev = at(root, `${READ.pciDevices}/${address}`);
      const link = path.join(dev, "driver");
      const drivers = at(root, READ.pciDrivers);
      fs.mkdirSync(path.join(drivers, "vfio-pci"), { recursive: true });
      const real = fs.realpathSync(dev);
      fs.rmSync(path.join(real, "driver"), { force: true });
      fs.symlinkSync(path.relative(real, path.join(fs.realpathSync(drivers), "vfio-pci")), link);
      // The kernel's uevent names the bound driver too (the facts reader reads it first).
      const uevent = path.join(real, "uevent");
      if (fs.existsSync(uevent)) {
        const lines = fs
          .readFileSync(uevent, "utf8")
          .split("\n")
          .filter((l) => l !== "" && !l.startsWith("DRIVER="));
        fs.writeFileSync(uevent, `DRIVER=vfio-pci\n${lines.join("\n")}\n`);
      }
      const group = path.basename(fs.readlinkSync(path.join(real, "iommu_group")));
      fs.mkdirSync(at(root, READ.devVfio), { recursive: true });
      fs.writeFileSync(at(root, `${READ.devVfio}/${group}`), "");
    }
  }
  return setBootId(root);
}

/** A `virsh` for `bin` answering `list --name [--state-paused]` from `<bin>/domains` ("name
 * state" lines), in plain sh (the charm's PATH under test has no grep). */
export function installFakeVirsh(bin: string): (domains: Array<[string, string]>) => void {
  const file = path.join(bin, "domains");
  fs.writeFileSync(file, "");
  fs.writeFileSync(
    path.join(bin, "virsh"),
    `#!/bin/sh
paused=no
for a in "$@"; do [ "$a" = --state-paused ] && paused=yes; done
while read -r name state; do
  [ -z "$name" ] && continue
  if [ $paused = no ] || [ "$state" = paused ]; then echo "$name"; fi
done < '${file}'
`,
    { mode: 0o755 },
  );
  return (domains) => fs.writeFileSync(file, domains.map(([n, s]) => `${n} ${s}\n`).join(""));
}

/** A running LXD container's monitor process in the fake /proc. */
export function addLxcMonitor(root: string, pid: number, name: string): void {
  const dir = at(root, `${READ.proc}/${pid}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, "cmdline"),
    `[lxc monitor] /var/snap/lxd/common/lxd/containers ${name}\0\0\0\0`,
  );
}
