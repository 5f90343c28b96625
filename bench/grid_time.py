"""Estimate how long a grid takes, from the per-job times of a finished Snakemake run.

Reads Snakemake logs (e.g. bench/out/default_run.log) for each job's start and finish, takes the
mean job time per rule (start-up included), counts the jobs of a target grid with `snakemake -n`,
and divides the summed job time by the cores. The measured run's own cold time calibrates the
packing: its predicted time over its measured time is applied to the target.

Per-job times come from the measured benchmark (the default's sn2): a benchmark with larger
structures (water: 48 atoms against sn2's 6) costs more per job, so for such grids the figure is
a floor.

Usage:
  python bench/grid_time.py --log bench/out/default_run.log [--log rerun.log] --measured-s 3439.5 \
      [--measured-cores 2] --cores 8 -- --configfile config/demo_full.yaml
Later logs override earlier ones for the rules they hold (a rerun of one rule with new settings).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def job_times(log: Path) -> dict[str, list[float]]:
    """Return {rule: [job seconds]} from one Snakemake log (start line to `Finished jobid`)."""
    starts, rules, out = {}, {}, {}
    stamp, rule = None, None
    for line in log.read_text().splitlines():
        m = STAMP.match(line)
        if m:
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            rule = m.group(1)
            continue
        m = re.match(r"^\s+jobid: (\d+)$", line)
        if m and rule is not None:
            starts[m.group(1)], rules[m.group(1)] = stamp, rule
            rule = None
            continue
        m = re.match(r"^Finished jobid: (\d+)", line)
        if m and m.group(1) in starts:
            job = m.group(1)
            out.setdefault(rules[job], []).append((stamp - starts[job]).total_seconds())
    return out


def job_counts(snakemake_args: list[str]) -> dict[str, int]:
    """Return {rule: jobs} of a cold run of the target grid (`snakemake -n` in a scratch folder)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "-c", "1", *snakemake_args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    stats = res.stdout.split("Job stats:", 1)[1]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M) if m[0] != "total"}


def main() -> None:
    """Print and write the estimate."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log", action="append", required=True, type=Path)
    p.add_argument("--measured-s", type=float, required=True, help="cold time of the run in the first log")
    p.add_argument("--measured-cores", type=int, default=2, help="cores of the run in the first log")
    p.add_argument("--cores", type=int, default=2, help="cores of the target run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "grid_time.json")
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="after --: the target grid's snakemake args")
    args = p.parse_args()
    target_args = [a for a in args.snakemake_args if a != "--"]

    first = job_times(args.log[0])
    per_rule = dict(first)
    for log in args.log[1:]:
        per_rule.update(job_times(log))
    mean = {r: sum(t) / len(t) for r, t in per_rule.items()}
    # calibration: the first run's summed job time over its cores against its measured cold time
    predicted_first = sum(sum(t) for t in first.values()) / args.measured_cores
    packing = args.measured_s / predicted_first

    counts = job_counts(target_args)
    unknown = sorted(r for r in counts if r not in mean)
    job_s = sum(n * mean.get(r, 0.0) for r, n in counts.items())
    estimate = job_s / args.cores * packing
    out = {
        "target": target_args,
        "cores": args.cores,
        "mean_job_s": {r: round(v, 1) for r, v in sorted(mean.items())},
        "target_jobs": counts,
        "rules_without_a_measured_time": unknown,
        "packing_factor": round(packing, 3),
        "estimate_s": round(estimate),
        "estimate_h": round(estimate / 3600, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("target", "packing_factor", "estimate_h")}))
    for rule in ("finetune", "evaluate", "robustness"):
        if rule in counts:
            print(f"{rule}: {counts[rule]} jobs x {mean.get(rule, 0):.1f} s")
    if unknown:
        print(f"no measured time (counted as 0 s): {', '.join(unknown)}")


if __name__ == "__main__":
    main()
