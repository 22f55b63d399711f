#!/usr/bin/env bash
# Deferred mode's cost on writers, on pgbench data (pgbench -i -s 10: 1M
# accounts): 8 clients of single-row UPDATEs and INSERTs of pgbench_accounts,
# with no view, then with 3 deferred views over that table (trigger capture,
# then the same views in WAL capture; refresh_interval INTERVAL, 1 s unless
# told, the background
# refresher running beside). Reports
# throughput (median of RUNS runs, min and max), the ratio taken in this run,
# and the views' lag (seconds behind, sampled every 0.5 s while the writers run).
#   views: per_branch = SELECT bid, count(*), sum(abalance) ... GROUP BY bid
#          extremes   = SELECT bid, min(abalance), max(abalance) ... GROUP BY bid
#          rich       = SELECT aid, bid, abalance ... WHERE abalance > 4000
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
PORT=${PORT:-54341}
DIR=$(mktemp -d /tmp/pg_tide-bench.XXXXXX)
OUT=${OUT:-benches/results/deferred.md}
INTERVAL=${INTERVAL:-1 second}
SETTINGS=${SETTINGS:-"-c fsync=on -c synchronous_commit=on -c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=30min"}
trap 'scripts/cluster.sh stop "$DIR"' EXIT
scripts/cluster.sh start "$DIR" "$PORT" $SETTINGS
sql() { psql -X -q -At -h "$DIR" -p "$PORT" -U postgres -d postgres "$@"; }
pgb() { "$PG_BIN/pgbench" -h "$DIR" -p "$PORT" -U postgres "$@" postgres; }
step "Loading pgbench -i -s 10"
pgb -i -s 10 -q >/dev/null 2>&1
sql -c "CREATE EXTENSION pg_tide" -c "CREATE SEQUENCE new_aid START 2000001" -c "VACUUM ANALYZE"
cat > "$DIR/update.sql" <<'SQL'
\set aid random(1, 1000000)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SQL
cat > "$DIR/insert.sql" <<'SQL'
\set bid random(1, 10)
\set delta random(-5000, 5000)
INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES (nextval('new_aid'), :bid, :delta, '');
SQL
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f (min %.1f, max %.1f)", m, a[1], a[NR]}'; }
raw_median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.6f", m}'; }
tps8() { for r in $(seq "$RUNS"); do
    pgb -n -f "$DIR/update.sql@1" -f "$DIR/insert.sql@1" -c 8 -j 2 -T "$SECONDS_PER_RUN" 2>/dev/null | awk '/^tps/ {print $3}'
done; }
step "Measuring: no view"
TPS_NONE=$(tps8)
for v in "per_branch|SELECT bid, count(*) AS n, sum(abalance) AS total FROM pgbench_accounts GROUP BY bid" \
         "extremes|SELECT bid, min(abalance) AS lo, max(abalance) AS hi FROM pgbench_accounts GROUP BY bid" \
         "rich|SELECT aid, bid, abalance FROM pgbench_accounts WHERE abalance > 4000"; do
    sql -c "SELECT tide.create_view('${v%%|*}', \$q\$${v#*|}\$q\$, mode => 'deferred', capture => 'trigger', refresh_interval => '$INTERVAL')" >/dev/null
done
sql -c "SELECT bool_and(tide.wait(name::text, '10 minutes')) FROM tide.views" >/dev/null
# One phase per capture: the views' lag sampled while the writers run, then
# every view refreshed and verified.
measure() {
    local capture=$1
    step "Measuring: 3 deferred views ($capture capture)"
    sql -c "DELETE FROM tide.refresh_history" >/dev/null
    # (tide.views has no lag in seconds for WAL capture: there, the time since
    # the last refresh began, an upper bound while changes keep coming.)
    local lag="lag_seconds"
    [ "$capture" = wal ] && lag="extract(epoch FROM clock_timestamp() - last_refresh_at)"
    ( while true; do sql -c "SELECT coalesce(max($lag), 0) FROM tide.views" 2>/dev/null || true; sleep 0.5; done ) > "$DIR/lag.txt" &
    sampler=$!
    TPS[$capture]=$(tps8)
    kill "$sampler" 2>/dev/null || true
    LAG[$capture]=$(sort -g "$DIR/lag.txt" | awk '{a[NR]=$1} END {printf "median %.2f s, max %.2f s over %d samples", a[int((NR+1)/2)], a[NR], NR}')
    REFRESHES[$capture]=$(sql -c "SELECT count(*) || ' refreshes, median ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)::numeric, 1) || ' ms, median ' || percentile_cont(0.5) WITHIN GROUP (ORDER BY changes) || ' changes each' FROM tide.refresh_history WHERE kind = 'incremental'")
    sql -c "SELECT count(tide.refresh(name::text)) FROM tide.views" >/dev/null
    OK[$capture]=$(sql -c "SELECT bool_and(tide.verify(name::text)) FROM tide.views")
}
declare -A TPS LAG REFRESHES OK
measure trigger
# The same views switched to WAL capture (rebuilt in the background from a
# snapshot taken once the slot is reading).
sql -c "SELECT count(tide.alter_view(name::text, capture => 'wal')) FROM tide.views" >/dev/null
sql -c "SELECT bool_and(tide.wait(name::text, '10 minutes')) FROM tide.views" >/dev/null
measure wal
ratio() { awk -v a="$(echo "$1" | raw_median)" -v b="$(echo "$2" | raw_median)" 'BEGIN {printf "%.0f%%", 100 * a / b}'; }
mkdir -p "$(dirname "$OUT")"
{
    echo "# Deferred mode on pgbench data (scale 10, 1M accounts)"
    echo
    echo "Run $(date -u +%Y-%m-%d), PostgreSQL $PG_MAJOR, $(nproc) cores, settings: \`$SETTINGS\`."
    echo "8 clients, half single-row UPDATEs and half single-row INSERTs of pgbench_accounts; views refreshed every $INTERVAL;"
    echo "medians of $RUNS runs of ${SECONDS_PER_RUN}s (min, max)."
    echo
    echo "| views | TPS, 8 clients |"
    echo "|---|---|"
    echo "| none | $(echo "$TPS_NONE" | median) |"
    echo "| 3 deferred views, trigger capture | $(echo "${TPS[trigger]}" | median) |"
    echo "| 3 deferred views, WAL capture | $(echo "${TPS[wal]}" | median) |"
    echo
    for capture in trigger wal; do
        echo "With $capture capture: $(ratio "${TPS[$capture]}" "$TPS_NONE") of no-view throughput;" \
             "lag of the views while the writers ran (max over views, sampled every 0.5 s): ${LAG[$capture]};" \
             "background refreshes: ${REFRESHES[$capture]}; views verified equal to their queries afterwards: ${OK[$capture]}."
        echo
    done
} > "$OUT"
cat "$OUT"
