"""Benchmark: MD replicas in one batched MACE evaluation per step vs one evaluation per replica.

Same small (untrained) MACE model, structure, seeds and protocol (ftbench.probes.md.run_replicas);
only the evaluator differs: MaceBatchEvaluator (all running replicas in one disjoint-union
graph) vs CalculatorEvaluator (MACECalculator called once per replica, as the old runner did).
Systems: an SN2-like 6-atom molecule and a 24-atom water box (the demo's small sizes). Rounds
alternate between the two so machine load hits both alike; the median ratio is reported.
Writes bench/out/bench_md_batch.json. Usage: python bench/bench_md_batch.py [--replicas 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from ftbench.runtime.provenance import write_json  # noqa: E402
from robustness_support import build_tiny_mace, water_box  # noqa: E402


def sn2_like() -> Atoms:
    """F- ... CH3Cl: six atoms, no cell (the demo's sn2 benchmark size)."""
    pos = [[0, 0, 0], [1.08, 0, 0.35], [-0.54, 0.94, 0.35], [-0.54, -0.94, 0.35], [0, 0, -1.8], [0, 0, 2.6]]
    return Atoms("CHHHClF", positions=np.array(pos, dtype=float))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "bench_md_batch.json"))
    args = parser.parse_args()

    import torch

    from ftbench.probes.calculators import load_calculator
    from ftbench.probes.md import CalculatorEvaluator, Criteria, MaceBatchEvaluator, run_replicas

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_md_batch_"))
    model = build_tiny_mace(work / "tiny.model", elements=("H", "C", "O", "F", "Cl"), pair_repulsion=True)
    calc = load_calculator(model)
    loose = Criteria(min_distance=0.1, max_force=1e6, max_temperature_factor=1e6)  # all replicas run to the end
    systems = {"sn2_like_6_atoms": sn2_like(), "water_24_atoms": water_box(2)}
    report = {"steps": args.steps, "replicas": args.replicas, "threads": args.threads, "systems": {}}
    for name, atoms in systems.items():
        speeds = {"batched": [], "sequential": []}
        for _ in range(args.rounds):
            for kind, evaluator in (("batched", MaceBatchEvaluator(calc)), ("sequential", CalculatorEvaluator(calc))):
                res = run_replicas(
                    atoms,
                    evaluator,
                    replicas=args.replicas,
                    seed=0,
                    steps=args.steps,
                    timestep_fs=0.5,
                    t_start=300,
                    t_end=300,
                    friction=0.02,
                    criteria=loose,
                )
                assert res["summary"]["survival_fraction"] == 1.0, res["summary"]
                speeds[kind].append(res["summary"]["steps_per_s"])
        ratios = [b / s for b, s in zip(speeds["batched"], speeds["sequential"])]
        report["systems"][name] = {
            "n_atoms": len(atoms),
            "batched_steps_per_s": statistics.median(speeds["batched"]),
            "sequential_steps_per_s": statistics.median(speeds["sequential"]),
            "speedup_median": statistics.median(ratios),
            "speedup_rounds": ratios,
        }
        print(
            f"{name}: {args.replicas} replicas, batched {statistics.median(speeds['batched']):.1f} steps/s, "
            f"sequential {statistics.median(speeds['sequential']):.1f} steps/s, "
            f"speedup x{statistics.median(ratios):.2f}"
        )
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
