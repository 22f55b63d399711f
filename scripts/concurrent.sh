#!/usr/bin/env bash
# Concurrent writers: pgbench clients run random mixed DML against the base
# tables of views of every locking scheme (tests/concurrent), at READ
# COMMITTED and at REPEATABLE READ (serialization failures retried); after
# each run every view must equal its query (deferred views, refreshed in the
# background while the writers run, after one more refresh). The extension
# must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
throwaway_cluster concurrent 54333 -c deadlock_timeout=20ms
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"; }
sql -f tests/concurrent/setup.sql >/dev/null
clients=${CLIENTS:-8}
step "concurrent writers: $clients clients, ${SECONDS_PER_RUN:-8} s per isolation level"
passed=0 failed=0
for level in "read committed" "repeatable read"; do
    sql -c "ALTER DATABASE postgres SET default_transaction_isolation = '$level'"
    "$PG_BIN/pgbench" -h "$dir" -p "$port" -U postgres -n -c "$clients" -j 2 \
        -f tests/concurrent/single.sql@4 -f tests/concurrent/update.sql@4 -f tests/concurrent/delete.sql@1 \
        -f tests/concurrent/writer.sql@1 \
        -T "${SECONDS_PER_RUN:-8}" --max-tries=50 postgres > "$dir/pgbench.log" 2>&1 || { cat "$dir/pgbench.log"; exit 1; }
    grep -E "^number of (transactions actually processed|failed transactions|transactions retried)" "$dir/pgbench.log" | sed "s/^/    $level: /"
    PGOPTIONS="-c default_transaction_isolation=read\ committed" \
        sql -c "SELECT count(tide.refresh(name::text)) FROM tide.views WHERE mode = 'deferred'" >/dev/null
    bad=$(sql -c "SELECT string_agg(name::text, ',') FROM tide.views WHERE NOT tide.verify(name::text)")
    sql -c "SELECT '    $level: ' || string_agg(format('%s %s refreshes', v.name, count), ', ') FROM (SELECT c.view AS name, count(*) FROM tide.refresh_history h JOIN tide.catalog c ON c.id = h.view_id GROUP BY c.view) v" 
    if [ -z "$bad" ]; then
        passed=$((passed + 1))
    else
        echo "    $level: views differ from their queries: $bad"
        failed=$((failed + 1))
    fi
done
echo "concurrent: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
