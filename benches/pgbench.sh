#!/usr/bin/env bash
# Immediate-mode cost on writers, on pgbench data (pgbench -i -s 10: 1M accounts).
# Each figure is the median of RUNS runs with min and max; every ratio is taken
# in this one run, on the same data, with the same server settings.
#   views: agg  = SELECT bid, count(*), sum(abalance) FROM pgbench_accounts GROUP BY bid
#          join = SELECT a.aid, b.bid, a.abalance, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b USING (bid)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
PORT=${PORT:-54340}
DIR=$(mktemp -d /tmp/pg_tide-bench.XXXXXX)
OUT=${OUT:-benches/results/pgbench.md}
SETTINGS=${SETTINGS:-"-c fsync=on -c synchronous_commit=on -c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=30min"}
trap 'scripts/cluster.sh stop "$DIR"' EXIT
scripts/cluster.sh start "$DIR" "$PORT" $SETTINGS
sql() { psql -X -q -At -h "$DIR" -p "$PORT" -U postgres -d postgres "$@"; }
pgb() { "$PG_BIN/pgbench" -h "$DIR" -p "$PORT" -U postgres "$@" postgres; }
step "Loading pgbench -i -s 10"
pgb -i -s 10 -q >/dev/null 2>&1
sql -c "CREATE EXTENSION pg_tide" -c "VACUUM ANALYZE"
cat > "$DIR/update.sql" <<'SQL'
\set aid random(1, 1000000)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SQL
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f (min %.3f, max %.3f)", m, a[1], a[NR]}'; }
raw_median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.6f", m}'; }
# latency (ms) of single-row updates, 1 client; tps with 8 clients
latency() { for r in $(seq "$RUNS"); do pgb -n -f "$DIR/update.sql" -c 1 -T "$SECONDS_PER_RUN" 2>/dev/null | awk '/latency average/ {print $4}'; done; }
tps8() { for r in $(seq "$RUNS"); do pgb -n -f "$DIR/update.sql" -c 8 -j 2 -T "$SECONDS_PER_RUN" 2>/dev/null | awk '/^tps/ {print $3}'; done; }
bulk() { for r in $(seq "$RUNS"); do
    t0=$(date +%s%N); sql -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 10 = $r"; t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", (b - a) / 1000000}'; done; }
declare -A LAT TPS BULK
measure() {
    step "Measuring: $1"
    LAT[$1]=$(latency); TPS[$1]=$(tps8); BULK[$1]=$(bulk)
}
measure none
sql -c "SELECT tide.create_view('acct_by_branch', 'SELECT bid, count(*) AS n, sum(abalance) AS total FROM pgbench_accounts GROUP BY bid')" >/dev/null
measure agg
sql -c "SELECT tide.create_view('acct_join', 'SELECT a.aid, b.bid, a.abalance, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b USING (bid)')" >/dev/null
measure agg+join
ok=$(sql -c "SELECT bool_and(tide.verify(name::text)) FROM tide.views")
ratio() { awk -v a="$(echo "$1" | raw_median)" -v b="$(echo "$2" | raw_median)" 'BEGIN {printf "%.2f", a / b}'; }
mkdir -p "$(dirname "$OUT")"
{
    echo "# Immediate mode on pgbench data (scale 10, 1M accounts)"
    echo
    echo "Run $(date -u +%Y-%m-%d), PostgreSQL $PG_MAJOR, $(nproc) cores, settings: \`$SETTINGS\`."
    echo "Medians of $RUNS runs of ${SECONDS_PER_RUN}s (min, max). Views verified equal to their queries afterwards: $ok."
    echo
    echo "| views maintained | 1-row UPDATE latency, 1 client (ms) | TPS, 8 clients | 100,000-row UPDATE (ms) |"
    echo "|---|---|---|---|"
    for k in none agg agg+join; do
        echo "| $k | $(echo "${LAT[$k]}" | median) | $(echo "${TPS[$k]}" | median) | $(echo "${BULK[$k]}" | median) |"
    done
    echo
    echo "Ratios against no view: latency agg $(ratio "${LAT[agg]}" "${LAT[none]}")x, agg+join $(ratio "${LAT[agg+join]}" "${LAT[none]}")x;"
    echo "8-client throughput agg $(ratio "${TPS[agg]}" "${TPS[none]}")x, agg+join $(ratio "${TPS[agg+join]}" "${TPS[none]}")x;"
    echo "100,000-row UPDATE agg $(ratio "${BULK[agg]}" "${BULK[none]}")x, agg+join $(ratio "${BULK[agg+join]}" "${BULK[none]}")x."
} > "$OUT"
cat "$OUT"
