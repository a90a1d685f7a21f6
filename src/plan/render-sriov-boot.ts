// The boot order for SR-IOV: a systemd unit that holds nova-compute and neutron's SR-IOV agent
// back until the planned VFs exist on their planned drivers, waiting a bounded time. The udev rule
// (render-sriov.ts) still makes the VFs as soon as each PF's driver binds; this unit only makes
// sure the services that read them start after that, finishes what a udev RUN killed at udev's
// 180 s timeout left undone, and undoes what another owner's boot-time write (sriov-netplan-shim
// writes 0 then N, so its VFs land on the host driver) did to flavor VFs. Pure text builders.
import { OWNED, READ } from "../host/root";
import { isPciId } from "../pci-vocabulary";
import { HELPER_PRELUDE, managedHeader } from "./render-files";
import type { PlannedPf } from "./types";

/** How long the unit waits, in total, for every planned PF: long enough for a driver that binds
 * late and a card that makes its VFs slowly (udev's own limit for the rule's helper is 180 s), short
 * enough that a PF that never comes does not keep nova-compute down. nova-compute starts anyway
 * when it runs out (Wants, not Requires): the unit then fails and says which PF is not ready. */
export const SRIOV_BOOT_WAIT_SECONDS = 240;

/** The services that must find the VFs ready: Ubuntu's and Debian's unit names (packages
 * nova-compute and neutron-sriov-agent; ovn-chassis and neutron-openvswitch install the latter
 * with enable-sriov). */
export const SERVICES_AFTER_VFS = ["nova-compute.service", "neutron-sriov-agent.service"];

/** What runs before our unit: udev's coldplug (the PFs' drivers bind, the rule makes the VFs),
 * module loading, and sriov-netplan-shim, which rewrites the count (through 0) at boot. */
const AFTER = [
  "systemd-udev-trigger.service",
  "systemd-modules-load.service",
  "sriov-netplan-shim.service",
];

function assert(ok: boolean, what: string): void {
  if (!ok) throw new Error(`refusing to render ${what}: it did not pass validation`);
}

/** The unit's file name, as systemd and `systemctl status` name it. */
export const SRIOV_BOOT_UNIT = OWNED.sriovBootUnit.slice(OWNED.sriovBootUnit.lastIndexOf("/") + 1);

/** The helper's arguments for one PF: the same four the udev rule passes its helper. */
function pfArgs(pf: PlannedPf): string {
  assert(/^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(pf.address), "a PF address");
  assert(Number.isInteger(pf.numVfs) && pf.numVfs > 0 && pf.numVfs <= 65535, "number of VFs");
  const vfId = pf.announcedVfDeviceId;
  assert(vfId === null || isPciId(vfId), `VF id of ${pf.address}`);
  return `${pf.address} ${pf.numVfs} ${pf.vfDriver} ${vfId === null ? "-" : `${pf.vendorId}:${vfId}`}`;
}

/** The unit (null when no PF gets VFs). Type=oneshot: the services ordered after it start once it
 * has finished, whether it succeeded or not. */
export function renderSriovBootUnit(pfs: PlannedPf[]): string | null {
  if (pfs.length === 0) return null;
  const args = pfs.map(pfArgs).join(" ");
  return `${managedHeader("devices (entries with vfs)")}
[Unit]
Description=pci-passthrough: the planned SR-IOV VFs, before nova-compute and neutron's SR-IOV agent
After=${AFTER.join(" ")}
Before=${SERVICES_AFTER_VFS.join(" ")}

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=${SRIOV_BOOT_WAIT_SECONDS + 60}
ExecStart=${OWNED.sriovBootWait} ${SRIOV_BOOT_WAIT_SECONDS} ${args}
`;
}

/** The drop-in that puts the unit into every boot (a plain file: no `systemctl enable` link). */
export function renderSriovBootWants(): string {
  return `${managedHeader("devices (entries with vfs)")}
[Unit]
Wants=${SRIOV_BOOT_UNIT}
`;
}

/**
 * The waiter the unit runs: `sriov-boot <seconds> (<pf> <vfs> <vfio-pci|host> <ids|->)...`. For
 * each PF, within one deadline: wait for the PF's driver; let udev finish its queue (the rule's
 * helper, netplan's `--sriov-only`); run the rule's helper once more if the VFs are not all there
 * on their driver (it only writes what differs); wait until they are. Exits 1, naming each PF
 * that is not ready, when the deadline passes.
 */
export function renderSriovBootWait(): string {
  return `#!/bin/sh
${managedHeader("devices (entries with vfs)")}#
# sriov-boot <seconds> (<pf-address> <vfs> <vfio-pci|host> <vf-vendor:vf-device|->)...: run by
# ${SRIOV_BOOT_UNIT} before ${SERVICES_AFTER_VFS.join(" and ")}.
# PCI_PASSTHROUGH_ROOT moves /sys and /dev for tests (and then udevadm is not asked).
${HELPER_PRELUDE}
helper="\${0%/*}/sriov-vfs"
limit="\${1:-}"
case "$limit" in
"" | *[!0-9]*)
  log "sriov-boot: not a number of seconds: '$limit'"
  exit 2
  ;;
esac
shift
deadline=$(($(date +%s) + limit))
left() {
  l=$((deadline - $(date +%s)))
  [ "$l" -gt 0 ] || l=0
  echo "$l"
}

# ready <dev> <vfs> <mode>: the PF has exactly <vfs> VFs, each on vfio-pci (mode vfio-pci) or on a
# host driver (mode host: bound, not vfio-pci). Sets "why" to what is missing.
ready() {
  now=""
  read -r now <"$1/sriov_numvfs" 2>/dev/null || now="?"
  if [ "$now" != "$2" ]; then
    why="sriov_numvfs is $now"
    return 1
  fi
  n=0
  for link in "$1"/virtfn*; do
    [ -e "$link" ] || continue
    n=$((n + 1))
    d="$(cd -P "$link/driver" 2>/dev/null && pwd -P)" || d=""
    d="\${d##*/}"
    if [ "$3" = vfio-pci ] && [ "$d" != vfio-pci ]; then
      why="VF \${link##*/} is on '\${d:-no driver}', not vfio-pci"
      return 1
    fi
    if [ "$3" = host ] && { [ -z "$d" ] || [ "$d" = vfio-pci ]; }; then
      why="VF \${link##*/} is on '\${d:-no driver}', not its host driver"
      return 1
    fi
  done
  if [ "$n" != "$2" ]; then
    why="$n of $2 VFs exist"
    return 1
  fi
  return 0
}

status=0
while [ $# -ge 4 ]; do
  pf="$1" want="$2" mode="$3" ids="$4"
  shift 4
  need_address sriov-boot "$pf"
  case "$want" in
  "" | *[!0-9]*)
    log "sriov-boot: $pf: not a number of VFs: '$want'"
    exit 2
    ;;
  esac
  case "$mode" in
  vfio-pci | host) ;;
  *)
    log "sriov-boot: $pf: VF driver must be vfio-pci or host, not '$mode'"
    exit 2
    ;;
  esac
  dev="$root${READ.pciDevices}/$pf"
  why=""
  if [ ! -e "$dev" ]; then
    log "sriov-boot: $pf: no such PCI device: its $want VFs cannot be made"
    status=1
    continue
  fi
  while { [ ! -e "$dev/sriov_numvfs" ] || [ ! -e "$dev/driver" ]; } && [ "$(left)" -gt 0 ]; do
    sleep 1
  done
  if [ ! -e "$dev/driver" ]; then
    log "sriov-boot: $pf: its driver did not bind within \${limit} s: no VFs; nova-compute starts without them"
    status=1
    continue
  fi
  if ! ready "$dev" "$want" "$mode" && [ -z "$root" ] && command -v udevadm >/dev/null 2>&1; then
    udevadm settle --timeout="$(left)" 2>/dev/null || true
  fi
  if ! ready "$dev" "$want" "$mode"; then
    log "sriov-boot: $pf: $why after udev: making its VFs now"
    "$helper" "$pf" "$want" "$mode" "$ids" || true
  fi
  until ready "$dev" "$want" "$mode" || [ "$(left)" -eq 0 ]; do
    sleep 1
  done
  if ready "$dev" "$want" "$mode"; then
    log "sriov-boot: $pf: $want VFs ready on \${mode}"
  else
    log "sriov-boot: $pf: not ready after \${limit} s ($why): nova-compute starts without them"
    status=1
  fi
done
exit $status
`;
}
