#!/usr/bin/env bash
# The seeded randomized differential test (tests/random/differential.py)
# against a throwaway cluster; the extension must be installed. It runs in
# immediate mode, then in deferred mode (views refreshed, then verified, at
# random steps; the background refresher runs beside).
# SEEDS, STEPS and FIRST_SEED tune it (DEFERRED_SEEDS and WAL_SEEDS for the
# deferred runs);
# a failure prints its seed and statements.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
throwaway_cluster random 54332
step "randomized differential test, immediate mode"
args=(--host "$dir" --port "$port" --steps "${STEPS:-80}" --first-seed "${FIRST_SEED:-1}")
python3 tests/random/differential.py "${args[@]}" --seeds "${SEEDS:-12}"
step "randomized differential test, deferred mode, trigger capture"
python3 tests/random/differential.py "${args[@]}" --seeds "${DEFERRED_SEEDS:-6}" --mode deferred --capture trigger
# (WAL capture over a subset of the views: each refresh decodes the slot.)
step "randomized differential test, deferred mode, WAL capture"
wal_views=v_filter,v_bag_json,v_group,v_global,v_distinct,v_join,v_join_agg,v_self,v_three,v_agg_sub,v_above_avg,v_left,v_left_chain,v_exists,v_not_in,v_topk,v_union,v_window,v_distinct_agg,v_lists,v_over_group
python3 tests/random/differential.py "${args[@]}" --seeds "${WAL_SEEDS:-2}" --steps "${WAL_STEPS:-30}" \
    --mode deferred --capture wal --views "$wal_views"
