#!/usr/bin/env bash
# TPC-H under a change stream (tests/tpch/changes.py): data from the tpchgen
# crate (tools/tpch-gen) at scale factor TPCH_SF (0.01), loaded into a
# throwaway cluster; every maintained query verified after each step.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
sf=${TPCH_SF:-0.01}
throwaway_cluster tpch 54334
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"; }
scripts/tpch-load.sh "$dir" "$port" "$sf"
step "TPC-H views under RF1 / RF2 / updates"
python3 tests/tpch/changes.py --host "$dir" --port "$port" --seed "${TPCH_SEED:-1}" --steps "${TPCH_STEPS:-25}"
step "TPC-H deferred views under RF1 / RF2 / updates"
sql -c "SET client_min_messages = warning; SELECT count(tide.drop_view(name::text)) FROM tide.views" >/dev/null
python3 tests/tpch/changes.py --host "$dir" --port "$port" --seed "${TPCH_SEED:-1}" --steps "${TPCH_DEFERRED_STEPS:-12}" --mode deferred
