#!/usr/bin/env bash
# Start a throwaway one-node SLURM cluster (munged, slurmctld, slurmd) for the tests; stop it with stop.sh.
#
#   tests/slurm/start.sh STATE_DIR      # then: export SLURM_CONF=STATE_DIR/slurm.conf
#
# Needs root. Installs slurmctld, slurmd, slurm-client and munge with apt-get when missing (services are not
# started by the packages). Everything else lives in STATE_DIR: slurm.conf, gres.conf, a private munge key and
# socket, state, spool, logs and the daemons' PID files, which stop.sh reads. Outside it: the link
# /etc/slurm/slurm.conf -> STATE_DIR/slurm.conf (removed by stop.sh), and a line in /etc/hosts when
# `hostname -s` does not resolve (SLURM needs it to).
#
# The node: CPUs from nproc, RealMemory 85% of total memory, one fake GPU (gres.conf File=/dev/null: SLURM
# accounts for it and sets CUDA_VISIBLE_DEVICES; a gpu gres without a device file leaves the node INVAL).
# Partitions `cpu` (default) and `gpu` share the node, so profiles can route GPU rules to their own partition.
# No accounting daemon: sacct does not work here, status checks must use squeue, and finished jobs stay
# visible to squeue/scontrol for MinJobAge=900 s (the tests read them after runs of up to ~6 min).
set -euo pipefail

state=${1:?usage: start.sh STATE_DIR}
if [[ $(id -u) -ne 0 ]]; then
    echo "start.sh: must run as root (munged runs as user munge, slurmd as root)" >&2
    exit 1
fi

log() { echo "start.sh: $*" >&2; }

install_slurm() {
    local missing=()
    [[ -x /usr/sbin/slurmctld ]] || missing+=(slurmctld)
    [[ -x /usr/sbin/slurmd ]] || missing+=(slurmd)
    command -v sbatch >/dev/null 2>&1 || missing+=(slurm-client)
    [[ -x /usr/sbin/munged ]] || missing+=(munge)
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null 2>&1 || { log "missing ${missing[*]} and no apt-get"; exit 1; }
    log "installing ${missing[*]} with apt-get"
    # Keep the packages' init scripts from starting system-wide daemons (the usual container policy).
    local policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    local status=0
    {
        timeout -k 10 120 apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive timeout -k 10 240 \
                apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } >"$state/apt.log" 2>&1 || status=$?
    if [[ $(trap -p EXIT) ]]; then
        rm -f "$policy"
        trap - EXIT
    fi
    if ((status)); then
        tail -n 30 "$state/apt.log" >&2
        exit "$status"
    fi
}

# Bash-only check whether something listens on a local TCP port.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_file() {
    local path=$1 seconds=$2
    for ((i = 0; i < seconds * 10; i++)); do
        [[ -s $path ]] && return 0
        sleep 0.1
    done
    log "timed out after ${seconds}s waiting for $path"
    return 1
}

show_logs() {
    local file
    for file in "$state"/munge/munged.log "$state"/slurmctld.log "$state"/slurmd.log; do
        [[ -f $file ]] && { echo "--- $file" >&2; tail -n 25 "$file" >&2; }
    done
    return 0
}

mkdir -p "$state"
state=$(cd "$state" && pwd)
chmod 755 "$state" # munged runs as user munge and must reach its own subdirectory
install_slurm

host=$(hostname -s)
if ! getent hosts "$host" >/dev/null; then
    log "hostname -s ($host) does not resolve; adding it to /etc/hosts"
    echo "127.0.0.1 $host" >>/etc/hosts
fi

# A stale cluster from an interrupted run would answer on our ports with another munge key.
ctld_port=${DLATOMS_SLURMCTLD_PORT:-6817}
slurmd_port=${DLATOMS_SLURMD_PORT:-6818}
for port in "$ctld_port" "$slurmd_port"; do
    if port_in_use "$port"; then
        log "port $port is in use (a cluster left running? stop it with tests/slurm/stop.sh ITS_STATE_DIR," \
            "or set DLATOMS_SLURMCTLD_PORT / DLATOMS_SLURMD_PORT)"
        exit 1
    fi
done

cpus=$(nproc)
total_mb=$(free -m | awk '/^Mem:/ {print $2}')
real_mb=$((total_mb * 85 / 100))
# Without DefMemPerCPU a job without --mem is given the whole node's memory and blocks every other job.
def_mem_per_cpu=$((real_mb / cpus < 1024 ? real_mb / cpus : 1024))

mkdir -p "$state/munge" "$state/ctld" "$state/slurmd"
head -c 1024 /dev/urandom >"$state/munge/munge.key"
chown -R munge:munge "$state/munge"
chmod 711 "$state/munge" # clients must reach the socket
chmod 400 "$state/munge/munge.key"

marker="One-node test cluster written by tests/slurm/start.sh"
cat >"$state/slurm.conf" <<EOF
# $marker.
ClusterName=dlatoms-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/builtin
# Start batch jobs at once instead of batching submissions for up to 3 s.
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=900
KillWait=5
MailProg=/bin/true
DefMemPerCPU=$def_mem_per_cpu
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$real_mb Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
cat >"$state/gres.conf" <<EOF
NodeName=$host Name=gpu File=/dev/null
EOF
export SLURM_CONF=$state/slurm.conf
# Clients inside jobs need the config at the default path: the jobstep plugin drops every SLURM_* variable,
# SLURM_CONF included, before it calls srun (snakemake-executor-plugin-slurm issue #164). stop.sh removes
# the link; an existing config that is not ours is left alone and stops us here.
default_conf=/etc/slurm/slurm.conf
if [[ -e $default_conf || -L $default_conf ]]; then
    if [[ ! -L $default_conf ]] || { [[ -e $default_conf ]] && ! grep -q "$marker" "$default_conf"; }; then
        log "$default_conf exists and is not a test cluster's link; refusing to replace it"
        exit 1
    fi
    log "replacing the stale link $default_conf -> $(readlink "$default_conf")"
fi
mkdir -p /etc/slurm
ln -sfn "$SLURM_CONF" "$default_conf"

log "starting munged"
runuser -u munge -- /usr/sbin/munged \
    --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" \
    --seed-file="$state/munge/munged.seed"
wait_for_file "$state/munge/munged.pid" 10 || { show_logs; exit 1; }

log "starting slurmctld and slurmd"
/usr/sbin/slurmctld -c -f "$SLURM_CONF" || { show_logs; exit 1; }
wait_for_file "$state/slurmctld.pid" 10 || { show_logs; exit 1; }
/usr/sbin/slurmd -f "$SLURM_CONF" || { show_logs; exit 1; }
wait_for_file "$state/slurmd.pid" 10 || { show_logs; exit 1; }

node_state=""
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
    # One line per partition the node is in; all say the same.
    node_state=$(timeout -k 2 5 sinfo -h -N -n "$host" -o %T 2>/dev/null | sort -u || true)
    case $node_state in
        idle) break ;;
        *drain* | *inval* | *down* | *fail*) break ;;
    esac
    sleep 0.1
done
if [[ $node_state != idle ]]; then
    log "node $host is '${node_state:-unreachable}', not idle"
    timeout -k 2 5 scontrol show node "$host" >&2 || true
    show_logs
    exit 1
fi
log "node $host idle: $cpus CPUs, ${real_mb} MB, gres gpu:1; SLURM_CONF=$SLURM_CONF"
