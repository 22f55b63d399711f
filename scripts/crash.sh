#!/usr/bin/env bash
# Crash safety of deferred mode: the server is killed with SIGKILL while
# writers log changes and the refresher applies them, and while a large
# batch is being applied; after each restart (crash recovery) every view,
# refreshed once more, must equal its query. Change logs, view state and
# applied snapshots are WAL-logged tables written in the same transactions,
# so no change is lost and none applied twice. The extension must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
throwaway_cluster crash 54335
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"; }
restart() {
    # SIGKILL to the postmaster and every server process, then crash recovery.
    local pm
    pm=$(head -n 1 "$dir/data/postmaster.pid")
    kill -9 "$pm" $(pgrep -P "$pm") 2>/dev/null || true
    while kill -0 "$pm" 2>/dev/null || pgrep -P "$pm" >/dev/null; do sleep 0.1; done
    sleep 0.5
    rm -f "$dir/data/postmaster.pid" "$dir"/.s.PGSQL.*
    as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port -k $dir -c listen_addresses='' -c shared_preload_libraries=pg_tide -c wal_level=logical" -w start >/dev/null
}
check() {
    sql -c "SELECT count(tide.refresh(name::text)) FROM tide.views WHERE mode = 'deferred'" >/dev/null
    bad=$(sql -c "SELECT string_agg(name::text, ',') FROM tide.views WHERE NOT tide.verify(name::text)")
    if [ -n "$bad" ]; then echo "    $1: views differ from their queries: $bad"; failed=$((failed + 1)); else passed=$((passed + 1)); fi
}
sql -f tests/concurrent/setup.sql >/dev/null
passed=0 failed=0
step "crash safety: SIGKILL during capture and refresh, then recovery"
for round in 1 2 3; do
    # writers and the background refresher at work, killed after a random time
    "$PG_BIN/pgbench" -h "$dir" -p "$port" -U postgres -n -c 4 -j 2 -f tests/concurrent/writer.sql \
        -T 30 --max-tries=50 postgres > "$dir/pgbench.log" 2>&1 &
    sleep "$((2 + round))"
    restart
    wait || true
    check "killed during capture ($round)"
done
# a large batch, killed while tide.refresh applies it
sql -c "SELECT tide.alter_view(name::text, refresh_interval => '1 hour') FROM tide.views WHERE mode = 'deferred'" >/dev/null
sql -c "INSERT INTO acct SELECT i, i % 10, i % 120, 'z' FROM generate_series(10000, 150000) i; UPDATE acct SET bal = bal + 1 WHERE id % 3 = 0"
sql -c "SELECT count(tide.refresh(name::text)) FROM tide.views WHERE mode = 'deferred'" >/dev/null 2>&1 &
sleep 1.5
restart
wait || true
check "killed during refresh"

# a fast shutdown while a refresh worker builds a view (slowly: 2 ms a row
# until the server restarts) ends the worker at once, not after the build;
# after the restart the view is built again
sql <<'SQL'
CREATE TABLE gate_slow (until_restart timestamptz);
INSERT INTO gate_slow VALUES (pg_postmaster_start_time());
CREATE TABLE gated_rows (id int PRIMARY KEY, v int);
INSERT INTO gated_rows SELECT i, i % 7 FROM generate_series(1, 50000) i;
CREATE FUNCTION gate(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF (SELECT until_restart FROM public.gate_slow) = pg_postmaster_start_time() THEN PERFORM pg_sleep(0.002); END IF;
    RETURN i;
END $$;
SELECT tide.create_view('gated', 'SELECT gate(id) AS id, v FROM gated_rows', mode => 'deferred', capture => 'trigger');
SQL
for _ in $(seq 1 300); do
    [ "$(sql -c "SELECT coalesce(build_rows_done, 0) > 0 FROM tide.views WHERE name = 'gated'::regclass")" = t ] && break
    sleep 0.1
done
if as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -t 20 -w stop >/dev/null; then
    passed=$((passed + 1))
else
    echo "    a fast shutdown waited for a background build"
    failed=$((failed + 1))
    restart
fi
as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port -k $dir -c listen_addresses='' -c shared_preload_libraries=pg_tide -c wal_level=logical" -w start >/dev/null 2>&1 || true
# (verify in a statement of its own: one snapshot would not see the build)
if [ "$(sql -c "SELECT tide.wait('gated', '150 seconds')" -c "SELECT tide.verify('gated')" | tr -d '\n')" = tt ]; then
    passed=$((passed + 1))
else
    echo "    the view whose build a shutdown ended was not built after the restart"
    failed=$((failed + 1))
fi
echo "crash: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
