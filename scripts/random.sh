#!/usr/bin/env bash
# The seeded randomized differential test (tests/random/differential.py)
# against a throwaway cluster; the extension must be installed.
# SEEDS, STEPS and FIRST_SEED tune it; a failure prints its seed and statements.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
dir=$(mktemp -d /tmp/pg_tide-random.XXXXXX)
port=${PORT:-54332}
trap 'scripts/cluster.sh stop "$dir"' EXIT
scripts/cluster.sh start "$dir" "$port"
step "randomized differential test"
args=(--host "$dir" --port "$port" --seeds "${SEEDS:-12}" --steps "${STEPS:-80}")
args+=(--first-seed "${FIRST_SEED:-1}")
python3 tests/random/differential.py "${args[@]}"
