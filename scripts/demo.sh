#!/usr/bin/env bash
# `make demo`: every phase of the mission on the quick workloads, into one database, then the figures and
# the claims report. A few minutes on 2 cores; --resume makes a re-run fill in only what is missing.
set -eu
bin=${1:-build/ctxbench}
db=${CTXBENCH_DB:-results/ctxbench.db}
peer=tests/data/llama-bench-2t-2026-11-26.jsonl
"$bin" info
rc=0
# Every fixture against its transformers reference; a failure (or a fixture whose model_type has no engine
# yet) is reported and makes the demo exit non-zero, but does not stop the runs below.
for f in tests/fixtures/*/; do "$bin" verify "$f" || { rc=1; echo "demo: verify $f failed (above)"; }; done
mkdir -p "$(dirname "$db")"
# Prefill, decode and memory of the three architectures at the tiny and xs scales, 4K..64K (quick.yaml);
# every point labelled measured/sampled/analytic/refused/failed.
"$bin" run workloads/quick.yaml --db "$db" --resume || rc=$?
# C1 at 9b scale: the plans, and the engines' real KV/state allocation where it fits (no weights loaded).
"$bin" run workloads/quick-9b.yaml --db "$db" --resume || rc=$?
# Batched decode under a 1 GiB memory budget: throughput at N x B, refusals where B sequences do not fit.
"$bin" run workloads/quick-throughput.yaml --db "$db" --resume || rc=$?
# The tests of the peer file, re-done by ctxbench (same models, depths, threads), and the file itself.
"$bin" run workloads/quick-peer.yaml --db "$db" --resume || rc=$?
if [ "$(sqlite3 "$db" "select count(*) from peer_tests where source_file = '$peer'")" = 0 ]; then
  "$bin" import llama-bench "$peer" --db "$db" || rc=$?
fi
# Claim C4 at demo scale: the same decode points with bf16, fp8 and int8 weights, and the 8-bit twins'
# accuracy (KL, top-1, dNLL) on the fixtures' own token ids, all into the same database for the report.
for w in bf16 fp8 int8; do "$bin" run workloads/quick8.yaml --weights-dtype "$w" --db "$db" --resume || rc=$?; done
for m in llama bamba granite; do
  for q in fp8 int8; do
    "$bin" ppl --model "tests/fixtures/$m-tiny" --tokens "tests/fixtures/$m-tiny/reference.safetensors" \
      --compare "$q" --db "$db" || rc=$?
  done
done
echo
echo "== points by label ($db)"
sqlite3 -column -header "$db" "select source, engine, phase, label, count(*) as points from points group by 1,2,3,4 order by 1,2,3,4"
echo
echo "== speed-up over the transformer of the same scale (ctxbench export --query speedup)"
"$bin" export --db "$db" --query speedup || rc=$?
echo
echo "== ctxbench vs llama.cpp (ctxbench export --query vs_peer)"
"$bin" export --db "$db" --query vs_peer || rc=$?
"$bin" plot --db "$db" || rc=$?
"$bin" report --db "$db" || rc=$?
exit $rc
