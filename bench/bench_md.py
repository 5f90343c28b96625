"""Benchmark: ftbench MD stability runner vs a bare ase.md.langevin.Langevin loop, same MACECalculator.

Both runs use the same small (untrained) MACE model, structure, timestep, friction and seed; the
runner also ramps the temperature, checks the failure criteria every step and writes a frame every
--save-every steps. Rounds alternate between the two so machine load hits both alike; the median
ratio is reported. Writes bench/out/bench_md.json. Usage: python bench/bench_md.py [--steps 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import units

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from ftbench.runtime.provenance import write_json  # noqa: E402
from robustness_support import build_tiny_mace, water_box  # noqa: E402


class CountingCalls:
    """Counts calculate() calls of a calculator, to show no step recomputes anything."""

    def __init__(self, calc):
        self.calls = 0
        original = calc.calculate

        def calculate(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        calc.calculate = calculate


def bare_loop(atoms, calc, steps, timestep_fs, temperature, friction, seed):
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)  # ASE 3.29 name of MaxwellBoltzmannDistribution
    Stationary(atoms)
    dyn = Langevin(
        atoms, timestep_fs * units.fs, temperature_K=temperature, friction=friction / units.fs, fixcm=False, rng=rng
    )
    atoms.get_forces()  # the first evaluation is outside the timed loop, as in the runner
    t = time.perf_counter()
    dyn.run(steps)
    return steps / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-side", type=int, default=3, help="water box of n^3 molecules")
    parser.add_argument("--save-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "bench_md.json"))
    args = parser.parse_args()

    import torch

    from ftbench.probes.calculators import load_calculator
    from ftbench.probes.md import Criteria, run_replica

    torch.set_num_threads(args.threads)  # fewer threads: less jitter on a shared machine

    work = Path(tempfile.mkdtemp(prefix="bench_md_"))
    model = build_tiny_mace(work / "tiny.model", elements=("H", "O"), pair_repulsion=True)
    calc = load_calculator(model)
    counter = CountingCalls(calc)
    atoms = water_box(args.n_side)
    settings = dict(timestep_fs=0.5, friction=0.01)

    # every check still runs each step; the limits only keep a random model's run full length
    criteria = Criteria(min_distance=0.3, max_force=1e4, max_temperature_factor=1e3)
    bare_loop(atoms, calc, 10, temperature=300, seed=0, **settings)  # warm-up (torch, caches)
    bare, runner, runner_wall, calls = [], [], [], {}
    for k in range(args.rounds):
        counter.calls = 0
        bare.append(bare_loop(atoms, calc, args.steps, temperature=300, seed=k, **settings))
        calls["bare"] = counter.calls / args.steps
        counter.calls = 0
        t = time.perf_counter()
        res = run_replica(
            atoms,
            calc,
            steps=args.steps,
            t_start=300,
            t_end=1000,
            seed=k,
            save_every=args.save_every,
            check_every=1,
            trajectory=work / f"r{k}.xyz",
            criteria=criteria,
            **settings,
        )
        runner_wall.append(args.steps / (time.perf_counter() - t))
        runner.append(res["steps_per_s"])
        calls["runner"] = counter.calls / max(res["steps_completed"], 1)
        if res["reason"] != "stable":
            print(f"note: round {k} ended early ({res['reason']}: {res['detail']})")

    ratios = [r / b for r, b in zip(runner, bare)]

    # the runner's own per-step work, timed in isolation (immune to load swings between rounds)
    from ase.io import write
    from ase.md.langevin import Langevin

    from ftbench.probes.md import _snapshot, check_frame

    probe = atoms.copy()
    probe.calc = calc
    forces = probe.get_forces()
    dyn = Langevin(probe, 0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs, fixcm=False)
    n = 300
    t = time.perf_counter()
    for _ in range(n):
        check_frame(probe, forces, 300.0, criteria)
    t_check = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for k in range(n):
        dyn.set_temperature(temperature_K=300 + k)
    t_ramp = (time.perf_counter() - t) / n
    with open(work / "probe.xyz", "w") as fh:
        t = time.perf_counter()
        for k in range(n // 10):
            write(fh, _snapshot(probe, forces, k, 0.0, 300.0), format="extxyz")
            fh.flush()
        t_write = (time.perf_counter() - t) / (n // 10)
    t_step = 1.0 / statistics.median(bare)
    per_step = t_check + t_ramp + t_write / args.save_every
    result = {
        "model": "untrained ScaleShiftMACE + ZBL pair repulsion, 1 interaction, 8x0e, r_max 4 A, float64",
        "torch_threads": args.threads,
        "atoms": len(atoms),
        "steps": args.steps,
        "rounds": args.rounds,
        "save_every": args.save_every,
        "check_every": 1,
        "bare_steps_per_s": bare,
        "runner_steps_per_s": runner,
        "runner_steps_per_s_including_setup": runner_wall,
        "ratio_per_round": ratios,
        "ratio_median": statistics.median(ratios),
        "calculator_calls_per_step": calls,
        "runner_extra_ms_per_step": {
            "checks": 1e3 * t_check,
            "ramp": 1e3 * t_ramp,
            "frame_write_amortised": 1e3 * t_write / args.save_every,
        },
        "bare_ms_per_step_median": 1e3 * t_step,
        "ratio_from_isolated_costs": t_step / (t_step + per_step),
        "target": 0.95,
    }
    print(f"{len(atoms)} atoms, {args.steps} steps x {args.rounds} rounds, frame every {args.save_every} steps")
    print("bare Langevin   steps/s: " + ", ".join(f"{x:.1f}" for x in bare))
    print(
        "ftbench runner  steps/s: "
        + ", ".join(f"{x:.1f}" for x in runner)
        + "  (with setup: "
        + ", ".join(f"{x:.1f}" for x in runner_wall)
        + ")"
    )
    print(
        f"ratio runner/bare: median {result['ratio_median']:.3f} (rounds "
        + ", ".join(f"{x:.3f}" for x in ratios)
        + "; target >= 0.95)"
    )
    print(f"calculator calls per step: bare {calls['bare']:.3f}, runner {calls['runner']:.3f}")
    print(
        f"runner's extra work per step: checks {1e3 * t_check:.3f} ms, ramp {1e3 * t_ramp:.3f} ms, "
        f"frame writing {1e3 * t_write / args.save_every:.3f} ms (amortised) vs a {1e3 * t_step:.1f} ms step "
        f"-> expected ratio {result['ratio_from_isolated_costs']:.3f}"
    )
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
