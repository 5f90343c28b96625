"""MD stability test: Langevin NVT with a linear temperature ramp, several replicas per model.

All replicas are advanced together (one batched model evaluation per step).

A run fails at the first frame with a pair closer than `min_distance`, a non-finite force, a
force above `max_force`, or a temperature above `max_temperature_factor` times the ramp's
target. The failure is the result: the trajectory up to and including the failing frame is kept.
The checks reuse the forces the integrator already computed, so they cost one short-range
neighbour list per checked step.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units

from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import min_distance_below
from ftbench.probes.calculators import add_model_arguments
from ftbench.runtime.provenance import finite_or_none, write_json

REASONS = ("stable", "close_contact", "nonfinite_force", "huge_force", "temperature", "calculator_error")


@dataclass
class Criteria:
    """Failure criteria of an MD frame (see check_frame)."""

    min_distance: float = 0.5  # A
    max_force: float = 100.0  # eV/A, on any atom
    max_temperature_factor: float = 3.0  # times the ramp's target temperature


def ramp_temperature(step: int, steps: int, t_start: float, t_end: float) -> float:
    """Target temperature (K) at `step` of a linear ramp over `steps` steps."""
    if steps <= 0:
        return float(t_start)
    return float(t_start + (t_end - t_start) * min(step, steps) / steps)


def check_frame(
    atoms: Atoms, forces: np.ndarray, target_temperature: float, criteria: Criteria
) -> tuple[str, str] | None:
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


def _snapshot(
    atoms: Atoms, forces: np.ndarray | None, step: int, time_ps: float, target: float, energy: float | None = None
) -> Atoms:
    """Return a copy carrying the already computed energy/forces, so writing it triggers no calculation."""
    from ase.calculators.singlepoint import SinglePointCalculator

    frame = atoms.copy()
    frame.calc = None
    frame.info.update(step=step, time_ps=time_ps, target_temperature=target)
    results = {}
    if energy is not None:
        results["energy"] = float(np.asarray(energy).reshape(-1)[0])
    if forces is not None:
        results["forces"] = np.array(forces, dtype=float)
    if results:
        frame.calc = SinglePointCalculator(frame, **results)
    return frame


class CalculatorEvaluator:
    """Energies and forces of several structures, one ASE calculator call each (any calculator)."""

    batched = False

    def __init__(self, calc):
        self.calc = calc

    def __call__(self, structures: list[Atoms]) -> list:
        """Return (energy, forces) of each structure, or the exception its calculation raised."""
        out = []
        for atoms in structures:
            work = atoms.copy()
            work.calc = self.calc
            try:
                out.append((float(work.get_potential_energy()), np.array(work.get_forces(), dtype=float)))
            except Exception as err:  # a calculator that throws on a bad geometry: that replica fails
                out.append(err)
        return out


class MaceBatchEvaluator:
    """Energies and forces of several structures in ONE model evaluation.

    mace's own AtomicData graphs of every replica are collated into a disjoint-union batch (mace's
    torch_geometric), exactly as MACECalculator builds its one-structure batch, so the forces are the
    calculator's.
    """

    batched = True

    def __init__(self, calc):
        self.calc = calc
        self.model = calc.models[0]

    def _forward(self, structures: list[Atoms]) -> list:
        from mace import data
        from mace.tools import torch_geometric, torch_tools

        calc = self.calc
        with torch_tools.default_dtype(calc.default_dtype):
            graphs = [
                data.AtomicData.from_config(
                    data.config_from_atoms(a, head_name=calc.head),
                    z_table=calc.z_table,
                    cutoff=calc.r_max,
                    heads=calc.available_heads,
                )
                for a in structures
            ]
            batch = torch_geometric.batch.Batch.from_data_list(graphs).to(calc.device)
            out = self.model(batch.to_dict(), compute_stress=False, training=False)
        energy = torch_tools.to_numpy(out["energy"]).reshape(-1)
        forces = torch_tools.to_numpy(out["forces"])
        ptr = torch_tools.to_numpy(batch.ptr)
        return [(float(energy[i]), np.array(forces[ptr[i] : ptr[i + 1]], dtype=float)) for i in range(len(structures))]

    def __call__(self, structures: list[Atoms]) -> list:
        """Return (energy, forces) of each structure, or the exception that replica raised."""
        try:
            return self._forward(structures)
        except Exception as err:
            if len(structures) == 1:
                return [err]
            # one bad replica must not end the others: find it by evaluating each on its own
            return [self(structures[i : i + 1])[0] for i in range(len(structures))]


def evaluator_for(calc):
    """Return the batched evaluator for a MACE calculator, the sequential one for any other calculator."""
    if hasattr(calc, "models") and hasattr(calc, "z_table") and hasattr(calc, "available_heads"):
        return MaceBatchEvaluator(calc)
    return CalculatorEvaluator(calc)


@dataclass
class _Replica:
    index: int
    seed: int
    atoms: Atoms
    rng: np.random.Generator
    masses: np.ndarray
    forces: np.ndarray | None = None
    energy: float | None = None
    step: int = 0  # steps of the timed segment (ramp or production) done
    integrated: int = 0  # every step done, thermalisation included
    phase: str = "thermalise"
    failure: tuple[str, str] | None = None
    handle: object = None
    frames: int = 0
    trajectory: str | None = None


def _save(rep: _Replica, steps: int, dt_ps: float, t_start: float, t_end: float) -> None:
    if rep.handle is None:
        return
    from ase.io import write

    frame = _snapshot(
        rep.atoms,
        rep.forces,
        rep.step,
        round(rep.step * dt_ps, 12),
        ramp_temperature(rep.step, steps, t_start, t_end),
        rep.energy,
    )
    frame.info["phase"] = rep.phase
    write(rep.handle, frame, format="extxyz")
    rep.handle.flush()
    rep.frames += 1


def run_replicas(
    atoms: Atoms,
    calc,
    *,
    replicas: int = 3,
    seed: int = 0,
    out_dir: str | Path | None = None,
    steps: int,
    timestep_fs: float = 0.5,
    t_start: float = 300.0,
    t_end: float = 1000.0,
    friction: float = 0.01,
    thermalise_steps: int = 0,
    save_every: int = 10,
    criteria: Criteria | None = None,
    check_every: int = 1,
    prefix: str = "replica",
    trajectories: list | None = None,
) -> dict:
    """`replicas` Langevin runs from the same `atoms` (not modified), seeds seed, seed+1, ...

    Each replica draws Maxwell-Boltzmann velocities at t_start, is thermalised there for
    `thermalise_steps`, then runs `steps` steps of a linear ramp t_start -> t_end. All replicas
    still running are evaluated together, one model evaluation per step (`calc`: a MACE
    calculator, batched; any other ASE calculator or evaluator, one call per replica). A replica
    stops at its first failed criterion; the others go on. Integrator: BAOAB Langevin
    (Leimkuhler-Matthews), `friction` in 1/fs. Trajectories: out_dir/{prefix}_{i}.xyz, a frame
    every `save_every` steps, the failing frame and the last frame always.
    """
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    criteria = criteria or Criteria()
    if replicas < 1:
        raise FtbenchError("--replicas must be >= 1")
    if steps < 0 or thermalise_steps < 0 or save_every < 1 or check_every < 1:
        raise FtbenchError("--steps and --thermalise-steps must be >= 0, --save-every and --check-every >= 1")
    evaluate = calc if isinstance(calc, (CalculatorEvaluator, MaceBatchEvaluator)) else evaluator_for(calc)
    dt = timestep_fs * units.fs
    dt_ps = timestep_fs / 1000.0
    gamma = friction / units.fs
    c1 = math.exp(-gamma * dt)
    reps = []
    for i in range(replicas):
        a = atoms.copy()
        a.calc = None
        rng = np.random.default_rng(seed + i)
        MaxwellBoltzmannDistribution(a, temperature_K=t_start, rng=rng)
        Stationary(a)
        traj = None
        if trajectories is not None:
            traj = trajectories[i]
        elif out_dir is not None:
            traj = Path(out_dir) / f"{prefix}_{i}.xyz"
        rep = _Replica(i, seed + i, a, rng, a.get_masses()[:, None], trajectory=None if traj is None else str(traj))
        if traj is not None:
            Path(traj).parent.mkdir(parents=True, exist_ok=True)
            rep.handle = open(traj, "w")
        rep.phase = "thermalise" if thermalise_steps else "ramp"
        reps.append(rep)

    def evaluate_all(active):
        results = evaluate([r.atoms for r in active])
        for r, res in zip(active, results):
            if isinstance(res, Exception):
                r.failure, r.forces, r.energy = ("calculator_error", f"{type(res).__name__}: {res}"), None, None
            else:
                r.energy, r.forces = res

    total = thermalise_steps + steps
    start = time.perf_counter()
    evaluations = 0
    try:
        evaluate_all(reps)
        evaluations += 1
        for r in reps:
            if r.failure is None:
                r.failure = check_frame(r.atoms, r.forces, t_start, criteria)
            if r.failure is not None or not thermalise_steps:
                _save(r, steps, dt_ps, t_start, t_end)
        for k in range(1, total + 1):
            active = [r for r in reps if r.failure is None]
            if not active:
                break
            ramp_step = k - thermalise_steps  # <= 0 while thermalising
            target = ramp_temperature(max(ramp_step, 0), steps, t_start, t_end)
            kT = units.kB * target
            for r in active:
                v = r.atoms.get_velocities()
                x = r.atoms.get_positions()
                v += 0.5 * dt * r.forces / r.masses
                x += 0.5 * dt * v
                v = c1 * v + np.sqrt((1.0 - c1 * c1) * kT / r.masses) * r.rng.standard_normal(v.shape)
                x += 0.5 * dt * v
                r.atoms.set_positions(x)
                r.atoms.set_velocities(v)
            evaluate_all(active)
            evaluations += 1
            for r in active:
                if r.failure is None:
                    r.atoms.set_velocities(r.atoms.get_velocities() + 0.5 * dt * r.forces / r.masses)
                r.integrated = k
                if ramp_step >= 0:  # thermalisation over: the clock runs (step 0: the ramp's start)
                    r.phase, r.step = "ramp", ramp_step
                if r.failure is None and (k % check_every == 0 or k == total):
                    r.failure = check_frame(r.atoms, r.forces, target, criteria)
                if r.failure is not None or (ramp_step >= 0 and (r.step % save_every == 0 or k == total)):
                    _save(r, steps, dt_ps, t_start, t_end)
    finally:
        for r in reps:
            if r.handle is not None:
                r.handle.close()
    elapsed = time.perf_counter() - start
    results = []
    for r in reps:
        reason, detail = r.failure or ("stable", "")
        results.append(
            {
                "replica": r.index,
                "seed": r.seed,
                "steps_requested": steps,
                "steps_completed": r.step,
                "thermalise_steps": thermalise_steps,
                "phase": r.phase,
                "integrated_steps": r.integrated,
                "time_ps": round(r.step * dt_ps, 12),
                "time_to_failure_ps": None if reason == "stable" else round(r.step * dt_ps, 12),
                "temperature_target_K": ramp_temperature(r.step, steps, t_start, t_end),
                "reason": reason,
                "detail": detail,
                "final_temperature_K": finite_or_none(r.atoms.get_temperature()),
                "frames_saved": r.frames,
                "trajectory": r.trajectory,
            }
        )
    speed = {
        "evaluations": evaluations,
        "elapsed_s": elapsed,
        "steps_per_s": (evaluations - 1) / elapsed if evaluations > 1 and elapsed > 0 else None,
        "batched": bool(getattr(evaluate, "batched", False)),
    }
    return {"replicas": results, "summary": summarise(results, speed)}


def run_replica(atoms: Atoms, calc, *, seed: int = 0, trajectory: str | Path | None = None, **kwargs) -> dict:
    """One replica of run_replicas (same protocol); its record, with the run's speed."""
    result = run_replicas(
        atoms, calc, replicas=1, seed=seed, trajectories=None if trajectory is None else [trajectory], **kwargs
    )
    return {**result["replicas"][0], "steps_per_s": result["summary"]["steps_per_s"]}


def summarise(replicas: list[dict], speed: dict | None = None) -> dict:
    """Return the summary of the replicas: survival fraction, failure reasons, mean times and speed."""
    failed = [r for r in replicas if r["reason"] != "stable"]
    speed = speed or {}
    return {
        "n_replicas": len(replicas),
        "survival_fraction": (len(replicas) - len(failed)) / len(replicas) if replicas else None,
        "n_failed": len(failed),
        "reasons": {
            k: sum(r["reason"] == k for r in replicas) for k in REASONS if any(r["reason"] == k for r in replicas)
        },
        "mean_time_ps": float(np.mean([r["time_ps"] for r in replicas])) if replicas else None,
        "mean_time_to_failure_ps": float(np.mean([r["time_to_failure_ps"] for r in failed])) if failed else None,
        "steps_per_s": speed.get("steps_per_s"),
        "batched": speed.get("batched"),
    }


def _criteria(s: dict) -> Criteria:
    return Criteria(s["min_distance"], s["max_force"], s["max_temperature_factor"])


def ramp_probe(ctx) -> dict:
    """Probe `md` (ftbench.probes.registry): the temperature ramp from the common start, replicas batched.

    A result built on calculator errors (the model cannot evaluate the start, or every replica
    hit one) is a failed evaluation, not an MD failure: ProbeFailure.
    """
    from ftbench.probes.registry import ProbeFailure

    s = ctx.settings["md"]
    md_dir = ctx.out_dir / "md"
    md_dir.mkdir(parents=True, exist_ok=True)
    result = run_replicas(
        ctx.structure,
        ctx.evaluator,
        replicas=s["replicas"],
        seed=s.get("seed", 0),
        out_dir=md_dir,
        steps=s["steps"],
        timestep_fs=s["timestep_fs"],
        t_start=s["t_start"],
        t_end=s["t_end"],
        friction=s["friction"],
        thermalise_steps=s.get("thermalise_steps", 0),
        save_every=s["save_every"],
        criteria=_criteria(s),
    )
    errors = [r for r in result["replicas"] if r["reason"] == "calculator_error"]
    at_start = [r for r in errors if r["integrated_steps"] == 0]
    if at_start or (errors and len(errors) == len(result["replicas"])):
        ctx.results["md"] = result  # kept in robustness.json beside the failure
        raise ProbeFailure(f"calculator error during MD: {errors[0]['detail']}")
    return {"md": result}


def production_probe(ctx) -> dict:
    """Probe `production`: NVT at one temperature from the common start, when the ramp survival allows.

    Its frames are the RDF's (probe `rdf`); below `production.min_survival` it records why it did not run.
    """
    s, p = ctx.settings["md"], ctx.settings["production"]
    survival = ctx.results["md"]["summary"]["survival_fraction"]
    out = {"run": survival >= p["min_survival"], "temperature_K": p["temperature"]}
    if not out["run"]:
        out["reason"] = (
            f"ramp survival {survival:.2f} below robustness.production.min_survival {p['min_survival']}: no RDF"
        )
        return {"production": out}
    out.update(
        run_replicas(
            ctx.structure,
            ctx.evaluator,
            replicas=p["replicas"],
            seed=s.get("seed", 0) + 1000,
            out_dir=ctx.out_dir / "md",
            prefix="production",
            steps=p["steps"],
            timestep_fs=s["timestep_fs"],
            t_start=p["temperature"],
            t_end=p["temperature"],
            friction=s["friction"],
            thermalise_steps=p["thermalise_steps"],
            save_every=p["save_every"],
            criteria=_criteria(s),
        )
    )
    return {"production": out}


def production_frames(replicas: list[dict], out_dir: Path, skip: int) -> list:
    """Return the frames of the NVT production segment after `skip` frames.

    A failed replica's frames before its failing frame, a stable replica's frames including its last one.
    """
    from ase.io import read

    frames = []
    for r in replicas:
        path = out_dir / Path(r["trajectory"]).name
        if not path.is_file():
            continue
        traj = read(path, ":")
        usable = traj[skip:] if r["reason"] == "stable" else traj[skip:-1]
        frames += usable
    return frames


def kaplan_meier(times, failed) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier survival estimate: (event times, survival just after each), starting at (0, 1).

    `times`: time on the clock per replica; `failed`: True where the replica failed then, False
    where it was still running when observation stopped (censored).
    """
    times = np.asarray(times, dtype=float)
    failed = np.asarray(failed, dtype=bool)
    t_out, s_out, s = [0.0], [1.0], 1.0
    for t in np.unique(times[failed]):
        at_risk = int((times >= t).sum())
        events = int(((times == t) & failed).sum())
        if at_risk:
            s *= 1.0 - events / at_risk
        t_out.append(float(t))
        s_out.append(s)
    return np.array(t_out), np.array(s_out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `ftbench md` options to `parser`."""
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
    parser.add_argument(
        "--thermalise-steps", type=int, default=0, help="Langevin steps at --t-start before the ramp (not on the clock)"
    )
    parser.add_argument("--save-every", type=int, default=10, help="write a frame every k steps")
    parser.add_argument("--check-every", type=int, default=1, help="test the failure criteria every k steps")
    parser.add_argument("--min-distance", type=float, default=0.5, help="close-contact threshold (A)")
    parser.add_argument("--max-force", type=float, default=100.0, help="largest allowed force (eV/A)")
    parser.add_argument(
        "--max-temperature-factor", type=float, default=3.0, help="fail when T exceeds this times the ramp target"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of replica 0; replica i uses seed + i")


def run(args: argparse.Namespace) -> int:
    """Run `ftbench md` with parsed `args`: run the replicas and write result.json; return the exit code."""
    from ase.io import read

    from ftbench.probes.calculators import calculator_for

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
        atoms,
        calc,
        replicas=args.replicas,
        seed=args.seed,
        out_dir=out,
        steps=args.steps,
        timestep_fs=args.timestep_fs,
        t_start=args.t_start,
        t_end=args.t_end,
        friction=args.friction,
        save_every=args.save_every,
        check_every=args.check_every,
        criteria=criteria,
        thermalise_steps=args.thermalise_steps,
    )
    for r in result["replicas"]:
        r["trajectory"] = Path(r["trajectory"]).name
    options = {k: v for k, v in vars(args).items() if k not in ("command",)}
    document = {"options": options, "n_atoms": len(atoms), "criteria": asdict(criteria), **result}
    write_json(out / "result.json", document)
    s = result["summary"]
    print(f"survival {s['survival_fraction']:.2f} over {s['n_replicas']} replicas; reasons {s['reasons']}")
    return 0
