#!/usr/bin/env bash
# Times the default main job cold (fresh data/results/logs) and a no-op rerun.
# Usage: bench/default_run.sh [snakemake args...]   Writes bench/out/default_run.json.
set -euo pipefail
cd "$(dirname "$0")/.."
SNAKEMAKE=${SNAKEMAKE:-.venv/bin/snakemake}
mkdir -p bench/out
rm -rf results data/generated data/demo_world logs .snakemake  # not data/demo: the shipped world
t0=$(date +%s.%N)
"$SNAKEMAKE" -c 2 "$@" > bench/out/default_run.log 2>&1
t1=$(date +%s.%N)
"$SNAKEMAKE" -c 2 "$@" > bench/out/default_noop.log 2>&1
t2=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" <<'PY'
import json, sys
t0, t1, t2 = map(float, sys.argv[1:])
out = {"cold_s": round(t1 - t0, 1), "noop_s": round(t2 - t1, 2), "targets": {"cold_s": 900, "noop_s": 30}}
json.dump(out, open("bench/out/default_run.json", "w"), indent=2)
print(json.dumps(out))
PY
