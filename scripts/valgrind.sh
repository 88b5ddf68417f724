#!/usr/bin/env bash
# `make valgrind`: memcheck over the CLI paths that touch the most code (info, verify on every fixture).
# Valgrind 3.19 cannot decode AVX-512, so the portable kernels are forced; the AVX-512 ones are covered
# by `make asan`. libsde leaks its counter names once per process (its own strdup): suppressed.
set -eu
bin=${1:-build/ctxbench}
supp=$(mktemp)
trap 'rm -f "$supp"' EXIT
cat > "$supp" <<'SUPP'
{
   libsde_counter_names
   Memcheck:Leak
   ...
   obj:*libsde.so*
}
{
   libgomp_thread_pool
   Memcheck:Leak
   match-leak-kinds: possible
   ...
   fun:gomp_*
}
SUPP
export CTXBENCH_KERNELS=portable OMP_NUM_THREADS=1
vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --suppressions=$supp"
$vg "$bin" info >/dev/null
for f in tests/fixtures/*/; do
    $vg "$bin" verify "$f" --prefill 100 | tail -1
done
echo "valgrind: clean"
