"""Benchmark: what robustness on the condensed phase (the shipped water benchmark) costs on this machine.

Issue 23 asks for the default run to fine-tune on water (one size, every strategy, 2 seeds, on
demo_gen2) and run the robustness probes there. This measures, with the shipped demo_gen2 model,
one thread, the pieces that decide whether that fits a 2-core default:
  - one optimiser step (energy + forces loss, backward, AdamW) at each strategy's batch size, on
    water (48-atom boxes) and on sn2 (6-atom complexes), in float64 and float32;
  - one batched MD step of `robustness.md.replicas` replicas of the water MD start;
then projects the water grid of config/robustness_water.yaml (steps from `training.steps`, MD steps
from its robustness block), lower bounds: no validation, data loading, E0 or evaluation time.
Writes bench/out/bench_water_cost.json. Usage: python bench/bench_water_cost.py [--repeats 6]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_arch_step import step_time  # noqa: E402

MODEL = ROOT / "data" / "demo" / "foundation" / "demo_gen2.model"
DATA = {"water": ROOT / "data/demo/benchmarks/water.xyz.gz", "sn2": ROOT / "data/demo/benchmarks/sn2.xyz.gz"}
START = ROOT / "data/demo/reference/water_start.xyz"


def md_step_time(model_path: Path, replicas: int, steps: int, dtype: str) -> float:
    """Seconds per batched MD step (all replicas) of the water start, loose criteria."""
    from ase.io import read

    from ftbench.probes.calculators import load_calculator
    from ftbench.probes.md import Criteria, MaceBatchEvaluator, run_replicas

    calc = load_calculator(model_path, default_dtype=dtype)
    loose = Criteria(min_distance=0.1, max_force=1e6, max_temperature_factor=1e6)
    t = time.perf_counter()
    run_replicas(
        read(START),
        MaceBatchEvaluator(calc),
        replicas=replicas,
        seed=0,
        steps=steps,
        timestep_fs=0.5,
        t_start=300,
        t_end=300,
        friction=0.05,
        criteria=loose,
    )
    return (time.perf_counter() - t) / steps


def main() -> None:
    import torch
    from ase.io import read

    from ftbench.core.config import load_config, robustness_settings, strategy
    from ftbench.core.grid import expand_grid, robustness_runs, untouched_runs

    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--md-steps", type=int, default=20)
    p.add_argument("--config", default=str(ROOT / "config" / "robustness_water.yaml"))
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "bench_water_cost.json"))
    args = p.parse_args()
    torch.set_num_threads(1)

    cfg = load_config([args.config])
    batches = sorted(
        {strategy(cfg, s)["mace_flags"].get("batch_size", 2) for s in cfg["strategies"] if s != "zeroshot"}
    )
    steps = {}
    for dtype in (torch.float64, torch.float32):
        torch.set_default_dtype(dtype)
        model = torch.load(MODEL, weights_only=False).to(dtype)
        zs = [int(z) for z in model.atomic_numbers]
        for bench, path in DATA.items():
            frames = [a for a in read(path, ":") if len(a) > 1][:40]
            for b in batches:
                key = f"{bench}/batch{b}/{str(dtype)[6:]}"
                steps[key] = round(step_time(model, frames, zs, b, args.repeats), 4)
                print(key, steps[key], "s/step", flush=True)
    torch.set_default_dtype(torch.float64)
    rob = robustness_settings(cfg, "water")
    md = {d: round(md_step_time(MODEL, rob["md"]["replicas"], args.md_steps, d), 4) for d in ("float64", "float32")}
    print("water MD step", md, flush=True)

    # projection of the config's water grid (float64, as the config trains)
    runs = [r for r in expand_grid(cfg) if r.benchmark == "water"]
    train_s = sum(
        cfg["training"]["steps"]
        * steps[f"water/batch{strategy(cfg, r.strategy)['mace_flags'].get('batch_size', 2)}/float64"]
        for r in runs
        if strategy(cfg, r.strategy).get("train", True)
    )
    robust = [r for r in robustness_runs(cfg, runs + untouched_runs(cfg)) if r.benchmark == "water"]
    md_steps = rob["md"]["steps"] + rob["md"]["thermalise_steps"]
    prod = rob["production"]
    md_s = len(robust) * (md_steps * md["float64"] + (prod["steps"] + prod["thermalise_steps"]) * md["float64"])
    out = {
        "threads": 1,
        "step_s": steps,
        "md_step_s": md,
        "projection": {
            "config": str(Path(args.config).relative_to(ROOT)),
            "water_fine_tunes": len(runs),
            "water_robustness_jobs": len(robust),
            "optimiser_core_min": round(train_s / 60, 1),
            "md_core_min": round(md_s / 60, 1),
            "wall_min_on_2_cores_lower_bound": round((train_s + md_s) / 120, 1),
        },
    }
    print(json.dumps(out["projection"], indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
