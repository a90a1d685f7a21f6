#!/bin/sh
# Managed by the pci-passthrough Juju charm. Do not edit: the charm rewrites or removes this file.
# Change it with `juju config pci-passthrough <option>=...`; the options behind it:
# devices.
#
# vfio-bind <pci-address>: run by /etc/udev/rules.d/40-pci-passthrough.rules after it set the
# function's driver_override to vfio-pci. Loads vfio-pci (a no-op when it is built in), unbinds
# the function from any other driver that claimed it first (a built-in driver, or one already
# loaded for an identical twin), and asks the kernel to probe it again, which honours the override.
set -eu
: "${PATH:=/usr/sbin:/usr/bin:/sbin:/bin}"
export PATH
root="${PCI_PASSTHROUGH_ROOT:-}"

log() {
  if [ -w "$root/dev/kmsg" ] && printf '<5>pci-passthrough: %s\n' "$*" >"$root/dev/kmsg" 2>/dev/null; then
    return 0
  fi
  if command -v logger >/dev/null 2>&1; then
    logger -t pci-passthrough -- "$*" 2>/dev/null && return 0
  fi
  printf 'pci-passthrough: %s\n' "$*" >&2
}

addr="${1:-}"
case "$addr" in
"" | *[!0-9a-f:.]*)
  log "vfio-bind: not a PCI address: '$addr'"
  exit 2
  ;;
*:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f].[0-7]) ;;
*)
  log "vfio-bind: not a PCI address: '$addr'"
  exit 2
  ;;
esac

dev="$root/sys/bus/pci/devices/$addr"
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
  printf '%s' "${d##*/}"
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
if ! printf '%s' "$addr" >"$root/sys/bus/pci/drivers_probe"; then
  log "vfio-bind: $addr: could not ask the kernel to probe it"
  exit 1
fi

now="$(driver_of)"
if [ "$now" = "vfio-pci" ]; then
  log "vfio-bind: $addr: on vfio-pci${current:+ (was $current)}"
  exit 0
fi
log "vfio-bind: $addr: on '${now:-no driver}' after probing, not vfio-pci: is vfio-pci available in this kernel?"
exit 1
