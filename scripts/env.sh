# Shared settings for pg_tide's scripts. Source it: . scripts/env.sh
PG_MAJOR=${PG_MAJOR:-15}
PGRX_VERSION=0.18.0
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PGXS_TEST=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test
# The non-root user that runs throwaway clusters (initdb refuses root).
PG_USER=${PG_USER:-postgres}
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
as_pg_user() {
    if [ "$(id -u)" = 0 ]; then sudo -u "$PG_USER" "$@"; else "$@"; fi
}

# Start a throwaway cluster for the calling script, stopped when it exits
# (KEEP=1 leaves it running). Sets $dir and $port.
#   throwaway_cluster NAME DEFAULT_PORT [postgres -c options...]
throwaway_cluster() {
    local name=$1
    port=${PORT:-$2}
    shift 2
    dir=$(mktemp -d "/tmp/pg_tide-$name.XXXXXX")
    trap '[ -n "${KEEP:-}" ] || scripts/cluster.sh stop "$dir"' EXIT
    scripts/cluster.sh start "$dir" "$port" "$@"
}
