#!/usr/bin/env bash
# Load TPC-H into a running cluster: data from the tpchgen crate
# (tools/tpch-gen, generated once per scale factor into target/tpch-data),
# schema with primary keys and the usual foreign-key indexes
# (tests/tpch/schema.sql), then CREATE EXTENSION pg_tide and ANALYZE.
#   scripts/tpch-load.sh SOCKET_DIR PORT SCALE_FACTOR
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
host=$1 port=$2 sf=$3
data=target/tpch-data/sf$sf
if [ ! -f "$data/lineitem.tbl" ]; then
    step "generating TPC-H data, scale factor $sf"
    cargo build --release -q --manifest-path tools/tpch-gen/Cargo.toml
    tools/tpch-gen/target/release/tpch-gen "$sf" "$data.partial" >/dev/null
    rm -rf "$data" && mv "$data.partial" "$data"
fi
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U postgres -d postgres "$@"; }
step "loading TPC-H scale factor $sf"
sql -f tests/tpch/schema.sql
for t in region nation part supplier partsupp customer orders lineitem; do
    sql -c "\\copy $t FROM '$data/$t.tbl' WITH (DELIMITER '|')"
done
sql -c "CREATE EXTENSION pg_tide" -c "VACUUM ANALYZE"
