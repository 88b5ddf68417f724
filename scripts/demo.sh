#!/usr/bin/env bash
# `make demo`: the main job on the default workload. Grows with the harness.
set -eu
bin=${1:-build/ctxbench}
"$bin" info
for f in tests/fixtures/*/; do "$bin" verify "$f"; done
