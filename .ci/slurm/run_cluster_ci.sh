#!/usr/bin/env bash
# A real single-node SLURM cluster (Debian 12: SLURM 22.05 + munge) and the micro grid through
# profiles/slurm, then a preemption/resume test of one fine-tune.
#
#   timeout -s KILL 1800 .ci/slurm/run_cluster_ci.sh
#
# Needs root (apt, daemons) and the project venv (.venv, or VENV=...) with snakemake and
# snakemake-executor-plugin-slurm (pip install -e '.[slurm]'). No GPU: the node advertises a fake
# GPU (gres File=/dev/null) so that GPU requests are scheduled for real; torch sees none, so
# `device: auto` trains on the CPU. Facts and traps: /work/shared/slurm-ci-notes.md.
# Work files go to $CI_WORK (default: a new /tmp/ftbench-slurm-ci.XXXXXX); kept for inspection.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$ROOT/.venv}
CI_DIR=$ROOT/.ci/slurm
WORK=${CI_WORK:-$(mktemp -d /tmp/ftbench-slurm-ci.XXXXXX)}
LOGDIR=$WORK/cluster
mkdir -p "$LOGDIR"
export PATH="$VENV/bin:$PATH"          # sbatch exports this environment (--export=ALL) to jobs
export PYTHONUNBUFFERED=1
T0=$(date +%s)

section() { printf '\n===== %s (t=%ss) =====\n' "$*" "$(( $(date +%s) - T0 ))"; }
die() { echo "FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
section "installing SLURM + munge (apt)"
PKGS="slurm-wlm slurmctld slurmd slurm-client munge"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $PKGS > "$LOGDIR/apt.log" 2>&1 \
        || { tail -30 "$LOGDIR/apt.log"; die "apt-get install"; }
fi
echo "apt done after $(( $(date +%s) - T0 )) s: $(dpkg-query -W -f '${Package} ${Version}  ' slurm-wlm munge)"

# ---------------------------------------------------------------------------------------------
PIDS=()
stop_daemons() {
    local rc=$?
    trap - EXIT INT TERM
    section "stopping daemons"
    # jobs still queued or running would keep slurmstepd children around
    scancel --user="$(id -un)" 2>/dev/null || true
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # the daemons are not our children (they fork): wait by polling their pid
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    done
    echo "daemons stopped (pids ${PIDS[*]:-none}); exit $rc; logs in $WORK"
    exit "$rc"
}
trap stop_daemons EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "cluster config"
HOST=$(hostname -s)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /run/munge /var/log/munge /var/lib/munge
# munge: a key, and daemon dirs owned by the munge user (munged refuses insecure dirs)
if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile /etc/munge/munge.key --force
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key

NODE=$(slurmd -C | head -1)        # NodeName=<host> CPUs=.. Boards=.. RealMemory=..
CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$NODE")
# SLURM_CONF is stripped inside the plugin's job step (notes, trap 2): only /etc/slurm works.
cat > /etc/slurm/slurm.conf <<EOF
# written by .ci/slurm/run_cluster_ci.sh
ClusterName=ftbenchci
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
# no accounting: status comes from squeue, which must still see finished jobs
MinJobAge=300
# without it a job asking for no memory takes the whole node
DefMemPerCPU=1000
GresTypes=gpu
$NODE Gres=gpu:1 State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
# a fake GPU: without File= slurm 22.05 drains the node
echo "NodeName=$HOST Name=gpu File=/dev/null" > /etc/slurm/gres.conf
cat /etc/slurm/slurm.conf | grep -v '^#'

section "starting munged, slurmctld, slurmd"
pidof_file() { for _ in $(seq 100); do [ -s "$1" ] && { cat "$1"; return 0; }; sleep 0.1; done; return 1; }
runuser -u munge -- munged --pid-file=/run/munge/munged.pid
PIDS+=("$(pidof_file /run/munge/munged.pid)")
munge -n | unmunge >/dev/null || die "munge does not work"
slurmctld -i    # -i: ignore old state (a fresh cluster every run)
PIDS+=("$(pidof_file /run/slurmctld.pid)")
slurmd
PIDS+=("$(pidof_file /run/slurmd.pid)")
echo "daemon pids: ${PIDS[*]}"
for _ in $(seq 60); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
    [ "$state" = "idle" ] && break
    sleep 0.5
done
sinfo -N -o '%N %T %c %m %G'
[ "$state" = "idle" ] || { scontrol show node; die "node not idle ($state)"; }
section "cluster up"

# ---------------------------------------------------------------------------------------------
# Scheduling overhead of this cluster: sbatch -> start latency and wall time of a trivial job.
section "trivial-job overhead"
overhead_job() {
    local id
    id=$(sbatch --parsable -p ci -n1 -c1 --mem 100 -o "$LOGDIR/trivial-%j.log" \
        --wrap 'date +%s.%N; srun -n1 true; date +%s.%N')
    local sub; sub=$(date +%s.%N)
    while squeue -h -j "$id" -o %T 2>/dev/null | grep -q .; do
        st=$(squeue -h -j "$id" -o %T); [ "$st" = "COMPLETED" ] && break; sleep 0.05
    done
    local done_; done_=$(date +%s.%N)
    mapfile -t ts < "$LOGDIR/trivial-$id.log"
    python - "$sub" "${ts[0]}" "${ts[1]}" "$done_" <<'PY'
import sys
sub, start, end, seen = map(float, sys.argv[1:])
print(f"trivial job: submit->start {start-sub:.2f} s, run (incl. srun step) {end-start:.2f} s, "
      f"submit->seen done by squeue polling {seen-sub:.2f} s")
PY
}
for _ in 1 2 3; do overhead_job; done

# ---------------------------------------------------------------------------------------------
# Snakemake through the real profile. CI overrides only what a 2-core box without accounting
# needs: the partition and tiny sizes (derived from profiles/slurm so GPU/group keys stay the
# profile's), squeue status checks, faster polling, the micro config.
SMK=(python -m snakemake -s "$ROOT/Snakefile" --profile "$ROOT/profiles/slurm")
mapfile -t CI_OVERRIDES < <(python "$CI_DIR/ci_overrides.py" "$ROOT/profiles/slurm/config.yaml" "$CPUS")
echo "CI overrides: ${CI_OVERRIDES[*]}"

MICRO=(--configfile "$ROOT/tests/data/micro.yaml" "$CI_DIR/micro.yaml")
GRID=$WORK/grid
mkdir -p "$GRID"
section "micro grid: dry run"
(cd "$GRID" && timeout -s KILL 300 "${SMK[@]}" "${CI_OVERRIDES[@]}" "${MICRO[@]}" -n) \
    > "$LOGDIR/grid-dryrun.log" 2>&1 || { tail -40 "$LOGDIR/grid-dryrun.log"; die "dry run"; }
sed -n '/^Job stats/,/^$/p' "$LOGDIR/grid-dryrun.log"

section "micro grid through SLURM"
t_grid=$(date +%s)
(cd "$GRID" && timeout -s KILL 1200 "${SMK[@]}" "${CI_OVERRIDES[@]}" "${MICRO[@]}" --verbose) \
    > "$LOGDIR/grid.log" 2>&1 || { tail -80 "$LOGDIR/grid.log"; die "grid through SLURM"; }
t_grid=$(( $(date +%s) - t_grid ))
python "$CI_DIR/check_grid.py" "$LOGDIR/grid.log" "$LOGDIR/grid-dryrun.log" "$GRID" "$t_grid" \
    || { tail -60 "$LOGDIR/grid.log"; die "grid checks"; }
[ -s "$GRID/results/tables/errors.csv" ] || die "no errors.csv"

# Snakefile parse time inside a cluster job
section "Snakefile parse time inside an sbatch job"
id=$(sbatch --parsable -p ci -n1 -c1 --mem 1000 -D "$GRID" -o "$LOGDIR/parse-%j.log" --wrap \
    "s=\$(date +%s.%N); python -m snakemake -s '$ROOT/Snakefile' --configfile '$ROOT/tests/data/micro.yaml' '$CI_DIR/micro.yaml' --workflow-profile none --list-rules >/dev/null 2>&1; e=\$(date +%s.%N); python -c \"print(f'snakemake --list-rules inside a job: {\$e-\$s:.2f} s')\"; s=\$(date +%s.%N); python -c 'import snakemake.cli' ; e=\$(date +%s.%N); python -c \"print(f'python -c import snakemake.cli inside a job: {\$e-\$s:.2f} s')\"")
while squeue -h -j "$id" -o %T | grep -qv COMPLETED; do sleep 0.2; done
cat "$LOGDIR/parse-$id.log"

# ---------------------------------------------------------------------------------------------
section "resume test: scancel a fine-tune after its first checkpoint"
RES=$WORK/resume
mkdir -p "$RES"
# upstream files (demo world, pretrained micro model, splits, e0, replay) and snakemake's
# metadata from the grid run: only the fine-tune is left to run
(cd "$GRID" && cp -a data results .snakemake "$RES"/) 
rm -rf "$RES/results/runs" "$RES/results/checkpoints" "$RES/results/tables" "$RES/.snakemake/slurm_logs" \
    "$RES/.snakemake/incomplete" "$RES/.snakemake/locks"
RUN=results/runs/sn2/micro/naive/estimated/n8/seed1
CKPT=results/checkpoints/sn2/micro/naive/estimated/n8/seed1
EPOCHS=$(python -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['training']['max_num_epochs'])" "$CI_DIR/resume.yaml")
RSMK=("${SMK[@]}" "${CI_OVERRIDES[@]}" "${MICRO[@]}" "$CI_DIR/resume.yaml" --retries 0 "$RUN/run.json")
(cd "$RES" && timeout -s KILL 300 "${RSMK[@]}" -n) > "$LOGDIR/resume-dryrun.log" 2>&1 \
    || { tail -30 "$LOGDIR/resume-dryrun.log"; die "resume dry run"; }
sed -n '/^Job stats/,/^$/p' "$LOGDIR/resume-dryrun.log"
(cd "$RES" && exec timeout -s KILL 600 "${RSMK[@]}" --verbose) > "$LOGDIR/resume-1.log" 2>&1 &
SMK_PID=$!
jobid=""
for _ in $(seq 600); do
    jobid=$(sed -n 's/.*has been submitted with SLURM jobid \([0-9]*\).*/\1/p' "$LOGDIR/resume-1.log" | tail -1)
    # a checkpoint after epoch 0: a resume from epoch 0 cannot be told from a clean start
    if [ -n "$jobid" ] && compgen -G "$RES/$CKPT/*epoch-[1-9]*.pt" >/dev/null; then break; fi
    kill -0 "$SMK_PID" 2>/dev/null || break
    sleep 0.5
done
compgen -G "$RES/$CKPT/*epoch-[1-9]*.pt" >/dev/null || { wait "$SMK_PID" || true; tail -40 "$LOGDIR/resume-1.log"; die "no checkpoint after epoch 0 appeared"; }
echo "checkpoint present: $(ls "$RES/$CKPT")"
scontrol show job -d "$jobid" | tee "$LOGDIR/resume-scontrol.txt" | grep -E "JobState|TRES|Gres|GRES|NumCPUs|MinMemory|TimeLimit" || true
grep -qE "gres/gpu=1|GRES=gpu" "$LOGDIR/resume-scontrol.txt" || die "the fine-tune's allocation holds no GPU"
# Kill between checkpoint writes: a kill during mace's write (epochs here take ~0.2 s) leaves a cut
# file, which the rerun rightly drops and restarts from (finetune.drop_cut_checkpoints), and the
# resume would go untested. Suspend the job; kill it only while its newest checkpoint loads.
newest_loads() {
    python - "$RES/$CKPT" <<'PY'
import sys
from pathlib import Path

import torch

pts = sorted(Path(sys.argv[1]).glob("*epoch-*.pt"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
try:
    torch.load(pts[-1], map_location="cpu", weights_only=False)
except Exception:
    sys.exit(1)
sys.exit(0 if int(pts[-1].stem.rsplit("-", 1)[1]) >= 1 else 1)
PY
}
for _ in $(seq 20); do
    scontrol suspend "$jobid" || break
    newest_loads && break
    scontrol resume "$jobid" || true
    sleep 0.1
done
scancel "$jobid"
echo "scancel $jobid at epoch checkpoint $(ls "$RES/$CKPT")"
wait "$SMK_PID" && die "snakemake succeeded although its job was cancelled" || true
[ ! -e "$RES/$RUN/run.json" ] || die "run.json exists after the cancel"
compgen -G "$RES/$CKPT/*.pt" >/dev/null || die "checkpoint vanished after the cancel"
killed_at=$(ls "$RES/$CKPT" | sed -n 's/.*epoch-\([0-9]*\).*/\1/p' | sort -n | tail -1)

(cd "$RES" && timeout -s KILL 600 "${RSMK[@]}" --verbose) > "$LOGDIR/resume-2.log" 2>&1 \
    || { tail -40 "$LOGDIR/resume-2.log"; die "rerun after scancel"; }
python "$CI_DIR/check_resume.py" "$RES" "$RUN" "$CKPT" "$EPOCHS" "$killed_at" "$LOGDIR/resume-2.log"
section "resume test passed"
echo "total CI time $(( $(date +%s) - T0 )) s"
