#!/usr/bin/env bash
# make bench: the batch job (CREATE / REFRESH MATERIALIZED VIEW) against
# pg_tide on TPC-H, in a throwaway cluster (benches/tpch.py measures and
# writes the report and plots).
#   SF      scale factor (1; 0.1 for a quick run)
#   RUNS    repetitions of every measurement (3)
#   OUT     report directory (benches/results)
#   CAPTURE change capture of the deferred views: trigger or wal (trigger)
#   QUERIES comma-separated subset (q01,q06,...), default all 22
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
SF=${SF:-1}
OUT=${OUT:-benches/results}
SETTINGS=${SETTINGS:-"-c fsync=on -c synchronous_commit=on -c shared_buffers=2GB -c work_mem=64MB -c maintenance_work_mem=1GB -c max_wal_size=16GB -c checkpoint_timeout=30min"}
# Debian's python, which the Debian packages below serve (not a pyenv one on PATH).
PYTHON=/usr/bin/python3
$PYTHON -c 'import psycopg2, matplotlib' 2>/dev/null || {
    step "installing python3-psycopg2 and python3-matplotlib"
    apt-get install -y -q python3-psycopg2 python3-matplotlib >/dev/null
}
throwaway_cluster bench-tpch 54345 $SETTINGS
scripts/tpch-load.sh "$dir" "$port" "$SF"
step "measuring (report in $OUT/tpch.md)"
$PYTHON benches/tpch.py --host "$dir" --port "$port" --datadir "$dir/data" --pgbench "$PG_BIN/pgbench" \
    --sf "$SF" --runs "${RUNS:-3}" --capture "${CAPTURE:-trigger}" --queries "${QUERIES:-}" \
    --settings "$SETTINGS" --out "$OUT" ${BENCH_ARGS:-}
