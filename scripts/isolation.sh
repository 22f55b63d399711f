#!/usr/bin/env bash
# Run the isolation specs (tests/isolation/specs) with pg_isolation_regress
# against a throwaway cluster; the extension must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
throwaway_cluster isolation 54331
specs=$(ls tests/isolation/specs/*.spec | xargs -n1 basename | sed 's/\.spec$//')
step "isolation: $(echo $specs | wc -w) specs"
status=0
"$PGXS_TEST/isolation/pg_isolation_regress" --host="$dir" --port="$port" --user=postgres \
    --inputdir=tests/isolation --outputdir=tests/isolation/output_iso --bindir="$PG_BIN" \
    --dbname=tide_isolation $specs || status=$?
if [ $status -ne 0 ] && [ -f tests/isolation/output_iso/regression.diffs ]; then
    head -n 200 tests/isolation/output_iso/regression.diffs
fi
[ $status -eq 0 ] && echo "isolation: $(echo $specs | wc -w) passed, 0 failed"
exit $status
