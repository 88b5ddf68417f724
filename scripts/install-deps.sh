#!/usr/bin/env bash
# Installs the Debian packages ctxbench needs, only those missing. Quiet when all are present.
# As root: apt-get installs them. Otherwise: prints the exact command and exits 1.
# `install-deps.sh cluster` adds Slurm's daemons, client and munge (the parts of slurm-wlm that
# `make test-cluster` runs; slurm-wlm itself also pulls slurmdbd and its database client).
# `install-deps.sh --check` only checks (plain `make` runs it): it names what is missing and the command
# that installs it, exits 1, and installs nothing.
set -eu
# clang-14 + libclang-rt-14-dev: the libFuzzer targets of tests/fuzz (make fuzz, and the short run in make test)
pkgs="build-essential pkg-config libsqlite3-dev sqlite3 libpapi-dev papi-tools libsde1 libcriterion-dev
      gnuplot-nox libjansson-dev libopenblas-dev libomp-dev valgrind libyaml-dev libdnnl-dev
      clang-14 libclang-rt-14-dev"
check_only=0
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  cluster) pkgs="$pkgs slurmctld slurmd slurm-client munge" ;;
  *) echo "install-deps.sh: unknown argument '$1' (expected nothing, --check or 'cluster')" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$check_only" -eq 1 ]; then
  echo "ctxbench: missing Debian packages:$missing" >&2
  echo "install them with:  make deps   (or as root: apt-get update && $cmd)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ctxbench: missing Debian packages:$missing" >&2
  echo "run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "ctxbench: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
