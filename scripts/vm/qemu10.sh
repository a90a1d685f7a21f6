#!/bin/bash
# QEMU 10 for the igb tier only (tests/vm/tier1-igb.test.ts): Debian's bookworm-backports
# qemu-system-x86 (1:10.0.x), whose `igb` device emulates Intel's 82576 with SR-IOV and netdev VFs
# (QEMU 7.2, bookworm's own, has no SR-IOV NIC). Downloaded with apt-get download and unpacked with
# dpkg -x into .cache/vm/qemu-<version>/, never installed: the other tiers keep bookworm's QEMU 7.2,
# under which they were checked (under QEMU 10 the AMD bed over 9p was seen powering off before
# its init ran). Needs the bookworm-backports source that
# scripts/setup.sh adds. Writes .cache/vm/qemu10.json: the binary, its module and data folders.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VM_CACHE_DIR:-$repo/.cache/vm}
mkdir -p "$cache"
cache=$(cd -P "$cache" && pwd -P)
die() {
  echo "qemu10: ERROR: $*" >&2
  exit 1
}

version=$(apt-cache madison qemu-system-x86 2>/dev/null | awk -F'|' '$3 ~ /backports/ { gsub(/ /, "", $2); print $2; exit }')
[ -n "$version" ] || die "no qemu-system-x86 in bookworm-backports: run scripts/setup.sh (it adds the source and runs apt-get update)"
out=$cache/qemu-${version//[:~+]/_}
if [ ! -f "$out/.complete" ]; then
  rm -rf "$out"
  mkdir -p "$out/debs"
  (cd "$out/debs" && apt-get download -q "qemu-system-x86=$version" "qemu-system-common=$version" \
    "qemu-system-data=$version" >/dev/null 2>&1) || die "apt-get download of QEMU $version failed"
  for deb in "$out"/debs/*.deb; do dpkg -x "$deb" "$out/root"; done
  rm -rf "$out/debs"
  touch "$out/.complete"
fi
binary=$out/root/usr/bin/qemu-system-x86_64
"$binary" -version >/dev/null || die "$binary does not run on this machine (missing libraries? ldd $binary)"
cat >"$cache/qemu10.json.new" <<EOT
{
  "version": "$version",
  "binary": "$binary",
  "moduleDir": "$out/root/usr/lib/x86_64-linux-gnu/qemu",
  "dataDirs": ["$out/root/usr/share/qemu", "/usr/share/seabios", "/usr/share/qemu"]
}
EOT
mv "$cache/qemu10.json.new" "$cache/qemu10.json"
echo "qemu10: ready: $binary ($version)" >&2
