#!/usr/bin/env bash
# Run the pg_regress suite (tests/pg_regress) against a throwaway cluster,
# the PGXS way: the installed extension, pg_regress from postgresql-server-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
throwaway_cluster regress 54329
tests=$(sed -e 's/#.*//' -e '/^\s*$/d' tests/pg_regress/schedule_list)
step "pg_regress: $(echo $tests | wc -w) tests"
status=0
"$PGXS_TEST/regress/pg_regress" --host="$dir" --port="$port" --user=postgres \
    --inputdir=tests/pg_regress --outputdir=tests/pg_regress --bindir="$PG_BIN" \
    --dbname=tide_regress $tests || status=$?
if [ $status -ne 0 ] && [ -f tests/pg_regress/regression.diffs ]; then
    head -n 200 tests/pg_regress/regression.diffs
fi
if [ $status -eq 0 ]; then
    echo "pg_regress: $(echo $tests | wc -w) passed, 0 failed"
fi
exit $status
