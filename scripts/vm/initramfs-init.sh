#!/bin/sh
# /init of the tier-1 test-bed initramfs (built by scripts/vm/prepare.sh; busybox only).
#
# Turns the host's root, shared read-only over 9p, into a writable root for the guest (overlay with
# a tmpfs upper layer: whatever the charm writes — /etc included — stays in guest memory), gives it
# the guest's real /proc, /sys and /dev and the guest kernel's module tree, then runs the command
# runner (guest-agent.sh) inside that chroot on the virtio-serial port named "vmbed.agent".
# Kernel command-line words it reads: vmbed_modules=<host path of lib/modules/<release>>,
# vmbed_name=<hostname>.
/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "vmbed: $*"; }
fail() {
  say "FATAL: $*"
  # -no-reboot on the QEMU side turns this into a QEMU exit the host notices at once.
  echo o >/proc/sysrq-trigger
  sleep 5
  poweroff -f
}
arg() {
  # Words, not lines: the kernel command line is one line of space-separated words.
  # shellcheck disable=SC2013
  for word in $(cat /proc/cmdline); do
    case "$word" in "$1="*) echo "${word#*=}" ;; esac
  done
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say "init started, kernel $(uname -r)"

while read -r ko; do
  insmod "$ko" || say "insmod $ko failed"
done </etc/vmbed/modules.order

mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host ||
  fail "cannot mount the host root over 9p (mount_tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot ||
  fail "cannot mount the overlay over the host root"

n=/newroot
mount --bind /proc $n/proc
mount --bind /sys $n/sys
mount --bind /dev $n/dev
mkdir -p $n/dev/pts $n/dev/shm
mount -t devpts devpts $n/dev/pts
mount -t tmpfs tmpfs $n/dev/shm
# A fresh /run: the host's would otherwise leak into the guest through the lower layer. /tmp stays
# the overlay's (host files visible, guest writes in memory): the repo, its node_modules and the
# kernel modules of the bed may live under /tmp (CI clones anywhere), and a tmpfs would hide them.
mount -t tmpfs -o mode=0755 tmpfs $n/run
# The overlay's upper layer, read-only: every file the guest wrote (or copied up) and nothing
# else, so tests can see exactly what an action changed under /etc without walking the lower layer.
mkdir -p $n/run/vmbed/upper
mount --bind /rw/upper $n/run/vmbed/upper
mount -o remount,bind,ro $n/run/vmbed/upper

release=$(uname -r)
modules=$(arg vmbed_modules)
if [ -n "$modules" ] && [ -d "$n$modules" ]; then
  mkdir -p "$n/lib/modules/$release"
  mount --bind "$n$modules" "$n/lib/modules/$release"
else
  say "no module tree (vmbed_modules=$modules): modprobe will not work in the guest"
fi

name=$(arg vmbed_name)
[ -n "$name" ] && hostname "$name" && echo "$name" >$n/etc/hostname
ip link set lo up

# No udev here: name the virtio-serial ports the way its rules would (/dev/virtio-ports/<name>).
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do
  pname=$(cat "$p/name" 2>/dev/null)
  [ -n "$pname" ] && ln -sf "../${p##*/}" "/dev/virtio-ports/$pname"
done
port=/dev/virtio-ports/vmbed.agent
[ -e "$port" ] || fail "no virtio-serial port named vmbed.agent"

# The guest is a virtual machine: markers of the container the host may run in must not leak in
# through the shared root (the charm refuses to prepare a container).
rm -f $n/.dockerenv $n/run/.containerenv

mkdir -p $n/run/vmbed
cp /etc/vmbed/agent.sh $n/run/vmbed/agent.sh
cp /bin/busybox $n/run/vmbed/busybox
say "agent on $port"
# The agent is PID 1 from here on; its exit (or a crash) ends the guest, which the host notices.
exec chroot $n /run/vmbed/busybox sh /run/vmbed/agent.sh "$port"
