#!/usr/bin/env bash
# A single-node SLURM for tests/test_slurm.py: installs (apt) and starts munge, slurmctld and slurmd
# without systemd. Run as root; idempotent (a running, idle cluster with the same configuration is
# left alone). No accounting (no slurmdbd): profiles/slurm asks the plugin for squeue status checks,
# and sacct then fails with "accounting storage is disabled", which is the case the profile must survive.
#
# The node is declared bigger than this machine (SlurmdParameters=config_overrides) with four fake
# a100 GPUs (regular files as devices), so that real sbatch can accept, held, the GPU rows of
# configs/paper.yaml; CPU jobs run as usual. Not a production setup: no cgroups, --mem not enforced.
#
# Usage: tests/slurm/start-slurm.sh [--stop]
set -euo pipefail

CONF_DIR=/etc/slurm
FAKE_GPUS=/var/lib/slurm/fake-gpus
LOG_DIR=/var/log/slurm

stop() {
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
        rm -f "$pidfile" # a stale slurmctld pidfile makes `apt-get remove slurmctld` fail
    done
}

if [ "${1:-}" = "--stop" ]; then
    stop
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "start-slurm.sh: must run as root (it installs packages and starts daemons)" >&2
    exit 1
fi

started=$(date +%s%N)
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
fi

node=$(hostname -s)
# the machine as slurmd sees it (needs no slurm.conf): "NodeName=vm CPUs=2 Boards=1 ... RealMemory=21694"
real=$(slurmd -C | head -1)
real_cpus=$(sed -E 's/.*CPUs=([0-9]+).*/\1/' <<<"$real")
real_mem=$(sed -E 's/.*RealMemory=([0-9]+).*/\1/' <<<"$real")

mkdir -p "$CONF_DIR" "$FAKE_GPUS" "$LOG_DIR" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown slurm:slurm /var/lib/slurm/slurmctld "$LOG_DIR"
touch "$FAKE_GPUS"/nvidia{0,1,2,3}

new_conf=$(mktemp)
cat >"$new_conf" <<EOF
# written by tests/slurm/start-slurm.sh (machine: $real)
ClusterName=ci
SlurmctldHost=$node
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
# completed jobs stay in squeue this long (the plugin's squeue status checks rely on it)
MinJobAge=300
GresTypes=gpu
# accept a node declared bigger than the machine ($real_cpus CPUs, $real_mem MB here)
SlurmdParameters=config_overrides
NodeName=$node CPUs=64 Boards=1 SocketsPerBoard=1 CoresPerSocket=64 ThreadsPerCore=1 RealMemory=512000 Gres=gpu:a100:4 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
new_gres=$(mktemp)
echo "NodeName=$node Name=gpu Type=a100 File=$FAKE_GPUS/nvidia[0-3]" >"$new_gres"

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
changed=0
cmp -s "$new_conf" "$CONF_DIR/slurm.conf" || changed=1
cmp -s "$new_gres" "$CONF_DIR/gres.conf" || changed=1
if [ "$changed" = 1 ]; then
    stop
    install -m 644 "$new_conf" "$CONF_DIR/slurm.conf"
    install -m 644 "$new_gres" "$CONF_DIR/gres.conf"
fi
rm -f "$new_conf" "$new_gres"

mkdir -p /run/munge
chown munge:munge /run/munge
[ -S /run/munge/munge.socket.2 ] && munge -n >/dev/null 2>&1 || su -s /bin/sh munge -c /usr/sbin/munged
running /run/slurmctld.pid || /usr/sbin/slurmctld
running /run/slurmd.pid || /usr/sbin/slurmd

for _ in $(seq 120); do
    state=$(sinfo -h -o %t 2>/dev/null || true)
    case "$state" in idle | mix | alloc) break ;; esac
    sleep 0.5
done
if ! [[ "$state" =~ ^(idle|mix|alloc)$ ]]; then
    echo "start-slurm.sh: node state '${state:-none}' after 60 s; see $LOG_DIR/slurmctld.log and slurmd.log" >&2
    sinfo -R >&2 || true
    exit 1
fi
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
echo "start-slurm.sh: $(sinfo -V) up, node $node $state, gres $(sinfo -h -o %G), in $((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100)) s"
