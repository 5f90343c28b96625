"""MD stability test: Langevin NVT with a linear temperature ramp, several replicas per model.

A run fails at the first frame with a pair closer than `min_distance`, a non-finite force, a
force above `max_force`, or a temperature above `max_temperature_factor` times the ramp's
target. The failure is the result: the trajectory up to and including the failing frame is kept.
The checks reuse the forces the integrator already computed, so they cost one short-range
neighbour list per checked step.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units

from ftbench.calculators import add_model_arguments
from ftbench.errors import FtbenchError
from ftbench.geometry import min_distance_below

REASONS = ("stable", "close_contact", "nonfinite_force", "huge_force", "temperature", "calculator_error")


@dataclass
class Criteria:
    min_distance: float = 0.5  # A
    max_force: float = 100.0  # eV/A, on any atom
    max_temperature_factor: float = 3.0  # times the ramp's target temperature


def ramp_temperature(step: int, steps: int, t_start: float, t_end: float) -> float:
    """Target temperature (K) at `step` of a linear ramp over `steps` steps."""
    if steps <= 0:
        return float(t_start)
    return float(t_start + (t_end - t_start) * min(step, steps) / steps)


def check_frame(atoms: Atoms, forces: np.ndarray, target_temperature: float,
                criteria: Criteria) -> tuple[str, str] | None:
    """(reason, detail) for the first failed criterion, or None if the frame is sound."""
    if not np.isfinite(forces).all():
        return "nonfinite_force", "non-finite force"
    fmax2 = float(np.einsum("ij,ij->i", forces, forces).max()) if len(forces) else 0.0
    if fmax2 > criteria.max_force**2:
        return "huge_force", f"max force {math.sqrt(fmax2):.4g} eV/A > {criteria.max_force:g}"
    if not np.isfinite(atoms.positions).all():
        return "nonfinite_force", "non-finite positions"
    dmin = min_distance_below(atoms, criteria.min_distance)
    if dmin is not None:
        return "close_contact", f"pair distance {dmin:.4g} A < {criteria.min_distance:g}"
    temperature = atoms.get_temperature()
    if not np.isfinite(temperature) or temperature > criteria.max_temperature_factor * target_temperature:
        return "temperature", (
            f"temperature {temperature:.4g} K > {criteria.max_temperature_factor:g} x target {target_temperature:.4g} K"
        )
    return None


def _snapshot(atoms: Atoms, forces: np.ndarray | None, step: int, time_ps: float, target: float) -> Atoms:
    """A copy carrying the already computed energy/forces, so writing it triggers no calculation."""
    from ase.calculators.singlepoint import SinglePointCalculator

    frame = atoms.copy()
    frame.info.update(step=step, time_ps=time_ps, target_temperature=target)
    results = {}
    calc = atoms.calc
    energy = getattr(calc, "results", {}).get("energy") if calc is not None else None
    if energy is not None:
        results["energy"] = float(np.asarray(energy).reshape(-1)[0])
    if forces is not None:
        results["forces"] = np.array(forces, dtype=float)
    if results:
        frame.calc = SinglePointCalculator(frame, **results)
    return frame


def run_replica(
    atoms: Atoms,
    calc,
    *,
    steps: int,
    timestep_fs: float = 0.5,
    t_start: float = 300.0,
    t_end: float = 1000.0,
    friction: float = 0.01,
    seed: int = 0,
    save_every: int = 10,
    criteria: Criteria | None = None,
    check_every: int = 1,
    trajectory: str | Path | None = None,
) -> dict:
    """One Langevin run from `atoms` (not modified). `friction` is in 1/fs.

    Returns steps completed, time to failure (ps, None if stable), the reason and detail,
    and the speed of the loop (steps/s, trajectory writing included).
    """
    from ase.io import write
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    criteria = criteria or Criteria()
    if steps < 0 or save_every < 1 or check_every < 1:
        raise FtbenchError("--steps must be >= 0, --save-every and --check-every >= 1")
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=t_start, rng=rng)  # ASE 3.29 name of MaxwellBoltzmannDistribution
    Stationary(atoms)
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=t_start, friction=friction / units.fs,
                   fixcm=False, rng=rng)
    dt_ps = timestep_fs / 1000.0

    handle = None
    if trajectory is not None:
        Path(trajectory).parent.mkdir(parents=True, exist_ok=True)
        handle = open(trajectory, "w")
    n_frames = 0

    def save(forces, step):
        nonlocal n_frames
        if handle is not None:
            target = ramp_temperature(step, steps, t_start, t_end)
            write(handle, _snapshot(atoms, forces, step, round(step * dt_ps, 12), target), format="extxyz")
            handle.flush()
            n_frames += 1

    reason, detail, step = "stable", "", 0
    forces = None
    try:
        try:
            forces = atoms.get_forces(md=True)
            failure = check_frame(atoms, forces, t_start, criteria)
        except Exception as err:  # a calculator that throws on a bad geometry is a failure too
            failure = ("calculator_error", f"{type(err).__name__}: {err}")
        save(forces, 0)
        start = time.perf_counter()
        while failure is None and step < steps:
            target = ramp_temperature(step + 1, steps, t_start, t_end)
            if t_end != t_start:
                dyn.set_temperature(temperature_K=target)
            try:
                forces = dyn.step(forces)
            except Exception as err:
                failure = ("calculator_error", f"{type(err).__name__}: {err}")
                forces = None
            step += 1
            dyn.nsteps += 1
            if failure is None and (step % check_every == 0 or step == steps):
                failure = check_frame(atoms, forces, target, criteria)
            if failure is not None or step % save_every == 0 or step == steps:
                save(forces, step)
        elapsed = time.perf_counter() - start
    finally:
        if handle is not None:
            handle.close()
    if failure is not None:
        reason, detail = failure
    return {
        "seed": seed,
        "steps_requested": steps,
        "steps_completed": step,
        "time_ps": round(step * dt_ps, 12),
        "time_to_failure_ps": None if reason == "stable" else round(step * dt_ps, 12),
        "reason": reason,
        "detail": detail,
        "final_temperature_K": _finite(atoms.get_temperature()),
        "steps_per_s": step / elapsed if step and elapsed > 0 else None,
        "frames_saved": n_frames,
        "trajectory": None if trajectory is None else str(trajectory),
    }


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def summarise(replicas: list[dict]) -> dict:
    failed = [r for r in replicas if r["reason"] != "stable"]
    speeds = [r["steps_per_s"] for r in replicas if r["steps_per_s"]]
    return {
        "n_replicas": len(replicas),
        "survival_fraction": (len(replicas) - len(failed)) / len(replicas) if replicas else None,
        "n_failed": len(failed),
        "reasons": {k: sum(r["reason"] == k for r in replicas) for k in REASONS if any(r["reason"] == k for r in replicas)},
        "mean_time_ps": float(np.mean([r["time_ps"] for r in replicas])) if replicas else None,
        "mean_time_to_failure_ps": float(np.mean([r["time_to_failure_ps"] for r in failed])) if failed else None,
        "mean_steps_per_s": float(np.mean(speeds)) if speeds else None,
    }


def run_replicas(atoms: Atoms, calc, *, replicas: int = 3, seed: int = 0, out_dir: str | Path | None = None,
                 **kwargs) -> dict:
    """`replicas` independent runs (seeds seed, seed+1, ...); trajectories go to out_dir/replica_{i}.xyz."""
    if replicas < 1:
        raise FtbenchError("--replicas must be >= 1")
    results = []
    for i in range(replicas):
        traj = None if out_dir is None else Path(out_dir) / f"replica_{i}.xyz"
        result = run_replica(atoms, calc, seed=seed + i, trajectory=traj, **kwargs)
        results.append({"replica": i, **result})
    return {"replicas": results, "summary": summarise(results)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--structure", required=True, help="starting structure (any ase.io format)")
    parser.add_argument("--index", type=int, default=0, help="frame of --structure to start from")
    parser.add_argument("--out", required=True, help="output folder: result.json, replica_{i}.xyz")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--timestep-fs", type=float, default=0.5)
    parser.add_argument("--t-start", type=float, default=300.0, help="ramp start temperature (K)")
    parser.add_argument("--t-end", type=float, default=1000.0, help="ramp end temperature (K)")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction (1/fs)")
    parser.add_argument("--save-every", type=int, default=10, help="write a frame every k steps")
    parser.add_argument("--check-every", type=int, default=1, help="test the failure criteria every k steps")
    parser.add_argument("--min-distance", type=float, default=0.5, help="close-contact threshold (A)")
    parser.add_argument("--max-force", type=float, default=100.0, help="largest allowed force (eV/A)")
    parser.add_argument("--max-temperature-factor", type=float, default=3.0,
                        help="fail when T exceeds this times the ramp target")
    parser.add_argument("--seed", type=int, default=0, help="seed of replica 0; replica i uses seed + i")


def run(args: argparse.Namespace) -> int:
    from ase.io import read

    from ftbench.calculators import calculator_for

    path = Path(args.structure)
    if not path.is_file():
        raise FtbenchError(f"--structure {path} does not exist")
    try:
        atoms = read(path, index=args.index)
    except (IndexError, StopIteration):
        raise FtbenchError(f"--index {args.index} is out of range for {path}") from None
    calc = calculator_for(args, atoms.get_chemical_symbols(), f"--structure {path}")
    criteria = Criteria(args.min_distance, args.max_force, args.max_temperature_factor)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run_replicas(
        atoms, calc, replicas=args.replicas, seed=args.seed, out_dir=out,
        steps=args.steps, timestep_fs=args.timestep_fs, t_start=args.t_start, t_end=args.t_end,
        friction=args.friction, save_every=args.save_every, check_every=args.check_every, criteria=criteria,
    )
    for r in result["replicas"]:
        r["trajectory"] = Path(r["trajectory"]).name
    options = {k: v for k, v in vars(args).items() if k not in ("command",)}
    document = {"options": options, "n_atoms": len(atoms), "criteria": asdict(criteria), **result}
    (out / "result.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    s = result["summary"]
    print(f"survival {s['survival_fraction']:.2f} over {s['n_replicas']} replicas; reasons {s['reasons']}")
    return 0
