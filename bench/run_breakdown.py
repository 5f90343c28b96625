"""Where a finished run's time went: one line per component, and its efficiency.

Reads the run's Snakemake log (job start to `Finished jobid`, per rule), the tidy `runs.csv` of
its tables (mace's optimiser-step time and the CPU time of each fine-tune) and the robustness
records (`robustness.json`, wall time of each model's probes). Efficiency is the issue-23 figure:
summed optimiser time of all runs / (cores x cold wall time). On a machine shared with other work
the wall times include waiting for the cores; CPU times do not.

Usage:
  python bench/run_breakdown.py --log run.log --tables results/tables --runs results/runs/water \
      --wall-s 4321 --cores 2 [--out bench/out/run_breakdown.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from grid_time import job_times  # noqa: E402


def main() -> None:
    """Print and write the breakdown."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log", required=True, type=Path, help="the run's Snakemake log")
    p.add_argument("--tables", required=True, type=Path, help="the run's tables folder (runs.csv)")
    p.add_argument("--runs", required=True, type=Path, help="runs folder whose robustness.json files to read")
    p.add_argument("--wall-s", required=True, type=float, help="cold wall time of the run")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "run_breakdown.json")
    args = p.parse_args()

    jobs: dict[str, list[float]] = {}
    for (rule, _benchmark), times in job_times(args.log).items():  # per rule, over benchmarks
        jobs.setdefault(rule, []).extend(times)
    runs = pd.read_csv(args.tables / "runs.csv")
    trained = runs[runs.optimiser_steps.fillna(0) > 0]
    rob = [json.loads(f.read_text()) for f in sorted(args.runs.rglob("robustness/robustness.json"))]
    by_strategy = trained.groupby("strategy")[["optimiser_time_s", "cpu_time_s", "wall_time_s"]].sum().round(1)
    optimiser = float(trained.optimiser_time_s.sum())
    out = {
        "wall_s": args.wall_s,
        "cores": args.cores,
        "jobs": sum(len(t) for t in jobs.values()),
        "job_wall_s_by_rule": {r: round(sum(t), 1) for r, t in sorted(jobs.items(), key=lambda kv: -sum(kv[1]))},
        "job_count_by_rule": {r: len(t) for r, t in sorted(jobs.items())},
        "finetune_by_strategy_s": by_strategy.to_dict(orient="index"),
        "optimiser_s": round(optimiser, 1),
        "finetune_cpu_s": round(float(trained.cpu_time_s.sum()), 1),
        "robustness_wall_s": round(sum(r.get("wall_time_s") or 0.0 for r in rob), 1),
        "robustness_jobs": len(rob),
        "efficiency": round(optimiser / (args.cores * args.wall_s), 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"cold wall {args.wall_s / 60:.1f} min on {args.cores} cores, {out['jobs']} jobs")
    for rule, s in out["job_wall_s_by_rule"].items():
        print(f"  {rule:<22} {len(jobs[rule]):>4} jobs {s / 60:7.1f} job-min")
    print(
        f"  optimiser steps (mace 'opt' rows) {optimiser / 60:.1f} min; fine-tune CPU {out['finetune_cpu_s'] / 60:.1f} min"
    )
    print(f"efficiency = optimiser / (cores x wall) = {out['efficiency']:.2f}")


if __name__ == "__main__":
    main()
