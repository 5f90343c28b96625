"""Issue 23's training levers on the demo world: validation cadence and float32, against their cost.

Runs one sn2 slice (demo_gen2; naive, LoRA, replay, scratch; sizes 10 and 100; seeds 1 and 2; no
robustness) through the real workflow once per variant, each in its own folder:
  f64_every_epoch  the default before the levers (float64, validation every epoch)
  f64_evals20      float64, `training.evals: 20` (validation every epochs/20 epochs)
  f32_evals20      float32 (the demo models were pretrained in it), evals 20
and reports, per variant, the wall time, the fine-tunes' summed CPU and optimiser time, and per
(strategy, size) the seed mean and SD of the test force RMSE, with each variant's change against
the first in units of the larger seed SD, and the seconds mace spent validating (its own
per-evaluation time, which sums what the cadence saves without comparing wall times of runs that
shared the machine with different neighbours). Writes bench/out/levers.json.

Usage: python bench/bench_levers.py [--cores 2] [--variants f64_every_epoch,f64_evals20,f32_evals20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SLICE = {
    "benchmarks": ["sn2"],
    "foundation_models": ["demo_gen2"],
    "strategies": ["naive", "lora", "replay", "scratch"],
    "train_sizes": [10, 100],
    "seeds": [1, 2],
    "robustness": {"benchmarks": []},
    "figures": [],
}
VARIANTS = {
    "f64_every_epoch": {"training": {"mace_flags": {"default_dtype": "float64"}}},
    "f64_evals20": {"training": {"evals": 20, "mace_flags": {"default_dtype": "float64"}}},
    "f32_evals20": {"training": {"evals": 20, "mace_flags": {"default_dtype": "float32"}}},
}


def validation_s(work: Path) -> tuple[float, int]:
    """Seconds mace spent in validation (its per-evaluation "time") and the evaluations, over the runs."""
    seconds, count = 0.0, 0
    for path in (work / "results" / "runs").rglob("run.json"):
        evals = [c for c in json.loads(path.read_text()).get("training_curve") or [] if c.get("mode") == "eval"]
        seconds += sum(float(c.get("time") or 0.0) for c in evals)
        count += len(evals)
    return seconds, count


def run_variant(name: str, cores: int, keep: Path, report_only: bool = False) -> dict:
    work = keep / name
    if report_only:
        return summarise(work, None)
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "variant.yaml"
    cfg.write_text(yaml.safe_dump({**SLICE, **VARIANTS[name]}))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work)]
    cmd += ["-c", str(cores), "--configfile", str(cfg), "--scheduler", "greedy"]
    # this checkout's package and interpreter, whatever is installed or first on PATH
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (work / "snakemake.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: snakemake failed, see {work / 'snakemake.log'}")
    (work / "wall_s.txt").write_text(f"{wall:.1f}\n")
    return summarise(work, wall)


def summarise(work: Path, wall: float | None) -> dict:
    if wall is None:
        wall = float((work / "wall_s.txt").read_text()) if (work / "wall_s.txt").is_file() else float("nan")
    seconds, evaluations = validation_s(work)  # reads every run.json once
    tables = work / "results" / "tables"
    runs = pd.read_csv(tables / "runs.csv")
    errors = pd.read_csv(tables / "errors.csv")
    trained = runs[runs.strategy.isin(SLICE["strategies"])]
    rmse = errors[
        (errors.dataset == "test")
        & (errors.quantity == "forces")
        & (errors.statistic == "rmse")
        & (errors.config_type == "all")
        & (errors.head_role == "target")
        & errors.strategy.isin(SLICE["strategies"])
    ]
    return {
        "wall_s": round(wall, 1),
        "finetune_cpu_s": round(float(trained.cpu_time_s.sum()), 1),
        "finetune_wall_s": round(float(trained.wall_time_s.sum()), 1),
        "optimiser_time_s": round(float(trained.optimiser_time_s.sum()), 1),
        "optimiser_steps": int(trained.optimiser_steps.sum()),
        "validation_s": round(seconds, 1),
        "evaluations": evaluations,
        "statuses": trained.status.value_counts().to_dict(),
        "test_force_rmse_mev_per_a": {
            f"{s}/n{n}": [round(v, 2) for v in grp.sort_values("seed").value]  # errors.csv: meV/A
            for (s, n), grp in rmse.groupby(["strategy", "train_size"])
        },
    }


def compare(results: dict) -> dict:
    names = list(results)
    base = results[names[0]]["test_force_rmse_mev_per_a"]
    out = {}
    for name in names[1:]:
        cells = {}
        for cell, values in results[name]["test_force_rmse_mev_per_a"].items():
            ref = base.get(cell)
            if not ref or len(ref) < 2 or len(values) < 2:
                continue
            sd = max(pd.Series(ref).std(ddof=1), pd.Series(values).std(ddof=1))
            mean_ref = sum(ref) / len(ref)
            delta = sum(values) / len(values) - mean_ref
            cells[cell] = {
                "delta_mev_per_a": round(delta, 2),
                "relative": round(delta / mean_ref, 4),
                # seeds that agree to 0.01 % (replay) make any change many SDs: read `relative` there
                "in_seed_sd": round(delta / sd, 2) if sd else None,
            }
        out[f"{name} vs {names[0]}"] = cells
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--keep", type=Path, default=None, help="folder for the variants' work dirs (default: a temp dir)")
    ap.add_argument("--report-only", action="store_true", help="summarise the finished work dirs under --keep")
    args = ap.parse_args()
    keep = args.keep or Path(tempfile.mkdtemp(prefix="ftbench-levers-"))
    results = {}
    for name in args.variants.split(","):
        results[name] = run_variant(name, args.cores, keep, args.report_only)
        print(
            name, json.dumps({k: v for k, v in results[name].items() if k != "test_force_rmse_mev_per_a"}), flush=True
        )
    out = {"load_avg": os.getloadavg(), "slice": SLICE, "variants": results, "changes": compare(results)}
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "levers.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["changes"], indent=2))


if __name__ == "__main__":
    main()
