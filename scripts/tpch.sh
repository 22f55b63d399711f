#!/usr/bin/env bash
# TPC-H under a change stream (tests/tpch/changes.py): data from the tpchgen
# crate (tools/tpch-gen) at scale factor TPCH_SF (0.01), loaded into a
# throwaway cluster; every maintained query verified after each step.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
sf=${TPCH_SF:-0.01}
data=target/tpch-data/sf$sf
if [ ! -f "$data/lineitem.tbl" ]; then
    step "generating TPC-H data, scale factor $sf"
    cargo build --release -q --manifest-path tools/tpch-gen/Cargo.toml
    tools/tpch-gen/target/release/tpch-gen "$sf" "$data" >/dev/null
fi
throwaway_cluster tpch 54334
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"; }
step "loading TPC-H scale factor $sf"
sql -f tests/tpch/schema.sql
for t in region nation part supplier partsupp customer orders lineitem; do
    sql -c "\\copy $t FROM '$data/$t.tbl' WITH (DELIMITER '|')"
done
sql -c "CREATE EXTENSION pg_tide; ANALYZE"
step "TPC-H views under RF1 / RF2 / updates"
python3 tests/tpch/changes.py --host "$dir" --port "$port" --seed "${TPCH_SEED:-1}" --steps "${TPCH_STEPS:-25}"
step "TPC-H deferred views under RF1 / RF2 / updates"
sql -c "SET client_min_messages = warning; SELECT count(tide.drop_view(name::text)) FROM tide.views" >/dev/null
python3 tests/tpch/changes.py --host "$dir" --port "$port" --seed "${TPCH_SEED:-1}" --steps "${TPCH_DEFERRED_STEPS:-12}" --mode deferred
