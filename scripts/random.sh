#!/usr/bin/env bash
# The seeded randomized differential test (tests/random/differential.py)
# against a throwaway cluster; the extension must be installed.
# SEEDS, STEPS and FIRST_SEED tune it; a failure prints its seed and statements.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
throwaway_cluster random 54332
step "randomized differential test"
args=(--host "$dir" --port "$port" --seeds "${SEEDS:-12}" --steps "${STEPS:-80}")
args+=(--first-seed "${FIRST_SEED:-1}")
python3 tests/random/differential.py "${args[@]}"
