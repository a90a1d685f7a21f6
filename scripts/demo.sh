#!/usr/bin/env bash
# The README's first command. Prints each phase as it starts, with the time since this script
# started: set-up, the packed charm, the guest's kernel and Debian disk (cached in .cache/vm after
# the first run), then scripts/demo.ts boots the guest, deploys the charm and takes the host
# through the reboot it asks for.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_STARTED_MS=$(date +%s%3N)
export DEMO_STARTED_MS
phase() { printf '\n[%02d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

phase "Set-up: Debian packages and npm dependencies (scripts/setup.sh)"
bash scripts/setup.sh
phase "Build and pack the charm (npm run pack)"
npm run --silent pack
phase "The guest's kernel: Debian's, downloaded once (scripts/vm/prepare.sh)"
bash scripts/vm/prepare.sh 2>&1
phase "The guest's disk: Debian with systemd, udev, grub and initramfs-tools (scripts/vm/build-debian-image.sh; about a minute the first time)"
bash scripts/vm/build-debian-image.sh 2>&1
node scripts/run-ts.mjs scripts/demo.ts
