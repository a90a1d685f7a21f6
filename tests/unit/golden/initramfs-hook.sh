#!/bin/sh
# Managed by the pci-passthrough Juju charm. Do not edit: the charm rewrites or removes this file.
# Change it with `juju config pci-passthrough <option>=...`; the options behind it:
# devices.
#
# Run by update-initramfs (mkinitramfs). Copies what per-address binding needs at early boot.
PREREQ="udev"
prereqs() {
  echo "$PREREQ"
}
case "${1:-}" in
prereqs)
  prereqs
  exit 0
  ;;
esac

. /usr/share/initramfs-tools/hook-functions

# vfio-pci is built in on Ubuntu kernels since 20.04 and needs vfio-pci-core from 5.16 on:
# manual_add_modules quietly skips names that are built in or do not exist in this kernel.
manual_add_modules vfio vfio_iommu_type1 vfio_pci vfio_pci_core irqbypass

if [ -f /etc/udev/rules.d/40-pci-passthrough.rules ]; then
  copy_file config /etc/udev/rules.d/40-pci-passthrough.rules || true
fi
if [ -f /usr/local/lib/pci-passthrough/vfio-bind ]; then
  copy_exec /usr/local/lib/pci-passthrough/vfio-bind || echo "W: pci-passthrough: could not copy /usr/local/lib/pci-passthrough/vfio-bind" >&2
fi
# SR-IOV: VFs are created where the PF's driver binds, the initramfs too when the driver is there.
if [ -f /etc/udev/rules.d/40-pci-passthrough-sriov.rules ]; then
  copy_file config /etc/udev/rules.d/40-pci-passthrough-sriov.rules || true
fi
if [ -f /usr/local/lib/pci-passthrough/sriov-vfs ]; then
  copy_exec /usr/local/lib/pci-passthrough/sriov-vfs || echo "W: pci-passthrough: could not copy /usr/local/lib/pci-passthrough/sriov-vfs" >&2
fi
exit 0
