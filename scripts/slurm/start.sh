#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster on this machine (used by tests/test_slurm.py).
#
#   scripts/slurm/start.sh [STATE_DIR]      (default: $PULSE_SLURM_STATE or /tmp/pulse-slurm)
#
# Installs the Debian packages (slurmctld slurmd slurm-client munge) when missing, writes
# /etc/slurm/slurm.conf and gres.conf (the job step strips SLURM_CONF, so only the default path
# works), starts munged (unless one already answers), slurmctld and slurmd without systemd, and
# waits until the node is idle. The node "localhost" has this machine's CPUs and memory and one
# fake GPU (a GRES whose device file is /dev/null), so GPU requests can be scheduled and inspected.
# No slurmdbd: use squeue for job status (MinJobAge keeps finished jobs visible for an hour,
# for squeue and for the tests' scontrol evidence).
# Every pid it starts is written to STATE_DIR/*.pid; scripts/slurm/stop.sh stops exactly those.
#
# Exit status: 0 = cluster up; 2 = cannot be set up here (not root, packages not installable,
# a Slurm configuration that is not ours): the caller may skip; 1 = it should have worked.
set -euo pipefail

STATE=${1:-${PULSE_SLURM_STATE:-/tmp/pulse-slurm}}
MARKER="# pulse test cluster: written by scripts/slurm/start.sh, removed by scripts/slurm/stop.sh"
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
PACKAGES=(slurmctld slurmd slurm-client munge)
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "start.sh: $*" >&2; }
cannot() { say "cannot set up Slurm here: $*"; exit 2; }
fail() {
    say "FAILED: $*"
    for log in "$STATE"/slurmctld.log "$STATE"/slurmd.log "$STATE"/munge/munged.log; do
        [[ -s $log ]] && { echo "== $log" >&2; tail -n 30 "$log" >&2; }
    done
    "$(dirname "$0")/stop.sh" "$STATE"   # whatever did start
    exit 1
}

[[ $(id -u) -eq 0 ]] || cannot "root is needed to install packages and run the daemons"

# --- packages -------------------------------------------------------------------------------
missing() { for c in slurmctld slurmd sbatch squeue scontrol munged; do command -v "$c" >/dev/null || return 0; done; return 1; }
if missing; then
    command -v apt-get >/dev/null || cannot "Slurm is not installed and there is no apt-get"
    say "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout -k 10 300 apt-get -o DPkg::Lock::Timeout=120 update -qq >"$STATE.apt.log" 2>&1 \
        || cannot "apt-get update failed: $(tail -n 3 "$STATE.apt.log")"
    timeout -k 10 600 apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends \
        "${PACKAGES[@]}" >>"$STATE.apt.log" 2>&1 \
        || cannot "apt-get install ${PACKAGES[*]} failed: $(tail -n 3 "$STATE.apt.log")"
    missing && cannot "packages installed but commands still missing"
fi

# --- configuration (never overwrite a real cluster's) ----------------------------------------
for file in "$CONF" "$GRES_CONF"; do
    if [[ -e $file ]] && ! grep -qxF "$MARKER" "$file"; then
        cannot "$file exists and was not written by this script (a real Slurm installation?)"
    fi
done
[[ -d $STATE ]] && "$(dirname "$0")/stop.sh" "$STATE" >&2   # leftover of an earlier run of ours
if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    cannot "slurmctld or slurmd is already running (pids: $(pgrep -d, -x 'slurmctld|slurmd'))"
fi

rm -rf "$STATE"
mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
CPUS=$(nproc)
(( CPUS >= 2 )) || CPUS=2   # jobs of 2 threads must fit; config_overrides allows declaring more
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)

cat >"$CONF" <<EOF
$MARKER
ClusterName=pulse
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$GRES_CONF" <<EOF
$MARKER
NodeName=localhost Name=gpu File=/dev/null
EOF

# --- munge ----------------------------------------------------------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "using the munged that is already running"
else
    [[ -s /etc/munge/munge.key ]] || { mungekey --create --force && chown munge:munge /etc/munge/munge.key; } \
        || fail "no munge key and mungekey failed"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    install -d -o munge -g munge -m 0700 "$STATE/munge"
    runuser -u munge -- munged --force --pid-file=/run/munge/munged.pid --log-file="$STATE/munge/munged.log" \
        || fail "munged did not start"
    cp /run/munge/munged.pid "$STATE/munged.pid"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    munge -n | unmunge >/dev/null || fail "munge does not answer"
fi

# --- slurm daemons (they fork and write their pid files) ------------------------------------
slurmctld -c || fail "slurmctld did not start"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping | grep -q UP || fail "slurmctld does not answer"
slurmd -N localhost || fail "slurmd did not start"

state=""
for _ in $(seq 150); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.2
done
[[ $state == idle ]] || fail "node localhost is '$state', not idle: $(sinfo -R -h 2>&1)"
say "cluster up: node localhost (CPUs=$CPUS, RealMemory=${MEM_MB}M, gpu:1), partition main, state in $STATE"
