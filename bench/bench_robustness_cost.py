"""Benchmark: cost of the robustness protocol per model, demo settings vs paper settings.

Measures, with a small (untrained) MACE model of the demo's size on this machine's device, the
time of one batched MD step (all replicas), one FIRE step of an RSS relaxation and one dimer
point, then multiplies by the step counts each config's `robustness` block asks for (upper
bound: every RSS relaxation uses all its FIRE steps, every replica survives). With --full it
also times one real `ftbench robustness` run with the demo settings, as a check of the estimate.
Writes bench/out/bench_robustness_cost.json.

Without a GPU, --reference-gpu estimates the paper settings' cost on one GPU from published
per-call times of MACE-MP-0 medium (no measurement here; see GPU_REFERENCE), and counts the models
the paper grid sends to robustness.

Usage: python bench/bench_robustness_cost.py [--device cuda] [--full] [--reference-gpu --atoms 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from ftbench.core.config import load_config, robustness_settings  # noqa: E402
from ftbench.runtime.provenance import write_json  # noqa: E402
from robustness_support import build_tiny_mace, water_box  # noqa: E402


def per_step_times(calc, atoms, replicas: int, prod_replicas: int, repeats: int = 20) -> dict:
    from ase.optimize import FIRE

    from ftbench.probes.dimers import dimer_curve
    from ftbench.probes.md import MaceBatchEvaluator

    evaluate = MaceBatchEvaluator(calc)
    out = {}
    for name, n in (("md_step_s", replicas), ("production_step_s", prod_replicas)):
        batch = [atoms.copy() for _ in range(n)]
        evaluate(batch)
        t = time.perf_counter()
        for _ in range(repeats):
            evaluate(batch)
        out[name] = (time.perf_counter() - t) / repeats
    work = atoms.copy()
    work.rattle(0.05, seed=1)
    work.calc = calc
    opt = FIRE(work, logfile=None)
    t = time.perf_counter()
    opt.run(fmax=1e-9, steps=repeats)
    out["rss_fire_step_s"] = (time.perf_counter() - t) / max(1, opt.nsteps)
    r = np.linspace(0.3, 6.0, repeats)
    t = time.perf_counter()
    dimer_curve(calc, "H", "O", r)
    out["dimer_point_s"] = (time.perf_counter() - t) / repeats
    return out


# Published single-GPU times of one ASE call (energy, forces, stress) of MACE-MP-0 medium, float32,
# on diamond Si: github.com/mitkotak/matbench-speed data/timing_data_H100_Si_5.43.csv (median ms;
# H100 80GB HBM3; its benchmark script enables cuEquivariance). Not peer reviewed; its A100 table is
# ~4x slower, so take these as an order of magnitude. Below 1,000 atoms no point is published: the
# 1,000-atom time is used as a floor (an upper bound for the paper's small systems).
GPU_REFERENCE = {
    "source": "github.com/mitkotak/matbench-speed data/timing_data_H100_Si_5.43.csv",
    "gpu": "H100 80GB HBM3",
    "model": "MACE-MP-0 medium, float32",
    "ms_per_call": {1000: 54.3, 8000: 273.0, 64000: 1699.0},
}


def reference_gpu_times(n_atoms: int, replicas: int, prod_replicas: int) -> dict:
    """Per-step times (s) from GPU_REFERENCE: one call per batched step, floor at the smallest point."""
    pts = sorted(GPU_REFERENCE["ms_per_call"].items())

    def call_s(atoms: int) -> float:
        return float(np.interp(atoms, [a for a, _ in pts], [t for _, t in pts])) / 1000

    return {
        "md_step_s": call_s(n_atoms * replicas),
        "production_step_s": call_s(n_atoms * prod_replicas),
        "rss_fire_step_s": call_s(n_atoms),
        "dimer_point_s": call_s(2),
    }


def robustness_models(cfg: dict) -> int:
    """How many models the grid sends to robustness (the workflow's own selection)."""
    from ftbench.core.grid import expand_grid, robustness_runs, untouched_runs

    return len(robustness_runs(cfg, expand_grid(cfg) + untouched_runs(cfg)))


def estimate(settings: dict, times: dict, n_elements: int) -> dict:
    md, prod, rss, dim = settings["md"], settings["production"], settings["rss"], settings["dimers"]
    parts = {
        "md_ramp_s": (md.get("thermalise_steps", 0) + md["steps"]) * times["md_step_s"],
        "production_s": (prod.get("thermalise_steps", 0) + prod["steps"]) * times["production_step_s"],
        "rss_s": rss["n_structures"] * rss["max_steps"] * times["rss_fire_step_s"],
        "dimers_s": n_elements * (n_elements + 1) // 2 * dim["n_points"] * times["dimer_point_s"],
    }
    parts["total_s"] = sum(parts.values())
    return parts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="also time one real demo-settings robustness run")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "bench_robustness_cost.json"))
    parser.add_argument("--reference-gpu", action="store_true", help="estimate from GPU_REFERENCE, measure nothing")
    parser.add_argument("--atoms", type=int, default=100, help="atoms per structure (--reference-gpu)")
    parser.add_argument("--elements", type=int, default=3, help="elements per benchmark (--reference-gpu dimers)")
    args = parser.parse_args()
    if args.reference_gpu:
        reference_gpu(args)
        return

    import torch

    from ftbench.probes.calculators import load_calculator

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_rob_"))
    model = build_tiny_mace(work / "tiny.model", elements=("H", "O"), pair_repulsion=True)
    calc = load_calculator(model, device=args.device)
    atoms = water_box(2)  # 24 atoms: the demo water benchmark's size
    report = {"device": args.device, "threads": args.threads, "n_atoms": len(atoms), "configs": {}}
    for name, files in (("demo", ["config/config.yaml"]), ("paper", ["config/config.yaml", "config/paper.yaml"])):
        cfg = load_config([ROOT / f for f in files])
        settings = robustness_settings(cfg, cfg["benchmarks"][0])
        times = per_step_times(calc, atoms, settings["md"]["replicas"], settings["production"]["replicas"])
        est = estimate(settings, times, n_elements=2)
        report["configs"][name] = {
            "per_step": times,
            "estimate": est,
            "ramp_ps": settings["md"]["steps"] * settings["md"]["timestep_fs"] / 1000,
            "replicas": settings["md"]["replicas"],
        }
        print(
            f"{name}: ramp {report['configs'][name]['ramp_ps']:g} ps x {settings['md']['replicas']} replicas; "
            + ", ".join(f"{k} {v:.1f}" for k, v in est.items())
            + f" (device {args.device})"
        )
    if args.full:
        from ase.io import write

        from ftbench.cli import main as cli

        cfg = load_config()
        settings = robustness_settings(cfg, cfg["benchmarks"][0])
        write(work / "start.xyz", atoms)
        t = time.perf_counter()
        cli(
            [
                "robustness",
                "--model",
                str(model),
                "--structure",
                str(work / "start.xyz"),
                "--settings",
                json.dumps(settings),
                "--device",
                args.device,
                "--out-dir",
                str(work / "out"),
            ]
        )
        report["demo_full_run_s"] = time.perf_counter() - t
        print(
            f"demo settings, one real robustness run: {report['demo_full_run_s']:.1f} s "
            f"(estimate {report['configs']['demo']['estimate']['total_s']:.1f} s)"
        )
    write_json(args.out, report)
    print(f"wrote {args.out}")


def reference_gpu(args) -> None:
    cfg = load_config([ROOT / "config/config.yaml", ROOT / "config/paper.yaml"])
    settings = robustness_settings(cfg, cfg["benchmarks"][0])
    md, prod = settings["md"], settings["production"]
    times = reference_gpu_times(args.atoms, md["replicas"], prod["replicas"])
    est = estimate(settings, times, n_elements=args.elements)
    models = robustness_models(cfg)
    report = {
        "mode": "reference-gpu (no measurement)",
        "reference": GPU_REFERENCE,
        "atoms_per_structure": args.atoms,
        "elements": args.elements,
        "paper_settings": {k: settings[k] for k in ("md", "production", "rss", "dimers")},
        "per_step": times,
        "per_model": est,
        "models_in_paper_grid": models,
        "paper_grid_gpu_hours": est["total_s"] * models / 3600,
    }
    print(
        f"paper settings, {args.atoms} atoms/structure, one {GPU_REFERENCE['gpu']} ({GPU_REFERENCE['model']}): "
        + ", ".join(f"{k} {v:.0f}" for k, v in est.items())
        + f" per model; {models} models -> {report['paper_grid_gpu_hours']:.0f} GPU-hours"
    )
    out = Path(args.out).with_name("bench_robustness_cost_reference_gpu.json")
    write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
