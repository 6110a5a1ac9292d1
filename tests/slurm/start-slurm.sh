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
# It never touches a SLURM it did not set up: it refuses to run where a slurm.conf or gres.conf exists that
# it did not write (its header line), or where a slurmctld or slurmd runs that it did not start; its
# daemons' pid files live in its own folder ($PID_DIR), and --stop stops only those.
#
# Usage: tests/slurm/start-slurm.sh [--stop]   (LPSELECT_SLURM_CONF_DIR overrides /etc/slurm, for its test)
set -euo pipefail

CONF_DIR=${LPSELECT_SLURM_CONF_DIR:-/etc/slurm}
PID_DIR=/run/lpselect-test-slurm
FAKE_GPUS=/var/lib/slurm/fake-gpus
LOG_DIR=/var/log/slurm
HEADER="# written by tests/slurm/start-slurm.sh"
export SLURM_CONF="$CONF_DIR/slurm.conf" # where the daemons and the client tools read it (the override too)

# a pid from one of this script's pid files whose process is still that daemon (not a reused pid)
own_pid() {
    local pid
    pid=$(cat "$PID_DIR/$1.pid" 2>/dev/null || true)
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

stop() {
    for daemon in slurmd slurmctld; do
        pid=$(own_pid "$daemon" || true)
        if [ -n "$pid" ]; then
            kill -TERM "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
        rm -f "$PID_DIR/$daemon.pid"
    done
}

refuse() {
    echo "start-slurm.sh: refusing to run: $1. This script sets up a throw-away test SLURM only where none" \
        "exists (make test SLURM=yes); it changes nothing here." >&2
    exit 2
}

# a configuration this script did not write, or a daemon it did not start: a SLURM of this machine's own
check_foreign() {
    for conf in slurm.conf gres.conf; do
        if [ -e "$CONF_DIR/$conf" ] && [ "$(head -1 "$CONF_DIR/$conf")" != "$HEADER" ]; then
            refuse "$CONF_DIR/$conf exists and was not written by it (no '$HEADER' first line)"
        fi
    done
    for comm in /proc/[0-9]*/comm; do
        daemon=$(cat "$comm" 2>/dev/null || true)
        case "$daemon" in slurmctld | slurmd) ;; *) continue ;; esac
        pid=${comm#/proc/}
        pid=${pid%/comm}
        # its own daemon, or a short-lived fork of it (slurmd forks per job step)
        own=$(own_pid "$daemon" || true)
        parent=$(sed -n 's/^PPid:\s*//p' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$own" ] && { [ "$pid" = "$own" ] || [ "$parent" = "$own" ]; } && continue
        [ -e "/proc/$pid" ] || continue # ended meanwhile
        refuse "a $daemon (pid $pid) that it did not start is running"
    done
}

if [ "${1:-}" = "--stop" ]; then
    stop
    exit 0
fi
check_foreign
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

mkdir -p "$CONF_DIR" "$PID_DIR" "$FAKE_GPUS" "$LOG_DIR" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown slurm:slurm /var/lib/slurm/slurmctld "$LOG_DIR"
touch "$FAKE_GPUS"/nvidia{0,1,2,3}

new_conf=$(mktemp)
cat >"$new_conf" <<EOF
$HEADER
# machine: $real
ClusterName=ci
SlurmctldHost=$node
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$PID_DIR/slurmctld.pid
SlurmdPidFile=$PID_DIR/slurmd.pid
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
printf '%s\n%s\n' "$HEADER" "NodeName=$node Name=gpu Type=a100 File=$FAKE_GPUS/nvidia[0-3]" >"$new_gres"

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
own_pid slurmctld >/dev/null || /usr/sbin/slurmctld
own_pid slurmd >/dev/null || /usr/sbin/slurmd

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
