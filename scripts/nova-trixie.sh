#!/usr/bin/env bash
# A Debian trixie root with trixie's python3-nova (2:31.0.0, 2025.1 Epoxy), so tests can ask
# nova 31's own code what it makes of what the charm publishes for that release (`managed`,
# PCI in Placement: resource_class, traits). trixie's python packages need trixie's Python: they
# run in a chroot, never mixed into the bookworm host (/work/shared/reference/debian-suites.md).
#
# Cached under .cache/nova-trixie/<key>/, the key a hash of this recipe (the script's own bytes),
# so a changed recipe builds a new root and never touches an old one. Prints the root's path.
# debootstrap is heavy: it runs under /tmp/heavy.lock, so one heavy job runs at a time on a
# shared machine. Needs root (debootstrap, chroot) and the package mirror the host's apt uses.
set -euo pipefail
cd "$(dirname "$0")/.."

# The mirror apt on this machine already uses (its own suite's "deb" source serves trixie too).
MIRROR=${NOVA_TRIXIE_MIRROR:-$(bash scripts/vm/debian-mirror.sh "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")")}
[ -n "$MIRROR" ] || { echo "nova-trixie: no Debian 'deb' source in apt's configuration; set NOVA_TRIXIE_MIRROR" >&2; exit 1; }
key=$(sha256sum "$0" | cut -c1-16)
base=.cache/nova-trixie/$key
root=$base/root

if [ -f "$base/done" ]; then
  echo "$PWD/$root"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "nova-trixie: debootstrap is missing (scripts/setup.sh installs it)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "nova-trixie: building the trixie root needs root (debootstrap)" >&2; exit 1; }

mkdir -p "$base"
exec 9>/tmp/heavy.lock
flock 9
# Another run may have built it while this one waited for the lock.
if [ -f "$base/done" ]; then
  echo "$PWD/$root"
  exit 0
fi
rm -rf "$root" "$base/tmp"
mkdir -p "$base/tmp"
# minbase first, then python3-nova with the root's own apt: debootstrap's --include resolver
# does not follow virtual packages (python3-pycparser needs python3-ply-lex-3.10, which
# python3-ply provides) and leaves nova unconfigured. No Recommends, no services started (a
# policy-rc.d that refuses every start); nova's postinst needs no network. Logged beside the root.
echo "nova-trixie: debootstrap trixie into $root (a few minutes)" >&2
log=$base/build.log
fail() {
  echo "nova-trixie: $1 failed; the last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
}
debootstrap --variant=minbase trixie "$base/tmp" "$MIRROR" >"$log" 2>&1 || fail debootstrap
printf '#!/bin/sh\nexit 101\n' >"$base/tmp/usr/sbin/policy-rc.d"
chmod 755 "$base/tmp/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$base/tmp/etc/resolv.conf"
chroot "$base/tmp" env DEBIAN_FRONTEND=noninteractive apt-get update >>"$log" 2>&1 || fail "apt-get update"
chroot "$base/tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  python3-nova >>"$log" 2>&1 || fail "apt-get install python3-nova"
chroot "$base/tmp" apt-get clean >>"$log" 2>&1
# Only what the tests need is kept checked: nova's code imports, at the version we expect.
chroot "$base/tmp" /usr/bin/python3 -c 'import nova.pci.whitelist, nova.pci.request' >&2
chroot "$base/tmp" dpkg-query -W -f='${Version}\n' python3-nova >"$base/version"
mv "$base/tmp" "$root"
touch "$base/done"
echo "$PWD/$root"
