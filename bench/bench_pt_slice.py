"""How much the forgetting numbers depend on the size of the pretraining evaluation slice.

The default run scores forgetting on `replay.n_eval` frames drawn from the held-out corpus slice.
This scores the finished runs of one benchmark (at a given training size, and the untouched
models) on the *whole* usable held-out slice instead, at both levels of theory, with the same
`ftbench evaluate` the pipeline runs, and prints each strategy's seed mean ± SD and its ratio to
the untouched model. Nothing in results/ is changed; outputs go to --work.

Usage (from a finished default run):
  python bench/bench_pt_slice.py --results results --benchmark sn2 --size 100 \
      --heldout data/replay/demo_world/heldout.xyz \
      --relabelled data/replay/demo_world/heldout_relabelled.xyz --exclude short_range
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from ase.data import atomic_numbers
from ase.io import read, write

from ftbench.core.grid import parse_run_path
from ftbench.training.replay import held_out_slice

ROOT = Path(__file__).resolve().parents[1]
SETS = ("pt_full", "pt_full_relabelled")


def benchmark_elements(train: Path) -> set[int]:
    """Return the atomic numbers of a benchmark's training set (the replay filter's elements)."""
    return {int(z) for a in read(train, ":") for z in a.numbers}


def main() -> None:
    """Evaluate, then print the table and write it as JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=ROOT / "results")
    p.add_argument("--benchmark", default="sn2")
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--heldout", type=Path, required=True)
    p.add_argument("--relabelled", type=Path, required=True)
    p.add_argument("--exclude", nargs="*", default=["short_range"])
    p.add_argument(
        "--elements",
        nargs="*",
        help="element symbols (default: those of the benchmark's train_pool.xyz, as the replay rule)",
    )
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "pt_slice")
    args = p.parse_args()

    if args.elements:
        elements = {atomic_numbers[s] for s in args.elements}
    else:
        elements = benchmark_elements(args.results / "data" / args.benchmark / "train_pool.xyz")
    frames, twins = held_out_slice(args.heldout, args.relabelled, elements, "subset", 10**9, 0, tuple(args.exclude))
    args.work.mkdir(parents=True, exist_ok=True)
    write(args.work / "pt_full.xyz", frames, format="extxyz")
    write(args.work / "pt_full_relabelled.xyz", twins, format="extxyz")
    groups = len({a.info.get("group") for a in frames})

    root = args.results / "runs" / args.benchmark
    runs = sorted(root.glob(f"*/*/*/n{args.size}/seed*/run.json")) + sorted(
        root.glob("*/untouched/*/n0/seed0/run.json")
    )
    values = defaultdict(list)
    for run_json in runs:
        run = parse_run_path(str(run_json.parent.relative_to(args.results / "runs")))
        out = args.work / (run.path.replace("/", "_") + ".json")
        if not out.exists():
            data = [f"{name}={args.work / (name + '.xyz')}" for name in SETS]
            cmd = [sys.executable, "-m", "ftbench", "evaluate", "--run", str(run_json), "--data", *data]
            cmd += ["--batch-size", "32", "--device", "cpu", "--out", str(out)]
            subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True)
        rows = json.loads(out.read_text())["rows"]
        for r in rows:
            # multihead (replay) runs: the target head only (aggregate's head_role rule)
            if r["head"] == "pt_head":
                continue
            if (r["quantity"], r["statistic"], r["config_type"]) == ("forces", "rmse", "all"):
                values[(run.model, run.strategy, r["dataset"])].append(r["value"])

    table = []
    for (model, strategy, dataset), vals in sorted(values.items()):
        base = values.get((model, "untouched", dataset))
        mean = statistics.mean(vals)
        table.append(
            {
                "model": model,
                "strategy": strategy,
                "dataset": dataset,
                "force_rmse_mev_per_a": round(mean, 1),
                "seed_sd": round(statistics.stdev(vals), 1) if len(vals) > 1 else 0.0,
                "seeds": len(vals),
                "ratio_to_untouched": round(mean / statistics.mean(base), 3) if base else None,
            }
        )
    summary = {"frames": len(frames), "trajectories": groups, "size": args.size, "rows": table}
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"# {args.benchmark}, N = {args.size}: {len(frames)} held-out frames in {groups} trajectories")
    for row in table:
        ratio = f"  ({row['ratio_to_untouched']:.2f}x untouched)" if row["ratio_to_untouched"] else ""
        print(
            f"{row['model']:10s} {row['strategy']:14s} {row['dataset']:19s} "
            f"{row['force_rmse_mev_per_a']:7.1f} ± {row['seed_sd']:5.1f}{ratio}"
        )


if __name__ == "__main__":
    main()
