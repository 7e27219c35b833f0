#!/usr/bin/env bash
# Stop the test cluster that tests/slurm/start.sh STATE_DIR started: cancel its jobs, then end slurmd,
# slurmctld and munged by the PIDs in their PID files. Safe to run on a partly started cluster or twice.
# Exits non-zero when a daemon outlives SIGKILL.
set -euo pipefail

state=${1:?usage: stop.sh STATE_DIR}
[[ -d $state ]] || exit 0
state=$(cd "$state" && pwd)
export SLURM_CONF=$state/slurm.conf

log() { echo "stop.sh: $*" >&2; }

# Cancel the jobs first: with proctrack/linuxproc their slurmstepd processes outlive slurmd.
if [[ -f $state/slurmctld.pid && -f $SLURM_CONF ]] && command -v scancel >/dev/null 2>&1; then
    timeout -k 2 10 scancel --full --quiet --user=root 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        jobs=$(timeout -k 2 5 squeue -h -t RUNNING,COMPLETING,PENDING,CONFIGURING -o %i 2>/dev/null || true)
        [[ -z $jobs ]] && break
        sleep 0.1
    done
fi

status=0
stop_pid_file() {
    local name=$1 pid_file=$2 pid
    [[ -s $pid_file ]] || return 0
    pid=$(<"$pid_file")
    [[ $pid =~ ^[0-9]+$ ]] || { log "$name: bad pid file $pid_file"; return 0; }
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { log "stopped $name ($pid)"; return 0; }
        sleep 0.1
    done
    log "$name ($pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) is still running"
        status=1
    fi
}

stop_pid_file slurmd "$state/slurmd.pid"
stop_pid_file slurmctld "$state/slurmctld.pid"
stop_pid_file munged "$state/munge/munged.pid"
# The link start.sh made to this cluster's config.
default_conf=/etc/slurm/slurm.conf
if [[ -L $default_conf && $(readlink "$default_conf") == "$state/slurm.conf" ]]; then
    rm -f "$default_conf"
fi
exit "$status"
