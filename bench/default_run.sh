#!/usr/bin/env bash
# Times the default main job cold (fresh data/results/logs) and a no-op rerun, then breaks the
# cold run down (bench/run_breakdown.py: job time per rule, optimiser time, efficiency) and
# records Snakemake's own CPU (its main process, polled until it exits).
# Usage: bench/default_run.sh [snakemake args...]
# Writes bench/out/default_run.json and bench/out/run_breakdown.json.
set -euo pipefail
cd "$(dirname "$0")/.."
SNAKEMAKE=${SNAKEMAKE:-.venv/bin/snakemake}
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p bench/out
rm -rf results data/generated data/demo_world logs .snakemake  # not data/demo: the shipped world
t0=$(date +%s.%N)
"$SNAKEMAKE" -c 2 "$@" > bench/out/default_run.log 2>&1 &
pid=$!
cpu=0
while kill -0 "$pid" 2>/dev/null; do  # utime + stime of Snakemake itself, in clock ticks
    now=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo "$cpu")
    cpu=$now
    sleep 1
done
wait "$pid"
t1=$(date +%s.%N)
"$SNAKEMAKE" -c 2 "$@" > bench/out/default_noop.log 2>&1
t2=$(date +%s.%N)
# the timings first, so that a failure of the breakdown below loses none of them
echo "$t0 $t1 $t2 $cpu $(getconf CLK_TCK)" > bench/out/default_run.times
log=$(ls -t .snakemake/log/*.snakemake.log | tail -n +2 | head -1)  # the cold run's (the newest is the no-op's)
"$PYTHON" bench/run_breakdown.py --log "$log" --tables results/tables --runs results/runs \
    --wall-s "$(python3 -c "print($t1 - $t0)")" --cores 2
"$PYTHON" - "$t0" "$t1" "$t2" "$cpu" "$(getconf CLK_TCK)" <<'PY'
import json, sys
t0, t1, t2, ticks, hz = map(float, sys.argv[1:])
breakdown = json.load(open("bench/out/run_breakdown.json"))
out = {
    "cold_s": round(t1 - t0, 1),
    "noop_s": round(t2 - t1, 2),
    "jobs": breakdown["jobs"],
    "efficiency": breakdown["efficiency"],
    "snakemake_cpu_s": round(ticks / hz, 1),
    "snakemake_share_of_a_core": round(ticks / hz / (t1 - t0), 3),
    "targets": {"cold_s": 2700, "efficiency": 0.6},
}
json.dump(out, open("bench/out/default_run.json", "w"), indent=2)
print(json.dumps(out))
PY
