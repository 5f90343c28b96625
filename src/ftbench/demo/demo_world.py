"""Build the shipped demo world: thermally sampled, xTB-labelled corpus and benchmarks.

Every configuration comes from a short tblite Langevin trajectory (or, for short-range pairs and
isolated atoms, a single point) at the family's level of theory, so the labels are the
trajectory's own energies and forces: sampling and labelling are one pass. One trajectory is one
job writing one file (`sample`), so an interrupted build resumes at the next missing file.
`assemble` merges the files, splits the held-out slice by trajectory (`group`), and `ship` copies
the result into `data/demo/` with sha256 sums for the lock.

Families are registered in FAMILIES: a builder returns the start structure (and its charge) of
trajectory `index`, drawn from a seeded generator; settings come from config/demo_build.yaml.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.collections import g2
from ase.data import atomic_numbers, covalent_radii
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import ISOLATED
from ftbench.demo.demo import _rotated
from ftbench.runtime.provenance import write_json

log = logging.getLogger("ftbench.demo.demo_world")

SHORT_RANGE = "short_range"
WATER_DENSITY = 0.0334  # molecules per A^3 at 1 g/cm3


# ----------------------------------------------------------------- structure builders


def _pack(
    units_: list[Atoms],
    rng: np.random.Generator,
    *,
    box: float | None = None,
    radius: float | None = None,
    min_dist: float = 2.5,
    centre_first: bool = False,
) -> Atoms:
    """Randomly placed, randomly oriented units: in a periodic cube (`box`) or a sphere (`radius`).

    Placement is by rejection on the distance between unit centres (minimum image in a box).
    """
    centres: list[np.ndarray] = []
    out = Atoms(cell=[box] * 3 if box else None, pbc=bool(box))
    for k, unit in enumerate(units_):
        for _ in range(20000):
            if centre_first and k == 0:
                c = np.full(3, box / 2) if box else np.zeros(3)
            elif box:
                c = rng.uniform(0, box, 3)
            else:
                v = rng.normal(size=3)
                c = v / np.linalg.norm(v) * radius * rng.uniform(0, 1) ** (1 / 3)
            d = [c - x for x in centres]
            if box:
                d = [(x + box / 2) % box - box / 2 for x in d]
            if all(np.linalg.norm(x) > min_dist for x in d):
                break
        else:
            raise FtbenchError(
                f"could not pack {len(units_)} units (min distance {min_dist} A); "
                "lower the count or enlarge the box/radius in config/demo_build.yaml"
            )
        centres.append(c)
        u = _rotated(unit, rng) if len(unit) > 1 else unit.copy()
        u.positions += c - (u.positions.mean(0) if len(unit) > 1 else u.positions[0])
        out += u
    if box:
        out.wrap()
    return out


def _water_box_length(n_water: int, extra_volume: float = 0.0) -> float:
    return float(((n_water / WATER_DENSITY) + extra_volume) ** (1 / 3))


def sn2_complex(rng, p, index):
    """X- ... CH3Y along the collinear SN2 coordinate (X, Y in p['halides']), umbrella inverted."""
    halides = p.get("halides", ["F", "Cl"])
    x = halides[index % len(halides)]
    y = halides[(index // len(halides)) % len(halides)]
    bond = {"F": 1.39, "Cl": 1.79}
    # progress s in [0, 1]: 0 = X far + CH3Y bonded, 1 = CH3X bonded + Y far
    s = rng.uniform(0, 1)
    d_cx = bond[x] + (1 - s) * rng.uniform(0.4, 1.8) + 0.25 * (1 - abs(2 * s - 1))
    d_cy = bond[y] + s * rng.uniform(0.4, 1.8) + 0.25 * (1 - abs(2 * s - 1))
    theta = np.deg2rad(90 + 19.5 * np.tanh((d_cx - d_cy) * 1.5))
    h = [
        [
            1.09 * np.sin(theta) * np.cos(2 * np.pi * k / 3),
            1.09 * np.sin(theta) * np.sin(2 * np.pi * k / 3),
            1.09 * np.cos(theta),
        ]
        for k in range(3)
    ]
    a = Atoms(f"CH3{x}{y}", positions=[[0, 0, 0], *h, [0, 0, d_cx], [0, 0, -d_cy]])
    return _rotated(a, rng), -1


def water_cluster(rng, p, index):
    """Build a cluster of `n_min`..`n_max` water molecules in a sphere sized from the water density (charge 0)."""
    n = int(rng.integers(p["n_min"], p["n_max"] + 1))
    radius = 1.4 * (n / WATER_DENSITY * 3 / (4 * np.pi)) ** (1 / 3) + 1.0
    return _pack([molecule("H2O") for _ in range(n)], rng, radius=radius, min_dist=2.7), 0


def water_box(rng, p, index):
    """Build a periodic box of `n_water` molecules and the listed `ions` (charge 0)."""
    n = p["n_water"]
    ions = p.get("ions", [])
    box = _water_box_length(n, 30.0 * len(ions))
    units_ = [Atoms(s) for s in ions] + [molecule("H2O") for _ in range(n)]
    return _pack(units_, rng, box=box, min_dist=2.6), 0


def hydrated_ion(rng, p, index):
    """One ion (or ion pair) with a few waters: Na+, Li+ (charge +1), Cl-, F- (charge -1)."""
    species = p["species"][index % len(p["species"])]
    charges = {"Na": 1, "Li": 1, "Cl": -1, "F": -1}
    ions = species.split("+") if "+" in species else [species]
    charge = 0 if len(ions) > 1 else charges[ions[0]]
    n = int(rng.integers(p["n_min"], p["n_max"] + 1))
    radius = 1.4 * (n / WATER_DENSITY * 3 / (4 * np.pi)) ** (1 / 3) + 1.5
    units_ = [Atoms(s) for s in ions] + [molecule("H2O") for _ in range(n)]
    return _pack(units_, rng, radius=radius, min_dist=2.7, centre_first=True), charge


def _g2_molecules(elements: set[str]) -> list[str]:
    names = []
    for name in sorted(g2.names):
        a = g2[name]
        if len(a) >= 2 and set(a.get_chemical_symbols()) <= elements and a.get_initial_magnetic_moments().sum() == 0:
            names.append(name)
    return names


def organic(rng, p, index):
    """Build the `index`-th G2 molecule made of the family's `elements`, randomly rotated (charge 0)."""
    names = _g2_molecules(set(p["elements"]))
    return _rotated(g2[names[index % len(names)]], rng), 0


def salt(rng, p, index):
    """Rock-salt cells (periodic, strained; `form: crystal`) or the same cube as a cluster."""
    pair = p["pairs"][index % len(p["pairs"])]
    a0 = {"LiCl": 5.13, "NaCl": 5.64, "LiF": 4.03, "NaF": 4.63}[pair]
    crystal = bulk(pair, "rocksalt", a=a0 * rng.uniform(0.97, 1.04), cubic=True)
    if p.get("form", "crystal") == "crystal":
        strain = np.eye(3) + rng.normal(0, 0.015, (3, 3))
        crystal.set_cell(crystal.cell @ strain, scale_atoms=True)
        return crystal, 0
    cluster = crystal.copy()
    cluster.pbc = False
    cluster.cell = None
    return _rotated(cluster, rng), 0


FAMILIES = {
    "sn2_complex": sn2_complex,
    "water_cluster": water_cluster,
    "water_box": water_box,
    "hydrated_ion": hydrated_ion,
    "organic": organic,
    "salt": salt,
}


# ----------------------------------------------------------------- labelling


def _calc(method: str, charge: int):
    from tblite.ase import TBLite

    return TBLite(method=method, charge=charge, verbosity=0, max_iterations=300)


def _labelled_copy(atoms: Atoms, *, stress: bool) -> Atoms:
    """Copy with REF_* labels from the calculator's results for the current positions."""
    a = atoms.copy()
    a.info["REF_energy"] = float(atoms.get_potential_energy())
    a.arrays["REF_forces"] = np.array(atoms.get_forces())
    if stress:
        a.info["REF_stress"] = np.array(atoms.get_stress(voigt=False)).reshape(9)
    a.calc = None
    return a


def trajectory(family: str, index: int, method: str, settings: dict, seed: int, name: str | None = None) -> list[Atoms]:
    """Frames of one Langevin trajectory with tblite, labelled by the same calculations.

    Frames are tagged with config_type `name` (the recipe entry, default the family) and the
    trajectory's group id. The first `equilibrate` steps are discarded; a trajectory that explodes (SCF failure, force
    above `max_force`, temperature above `max_temperature_factor` x target) ends there and keeps the frames it has.
    """
    if family not in FAMILIES:
        raise FtbenchError(f"unknown demo family {family!r}; known: {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, index])
    atoms, charge = FAMILIES[family](rng, settings, index)
    temperature = float(rng.choice(settings.get("temperatures", [300])))
    periodic = bool(atoms.pbc.all())
    atoms.calc = _calc(method, charge)
    if settings.get("heavy_hydrogen", False):  # deuterium mass allows 1 fs steps
        masses = atoms.get_masses()
        masses[atoms.numbers == 1] = 2.014
        atoms.set_masses(masses)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    if not periodic:
        ZeroRotation(atoms)
    timestep = settings.get("timestep_fs", 0.5) * units.fs
    steps, every = settings["steps"], settings["every"]
    equilibrate = settings.get("equilibrate", 0)
    # Start structures are not minima: strong friction first drains the released strain energy.
    dyn = Langevin(atoms, timestep, temperature_K=temperature, friction=0.2 / units.fs, rng=rng)
    frames: list[Atoms] = []
    max_force = settings.get("max_force", 30.0)
    for step in range(0, steps + 1, every):
        try:
            if step:
                dyn.run(every)
            forces = atoms.get_forces()
        except Exception as err:  # SCF failure: the trajectory ends, its frames stay
            log.warning("%s %d: tblite failed at step %d: %s", family, index, step, err)
            break
        if step >= equilibrate and dyn.fr != settings.get("friction", 0.01) / units.fs:
            dyn.set_friction(settings.get("friction", 0.01) / units.fs)
        t_now = atoms.get_temperature()
        # Reactive or small systems heat up for real (an SN2 event releases ~1.5 eV into 15
        # degrees of freedom), so only a runaway far beyond that counts as an explosion.
        hot = step > equilibrate and t_now > settings.get("max_temperature_factor", 8) * temperature
        if not np.isfinite(forces).all() or np.abs(forces).max() > max_force or hot:
            log.warning(
                "%s %d: stopped at step %d (max |F| %.1f eV/A, T %.0f K)",
                family,
                index,
                step,
                float(np.abs(forces).max()),
                t_now,
            )
            break
        if step >= equilibrate:
            frame = _labelled_copy(atoms, stress=periodic)
            name = name or family
            frame.info.update(
                config_type=name, group=f"{name}-{index}", md_step=step, temperature=temperature, total_charge=charge
            )
            frames.append(frame)
    return frames


def short_range_pairs(elements: list[str], method: str, settings: dict, seed: int) -> list[Atoms]:
    """Compressed dimers of every element pair: the repulsive wall, at a low weight."""
    rng = np.random.default_rng(seed)
    zs = sorted(atomic_numbers[e] for e in elements)
    out = []
    for i, z1 in enumerate(zs):
        for z2 in zs[i:]:
            r0 = covalent_radii[z1] + covalent_radii[z2]
            for f in np.sort(rng.uniform(*settings["fraction_range"], settings["per_pair"])):
                a = Atoms([z1, z2], positions=[[0, 0, 0], [f * r0, 0, 0]])
                charge = 0
                a.calc = _calc(method, charge)
                # odd electron counts: tblite handles them with a fractional occupation
                try:
                    frame = _labelled_copy(a, stress=False)
                except Exception as err:
                    log.warning("pair %d-%d at %.2f A failed: %s", z1, z2, f * r0, err)
                    continue
                weight = settings.get("config_weight", 0.1)
                # mace's universal loss reads the energy/forces weights, the weighted loss config_weight
                frame.info.update(
                    config_type=SHORT_RANGE,
                    group=f"{SHORT_RANGE}-{z1}-{z2}",
                    config_weight=weight,
                    config_energy_weight=weight,
                    config_forces_weight=weight,
                    total_charge=0,
                )
                out.append(frame)
    return out


def isolated_atoms(elements: list[str], method: str) -> list[Atoms]:
    """Return an isolated-atom configuration of each element, labelled with `method` (its E0)."""
    out = []
    for el in sorted(elements, key=lambda s: atomic_numbers[s]):
        a = Atoms(el)
        a.calc = _calc(method, 0)
        energy = a.get_potential_energy()
        a = Atoms(el)
        a.info.update(REF_energy=float(energy), config_type=ISOLATED, group=f"isolated-{el}")
        a.arrays["REF_forces"] = np.zeros((1, 3))
        out.append(a)
    return out


# ----------------------------------------------------------------- assemble / ship


def held_out_split(frames: list[Atoms], fraction: float, seed: int) -> tuple[list[Atoms], list[Atoms]]:
    """Split by trajectory (info['group']): no held-out frame has a sibling in training."""
    groups = sorted({a.info["group"] for a in frames})
    rng = np.random.default_rng(seed)
    n_out = max(1, int(round(fraction * len(groups))))
    held = set(rng.choice(groups, size=n_out, replace=False).tolist())
    train = [a for a in frames if a.info["group"] not in held]
    test = [a for a in frames if a.info["group"] in held]
    return train, test


def relabel(frames: list[Atoms], method: str) -> list[Atoms]:
    """Return the same configurations at another level of theory (forgetting vs level-of-theory shift)."""
    out = []
    for a in frames:
        b = a.copy()
        b.calc = _calc(method, int(a.info.get("total_charge", 0)))
        try:
            c = _labelled_copy(b, stress=bool(b.pbc.all()))
        except Exception as err:
            log.warning("relabel of %s failed: %s", a.info.get("group"), err)
            continue
        c.info.update({k: v for k, v in a.info.items() if not k.startswith("REF_")})
        out.append(c)
    return out


def write_gz(path: Path, frames: list[Atoms]) -> None:
    """Extxyz (gzip by suffix, as ASE reads it back), written whole or not at all.

    The gzip header carries no time or name, so the same frames give the same bytes (and sha256).
    """
    import gzip
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".partial.{path.name}")
    if path.suffix == ".gz":
        text = io.StringIO()
        write(text, frames, format="extxyz")
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(text.getvalue().encode())
    else:
        write(tmp, frames, format="extxyz")
    tmp.replace(path)


def read_frames(path: Path) -> list[Atoms]:
    """Read every frame of an extxyz file."""
    return read(path, ":", format="extxyz")


def assemble(files: list[Path], fraction: float, seed: int) -> tuple[list[Atoms], list[Atoms], list[Atoms]]:
    """(isolated atoms, training pool, held-out slice) of the corpus."""
    frames = [a for f in files for a in read_frames(f)]
    isolated = [a for a in frames if a.info.get("config_type") == ISOLATED]
    rest = [a for a in frames if a.info.get("config_type") != ISOLATED]
    train, heldout = held_out_split(rest, fraction, seed)
    return isolated, train, heldout


def generation_data(pool: list[Atoms], recipe: dict, seed: int) -> tuple[list[Atoms], list[Atoms]]:
    """Return (train, valid) of one generation.

    Its families, a fraction of their trajectories, and a validation slice split by trajectory too.
    """
    families = set(recipe.get("families") or {a.info["config_type"] for a in pool})
    chosen = [a for a in pool if a.info["config_type"] in families]
    groups = sorted({a.info["group"] for a in chosen})
    rng = np.random.default_rng(seed)
    keep = set(rng.permutation(groups)[: max(1, int(round(recipe.get("fraction", 1.0) * len(groups))))].tolist())
    chosen = [a for a in chosen if a.info["group"] in keep]
    valid_fraction = recipe["pretrain"].get("valid_fraction", 0.05)
    # Short-range pairs stay in training: their forces (~250 eV/A RMS) would dominate mace's
    # validation RMSE, and with it early stopping and the learning-rate schedule.
    pairs = [a for a in chosen if a.info["config_type"] == SHORT_RANGE]
    train, valid = held_out_split([a for a in chosen if a.info["config_type"] != SHORT_RANGE], valid_fraction, seed + 1)
    charged = recipe.get("charged_energy") or {}
    for a in train + valid:
        if a.info.get("total_charge", 0) and a.info["config_type"] in charged.get("families", ()):
            # a local model has no charge input: a net-charged cluster's energy against neutral-atom
            # E0s is off by the ion's ionisation energy or electron affinity, which it cannot learn
            a.info["config_energy_weight"] = charged["config_energy_weight"]
    return train + pairs, valid


def pretrain_stage(
    flags: dict,
    *,
    train: Path,
    valid: Path,
    e0: Path,
    work: Path,
    stage: int,
    epochs_per_stage: int,
    seed: int,
    threads: int,
    device: str = "cpu",
) -> dict:
    """Train to epoch stage * epochs_per_stage, resuming from the newest checkpoint in `work`.

    A run that already went past this stage (trained ahead in one go, e.g. on a GPU) is not
    repeated: the record then takes the stage's epoch from the training curve. Every mace run
    is appended to `work/runs.jsonl` (device, epochs, wall time) before and after it runs, so a
    killed run is recorded too.
    """
    from ftbench.core.strategies import LABEL_KEYS, to_argv
    from ftbench.runtime.provenance import sha256
    from ftbench.training.mace_runner import run_mace_train, set_threads, training_curve

    target = stage * epochs_per_stage
    results = work / "mace_results"
    late = {k: v for k, v in flags.items() if k in STAGE_TWO_FLAGS}
    key = {
        "inputs": {str(p): sha256(p) for p in (train, valid, e0)},
        "flags": {k: v for k, v in flags.items() if k not in STAGE_TWO_FLAGS | REPORT_ONLY_FLAGS},
        "seed": seed,
    }
    stamp = work / "inputs.json"
    if work.exists() and not _resumable(stamp, json.loads(json.dumps(key)), late, work / "checkpoints"):
        # checkpoints of other data or flags must not be resumed: start over
        log.warning("pretraining inputs changed: clearing %s", work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({**key, "stage_two": late}, indent=1))
    done = [r for r in training_curve(results) if r.get("epoch") is not None] if results.is_dir() else []
    if done and done[-1]["epoch"] + 1 >= target and (work / "model.model").is_file():
        at_target = [r for r in done if r["epoch"] <= target - 1]
        return {
            "stage": stage,
            "max_num_epochs": target,
            "wall_time_s": 0.0,
            "already_trained_to_epoch": done[-1]["epoch"] + 1,
            "last_valid": at_target[-1] if at_target else None,
        }
    set_threads(threads)
    flags = {
        **LABEL_KEYS,
        **flags,
        "name": "model",
        "seed": seed,
        "device": device,
        "train_file": train,
        "valid_file": valid,
        "E0s": e0,
        "work_dir": work,
        "model_dir": work,
        "log_dir": work / "logs",
        "results_dir": results,
        "checkpoints_dir": work / "checkpoints",
        "restart_latest": True,
        "max_num_epochs": target,
    }
    run = {
        "stage": stage,
        "device": device,
        "from_epoch": done[-1]["epoch"] + 1 if done else 0,
        "max_num_epochs": target,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _append_jsonl(work / "runs.jsonl", {**run, "event": "start"})
    t0 = time.time()
    _keep_newest_checkpoint(work / "checkpoints")
    two = _stage_two_start(flags)
    if two is not None:
        _add_stage_two_lr(work / "checkpoints", flags.get("swa_lr", flags.get("stage_two_lr", 1e-3)))
    run_mace_train(to_argv(flags))
    _keep_newest_checkpoint(work / "checkpoints")
    # mace writes the last Stage-One epoch to model.model even after Stage Two ran; the stage's
    # model is its newest weights
    if two is not None and target > two and (work / "model_stagetwo.model").is_file():
        shutil.copyfile(work / "model_stagetwo.model", work / "model.model")
    curve = training_curve(results)
    wall = time.time() - t0
    _append_jsonl(work / "runs.jsonl", {**run, "event": "finished", "wall_time_s": wall})
    return {
        "stage": stage,
        "max_num_epochs": target,
        "device": device,
        "wall_time_s": wall,
        "last_valid": curve[-1] if curve else None,
    }


# mace flags that act only from epoch `start_swa` on (Stage Two: a lower learning rate): setting or
# changing them before that epoch keeps the checkpoints
STAGE_TWO_FLAGS = frozenset(
    {"swa", "stage_two", "start_swa", "start_stage_two", "swa_lr", "stage_two_lr"}
    | {f"{s}_{w}_weight" for s in ("swa", "stage_two") for w in ("energy", "forces", "stress", "virials")}
)


# flags that change only what mace reports after training, never the weights
REPORT_ONLY_FLAGS = frozenset({"skip_evaluate_heads", "error_table"})


def _stage_two_start(flags: dict) -> int | None:
    """Return the epoch where Stage Two starts, or None when it is off or left to mace's default."""
    if not (flags.get("swa") or flags.get("stage_two")):
        return None
    return flags.get("start_swa", flags.get("start_stage_two"))


def _checkpoint_epochs(folder: Path) -> dict[Path, tuple[int, bool]]:
    """Map each mace epoch checkpoint in `folder` to (epoch, is Stage Two)."""
    out = {}
    for p in folder.glob("*_epoch-*.pt"):
        tail = p.stem.rsplit("_epoch-", 1)[1]
        out[p] = (int(tail.removesuffix("_swa")), tail.endswith("_swa"))
    return out


def _resumable(stamp: Path, key: dict, late: dict, checkpoints: Path) -> bool:
    """Whether the checkpoints under a stamp may be resumed with `key` and Stage-Two flags `late`.

    Data, seed and the flags that shape training must be equal. Stage-Two flags may differ as long
    as no checkpoint has reached the epoch where either the old or the new ones take effect.
    """
    if not stamp.is_file():
        return False
    old = json.loads(stamp.read_text())
    old_late = old.pop("stage_two", {})
    old["flags"] = {k: v for k, v in old.get("flags", {}).items() if k not in REPORT_ONLY_FLAGS}
    if old != key:
        return False
    if old_late == late:
        return True
    on = [d for d in (old_late, late) if d.get("swa") or d.get("stage_two")]
    starts = [_stage_two_start(d) for d in on]
    if None in starts:
        return False  # mace's own Stage-Two start depends on max_num_epochs, which changes per stage
    newest = max((e for e, _ in _checkpoint_epochs(checkpoints).values()), default=-1)
    if starts and newest >= min(starts):
        return False
    log.info("Stage-Two settings changed before Stage Two started (newest checkpoint epoch %d): resuming", newest)
    return True


def _add_stage_two_lr(folder: Path, swa_lr: float) -> None:
    """Give the optimizer state of Stage-One checkpoints the `swa_lr` that torch's SWALR reads.

    mace builds SWALR (which writes `swa_lr` into the optimizer's param groups) before it loads the
    checkpoint; a checkpoint saved before Stage Two was configured has no such key, and the first
    Stage-Two epoch then fails with KeyError 'swa_lr'.
    """
    import torch

    for path, (_, two) in _checkpoint_epochs(folder).items():
        if two:
            continue
        state = torch.load(path, map_location="cpu", weights_only=False)
        groups = state["optimizer"]["param_groups"]
        if all("swa_lr" in g for g in groups):
            continue
        for g in groups:
            g.setdefault("swa_lr", swa_lr)
        torch.save(state, path)


def _keep_newest_checkpoint(folder: Path) -> None:
    """Delete all but the newest epoch checkpoint of Stage One and of Stage Two in `folder`.

    With --save_all_checkpoints mace writes one checkpoint an epoch (so a stopped stage resumes at its
    last epoch, not its best one) and never deletes them. mace's closing evaluation loads the newest
    Stage-One checkpoint even after Stage Two, so one of each is kept.
    """
    found = _checkpoint_epochs(folder)
    for two in (False, True):
        mine = sorted((e, p) for p, (e, s) in found.items() if s == two)
        for _, old in mine[:-1]:
            old.unlink()


def _append_jsonl(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def training_runs(work: Path) -> list[dict]:
    """Return the mace runs of a pretraining (`runs.jsonl`): a start without a finish was killed."""
    path = work / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def force_error_sources(atoms: list[Atoms], preds: list[dict], seen: set[str] = frozenset(), top: int = 5) -> dict:
    """Return where a dataset's force error sits, by config_type and by trajectory.

    Each config_type's and the `top` worst trajectories' (info `group`) force RMSE (meV/A) and
    share of the summed squared force error. A trajectory is marked `formula_seen` when its
    chemical formula is in `seen` (the formulas of the model's training set): an unseen molecule
    tests transfer, not fit. Frames without reference forces are skipped.
    """
    parts: dict[tuple[str, str], dict] = {}
    for a, p in zip(atoms, preds):
        if "REF_forces" not in a.arrays:
            continue
        sq = float(np.sum((np.asarray(p["forces"]) - a.arrays["REF_forces"]) ** 2))
        for kind, key in (("config_type", a.info.get("config_type", "default")), ("group", a.info.get("group"))):
            if key is None:
                continue
            d = parts.setdefault((kind, str(key)), {"sse": 0.0, "n_components": 0, "n_configs": 0, "a": a})
            d["sse"] += sq
            d["n_components"] += a.arrays["REF_forces"].size
            d["n_configs"] += 1
    total = sum(d["sse"] for (kind, _), d in parts.items() if kind == "config_type") or 1.0

    def entry(d: dict) -> dict:
        return {
            "forces_rmse": 1000.0 * float(np.sqrt(d["sse"] / d["n_components"])),
            "sse_share": d["sse"] / total,
            "n_configs": d["n_configs"],
        }

    groups = sorted(((k, d) for (kind, k), d in parts.items() if kind == "group"), key=lambda kd: -kd[1]["sse"])
    worst = []
    for key, d in groups[:top]:
        formula = d["a"].get_chemical_formula()
        config_type = str(d["a"].info.get("config_type", "default"))
        worst.append({"group": key, "config_type": config_type, "formula": formula, **entry(d)})
        if seen:
            worst[-1]["formula_seen"] = formula in seen
    return {
        "by_config_type": {k: entry(d) for (kind, k), d in sorted(parts.items()) if kind == "config_type"},
        "worst_trajectories": worst,
    }


def gate(model_path: Path, datasets: dict[str, Path], train: Path | None = None) -> dict:
    """Return force and energy RMSE (meV/A, meV/atom) of a model on each dataset (E0s as in the model).

    Also where the force error sits (`force_error_sources`; formulas checked against `train`).
    Isolated atoms and the low-weight short-range pairs are left out of each dataset (the pairs are
    scored as `<name>_short_range`).
    """
    from ftbench.probes.evaluate import error_rows
    from ftbench.probes.inference import load_model, predict

    model = load_model(model_path)
    seen = {a.get_chemical_formula() for a in read_frames(train)} if train else set()
    out = {}
    parts = {}
    for name, path in datasets.items():
        frames = [a for a in read_frames(path) if a.info.get("config_type") != ISOLATED]
        parts[name] = [a for a in frames if a.info.get("config_type") != SHORT_RANGE]
        pairs = [a for a in frames if a.info.get("config_type") == SHORT_RANGE]
        if pairs:
            parts[f"{name}_short_range"] = pairs
    for name, atoms in parts.items():
        preds = predict(model, atoms)
        rows = error_rows(atoms, preds)
        out[name] = {f"{r['quantity']}_{r['statistic']}": r["value"] for r in rows if r["config_type"] == "all"}
        out[name]["n_configs"] = len(atoms)
        if not name.endswith(SHORT_RANGE):
            out[name]["force_error_sources"] = force_error_sources(atoms, preds, seen)
    return out


def check_gates(gates: dict[str, dict], limits: dict) -> list[str]:
    """Failures of the shipped-world quality gates (empty: all pass).

    gen2 must reach `gen2_heldout_force_rmse_mev_per_a` on the held-out corpus slice and beat
    gen1 on that slice and zero-shot on every benchmark (force RMSE).
    """
    fails = []
    g1, g2 = gates["demo_gen1"], gates["demo_gen2"]
    limit = limits["gen2_heldout_force_rmse_mev_per_a"]
    if g2["heldout"]["forces_rmse"] > limit:
        fails.append(f"demo_gen2 held-out force RMSE {g2['heldout']['forces_rmse']:.1f} meV/A > {limit}")
    for name in (n for n in g2 if not n.endswith(SHORT_RANGE)):
        if g2[name]["forces_rmse"] >= g1[name]["forces_rmse"]:
            fails.append(
                f"demo_gen2 not better than demo_gen1 on {name}: "
                f"{g2[name]['forces_rmse']:.1f} vs {g1[name]['forces_rmse']:.1f} meV/A"
            )
    return fails


def ship(build_dir: Path, recipe: dict, out_dir: Path, allow_failed_gates: bool = False) -> dict:
    """Copy the built world into `out_dir`; models carry their metadata; returns the manifest."""
    import torch

    from ftbench.runtime.provenance import sha256, versions

    gens = list(recipe["generations"])
    gates = {g: json.loads((build_dir / "pretrain" / g / "gate.json").read_text()) for g in gens}
    fails = check_gates(gates, recipe["gates"])
    if fails and not allow_failed_gates:
        raise FtbenchError("quality gates failed, nothing shipped: " + "; ".join(fails))
    corpus = json.loads((build_dir / "corpus" / "summary.json").read_text())
    files: dict[str, Path] = {}
    for g in gens:
        gdir = build_dir / "pretrain" / g
        stages = sorted(gdir.glob("stage*.json"), key=lambda p: int(p.stem[5:]))
        records = [json.loads(p.read_text()) for p in stages]
        model = torch.load(gdir / "work" / "model.model", map_location="cpu", weights_only=False)
        model.ftbench_metadata = {
            "name": g,
            "corpus_method": recipe["corpus_method"],
            "corpus": json.loads((gdir / "data" / "summary.json").read_text()),
            "recipe": recipe["generations"][g],
            "epochs": records[-1]["max_num_epochs"],
            "pretrain_stages": records,
            "gates": gates[g],
            "trained_on": sorted({r["device"] for r in training_runs(gdir / "work")}) or ["cpu"],
            "training_runs": training_runs(gdir / "work"),
            "versions": versions(),
        }
        files[g] = out_dir / "foundation" / f"{g}.model"
        files[g].parent.mkdir(parents=True, exist_ok=True)
        torch.save(model, files[g])
        files[f"{g}_train"] = out_dir / "foundation" / f"{g}_train.xyz.gz"
        write_gz(files[f"{g}_train"], read_frames(gdir / "data" / "train.xyz"))
    method = recipe["benchmark_method"]
    for name, src in (
        ("heldout", "corpus/heldout.xyz.gz"),
        ("heldout_relabelled", f"corpus/heldout_{method}.xyz.gz"),
        ("corpus_isolated", "corpus/isolated.xyz.gz"),
        *((f"bench_{b}", f"benchmarks/{b}.xyz.gz") for b in recipe["benchmarks"]),
    ):
        files[name] = out_dir / src
        files[name].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build_dir / src, files[name])
    files.update(reference_frames(build_dir, recipe, out_dir))
    manifest = {
        "recipe": recipe,
        "corpus": corpus,
        "gates": gates,
        "gate_failures": fails,
        "files": {
            k: {"path": str(p.relative_to(out_dir)), "sha256": sha256(p), "bytes": p.stat().st_size}
            for k, p in files.items()
        },
    }
    write_json(out_dir / "MANIFEST.json", manifest)
    write_sources(out_dir, manifest)
    return manifest


def reference_frames(build_dir: Path, recipe: dict, out_dir: Path) -> dict[str, Path]:
    """Write each benchmark's reference-level robustness inputs; return their paths by name.

    `reference/<b>_md_<T>K.xyz.gz`: every benchmark frame sampled at `reference_temperature` (the
    RDF reference, same temperature as the models' NVT production); `reference/<b>_start.xyz`: the
    first of those frames, equilibrated at that temperature (the common MD start of every model).
    """
    temperature = float(recipe.get("reference_temperature", 300))
    out = {}
    for b in recipe["benchmarks"]:
        frames = [
            a
            for a in read_frames(build_dir / "benchmarks" / f"{b}.xyz.gz")
            if a.info.get("config_type") != ISOLATED and float(a.info.get("temperature", -1)) == temperature
        ]
        if not frames:
            raise FtbenchError(
                f"benchmark {b} has no frame sampled at reference_temperature {temperature:g} K; "
                "add that temperature to its `temperatures` in config/demo_build.yaml"
            )
        out[f"{b}_md_ref"] = out_dir / "reference" / f"{b}_md_{temperature:g}K.xyz.gz"
        write_gz(out[f"{b}_md_ref"], frames)
        out[f"{b}_start"] = out_dir / "reference" / f"{b}_start.xyz"
        write_gz(out[f"{b}_start"], frames[:1])
    return out


def write_sources(out_dir: Path, manifest: dict, name: str = "demo_world") -> Path:
    """Write `sources.yaml` of the shipped world; return its path.

    One `kind: local` source whose files carry their sha256, read by `ftbench fetch` like any download
    (config `sources_file`).
    """
    import yaml

    from ftbench.data.fetch import REPO_ROOT

    root = out_dir.resolve().relative_to(REPO_ROOT) if out_dir.resolve().is_relative_to(REPO_ROOT) else out_dir
    entry = {
        "kind": "local",
        "path": str(root),
        "description": "the shipped demo world (ftbench demo-world ship)",
        "files": {
            k: {"path": f["path"], "sha256": f["sha256"], "confirmed": True} for k, f in manifest["files"].items()
        },
    }
    path = out_dir / "sources.yaml"
    path.write_text(
        "# Written by `ftbench demo-world ship`: the shipped demo world as a checksummed source.\n"
        + yaml.safe_dump({"sources": {name: entry}}, sort_keys=False)
    )
    return path


# ----------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench demo-world` actions and their options to `p`."""
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("trajectory", help="one labelled trajectory of a family")
    s.add_argument("--family", required=True)
    s.add_argument("--index", type=int, required=True)
    s.add_argument("--name", default=None, help="config_type of the frames (the recipe entry)")
    s.add_argument("--method", required=True)
    s.add_argument("--sample-method", default=None, help="sample with this method, then relabel")
    s.add_argument("--settings", required=True, help="JSON: the family's settings")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, type=Path)
    s = sub.add_parser("pairs", help="short-range pairs and isolated atoms")
    s.add_argument("--elements", required=True)
    s.add_argument("--method", required=True)
    s.add_argument("--settings", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, type=Path)
    s = sub.add_parser("isolated", help="isolated-atom energies")
    s.add_argument("--elements", required=True)
    s.add_argument("--method", required=True)
    s.add_argument("--out", required=True, type=Path)
    s = sub.add_parser("relabel", help="relabel a file at another level of theory")
    s.add_argument("--data", required=True, type=Path)
    s.add_argument("--method", required=True)
    s.add_argument("--out", required=True, type=Path)
    s = sub.add_parser("merge", help="concatenate frame files (a benchmark)")
    s.add_argument("files", nargs="+", type=Path)
    s.add_argument("--out", required=True, type=Path)
    s = sub.add_parser("assemble", help="corpus: isolated atoms, training pool, held-out slice")
    s.add_argument("files", nargs="+", type=Path)
    s.add_argument("--fraction", type=float, required=True)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--out-dir", required=True, type=Path)
    s = sub.add_parser("generation-data", help="train/valid split of one foundation generation")
    s.add_argument("--pool", required=True, type=Path)
    s.add_argument("--recipe", required=True, help="JSON: the generation's recipe")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--out-dir", required=True, type=Path)
    s = sub.add_parser("pretrain", help="one resumable pretraining stage")
    s.add_argument("--flags", required=True, help="JSON: mace flags (shared + architecture + pretrain)")
    s.add_argument("--data-dir", required=True, type=Path, help="train.xyz, valid.xyz from generation-data")
    s.add_argument("--e0", required=True, type=Path)
    s.add_argument("--stage", type=int, required=True)
    s.add_argument("--epochs-per-stage", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--device", default="cpu", help="torch device of mace (cpu, cuda)")
    s.add_argument("--work", required=True, type=Path)
    s.add_argument("--out", required=True, type=Path, help="stage record (JSON)")
    s = sub.add_parser("ship", help="copy the built world into data/demo with sha256 sums")
    s.add_argument("--build-dir", required=True, type=Path)
    s.add_argument("--recipe", required=True, help="JSON: the demo_build config block")
    s.add_argument("--out-dir", required=True, type=Path)
    s.add_argument("--record", required=True, type=Path)
    s.add_argument("--allow-failed-gates", action="store_true")
    s = sub.add_parser("gate", help="errors of a model on held-out data and benchmarks")
    s.add_argument("--model", required=True, type=Path)
    s.add_argument("--data", nargs="+", required=True, help="NAME=PATH")
    s.add_argument("--train", type=Path, default=None, help="the model's training set (marks unseen formulas)")
    s.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run the `ftbench demo-world` action of parsed `args`; return the exit code."""
    t0 = time.time()
    if args.action == "trajectory":
        settings = json.loads(args.settings)
        frames = trajectory(
            args.family, args.index, args.sample_method or args.method, settings, args.seed, name=args.name
        )
        if args.sample_method and args.sample_method != args.method:
            frames = relabel(frames, args.method)
    elif args.action == "pairs":
        frames = short_range_pairs(args.elements.split(","), args.method, json.loads(args.settings), args.seed)
    elif args.action == "isolated":
        frames = isolated_atoms(args.elements.split(","), args.method)
    elif args.action == "relabel":
        frames = relabel(read_frames(args.data), args.method)
    elif args.action == "merge":
        frames = [a for f in args.files for a in read_frames(f)]
    elif args.action == "assemble":
        isolated, train, heldout = assemble(args.files, args.fraction, args.seed)
        for name, part in (("isolated", isolated), ("train", train), ("heldout", heldout)):
            write_gz(args.out_dir / f"{name}.xyz.gz", part)
        counts = {
            "isolated": len(isolated),
            "train": len(train),
            "heldout": len(heldout),
            "train_by_family": _count(train),
            "heldout_by_family": _count(heldout),
        }
        write_json(args.out_dir / "summary.json", counts)
        log.info("corpus: %s", counts)
        return 0
    elif args.action == "generation-data":
        train, valid = generation_data(read_frames(args.pool), json.loads(args.recipe), args.seed)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        write(args.out_dir / "train.xyz", train, format="extxyz")
        write(args.out_dir / "valid.xyz", valid, format="extxyz")
        write_json(
            args.out_dir / "summary.json", {"train": len(train), "valid": len(valid), "train_by_family": _count(train)}
        )
        return 0
    elif args.action == "pretrain":
        rec = pretrain_stage(
            json.loads(args.flags),
            train=args.data_dir / "train.xyz",
            valid=args.data_dir / "valid.xyz",
            e0=args.e0,
            work=args.work,
            stage=args.stage,
            epochs_per_stage=args.epochs_per_stage,
            seed=args.seed,
            threads=args.threads,
            device=args.device,
        )
        model = args.work / "model.model"
        if not model.is_file():
            raise FtbenchError(f"pretraining stage {args.stage} finished without {model}")
        write_json(args.out, rec)
        return 0
    elif args.action == "gate":
        datasets = dict(item.split("=", 1) for item in args.data)
        write_json(args.out, gate(args.model, {k: Path(v) for k, v in datasets.items()}, args.train))
        return 0
    elif args.action == "ship":
        manifest = ship(args.build_dir, json.loads(args.recipe), args.out_dir, args.allow_failed_gates)
        write_json(args.record, manifest)
        print("# sha256 of the shipped files, for sources.demo_world in config/config.yaml:")
        for key, f in manifest["files"].items():
            print(f"{key}: {{path: {f['path']}, sha256: {f['sha256']}}}")
        return 0
    write_gz(args.out, frames)
    log.info("wrote %d frames to %s in %.1f s", len(frames), args.out, time.time() - t0)
    return 0


def _count(frames: list[Atoms]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in frames:
        out[a.info["config_type"]] = out.get(a.info["config_type"], 0) + 1
    return dict(sorted(out.items()))
