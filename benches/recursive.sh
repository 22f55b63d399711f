#!/usr/bin/env bash
# WITH RECURSIVE: the transitive closure of a random hierarchy (NODES nodes,
# each with a parent among the nodes before it), as a pg_tide view (immediate
# mode) and as a materialized view. Measures one-edge inserts (a new leaf:
# semi-naive evaluation adds the new pairs), one-edge updates (the component
# computed again), one-edge deletes (delete-and-rederive) and REFRESH
# MATERIALIZED VIEW, each RUNS times, medians
# with min and max, ratios taken in this run; the view is verified at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
NODES=${NODES:-20000}
RUNS=${RUNS:-9}
PORT=${PORT:-54343}
OUT=${OUT:-benches/results/recursive.md}
DIR=$(mktemp -d /tmp/pg_tide-bench.XXXXXX)
trap 'scripts/cluster.sh stop "$DIR"' EXIT
scripts/cluster.sh start "$DIR" "$PORT" -c shared_buffers=1GB
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d postgres "$@"; }
QUERY="WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM edge UNION SELECT r.a, e.dst FROM r JOIN edge e ON e.src = r.b) SELECT a, b FROM r"
step "Building the closure of a $NODES-node hierarchy"
sql <<SQL
CREATE EXTENSION pg_tide;
CREATE TABLE edge (src int, dst int);
SELECT setseed(0.5);
INSERT INTO edge SELECT (random() * (i - 1))::int, i FROM generate_series(1, $NODES) i;
CREATE INDEX ON edge (src);
ANALYZE edge;
SELECT tide.create_view('closure', \$q\$$QUERY\$q\$);
CREATE MATERIALIZED VIEW closure_mv AS $QUERY;
SQL
PAIRS=$(sql -c "SELECT count(*) FROM closure")
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f (min %.1f, max %.1f)", m, a[1], a[NR]}'; }
raw() { sort -g | awk '{a[NR]=$1} END {printf "%.6f", (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
step "Measuring ($RUNS runs, in one session)"
# One session, as an application's would be (its first change prepares the
# statements); a warm-up round first. \timing's lines in order: insert,
# update, delete, refresh.
{
    echo '\timing on'
    for i in $(seq 0 "$RUNS"); do
        leaf=$((NODES * 2 + i)) parent=$((NODES - i * 7))
        echo "INSERT INTO edge VALUES ($parent, $leaf);"
        echo "UPDATE edge SET src = $((parent - 1)) WHERE dst = $leaf;"
        echo "DELETE FROM edge WHERE dst = $leaf;"
        echo "REFRESH MATERIALIZED VIEW closure_mv;"
    done
} > "$DIR/run.sql"
sql -f "$DIR/run.sql" | awk '/^Time:/ {print $2}' | tail -n +5 > "$DIR/times"
INS=$(awk 'NR % 4 == 1' "$DIR/times") UPD=$(awk 'NR % 4 == 2' "$DIR/times")
DEL=$(awk 'NR % 4 == 3' "$DIR/times") REF=$(awk 'NR % 4 == 0' "$DIR/times")
OK=$(sql -c "SELECT tide.verify('closure')")
ratio() { awk -v a="$(echo "$1" | grep . | raw)" -v b="$(echo "$2" | grep . | raw)" 'BEGIN {printf "%.0fx", a / b}'; }
mkdir -p "$(dirname "$OUT")"
{
    echo "# WITH RECURSIVE: transitive closure of a hierarchy"
    echo
    echo "Run $(date -u +%Y-%m-%d), PostgreSQL $PG_MAJOR, $(nproc) cores: $NODES nodes, $PAIRS pairs in the closure;"
    echo "medians of $RUNS runs in one session, after a warm-up round (min, max), ms."
    echo
    echo "| statement | ms |"
    echo "|---|---|"
    echo "| INSERT of one leaf edge (semi-naive) | $(echo "$INS" | grep . | median) |"
    echo "| UPDATE of that edge, to another parent (recomputed) | $(echo "$UPD" | grep . | median) |"
    echo "| DELETE of that edge (delete-and-rederive) | $(echo "$DEL" | grep . | median) |"
    echo "| REFRESH MATERIALIZED VIEW | $(echo "$REF" | grep . | median) |"
    echo
    echo "One REFRESH costs $(ratio "$REF" "$INS") one-edge inserts, $(ratio "$REF" "$DEL") one-edge deletes; an update (recomputed) costs $(awk -v a="$(echo "$UPD" | grep . | raw)" -v b="$(echo "$REF" | grep . | raw)" 'BEGIN {printf "%.1f", a / b}') REFRESHes. The view equals its query afterwards: $OK."
} > "$OUT"
cat "$OUT"
