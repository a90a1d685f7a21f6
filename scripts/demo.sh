#!/usr/bin/env bash
# The README's first command: builds and packs the charm, prepares the real-kernel test bed (a
# Debian kernel and a busybox initramfs, cached in .cache/vm), then deploys the packed charm into
# a QEMU guest with an emulated IOMMU and shows what it does (scripts/demo.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent pack
bash scripts/vm/prepare.sh
node scripts/run-ts.mjs scripts/demo.ts
