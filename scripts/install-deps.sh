#!/usr/bin/env bash
# Install what building and testing pg_tide needs, skipping what is there:
# PostgreSQL server and headers, libclang (for pgrx's bindgen), cargo-pgrx,
# and pgrx's registration of the PostgreSQL installation.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

packages="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-contrib libclang-dev clang pkg-config sudo"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    step "Installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    step "Installing cargo-pgrx $PGRX_VERSION (a few minutes, once per machine)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

if ! grep -qs "pg$PG_MAJOR" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    step "Registering PostgreSQL $PG_MAJOR with pgrx"
    cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG" >/dev/null
fi
