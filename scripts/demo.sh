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
# Claim C4 at demo scale: the same decode points with bf16, fp8 and int8 weights, and the 8-bit twins'
# accuracy (KL, top-1, dNLL) on the fixtures' own token ids, all into the same database for the report.
for w in bf16 fp8 int8; do "$bin" run workloads/quick8.yaml --weights-dtype "$w" --db "$db" --resume || rc=$?; done
for m in llama bamba; do
  for q in fp8 int8; do
    "$bin" ppl --model "tests/fixtures/$m-tiny" --tokens "tests/fixtures/$m-tiny/reference.safetensors" \
      --compare "$q" --db "$db" || rc=$?
  done
done
echo
echo "== points by label ($db)"
sqlite3 -column -header "$db" "select engine, phase, label, count(*) as points from points group by 1,2,3 order by 1,2,3"
echo
echo "== speed-up over the transformer of the same scale (view: speedup)"
sqlite3 -column -header "$db" "select engine, model, phase, context, printf('%.2f', speedup) as speedup,
  printf('%.2f..%.2f', speedup_lo, speedup_hi) as ci, label from speedup order by engine, model, phase, context"
# Hook for figures and the claims report (docs/figures.md): runs when those commands exist.
for cmd in plot report; do
  if "$bin" "$cmd" --help >/dev/null 2>&1; then "$bin" "$cmd" --db "$db"; fi
done
exit $rc
