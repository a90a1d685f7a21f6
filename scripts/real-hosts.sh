#!/usr/bin/env bash
# Brings the recordings of real hosts that tests/fixtures/real-hosts/*.json name onto this machine,
# from Debian SOURCE packages (apt-get source), and the module index of a Debian kernel package
# (what every running host has and no recording carries). Nothing recorded is committed: the
# manifests say where each recording comes from, its licence and its sha256; this script fetches
# it once into .cache/real-hosts/ and the tests unpack it at test time (tests/support/real-hosts/).
#
# Cached: a second run downloads nothing. A download that fails, or a recording whose sha256 is not
# the manifest's, fails the run naming what is missing; nothing is skipped.
#
#   .cache/real-hosts/recordings/<file>   each manifest's recording, as the source package ships it
#   .cache/real-hosts/modules/<release>/  modules.alias, modules.dep, modules.builtin of the VM bed's kernel
#   .cache/real-hosts/index.json          {"kernelRelease": …} for the loader
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${REAL_HOSTS_CACHE:-$repo/.cache/real-hosts}
manifests=$repo/tests/fixtures/real-hosts
mkdir -p "$cache/recordings" "$cache/modules"
cache=$(cd "$cache" && pwd)

log() { echo "real-hosts: $*" >&2; }
die() {
  echo "real-hosts: ERROR: $*" >&2
  exit 1
}
for tool in apt-get apt-cache tar bzip2 sha256sum node; do
  command -v "$tool" >/dev/null || die "'$tool' is missing (apt-get install apt tar bzip2 coreutils; node from the toolchain)"
done

# One line per manifest: id, suite, source package, version, path in the source tree, sha256.
mapfile -t wanted < <(node -e '
  const fs = require("node:fs"), path = require("node:path");
  const dir = process.argv[1];
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".json")).sort()) {
    const m = JSON.parse(fs.readFileSync(path.join(dir, name), "utf8"));
    const s = m.source;
    console.log([m.id, s.suite, s.package, s.version, s.path, s.sha256].join("\t"));
  }' "$manifests")
((${#wanted[@]})) || die "no manifest in $manifests"

# A private deb-src list per suite, on the mirror the machine's apt already uses (its own suite's
# "deb" source, which serves every suite): the system's apt configuration is not changed.
debian_mirror() {
  if [ -z "${mirror:-}" ]; then
    mirror=$(bash "$repo/scripts/vm/debian-mirror.sh" "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")")
    [ -n "$mirror" ] || die "no Debian 'deb' source in apt's configuration to take deb-src from"
  fi
  echo "$mirror"
}
apt_dir() { echo "$cache/apt-$1"; }
apt_opts() {
  local d
  d=$(apt_dir "$1")
  echo "-o Dir::Etc::SourceList=$d/sources.list -o Dir::Etc::SourceParts=/dev/null" \
    "-o Dir::State::Lists=$d/lists -o Dir::Cache=$d/cache -o APT::Sandbox::User=root"
}
declare -A updated=()
apt_update_once() {
  local suite=$1 d
  [ -n "${updated[$suite]:-}" ] && return 0
  d=$(apt_dir "$suite")
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
  echo "deb-src $(debian_mirror) $suite main" >"$d/sources.list"
  log "apt-get update (deb-src $suite)"
  # shellcheck disable=SC2046
  apt-get $(apt_opts "$suite") update -qq >&2 || die "apt-get update for deb-src $suite failed"
  updated[$suite]=1
}

# The source package's upstream tarball(s), downloaded once per package and version.
fetch_source() {
  local suite=$1 pkg=$2 version=$3 dest=$cache/src/${2}_${3}
  if [ ! -f "$dest/.complete" ]; then
    rm -rf "$dest"
    mkdir -p "$dest"
    log "apt-get source --download-only $pkg=$version ($suite)"
    # shellcheck disable=SC2046
    if ! (cd "$dest" && apt-get $(apt_opts "$suite") source --download-only -qq "$pkg=$version" >&2); then
      # A stable suite replaces a package at each point release and the mirror drops the old
      # version. The recording inside rarely changes, and its sha256 is checked below: take the
      # suite's current version, and say so.
      log "$pkg $version is no longer in $suite; trying its current version (the recording's sha256 decides)"
      rm -rf "$dest" && mkdir -p "$dest"
      # shellcheck disable=SC2046
      (cd "$dest" && apt-get $(apt_opts "$suite") source --download-only -qq "$pkg" >&2) ||
        die "cannot download source package $pkg ($version or current) from $suite"
    fi
    touch "$dest/.complete"
  fi
  echo "$dest"
}

for line in "${wanted[@]}"; do
  IFS=$'\t' read -r id suite pkg version inpath sha <<<"$line"
  out=$cache/recordings/$id.${inpath##*/}
  if [ ! -f "$out" ] || [ "$(sha256sum <"$out" | cut -d' ' -f1)" != "$sha" ]; then
    # apt-get update here, not inside $(…): a subshell would forget that it ran.
    [ -f "$cache/src/${pkg}_${version}/.complete" ] || apt_update_once "$suite"
    src=$(fetch_source "$suite" "$pkg" "$version")
    found=0
    for orig in "$src"/*.orig.tar.* "$src"/*.orig-*.tar.*; do
      [ -f "$orig" ] || continue
      case $orig in *.asc) continue ;; esac
      # Upstream tarballs hold one top directory (hwloc-2.9.0/); the manifest path is below it.
      # (awk reads to the end: exiting early would kill tar with SIGPIPE under pipefail)
      member=$(tar -tf "$orig" | awk -v p="$inpath" '{ q = $0; sub(/^[^\/]*\//, "", q) } q == p && !m { m = $0 } END { print m }')
      [ -n "$member" ] || continue
      tar -xOf "$orig" "$member" >"$out.new"
      mv "$out.new" "$out"
      found=1
      break
    done
    ((found)) || die "$id: $inpath is not in source package $pkg $version"
    got=$(sha256sum <"$out" | cut -d' ' -f1)
    [ "$got" = "$sha" ] ||
      die "$id: $inpath from source package $pkg ($suite) has sha256 $got, the manifest says $sha: the recording changed; review it and update tests/fixtures/real-hosts/$id.json"
    dsc=("$src"/*.dsc)
    log "$id: ${dsc[0]##*/} $inpath"
  fi
done

# The module index: that of the kernel the VM bed boots (linux-image-amd64's dependency), which
# scripts/vm/prepare.sh downloads, unpacks and depmod's once (modules.alias and modules.dep are
# written by depmod, not shipped). Run it here when it has not run yet: the test command needs it
# anyway, and one download serves both.
pkg=${VM_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null |
  awk '/Depends: linux-image-[0-9]/ { print $2; exit }')}
[ -n "$pkg" ] || die "cannot resolve linux-image-amd64's kernel package; run apt-get update"
release=${pkg#linux-image-}
index=$cache/modules/$release
if [ ! -f "$index/.complete" ]; then
  vm=${VM_CACHE_DIR:-$repo/.cache/vm}/kernel-$release
  if [ ! -f "$vm/.kernel-complete" ]; then
    log "no module index of $release yet: running scripts/vm/prepare.sh"
    bash "$repo/scripts/vm/prepare.sh" >&2 || die "scripts/vm/prepare.sh failed: no module index of $pkg"
  fi
  rm -rf "$index"
  mkdir -p "$index"
  for f in modules.alias modules.dep modules.builtin; do
    [ -f "$vm/root/lib/modules/$release/$f" ] || die "$vm/root/lib/modules/$release/$f is missing"
    cp "$vm/root/lib/modules/$release/$f" "$index/$f"
  done
  touch "$index/.complete"
fi
printf '{"kernelRelease": "%s", "kernelPackage": "%s"}\n' "$release" "$pkg" >"$cache/index.json"
