#!/bin/bash
# Checks the README's "a fresh Debian 12 machine" for Node.js: in a clean Debian 12 root made with
# debootstrap (minbase: no Node.js, no npm), chrooted, it runs scripts/setup-node.sh, then
# `npm ci` and `npm run pack` on a copy of this working tree. tests/vm/fresh-debian.test.ts reads
# its report (lines starting "fresh-debian: ").
#
# Cached under .cache/fresh-debian/ (FRESH_DEBIAN_CACHE overrides):
#   root-<suite>-<key>.tar   the debootstrap root, keyed by its recipe (the debootstrap command:
#                            variant, suite, mirror);
#                            every run unpacks it afresh into a temporary folder, removed after
#   apt/, npm/               apt's and npm's download caches, bind-mounted into the root so a rerun
#                            does not download again (downloads only: what is installed starts clean)
# Older roots (another recipe) are removed when a new one is built. Needs root, debootstrap,
# chroot, a reachable Debian mirror (apt's own sources) and the npm registry.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${FRESH_DEBIAN_CACHE:-$repo/.cache/fresh-debian}
suite=${FRESH_DEBIAN_SUITE:-bookworm}

say() { echo "fresh-debian: $*"; }
die() {
  echo "fresh-debian: ERROR: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mount)"
for tool in debootstrap chroot git tar findmnt; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; apt-get install debootstrap git tar util-linux"
done

mirror=${FRESH_DEBIAN_MIRROR:-$(bash "$here/debian-mirror.sh" "$suite")}
# A machine on another suite has no source for this one in apt's configuration: Debian's own.
# shellcheck source=/dev/null
mirror=${mirror:-$(bash "$here/debian-mirror.sh" "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")")}
[ -n "$mirror" ] || die "no Debian mirror in apt's sources; set FRESH_DEBIAN_MIRROR"

mkdir -p "$cache/apt" "$cache/npm"
cache=$(cd "$cache" && pwd)
recipe="debootstrap --variant=minbase $suite $mirror"
key=$(echo "$recipe" | sha256sum | cut -c1-12)
tarball=$cache/root-$suite-$key.tar
if [ -f "$tarball" ]; then
  say "cached root: $tarball"
else
  say "$recipe (once per recipe)"
  build=$(mktemp -d "$cache/.build-XXXXXX")
  trap 'rm -rf --one-file-system "$build"' EXIT
  debootstrap --variant=minbase "$suite" "$build/root" "$mirror" >"$build/debootstrap.log" 2>&1 || {
    tail -20 "$build/debootstrap.log" >&2
    die "debootstrap failed"
  }
  rm -rf "$build"/root/var/cache/apt/archives/*.deb
  tar -C "$build/root" -cf "$build/root.tar" .
  for old in "$cache"/root-"$suite"-*.tar; do
    [ -e "$old" ] && rm -f "$old"
  done
  mv "$build/root.tar" "$tarball"
  rm -rf --one-file-system "$build"
  trap - EXIT
fi

work=$(mktemp -d /var/tmp/fresh-debian-XXXXXX)
root=$work/root
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" || true; done
  # Never remove a tree that still has something mounted in it.
  if findmnt -rn -o TARGET | grep -q "^$work/"; then
    echo "fresh-debian: ERROR: still mounted under $work; not removing it" >&2
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
mkdir -p "$root"
tar -C "$root" -xf "$tarball"

# This working tree as a clone would have it (tracked and untracked files, nothing git ignores:
# no node_modules, build, nor a worktree's .cache link), at /src.
mkdir -p "$root/src"
# shellcheck disable=SC2016 # the inner sh expands "$f"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 sh -c 'for f; do [ -e "$f" ] && [ "$f" != .cache ] && printf "%s\0" "$f"; done' sh |
  tar --null -T - -cf -) | tar -C "$root/src" -xf -

cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
# The root's own /dev (the nodes debootstrap made) with a private devpts: no bind of the host's
# /dev, whose submounts a shared mount would propagate back to the host.
mkdir -p "$root/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" && mounted+=("$root/dev/pts")
mkdir -p "$root/root/.npm"
mount --bind "$cache/apt" "$root/var/cache/apt/archives" && mounted+=("$root/var/cache/apt/archives")
mount --bind "$cache/npm" "$root/root/.npm" && mounted+=("$root/root/.npm")

# A machine whose network intercepts TLS trusts its proxy's CA through NODE_EXTRA_CA_CERTS; any
# fresh machine on that network needs the same, so the root gets that file and that setting.
extra_ca=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" "$root/etc/extra-ca-certs.pem"
  extra_ca=(NODE_EXTRA_CA_CERTS=/etc/extra-ca-certs.pem)
fi

in_root() {
  env -i HOME=/root LANG=C.UTF-8 TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${extra_ca[@]}" chroot "$root" bash -c "cd /src && $1"
}

if in_root 'command -v node' >/dev/null; then
  die "the fresh root already has node: $(in_root 'command -v node')"
fi
say "before: no node, no npm"
SECONDS=0
in_root 'bash scripts/setup-node.sh'
say "setup-node took ${SECONDS} s"
say "after: node $(in_root 'node --version') at $(in_root 'command -v node'), npm $(in_root 'npm --version')"
# Run again, it changes nothing.
in_root 'bash scripts/setup-node.sh' | sed 's/^/again: /'
# pack zips the charm: zip is one of setup.sh's Debian packages.
in_root 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zip >/dev/null'
SECONDS=0
in_root 'npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run --silent pack'
say "npm ci + npm run pack took ${SECONDS} s"
for charm in "$root"/src/build/*.charm; do
  [ -f "$charm" ] && say "packed: build/${charm##*/} $(stat -c %s "$charm") bytes"
done
