#!/bin/bash
# Builds the tier-2 guest: a small Debian root (systemd, udev, kmod, initramfs-tools, grub's
# update-grub, pciutils, iproute2) with the test-bed kernel's modules, as an ext4 disk image made
# without loop mounts (mkfs.ext4 -d). Cached under .cache/vm/debian-<release>-<hash>/:
#   root.img                 the disk (tests copy it before booting: the charm writes to it)
#   vmlinuz, initrd.img      the first boot's kernel and the initrd the guest's initramfs-tools made
# and records the paths in .cache/vm/debian.json. Runs scripts/vm/prepare.sh first for the kernel.
# Needs root, debootstrap, e2fsprogs, and a reachable Debian mirror (taken from apt's own sources).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VM_CACHE_DIR:-$repo/.cache/vm}

log() { echo "build-debian-image: $*" >&2; }
die() {
  echo "build-debian-image: ERROR: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
for tool in debootstrap mkfs.ext4 chroot; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; apt-get install debootstrap e2fsprogs"
done

bash "$here/prepare.sh"
cache=$(cd "$cache" && pwd)
# shellcheck source=/dev/null
. "$cache/kernel.env"
kroot=$(dirname "$(dirname "$(dirname "$VM_MODULES")")")

# shellcheck source=/dev/null
suite=${VM_DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
packages=systemd,systemd-sysv,udev,kmod,initramfs-tools,grub2-common,pciutils,iproute2
# Debian's real libvirt with its qemu driver and QEMU (TCG: no KVM in the guest), for a real
# domain the reboot checks must see (issue 24; tests/vm/tier2-boot-cycle.test.ts). Not
# libvirt-daemon-system: its default network needs dnsmasq and a firewall, its polkit a D-Bus;
# the image starts libvirtd itself (below).
packages=$packages,libvirt-daemon,libvirt-daemon-driver-qemu,libvirt-clients,qemu-system-x86

# The mirror: the first plain "deb" source of this suite in apt's own configuration (deb822 first,
# then the one-line format), never a hard-coded host.
mirror=${VM_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v suite="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "" && !done) {
          split(uris, u, " "); print u[1]; done = 1
        }
        types = ""; suites = ""; uris = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
      /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
      /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
      END { flush() }'
  )
fi
if [ -z "$mirror" ]; then
  mirror=$(awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || die "no 'deb' source for suite $suite in /etc/apt/sources.list*; set VM_DEBIAN_MIRROR"

key=$(
  {
    echo "$suite $packages $VM_KERNEL_RELEASE"
    cat "$here/build-debian-image.sh" "$here/guest-agent.sh"
  } | sha256sum | cut -c1-12
)
out=$cache/debian-$VM_KERNEL_RELEASE-$key
if [ -f "$out/.complete" ]; then
  log "cached: $out"
else
  log "building $out (suite $suite from $mirror)"
  rm -rf "$out"
  mkdir -p "$out"
  dir=$out/rootfs
  mounted=()
  cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  }
  trap cleanup EXIT

  debootstrap --variant=minbase --include="$packages" "$suite" "$dir" "$mirror" >"$out/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $out/debootstrap.log"

  # The kernel: its files in /boot (grub's 10_linux looks for vmlinuz-*, initramfs-tools for
  # config-*), its modules in usr/lib/modules (bookworm's /lib is a link to usr/lib).
  cp "$kroot/boot/vmlinuz-$VM_KERNEL_RELEASE" "$kroot/boot/config-$VM_KERNEL_RELEASE" \
    "$kroot/boot/System.map-$VM_KERNEL_RELEASE" "$dir/boot/"
  mkdir -p "$dir/usr/lib/modules"
  cp -a "$VM_MODULES" "$dir/usr/lib/modules/"

  echo vmbed-debian >"$dir/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 vmbed-debian\n' >"$dir/etc/hosts"
  echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$dir/etc/fstab"
  # A fixed machine id, and no first-boot questions on the console.
  echo 0123456789abcdef0123456789abcdef >"$dir/etc/machine-id"
  ln -sf /dev/null "$dir/etc/systemd/system/systemd-firstboot.service"

  # initramfs-tools: only what this VM's root needs (the charm adds its own modules and hooks),
  # and nvme, the SR-IOV PF's driver (tests/vm/lib/topologies.ts SRIOV_NVME): a real host's
  # MODULES=most carries its NVMe and NIC drivers, so the PF binds there and its VFs are made there.
  sed -i 's/^MODULES=.*/MODULES=list/' "$dir/etc/initramfs-tools/initramfs.conf"
  printf '%s\n' virtio_pci virtio_blk ext4 nvme >>"$dir/etc/initramfs-tools/modules"

  # grub without a bootloader: update-grub is grub-mkconfig -o /boot/grub/grub.cfg; only the
  # scripts that write the header and the Linux entries stay executable.
  mkdir -p "$dir/boot/grub"
  for script in "$dir"/etc/grub.d/*; do
    case "${script##*/}" in 00_header | 10_linux) ;; *) chmod -x "$script" ;; esac
  done
  cat >"$dir/etc/default/grub" <<'EOT'
# The test bed's grub defaults (scripts/vm/build-debian-image.sh). The charm appends to
# GRUB_CMDLINE_LINUX_DEFAULT from a drop-in in /etc/default/grub.d/.
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"
GRUB_CMDLINE_LINUX=""
GRUB_DISABLE_RECOVERY=true
GRUB_DISABLE_OS_PROBER=true
EOT

  # The host's own network: one of the two identical e1000e twins (00:04.0, tests/vm/lib/topologies.ts)
  # carries an address, set up at every boot by systemd-networkd as on a real server. Tier 2
  # selects the twins by ids and checks that the charm keeps this one. The bed's NICs have no
  # netdev, so no carrier: configure without one.
  mkdir -p "$dir/etc/systemd/network"
  cat >"$dir/etc/systemd/network/10-vmbed-host.network" <<'EOT'
[Match]
Path=pci-0000:00:04.0

[Network]
Address=192.0.2.4/24
ConfigureWithoutCarrier=yes
LinkLocalAddressing=no
EOT

  # libvirtd at every boot, as on a compute host, with what a minimal root lacks: no libvirt-qemu
  # user (libvirt-daemon-system makes it), no virtlogd, no D-Bus for machined: QEMU runs as
  # root, logs to a file, and libvirt sets up no cgroup and no namespace of its own.
  cat >>"$dir/etc/libvirt/qemu.conf" <<'EOT'

# The test bed's (scripts/vm/build-debian-image.sh): a minimal root without libvirt-daemon-system.
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
EOT
  # No polkit (no D-Bus) in this root: the sockets' own permissions decide (rw: root only).
  cat >>"$dir/etc/libvirt/libvirtd.conf" <<'EOT'

# The test bed's (scripts/vm/build-debian-image.sh): no polkit here.
auth_unix_ro = "none"
auth_unix_rw = "none"
EOT
  cat >"$dir/etc/systemd/system/vmbed-libvirtd.service" <<'EOT'
[Unit]
Description=libvirtd for the VM test bed (tests/vm tier 2; no libvirt-daemon-system here)
After=local-fs.target

[Service]
ExecStart=/usr/sbin/libvirtd
Restart=no

[Install]
WantedBy=multi-user.target
EOT
  ln -sf /etc/systemd/system/vmbed-libvirtd.service \
    "$dir/etc/systemd/system/multi-user.target.wants/vmbed-libvirtd.service"

  # The test bed's command runner, on the virtio-serial port named vmbed.agent.
  install -D -m 755 "$here/guest-agent.sh" "$dir/usr/local/lib/vmbed/guest-agent.sh"
  cat >"$dir/etc/systemd/system/vmbed-agent.service" <<'EOT'
[Unit]
Description=VM test bed command runner (tests/vm)
# Up as soon as the root is writable and the port exists, not after all of multi-user: tests wait
# for what they need themselves (udevadm settle, systemctl is-system-running --wait).
DefaultDependencies=no
BindsTo=dev-virtio\x2dports-vmbed.agent.device
After=dev-virtio\x2dports-vmbed.agent.device local-fs.target systemd-remount-fs.service

[Service]
ExecStart=/bin/sh /usr/local/lib/vmbed/guest-agent.sh /dev/virtio-ports/vmbed.agent
Restart=no

[Install]
WantedBy=multi-user.target
EOT
  ln -sf /etc/systemd/system/vmbed-agent.service \
    "$dir/etc/systemd/system/multi-user.target.wants/vmbed-agent.service"
  # No login prompt fighting the kernel log on the console, and none of the periodic jobs that
  # cost tens of seconds under TCG and have nothing to do with the test.
  for unit in serial-getty@ttyS0.service getty-static.service e2scrub_reap.service \
    e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer fstrim.timer; do
    ln -sf /dev/null "$dir/etc/systemd/system/$unit"
  done
  ln -sf /lib/systemd/system/multi-user.target "$dir/etc/systemd/system/default.target"
  # The command port early (systemd-modules-load), not after udev's coldplug of every device.
  echo virtio_console >"$dir/etc/modules-load.d/vmbed.conf"

  for fs in proc sys dev; do
    mount --bind "/$fs" "$dir/$fs"
    mounted+=("$dir/$fs")
  done
  chroot "$dir" systemctl enable systemd-networkd.service >/dev/null 2>&1 ||
    die "systemctl enable systemd-networkd in the image failed"
  # libvirt's qemu driver resolves its built-in user before reading qemu.conf: it must exist (as
  # libvirt-daemon-system's postinst makes it), even though qemu.conf runs QEMU as root.
  chroot "$dir" groupadd --system libvirt-qemu
  chroot "$dir" useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt \
    --shell /usr/sbin/nologin libvirt-qemu
  chroot "$dir" depmod "$VM_KERNEL_RELEASE"
  chroot "$dir" update-initramfs -c -k "$VM_KERNEL_RELEASE" >"$out/update-initramfs.log" 2>&1 ||
    die "update-initramfs in the image failed; see $out/update-initramfs.log"
  cleanup
  mounted=()
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*

  cp "$dir/boot/vmlinuz-$VM_KERNEL_RELEASE" "$out/vmlinuz"
  cp "$dir/boot/initrd.img-$VM_KERNEL_RELEASE" "$out/initrd.img"
  truncate -s "${VM_DEBIAN_IMAGE_SIZE:-2G}" "$out/root.img"
  mkfs.ext4 -q -F -L vmbed-root -d "$dir" "$out/root.img"
  rm -rf "$dir"
  touch "$out/.complete"
  trap - EXIT
fi
touch "$out/.complete"
# Images of another recipe may still be used by another checkout sharing this cache: removed only
# once unused (not built or found by this script) for two days.
for old in "$cache/debian-$VM_KERNEL_RELEASE"-*; do
  [ "$old" = "$out" ] && continue
  stamp=$old/.complete
  [ -e "$stamp" ] || stamp=$old
  if [ -n "$(find "$stamp" -maxdepth 0 -mmin +2880 2>/dev/null)" ]; then rm -rf "$old"; fi
done

cat >"$cache/debian.json.new" <<EOT
{
  "release": "$VM_KERNEL_RELEASE",
  "image": "$out/root.img",
  "kernel": "$out/vmlinuz",
  "initrd": "$out/initrd.img"
}
EOT
mv "$cache/debian.json.new" "$cache/debian.json"
log "ready: $out"
