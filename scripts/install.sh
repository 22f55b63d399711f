#!/usr/bin/env bash
# Build pg_tide and install it into the PostgreSQL installation.
# PROFILE=release (default) or debug.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/install-deps.sh
PROFILE=${PROFILE:-release}
step "Building and installing pg_tide ($PROFILE)"
flags=""
[ "$PROFILE" = release ] && flags="--release"
cargo pgrx install $flags --pg-config "$PG_CONFIG"
