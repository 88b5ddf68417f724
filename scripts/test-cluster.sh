#!/usr/bin/env bash
# `make test-cluster`: a real Slurm run on this machine. Starts munged, slurmctld and slurmd for a one-node
# cluster on localhost (all state in a temp dir), submits scripts/ctxbench-array.sbatch (4 shards of
# workloads/cluster.yaml), waits, merges the shard databases and checks that the merged points equal a
# one-process run's (same point keys, same labels). Stops its daemons on every exit path.
# Needs root (apt-get, daemons); docs/usage.md, "Clusters".
set -u
cd "$(dirname "$0")/.."
bin=${1:-build/ctxbench}
workload=workloads/cluster.yaml
shards=4
t0=$(date +%s)

fail() { echo "test-cluster: FAIL: $*"; exit 1; }

scripts/install-deps.sh cluster || fail "Slurm and munge are not installed (scripts/install-deps.sh cluster)"
[ "$(id -u)" = 0 ] || fail "the daemons run as root here (SlurmUser=root); run make test-cluster as root"
[ -x "$bin" ] || fail "$bin is not built (make build/ctxbench)"

tmp=$(mktemp -d /tmp/ctxbench-cluster.XXXXXX)
chmod 0755 "$tmp"
export SLURM_CONF=$tmp/slurm.conf

# Only the daemons this script started (their pid files), never anything found by name.
stop_daemons() {
  if [ -f "$tmp/slurmctld.pid" ]; then scancel --quiet --name=ctxbench-cluster-test 2>/dev/null || true; fi
  for d in slurmd slurmctld munged; do
    pidf=$tmp/$d.pid
    [ -s "$pidf" ] || continue
    pid=$(cat "$pidf")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
cleanup() {
  rc=$?
  stop_daemons
  if [ "$rc" != 0 ]; then
    for f in "$tmp"/*.log "$tmp"/job-*.out; do [ -f "$f" ] && { echo "--- $f (last lines)"; tail -n 15 "$f"; }; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# munge: a fresh key and socket of our own, so a system munged (if any) is left alone.
mkdir -m 0700 "$tmp/munge"
head -c 1024 /dev/urandom >"$tmp/munge/munge.key" && chmod 0400 "$tmp/munge/munge.key"
munged --force --socket="$tmp/munge/munge.sock" --key-file="$tmp/munge/munge.key" --pid-file="$tmp/munged.pid" \
  --log-file="$tmp/munged.log" --seed-file="$tmp/munge/munge.seed" || fail "munged did not start"

# Ports picked per run so a second cluster test on the machine does not collide with this one.
port=$((20000 + RANDOM % 20000))
host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$tmp/state" "$tmp/spool"
cat >"$SLURM_CONF" <<EOF
ClusterName=ctxbench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=60 State=UP
EOF
slurmctld -c || fail "slurmctld did not start"
slurmd -c || fail "slurmd did not start"
for _ in $(seq 60); do
  state=$(sinfo -h -o %T 2>/dev/null | head -n 1)
  [ "$state" = idle ] && break
  sleep 1
done
[ "$state" = idle ] || fail "the node did not come up (sinfo state '${state:-none}')"
echo "test-cluster: one-node cluster up on $host ($cpus CPUs, port $port) after $(( $(date +%s) - t0 )) s"

# The shipped job array, as documented; sbatch --wait returns once every task has ended.
export CTXBENCH_BIN=$bin CTXBENCH_WORKLOAD=$workload CTXBENCH_RESULTS=$tmp/shards
timeout 420 sbatch --wait --quiet --job-name=ctxbench-cluster-test --array=0-$((shards - 1)) \
  --output="$tmp/job-%a.out" scripts/ctxbench-array.sbatch || fail "the job array failed (sbatch --wait)"
n=$(ls "$tmp"/shards/shard-*.db 2>/dev/null | wc -l)
[ "$n" = "$shards" ] || fail "expected $shards shard databases, found $n"
"$bin" merge "$tmp/merged.db" "$tmp"/shards/shard-*.db >/dev/null || fail "ctxbench merge failed"
OMP_NUM_THREADS=1 "$bin" run "$workload" --quiet --db "$tmp/whole.db" >/dev/null || fail "the one-process run failed"

keys="select point_key || ' ' || label from points order by point_key"
sqlite3 "$tmp/merged.db" "$keys" >"$tmp/merged.keys"
sqlite3 "$tmp/whole.db" "$keys" >"$tmp/whole.keys"
sqlite3 "$tmp/merged.db" "select shard from runs order by shard" | tr '\n' ' ' >"$tmp/shards.txt"
total=$(wc -l <"$tmp/whole.keys")
[ "$total" -gt 0 ] || fail "the one-process run stored no points"
diff -u "$tmp/whole.keys" "$tmp/merged.keys" >"$tmp/keys.diff" || { cat "$tmp/keys.diff"; fail "merged shards differ from the one-process run"; }
[ "$(cat "$tmp/shards.txt")" = "0/4 1/4 2/4 3/4 " ] || fail "merged runs' shards are '$(cat "$tmp/shards.txt")', expected 0/4..3/4"
echo "test-cluster: PASS: $shards Slurm array tasks -> merged $total points = one-process run (keys and labels), $(( $(date +%s) - t0 )) s"
