#!/usr/bin/env bash
# `make demo`: the main job on the default workload. Grows with the harness.
set -eu
bin=${1:-build/ctxbench}
db=${CTXBENCH_DB:-results/ctxbench.db}
"$bin" info
for f in tests/fixtures/*/; do "$bin" verify "$f"; done
# The quick sweep (workloads/quick.yaml): every point labelled measured/sampled/analytic/refused/failed.
# --resume: a re-run of the same workload and build only fills in missing points.
mkdir -p "$(dirname "$db")"
rc=0
"$bin" run workloads/quick.yaml --db "$db" --resume || rc=$?
echo
echo "== points by label ($db)"
sqlite3 -column -header "$db" "select engine, phase, label, count(*) as points from points group by 1,2,3 order by 1,2,3"
echo
echo "== speed-up over the transformer of the same scale (view: speedup)"
sqlite3 -column -header "$db" "select engine, model, phase, context, printf('%.2f', speedup) as speedup,
  printf('%.2f..%.2f', speedup_lo, speedup_hi) as ci, label from speedup order by engine, model, phase, context"
# Hook for figures and the claims report (issue 7): runs when those commands exist.
for cmd in plot report; do
  if "$bin" "$cmd" --help >/dev/null 2>&1; then "$bin" "$cmd" --db "$db"; fi
done
exit $rc
