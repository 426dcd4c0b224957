#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by scripts/slurm/start.sh with the same STATE_DIR:
# cancel its jobs, stop exactly the daemons whose pids start.sh recorded (slurmd, slurmctld, and
# munged only if start.sh started it), and remove the configuration files start.sh wrote.
#
#   scripts/slurm/stop.sh [STATE_DIR]      (default: $PULSE_SLURM_STATE or /tmp/pulse-slurm)
set -uo pipefail

STATE=${1:-${PULSE_SLURM_STATE:-/tmp/pulse-slurm}}
MARKER="# pulse test cluster: written by scripts/slurm/start.sh, removed by scripts/slurm/stop.sh"
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "stop.sh: $*" >&2; }

# The pid recorded in STATE/NAME.pid, if that process is still alive and still NAME.
recorded_pid() {
    local name=$1 file="$STATE/$1.pid" pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [[ -n $pid && -d /proc/$pid ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    echo "$pid"
}

stop_daemon() {
    local name=$1 pid
    pid=$(recorded_pid "$name") || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || { say "stopped $name (pid $pid)"; return 0; }; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
    say "killed $name (pid $pid) after 10 s"
}

# Cancel the jobs first: job steps outlive a stopped slurmd.
if recorded_pid slurmctld >/dev/null && timeout 10 scontrol ping 2>/dev/null | grep -q UP; then
    jobs=$(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
        say "cancelling jobs $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs
        for _ in $(seq 50); do
            [[ -z $(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
fi

stop_daemon slurmd
stop_daemon slurmctld
stop_daemon munged

for file in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    [[ -f $file ]] && grep -qxF "$MARKER" "$file" && rm -f "$file"
done
exit 0
