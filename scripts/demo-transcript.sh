#!/usr/bin/env bash
# Regenerates docs/demo-transcript.txt: the README's first command (bash scripts/demo.sh) run in a
# fresh clone, as a newcomer runs it — nothing cached, so the Debian kernel is downloaded and the
# guest's disk built — with the demo's story kept exactly as printed (the set-up phases' own output
# is cut to their headings). The file is never edited by hand.
#
# Usage: bash scripts/demo-transcript.sh [SOURCE [CLONE_DIR]]
#   SOURCE     what to clone (default: this repository); e.g. /work/main for the shared main
#   CLONE_DIR  where (default: a temporary folder, removed afterwards); must not exist yet
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source=${1:-$here}
clone=${2:-}
temporary=
if [ -z "$clone" ]; then
  temporary=$(mktemp -d)
  clone=$temporary/pci-passthrough
  trap 'rm -rf "$temporary"' EXIT
fi
if [ -e "$clone" ]; then
  echo "demo-transcript: $clone already exists; a transcript needs a fresh clone" >&2
  exit 1
fi

git clone --quiet "$source" "$clone"
out=$here/docs/demo-transcript.txt
mkdir -p "$(dirname "$out")"
if ! {
  echo "# bash scripts/demo.sh in a fresh clone of $(git -C "$clone" log -1 --format='%h (%cd)' --date=format:'%Y-%m-%d %H:%M'),"
  echo "# on $(nproc) cores shared with other work (load average $(cut -d' ' -f1-3 /proc/loadavg) at the start), QEMU under TCG."
  echo "# Written by scripts/demo-transcript.sh: regenerate it, do not edit it."
  echo "# The set-up, pack and image phases show their headings only: what they print (downloads,"
  echo "# counts, sizes) changes with every commit and machine. tests/unit/demo-transcript.test.ts checks"
  echo "# this file's facts against the code."
  (cd "$clone" && NO_COLOR=1 bash scripts/demo.sh 2>&1) | tee /dev/stderr | awk '
    BEGIN { last = "-" }
    /^\[[0-9][0-9]:[0-9][0-9]\] Boot 1:/ { story = 1 }
    story || /^\[[0-9][0-9]:[0-9][0-9]\] / || (/^$/ && last != "") { print; last = $0 }'
} >"$out.new"; then
  rm -f "$out.new"
  echo "demo-transcript: the demo failed; $out is unchanged" >&2
  exit 1
fi
mv "$out.new" "$out"
echo "demo-transcript: wrote $out"
