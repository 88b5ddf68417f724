#!/usr/bin/env bash
# Installs the Debian packages ctxbench needs, only those missing. Quiet when all are present.
# As root: apt-get installs them. Otherwise: prints the exact command and exits 1.
# `install-deps.sh cluster` adds Slurm's daemons, client and munge (the parts of slurm-wlm that
# `make test-cluster` runs; slurm-wlm itself also pulls slurmdbd and its database client).
set -eu
pkgs="build-essential pkg-config libsqlite3-dev sqlite3 libpapi-dev papi-tools libsde1 libcriterion-dev
      gnuplot-nox libjansson-dev libopenblas-dev libomp-dev valgrind libyaml-dev libdnnl-dev"
case "${1:-}" in
  "") ;;
  cluster) pkgs="$pkgs slurmctld slurmd slurm-client munge" ;;
  *) echo "install-deps.sh: unknown package set '$1' (expected nothing or 'cluster')" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
cmd="apt-get install -y --no-install-recommends$missing"
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
