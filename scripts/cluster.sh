#!/usr/bin/env bash
# A throwaway PostgreSQL cluster, run by a non-root user on its own port and
# socket directory.
#   scripts/cluster.sh start DIR PORT [postgres -c options...]
#   scripts/cluster.sh stop DIR
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cmd=$1 dir=$2
case "$cmd" in
start)
    port=$3; shift 3
    rm -rf "$dir"; mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown "$PG_USER" "$dir"
    as_pg_user "$PG_BIN/initdb" -D "$dir/data" --auth=trust --username=postgres --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log"; exit 1; }
    opts="-p $port -k $dir -c listen_addresses='' -c fsync=off -c max_prepared_transactions=10 -c shared_preload_libraries=pg_tide -c wal_level=logical $*"
    as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w start >/dev/null \
        || { cat "$dir/server.log"; exit 1; }
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        # (A server that does not stop in time is stopped at once: its
        # directory is removed next, which would leave it running.)
        as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
