// The exact bytes of the SR-IOV boot files: the udev rule that creates each PF's VFs and the helper
// it runs. Pure text builders (the decisions are in sriov.ts); every interpolated value is checked
// again here, because the rule makes udev run a shell script as root.
import { OWNED, READ, SYSFS_WRITES } from "../host/root";
import { isPciId } from "../pci-vocabulary";
import { HELPER_PRELUDE, managedHeader, renderRulesFile } from "./render-files";
import type { PlannedPf } from "./sriov";

function assert(ok: boolean, what: string): void {
  if (!ok) throw new Error(`refusing to render ${what}: it did not pass validation`);
}

/**
 * One udev line per PF. It fires on the PF's `bind` event (sriov_numvfs can only be written once
 * the PF's driver is bound: the driver implements sriov_configure), and on an `add` event of a PF
 * whose driver is already bound (coldplug after the initramfs, `udevadm trigger`), so the VFs come
 * back at every boot wherever the PF's driver binds. Matching the PF's ids too leaves a different
 * card later put in that slot alone. Null when no PF gets VFs.
 */
export function renderSriovRules(pfs: PlannedPf[]): string | null {
  const about = [
    "When an SR-IOV PF's driver binds (in the initramfs or after), create its VFs and send each",
    "to its planned driver: vfio-pci by its own address (flavor alias), or the host VF driver",
    "(neutron physical network). Arguments: PF, number of VFs, VF driver, VF ids.",
  ];
  return renderRulesFile("devices (entries with vfs)", about, pfs, (pf) => {
    assert(Number.isInteger(pf.numVfs) && pf.numVfs > 0 && pf.numVfs <= 65535, "number of VFs");
    const vfId = pf.announcedVfDeviceId;
    assert(vfId === null || isPciId(vfId), `VF id of ${pf.address}`);
    const vfIds = vfId === null ? "-" : `${pf.vendorId}:${vfId}`;
    const why =
      pf.physicalNetwork === null ? `alias ${pf.alias}` : `physical network ${pf.physicalNetwork}`;
    return [
      `# ${pf.address} ${pf.vendorId}:${pf.deviceId}: ${pf.numVfs} VFs on ${pf.vfDriver === "vfio-pci" ? "vfio-pci" : "the host VF driver"} (${why})`,
      `ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="${pf.address}", ATTR{vendor}=="0x${pf.vendorId}", ` +
        `ATTR{device}=="0x${pf.deviceId}", DRIVER=="?*", DRIVER!="vfio-pci", ` +
        `RUN+="${OWNED.sriovHelper} %k ${pf.numVfs} ${pf.vfDriver} ${vfIds}"`,
    ];
  });
}

/**
 * The helper the SR-IOV rule runs. Static: every value comes as an argument the rule carries, and
 * each is checked before use. It writes sriov_numvfs only when it differs from the plan (through 0:
 * the kernel refuses to change a non-zero count), so a coldplug replay is a no-op. For VFs that go
 * to vfio-pci it turns sriov_drivers_autoprobe off while the VFs appear (no host VF driver may
 * probe them), sets each VF's driver_override by its own address, probes it, and turns autoprobe
 * back on: the override alone keeps every other driver off it from then on.
 */
export function renderSriovHelper(): string {
  return `#!/bin/sh
${managedHeader("devices (entries with vfs)")}#
# sriov-vfs <pf-address> <vfs> <vfio-pci|host> <vf-vendor:vf-device|->: run by
# ${OWNED.sriovRule} when the PF's driver is bound.
# PCI_PASSTHROUGH_ROOT moves /sys and /dev for tests; udev never sets it.
${HELPER_PRELUDE}
pf="\${1:-}"
want="\${2:-}"
mode="\${3:-}"
ids="\${4:--}"
need_address sriov-vfs "$pf"
case "$want" in
"" | *[!0-9]* | 0*)
  log "sriov-vfs: $pf: not a number of VFs: '$want'"
  exit 2
  ;;
esac
case "$mode" in
vfio-pci | host) ;;
*)
  log "sriov-vfs: $pf: VF driver must be vfio-pci or host, not '$mode'"
  exit 2
  ;;
esac
case "$ids" in
- | [0-9a-f][0-9a-f][0-9a-f][0-9a-f]:[0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;;
*)
  log "sriov-vfs: $pf: not VF ids: '$ids'"
  exit 2
  ;;
esac

dev="$root${READ.pciDevices}/$pf"
if [ ! -e "$dev/sriov_numvfs" ]; then
  log "sriov-vfs: $pf: no sriov_numvfs (not an SR-IOV PF, or SR-IOV is off in the firmware)"
  exit 1
fi
total=0
read -r total <"$dev/sriov_totalvfs" || total=0
if [ "$want" -gt "$total" ]; then
  log "sriov-vfs: $pf: $want VFs asked, sriov_totalvfs is $total: nothing done"
  exit 1
fi
now=0
read -r now <"$dev/sriov_numvfs" || now=0
autoprobe="$dev/sriov_drivers_autoprobe"

if [ "$now" != "$want" ]; then
  if [ "$now" != 0 ] && ! printf 0 >"$dev/sriov_numvfs"; then
    log "sriov-vfs: $pf: could not remove its $now VFs (still in use?)"
    exit 1
  fi
  if [ "$mode" = vfio-pci ] && [ -e "$autoprobe" ]; then
    printf 0 >"$autoprobe" || log "sriov-vfs: $pf: could not turn sriov_drivers_autoprobe off"
  fi
  if ! printf '%s' "$want" >"$dev/sriov_numvfs"; then
    if [ -e "$autoprobe" ]; then printf 1 >"$autoprobe" || true; fi
    log "sriov-vfs: $pf: could not create $want VFs (is its driver bound? see dmesg)"
    exit 1
  fi
  log "sriov-vfs: $pf: $want VFs created (there were $now)"
fi

status=0
if [ "$mode" = vfio-pci ]; then
  modprobe -q vfio-pci 2>/dev/null || true
  for link in "$dev"/virtfn*; do
    [ -e "$link" ] || continue
    vfdir="$(cd -P "$link" 2>/dev/null && pwd -P)" || continue
    vf="\${vfdir##*/}"
    if [ "$ids" != - ]; then
      vendor=""
      device=""
      read -r vendor <"$vfdir/vendor" || true
      read -r device <"$vfdir/device" || true
      if [ "$vendor:$device" != "0x\${ids%%:*}:0x\${ids##*:}" ]; then
        log "sriov-vfs: $vf: ids $vendor:$device, not $ids: left alone"
        status=1
        continue
      fi
    fi
    override=""
    read -r override <"$vfdir/driver_override" || true
    if [ "$override" != vfio-pci ] && ! printf vfio-pci >"$vfdir/driver_override"; then
      log "sriov-vfs: $vf: could not set driver_override"
      status=1
      continue
    fi
    current="$(cd -P "$vfdir/driver" 2>/dev/null && pwd -P)" || current=""
    current="\${current##*/}"
    [ "$current" = vfio-pci ] && continue
    if [ -n "$current" ] && ! printf '%s' "$vf" >"$vfdir/driver/unbind"; then
      log "sriov-vfs: $vf: could not unbind it from $current"
      status=1
      continue
    fi
    printf '%s' "$vf" >"$root${SYSFS_WRITES.pciDriversProbe}" || true
    now_driver="$(cd -P "$vfdir/driver" 2>/dev/null && pwd -P)" || now_driver=""
    if [ "\${now_driver##*/}" != vfio-pci ]; then
      log "sriov-vfs: $vf: on '\${now_driver##*/}' after probing, not vfio-pci: is vfio-pci available?"
      status=1
    fi
  done
  if [ -e "$autoprobe" ]; then printf 1 >"$autoprobe" || true; fi
fi
exit $status
`;
}
