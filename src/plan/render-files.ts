// The exact bytes of every file the charm owns. Pure text builders: no decisions (those are in
// boot.ts / select.ts), no I/O. Everything interpolated is re-checked here, because two of these
// files are shell run as root and one is a udev rule.

import { OWNED, READ, SYSFS_WRITES } from "../host/root";
import { isSafeKernelParam } from "../kernel-param-vocabulary";
import { byAddress, isPciAddress, isPciId } from "../pci-vocabulary";
import type { BoundDevice } from "./types";

const CHARM = "pci-passthrough";

/** The first lines of every owned file: who manages it and how to change it. */
export function managedHeader(options: string): string {
  return [
    `# Managed by the ${CHARM} Juju charm. Do not edit: the charm rewrites or removes this file.`,
    `# Change it with \`juju config ${CHARM} <option>=...\`; the options behind it:`,
    `# ${options}.`,
    "",
  ].join("\n");
}

/** kmod spells module names this way (addresses and ids: pci-vocabulary.ts); nothing else may
 * reach a file. */
const MODULE = /^[a-z0-9_]+$/;

function assert(ok: boolean, what: string): void {
  if (!ok) throw new Error(`refusing to render ${what}: it did not pass validation`);
}

/** The grub drop-in: appends our parameters to whatever GRUB_CMDLINE_LINUX_DEFAULT holds by then. */
export function renderGrubDropIn(params: string[]): string {
  for (const p of params) assert(isSafeKernelParam(p), `kernel parameter ${JSON.stringify(p)}`);
  return [
    managedHeader(
      "iommu, iommu-passthrough-mode, allow-unsafe-interrupts, blacklist-drivers, extra-kernel-params",
    ),
    "# grub-mkconfig (update-grub) sources /etc/default/grub, then /etc/default/grub.d/*.cfg in",
    "# sorted order. 99- sorts after cloud-init's 50-cloudimg-settings.cfg and curtin's",
    "# 50-curtin-settings.cfg, which replace GRUB_CMDLINE_LINUX_DEFAULT; this file appends to it,",
    "# so the parameters set there (and in /etc/default/grub) are kept.",
    `GRUB_CMDLINE_LINUX_DEFAULT="\${GRUB_CMDLINE_LINUX_DEFAULT:+$GRUB_CMDLINE_LINUX_DEFAULT }${params.join(" ")}"`,
    "",
  ].join("\n");
}

/**
 * modprobe.d: `blacklist` for the modules kept off the host and `softdep … pre: vfio-pci` for the
 * native drivers of the functions given to VMs. `blacklist` (not `install m /bin/false`) on
 * purpose: it stops the automatic, alias-driven load that would claim the devices, yet leaves an
 * operator's deliberate `modprobe m` and other modules' dependencies working. Null when there is
 * nothing to say (the file is then absent).
 */
export function renderModprobeConf(blacklist: string[], softdeps: string[]): string | null {
  for (const m of [...blacklist, ...softdeps])
    assert(MODULE.test(m), `module name ${JSON.stringify(m)}`);
  if (blacklist.length === 0 && softdeps.length === 0) return null;
  const lines = [managedHeader("blacklist-drivers, devices")];
  if (blacklist.length > 0) {
    lines.push(
      "# Kept from claiming devices automatically at boot (also modprobe.blacklist= on the kernel",
      "# command line); an explicit `modprobe <module>` still works.",
      ...blacklist.map((m) => `blacklist ${m}`),
      "",
    );
  }
  if (softdeps.length > 0) {
    lines.push(
      "# Load vfio-pci before the native drivers of the devices given to VMs, so it is there when",
      "# they probe (the udev rule's driver_override then steers each device to vfio-pci).",
      ...softdeps.map((m) => `softdep ${m} pre: vfio-pci`),
      "",
    );
  }
  return lines.join("\n");
}

/** What a udev line may hold of a function: its address and ids, checked again where they are
 * written into a file that runs as root at boot (they were parsed at the edge; this is the net). */
function assertRuleTarget(fn: { address: string; vendorId: string; deviceId: string }): void {
  assert(isPciAddress(fn.address), `PCI address ${JSON.stringify(fn.address)}`);
  assert(isPciId(fn.vendorId) && isPciId(fn.deviceId), `ids of ${fn.address}`);
}

/** A udev rules file the charm owns: its header, what it does, then each entry's checked lines;
 * null when there is no entry (the file is then removed). */
export function renderRulesFile<T extends { address: string; vendorId: string; deviceId: string }>(
  option: string,
  about: string[],
  entries: T[],
  linesOf: (entry: T) => string[],
): string | null {
  if (entries.length === 0) return null;
  // One line per function, for thousands of VFs: appended, not gathered and joined.
  let text = [managedHeader(option), ...about.map((l) => `# ${l}`)].join("\n");
  for (const entry of entries) {
    assertRuleTarget(entry);
    for (const line of linesOf(entry)) text += `\n${line}`;
  }
  return `${text}\n`;
}

/** The udev rule: one line per function, matching address AND ids so a different card later put
 * in that slot is left to the host. Null when nothing is bound. */
export function renderUdevRules(bind: BoundDevice[]): string | null {
  const about = [
    "On each PCI add event (in the initramfs and after), before 80-drivers.rules loads native",
    "drivers: set driver_override=vfio-pci on the functions given to VMs, then run vfio-bind,",
    "which moves a function to vfio-pci if a driver that was already loaded claimed it first.",
  ];
  return renderRulesFile("devices", about, [...bind].sort(byAddress), (d) => [
    `# ${d.address} ${d.vendorId}:${d.deviceId} alias ${d.alias} (${d.follows ? `companion of ${d.follows}` : "selected"})`,
    `ACTION=="add", SUBSYSTEM=="pci", KERNEL=="${d.address}", ATTR{vendor}=="0x${d.vendorId}", ` +
      `ATTR{device}=="0x${d.deviceId}", ATTR{driver_override}="vfio-pci", ` +
      `RUN+="${OWNED.bindHelper} %k"`,
  ]);
}

/** The start every helper script shares: strict mode, a PATH that udev may not give, the test root,
 * and log(), which writes to the kernel log (/dev/kmsg works in the initramfs, where there is no
 * syslog), else through logger, else to stderr. */
export const HELPER_PRELUDE = `set -eu
: "\${PATH:=/usr/sbin:/usr/bin:/sbin:/bin}"
export PATH
root="\${PCI_PASSTHROUGH_ROOT:-}"

log() {
  if [ -w "$root/dev/kmsg" ] && printf '<5>pci-passthrough: %s\\n' "$*" >"$root/dev/kmsg" 2>/dev/null; then
    return 0
  fi
  if command -v logger >/dev/null 2>&1; then
    logger -t pci-passthrough -- "$*" 2>/dev/null && return 0
  fi
  printf 'pci-passthrough: %s\\n' "$*" >&2
}

# need_address <helper> <value>: exits 2 (logged) unless value is a full PCI address as sysfs
# names a function; the helpers put it into sysfs paths, so nothing else may pass.
need_address() {
  case "$2" in
  "" | *[!0-9a-f:.]*) ;;
  *:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f].[0-7]) return 0 ;;
  esac
  log "$1: not a PCI address: '$2'"
  exit 2
}
`;

/**
 * The helper the udev rule runs with the function's address. Static: it holds no address and no
 * config value, only the sysfs paths. Logs to the kernel log (/dev/kmsg, which works in the
 * initramfs where there is no syslog), else through logger, else to stderr.
 * PCI_PASSTHROUGH_ROOT moves /sys and /dev for tests; udev never sets it.
 */
export function renderBindHelper(): string {
  return `#!/bin/sh
${managedHeader("devices")}#
# vfio-bind <pci-address>: run by ${OWNED.udevRule} after it set the
# function's driver_override to vfio-pci. Loads vfio-pci (a no-op when it is built in), unbinds
# the function from any other driver that claimed it first (a built-in driver, or one already
# loaded for an identical twin), and asks the kernel to probe it again, which honours the override.
${HELPER_PRELUDE}
addr="\${1:-}"
need_address vfio-bind "$addr"

dev="$root${READ.pciDevices}/$addr"
if [ ! -e "$dev/config" ]; then
  log "vfio-bind: $addr: no such PCI device"
  exit 1
fi

override="$(cat "$dev/driver_override" 2>/dev/null || true)"
if [ "$override" != "vfio-pci" ]; then
  log "vfio-bind: $addr: driver_override is '$override', not vfio-pci: leaving it alone"
  exit 0
fi

driver_of() {
  d="$(cd -P "$dev/driver" 2>/dev/null && pwd -P)" || d=""
  printf '%s' "\${d##*/}"
}

modprobe -q vfio-pci 2>/dev/null || true

current="$(driver_of)"
if [ "$current" = "vfio-pci" ]; then
  exit 0
fi
if [ -n "$current" ]; then
  if ! printf '%s' "$addr" >"$dev/driver/unbind"; then
    log "vfio-bind: $addr: could not unbind it from $current"
    exit 1
  fi
fi
if ! printf '%s' "$addr" >"$root${SYSFS_WRITES.pciDriversProbe}"; then
  log "vfio-bind: $addr: could not ask the kernel to probe it"
  exit 1
fi

now="$(driver_of)"
if [ "$now" = "vfio-pci" ]; then
  log "vfio-bind: $addr: on vfio-pci\${current:+ (was $current)}"
  exit 0
fi
log "vfio-bind: $addr: on '\${now:-no driver}' after probing, not vfio-pci: is vfio-pci available in this kernel?"
exit 1
`;
}

/**
 * The initramfs-tools hook: puts the vfio modules, the udev rule and the helper into the initramfs,
 * so vfio-pci takes the selected functions there, before a native driver that is itself in the
 * initramfs can. modprobe.d (our blacklist and softdeps) is copied by mkinitramfs itself.
 */
export function renderInitramfsHook(): string {
  return `#!/bin/sh
${managedHeader("devices")}#
# Run by update-initramfs (mkinitramfs). Copies what per-address binding needs at early boot.
PREREQ="udev"
prereqs() {
  echo "$PREREQ"
}
case "\${1:-}" in
prereqs)
  prereqs
  exit 0
  ;;
esac

. /usr/share/initramfs-tools/hook-functions

# vfio-pci is built in on Ubuntu kernels since 20.04 and needs vfio-pci-core from 5.16 on:
# manual_add_modules quietly skips names that are built in or do not exist in this kernel.
manual_add_modules vfio vfio_iommu_type1 vfio_pci vfio_pci_core irqbypass

if [ -f ${OWNED.udevRule} ]; then
  copy_file config ${OWNED.udevRule} || true
fi
if [ -f ${OWNED.bindHelper} ]; then
  copy_exec ${OWNED.bindHelper} || echo "W: pci-passthrough: could not copy ${OWNED.bindHelper}" >&2
fi
# SR-IOV: VFs are created where the PF's driver binds, the initramfs too when the driver is there.
if [ -f ${OWNED.sriovRule} ]; then
  copy_file config ${OWNED.sriovRule} || true
fi
if [ -f ${OWNED.sriovHelper} ]; then
  copy_exec ${OWNED.sriovHelper} || echo "W: pci-passthrough: could not copy ${OWNED.sriovHelper}" >&2
fi
exit 0
`;
}
