#!/usr/bin/env bash
# Runs each libFuzzer target of tests/fuzz/ for SECONDS (docs/promises.md, "Fuzzing"), one after another:
#   scripts/fuzz.sh SECONDS [target...]     (targets: safetensors config workload tokens reference)
# New corpus entries go to build-fuzz/corpus/TARGET (the committed seeds in tests/fuzz/corpus/TARGET are
# only read); a finding is saved as build-fuzz/crash-TARGET-* and ends the script with status 1.
# Prints one line per target: "fuzz TARGET: PASS|FAIL (runs, seconds, corpus size)".
set -u
secs=${1:?usage: scripts/fuzz.sh SECONDS [target...]}
shift
targets=${*:-safetensors config workload tokens reference}
dir=${FUZZ_BUILD:-build-fuzz}
fail=0
for t in $targets; do
  mkdir -p "$dir/corpus/$t" "$dir/logs"
  log="$dir/logs/$t.log"
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$dir/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$dir/crash-$t-" "$dir/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(sed -n 's/.*DONE *cov: \([0-9]*\).*/\1/p' "$log" | tail -1)
  size=$(ls "$dir/corpus/$t" | wc -l)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $t: PASS (${runs:-?} runs in ${secs} s, ${cov:-?} edges, $size inputs in $dir/corpus/$t; log $log)"
  else
    echo "fuzz $t: FAIL (exit $rc after ${runs:-?} runs; see $log and $dir/crash-$t-*)"
    grep -m5 -E "ERROR|runtime error|SUMMARY|Test unit written" "$log" | sed 's/^/    /'
    fail=1
  fi
done
exit $fail
