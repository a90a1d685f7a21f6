#!/usr/bin/env bash
# Every test, in the order a failure is cheapest to read: static checks, unit + Scenario tests,
# the packed charm under the unit simulator, then the real-kernel suites under QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."

# Redirected to a file (CI, `> test.log`), the run should read like a report: vitest colours its
# output unless NO_COLOR is set, even when it is not writing to a terminal.
[ -t 1 ] || export NO_COLOR=1

step() { printf '\n== %s  [%02d:%02d]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }
step "set-up (Debian packages, npm ci)"; bash scripts/setup.sh
step "generate validators";  npm run --silent gen
step "typecheck (tsc strict)"; npx tsc --noEmit -p tsconfig.json
step "lint + format (biome)"; npx biome check .
step "unit tests";           npx vitest run --project unit
step "pack the charm";       npm run --silent pack
# Debian trixie's nova 31 (a debootstrap root, cached under .cache/nova-trixie) is built here, not
# inside the test that asks it (tests/integration/nova-fleet-real.test.ts): minutes of downloads
# belong to no test's timeout.
step "nova 31's trixie root";  bash scripts/nova-trixie.sh >/dev/null
# Every integration test runs the packed charm's dispatch: nearly all pass vitest's 300 ms "slow"
# mark, which would list ~250 of them; 5 s flags the ones that really are (the option is global).
step "integration tests";    npx vitest run --project integration --slowTestThreshold=5000
step "real-kernel tests";    bash scripts/vm/prepare.sh && npx vitest run --project vm
step "done"
