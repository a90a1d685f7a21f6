#!/usr/bin/env bash
# Every test, in the order a failure is cheapest to read: static checks, unit + Scenario tests,
# the packed charm under the unit simulator, then the real-kernel suites under QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }
step "generate validators";  npm run --silent gen
step "typecheck (tsc strict)"; npx tsc --noEmit -p tsconfig.json
step "lint + format (biome)"; npx biome check .
step "unit tests";           npx vitest run --project unit
step "pack the charm";       npm run --silent pack
step "integration tests";    npx vitest run --project integration
step "real-kernel tests";    bash scripts/vm/prepare.sh && npx vitest run --project vm
