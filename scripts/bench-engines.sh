#!/usr/bin/env bash
# The engine half of `make bench`: runs workloads/bench-prefill.yaml and bench-decode.yaml into a fresh
# database and prints
# prefill tokens/s and GFLOP/s (% of the run's FMA roof), decode ms/token and GB/s (% of the triad
# probed next to each point, and of the run's triad roof). Usage: scripts/bench-engines.sh CTXBENCH DB
set -eu
bin=${1:-build-bench/ctxbench}
db=${2:-results/bench-engines.db}
rm -f "$db" "$db-wal" "$db-shm"
"$bin" run workloads/bench-prefill.yaml --db "$db"
"$bin" run workloads/bench-decode.yaml --db "$db"
echo
sqlite3 "$db" "SELECT 'roofs of run ' || id || ' (' || workload_name || '): FMA ' || printf('%.0f', roof_fma_gflops) ||
                ' GFLOP/s, triad ' || printf('%.1f', roof_triad_gbps) || ' GB/s at ' || roof_threads || ' threads (' ||
                roof_label || ')' FROM runs"
sqlite3 -header -column "$db" "
  SELECT model, phase, context,
         printf('%.1f', tokens_per_s) AS tok_s,
         CASE WHEN phase = 'decode' THEN printf('%.2f', 1000 * seconds) END AS ms_tok,
         CASE WHEN phase = 'prefill' THEN printf('%.0f', gflops_per_s) END AS gflop_s,
         CASE WHEN phase = 'prefill' THEN printf('%.0f%%', pct_peak_flops) END AS pct_fma,
         CASE WHEN phase = 'decode' THEN printf('%.1f', read_gbytes_per_s) END AS gb_s,
         CASE WHEN phase = 'decode' THEN printf('%.0f%%', pct_read_triad_near) END AS pct_near_triad,
         CASE WHEN phase = 'decode' THEN printf('%.1f', triad_near_gbps) END AS near_triad,
         CASE WHEN phase = 'decode' THEN printf('%.2f', triad_drift) END AS drift
  FROM rates WHERE phase = 'decode' OR (phase = 'prefill' AND context = 4096)
  ORDER BY model DESC, phase DESC, context"
echo "(decode GB/s = rates.read_gbytes_per_s: weight + KV bytes read per token x tokens/s; near_triad = the larger"
echo " probe next to the point; docs/schema.md)"
