#!/bin/bash
# Prepares the tier-1 VM test bed: a Debian kernel with its modules and a busybox initramfs.
#
# Idempotent and cached under .cache/vm/kernel-<release>/ (VM_CACHE_DIR overrides .cache/vm):
#   vmlinuz                 the kernel of linux-image-<arch>'s current dependency (apt-get download)
#   root/lib/modules/<rel>  its modules, depmod'ed; the guest bind-mounts this as its /lib/modules
#   initramfs.cpio.gz       busybox + the modules the init needs + init + the command runner
# and writes .cache/vm/kernel.env (shell) and .cache/vm/kernel.json (tests/vm/lib reads it).
#
# VM_ARCH=arm64 prepares the arm64 bed instead (kernel-arm64.env / kernel-arm64.json): Debian's
# arm64 kernel for qemu-system-aarch64, and, since the host's own x86 programs cannot run in that
# guest, an arm64 userland in root/ that the guest mounts as its root in place of the host's:
# busybox-static, glibc and libstdc++ (for the charm's bundled arm64 Node.js) and kmod, all
# Debian's arm64 packages (apt-get download after `dpkg --add-architecture arm64`).
# Needs: apt-get, dpkg, kmod (depmod, modprobe), busybox-static, cpio, gzip. Root for mknod.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VM_CACHE_DIR:-$repo/.cache/vm}
mkdir -p "$cache"
# The physical path: the guest resolves it inside the host root it mounts over 9p, where an
# absolute symlink on the way (a worktree's .cache linked to a shared one) would point outside.
cache=$(cd -P "$cache" && pwd -P)

log() { echo "prepare-vm: $*" >&2; }
die() {
  echo "prepare-vm: ERROR: $*" >&2
  exit 1
}

for tool in apt-get apt-cache dpkg depmod modprobe cpio gzip; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; install it (apt-get install kmod cpio gzip)"
done
arch=${VM_ARCH:-amd64}
case $arch in
amd64) suffix="" qualifier="" ;;
arm64)
  suffix=-arm64 qualifier=:arm64
  dpkg --print-foreign-architectures | grep -qx arm64 ||
    die "dpkg knows no arm64 packages; run scripts/setup.sh (dpkg --add-architecture arm64, apt-get update)"
  ;;
*) die "VM_ARCH=$arch: only amd64 and arm64 are prepared" ;;
esac

# The arm64 userland the guest runs in (see the header); the initramfs takes its busybox too.
# findutils: the tests' state snapshots use GNU find's -printf, which busybox's find lacks.
ARM64_USERLAND=(busybox-static libc6 libgcc-s1 libstdc++6 kmod libkmod2 liblzma5 libssl3 libzstd1
  findutils libselinux1 libpcre2-8-0)

# The kernel: linux-image-<arch> is a metapackage whose one Depends names the versioned image.
pkg=${VM_KERNEL_PKG:-$(apt-cache depends "linux-image-$arch$qualifier" 2>/dev/null |
  awk '/Depends: linux-image-[0-9]/ { print $2; exit }')}
pkg=${pkg%"$qualifier"}
[ -n "$pkg" ] || die "cannot resolve linux-image-$arch's kernel package; run apt-get update"
release=${pkg#linux-image-}
kdir=$cache/kernel-$release
root=$kdir/root
mods=$root/lib/modules/$release

# What the cached tree holds: a changed package list fetches again.
contents="$pkg$qualifier"
[ "$arch" = arm64 ] && contents="$contents ${ARM64_USERLAND[*]}"
if [ "$(cat "$kdir/.kernel-complete" 2>/dev/null)" != "$contents" ]; then
  log "fetching $pkg$qualifier"
  rm -rf "$kdir"
  # apt downloads as its unprivileged _apt user; in a folder _apt cannot write it falls back to
  # root with an "unsandboxed" warning, so the .debs land in a private temporary folder of _apt's.
  deb=$(mktemp -d)
  if id _apt >/dev/null 2>&1; then chown _apt "$deb"; fi
  wanted=("$pkg$qualifier")
  [ "$arch" = arm64 ] && wanted+=("${ARM64_USERLAND[@]/%/:arm64}")
  (cd "$deb" && apt-get download -q "${wanted[@]}" >&2) || die "apt-get download ${wanted[*]} failed"
  mkdir -p "$kdir"
  for file in "$deb"/*.deb; do dpkg -x "$file" "$root"; done
  rm -rf "$deb"
  cp "$root/boot/vmlinuz-$release" "$kdir/vmlinuz"
  depmod -b "$root" "$release"
  if [ "$arch" = arm64 ]; then
    # The busybox applets the bed's scripts use (sh, base64, timeout, cp…), as links, where no
    # package put a program of that name; the host's busybox-static is the same Debian build, so
    # its applet list is this one's. Plus the mount points a root needs.
    mkdir -p "$root"/{proc,sys,dev,run,tmp,root,etc,var/lib}
    /bin/busybox --list-full | while read -r applet; do
      [ -e "$root/$applet" ] || [ -L "$root/$applet" ] || {
        mkdir -p "$(dirname "$root/$applet")"
        ln -s /bin/busybox "$root/$applet"
      }
    done
  fi
  echo "$contents" >"$kdir/.kernel-complete"
fi

if [ "$arch" = arm64 ]; then
  # The guest's own static busybox; it cannot be checked by running it on this host.
  busybox=$root/bin/busybox
  [ -x "$busybox" ] || die "busybox-static:arm64 did not unpack $busybox"
else
  busybox=${VM_BUSYBOX:-/bin/busybox}
  [ -x "$busybox" ] || die "'$busybox' is missing; apt-get install busybox-static"
  if ! (LC_ALL=C ldd "$busybox" 2>&1 || true) | grep -q 'not a dynamic executable'; then
    # A dynamic busybox would need its libc in the initramfs; the static one does not.
    die "'$busybox' is not a static busybox; apt-get install busybox-static"
  fi
fi

# What the init insmods, in the order modprobe would load them. The guest's own modprobe (inside
# the chroot, over the bind-mounted module tree) loads everything else — vfio-pci included, so the
# charm's own "load vfio-pci first" step is exercised.
init_modules=(virtio_pci virtio_console 9pnet_virtio 9p overlay e1000e e1000)
order_file=$kdir/modules.order.txt
: >"$order_file.new"
for m in "${init_modules[@]}"; do
  modprobe -d "$root" -S "$release" --show-depends "$m" >>"$order_file.new" ||
    die "module $m not found in $pkg"
done
# "insmod /path/x.ko" lines (builtin ones say "builtin x"); keep the first occurrence of each.
awk '$1 == "insmod" && !seen[$2]++ { print $2 }' "$order_file.new" >"$order_file"
rm -f "$order_file.new"

# Rebuild the initramfs only when something that goes into it changed.
stamp=$(
  {
    cat "$here/initramfs-init.sh" "$here/guest-agent.sh" "$order_file"
    sha256sum "$busybox"
  } | sha256sum | cut -c1-16
)
initramfs=$kdir/initramfs.cpio.gz
if [ "$(cat "$kdir/.initramfs-stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$initramfs" ]; then
  log "building initramfs ($stamp)"
  stage=$(mktemp -d "$kdir/stage.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage"/{bin,dev,proc,sys,run,etc/vmbed,lib/modules}
  cp "$busybox" "$stage/bin/busybox"
  ln -s busybox "$stage/bin/sh"
  mknod -m 600 "$stage/dev/console" c 5 1
  mknod -m 666 "$stage/dev/null" c 1 3
  : >"$stage/etc/vmbed/modules.order"
  while read -r path; do
    base=$(basename "$path")
    cp "$path" "$stage/lib/modules/$base"
    echo "/lib/modules/$base" >>"$stage/etc/vmbed/modules.order"
  done <"$order_file"
  install -m 755 "$here/initramfs-init.sh" "$stage/init"
  install -m 755 "$here/guest-agent.sh" "$stage/etc/vmbed/agent.sh"
  echo "$release" >"$stage/etc/vmbed/release"
  (cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$initramfs.new"
  mv "$initramfs.new" "$initramfs"
  echo "$stamp" >"$kdir/.initramfs-stamp"
fi

# amd64 guests mount the host's own root; arm64 guests the arm64 userland unpacked above.
rootfs=/
[ "$arch" = arm64 ] && rootfs=$root
out=$cache/kernel$suffix
cat >"$out.env.new" <<EOT
VM_KERNEL_RELEASE=$release
VM_KERNEL=$kdir/vmlinuz
VM_INITRAMFS=$initramfs
VM_MODULES=$mods
EOT
mv "$out.env.new" "$out.env"
cat >"$out.json.new" <<EOT
{
  "arch": "$arch",
  "release": "$release",
  "package": "$pkg",
  "kernel": "$kdir/vmlinuz",
  "initramfs": "$initramfs",
  "modules": "$mods",
  "modulesRoot": "$root",
  "rootfs": "$rootfs"
}
EOT
mv "$out.json.new" "$out.json"
log "ready: $release ($out.json)"
