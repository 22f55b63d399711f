#!/usr/bin/env bash
# make demo: build and install pg_tide, start a throwaway cluster, load a
# million sales rows, define summary views, change the data, and show the
# views before and after. KEEP=1 leaves the cluster running.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ROWS=${ROWS:-1000000}
PORT=${PORT:-54330}
DIR=${DIR:-/tmp/pg_tide-demo}

step "1/6 Installing pg_tide (first run: dependencies and a release build take a few minutes)"
scripts/install.sh

step "2/6 Starting a throwaway PostgreSQL $PG_MAJOR in $DIR (port $PORT)"
scripts/cluster.sh start "$DIR" "$PORT" -c shared_buffers=512MB -c work_mem=64MB -c max_wal_size=4GB
if [ "${KEEP:-0}" = 1 ]; then
    trap 'echo; echo "Cluster left running: psql -h $DIR -p $PORT -U postgres   (stop: scripts/cluster.sh stop $DIR)"' EXIT
else
    trap 'scripts/cluster.sh stop "$DIR"; echo "Cleaned up $DIR (KEEP=1 keeps the cluster)."' EXIT
fi
sql() { psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d postgres "$@"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

sql -c "CREATE EXTENSION pg_tide"
sql <<'SQL'
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, category text NOT NULL);
INSERT INTO products SELECT i, 'product ' || i, (ARRAY['books','games','garden','kitchen','music'])[1 + i % 5]
  FROM generate_series(1, 1000) i;
CREATE TABLE sales (id bigint PRIMARY KEY, product_id int NOT NULL REFERENCES products,
                    region text NOT NULL, amount numeric(10,2) NOT NULL, sold_on date NOT NULL);
SQL

step "3/6 Loading $ROWS sales rows"
chunks=10 per=$(( ROWS / 10 ))
t0=$(date +%s%N)
for c in $(seq 1 $chunks); do
    lo=$(( (c - 1) * per + 1 )) hi=$(( c * per ))
    sql -c "INSERT INTO sales SELECT i, 1 + (i::bigint * 7919) % 1000, (ARRAY['north','south','east','west'])[1 + i % 4],
                   ((i * 31) % 10000) / 100.0, date '2024-01-01' + (i % 365)
              FROM generate_series($lo, $hi) i"
    bar=$(printf '%*s' $c '' | tr ' ' '#')
    printf '\r    [%-10s] %3d%%' "$bar" $(( c * 100 / chunks ))
done
sql -c "ANALYZE"
echo "   loaded in $(ms_since $t0) ms"

step "4/6 Creating summary views (each built in full once)"
create() {
    local t; t=$(date +%s%N)
    local n; n=$(sql -At -c "SELECT tide.create_view('$1', \$q\$$2\$q\$)")
    printf '    %-18s %8s rows  %6s ms\n' "$1" "$n" "$(ms_since $t)"
}
create sales_by_region "SELECT region, count(*) AS orders, sum(amount) AS revenue, round(avg(amount), 2) AS avg_order FROM sales GROUP BY region"
create category_revenue "SELECT p.category, count(*) AS orders, sum(s.amount) AS revenue FROM sales s JOIN products p ON p.id = s.product_id GROUP BY p.category"
create big_days "SELECT sold_on, sum(amount) AS revenue FROM sales GROUP BY sold_on HAVING sum(amount) > 68500"
sql -c "SELECT name, mode, status, row_count, round(last_refresh_ms::numeric, 1) AS build_ms FROM tide.views ORDER BY name::text"

echo "Before the change:"
sql -c "TABLE sales_by_region ORDER BY region" -c "TABLE category_revenue ORDER BY category"

step "5/6 Changing the base data: 10,000 new sales, 5,000 repriced, 5,000 returned"
echo "    The views are maintained inside each statement, from its changes alone."
t=$(date +%s%N)
sql <<SQL
INSERT INTO sales SELECT $ROWS + i, 1 + i % 1000, 'north', 99.99, date '2025-01-01' FROM generate_series(1, 10000) i;
UPDATE sales SET amount = amount * 2 WHERE id % 200 = 1;
DELETE FROM sales WHERE id % 200 = 2;
SQL
echo "    changes took $(ms_since $t) ms, views included"
times=$(sql -c '\timing on' -c "UPDATE sales SET amount = amount + 1 WHERE id = 4242" \
    -c "UPDATE sales SET amount = amount + 1 WHERE id = 4243" | awk '/^Time:/ {print $2}' | tr '\n' ' ')
set -- $times
echo "    one-row UPDATEs, the three views maintained in each: $1 ms the first in a session (it prepares the"
echo "    views' statements), $2 ms the next"

step "6/6 Checking the views against their queries, and what a batch rebuild would cost"
echo "    tide.verify recomputes each query and compares it with the view:"
sql -c "SELECT name, tide.verify(name::text) AS matches, row_count FROM tide.views ORDER BY name::text"
for v in sales_by_region category_revenue big_days; do
    t=$(date +%s%N)
    sql -At -c "SELECT tide.refresh('$v', full => true)" >/dev/null
    printf '    %-18s a full rebuild (what a batch job pays every time) takes %6s ms\n' "$v" "$(ms_since $t)"
done
echo "After the change:"
sql -c "TABLE sales_by_region ORDER BY region" -c "TABLE category_revenue ORDER BY category"
