"""Test errors of one model on each dataset and head.

Energy per atom, forces and stress, RMSE and MAE, overall and per config_type, for every dataset
and every head asked for. Units: meV/atom, meV/A, meV/A^3.

A frame whose error is not a number (atoms on top of each other give NaN) or is absurd (beyond
MAX_ENERGY_ERROR_EV_PER_ATOM or MAX_FORCE_ERROR_EV_PER_A) makes its dataset's rows `invalid`: the
record's status is then "invalid", its reason names the run, dataset, head and frames, and no
table or figure uses those rows.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ftbench.core.errors import FtbenchError
from ftbench.data.convert import read_frames
from ftbench.data.geometry import is_isolated_atom, min_pair_distance
from ftbench.probes.inference import check_head, heads_of, load_model, predict, resolve_device
from ftbench.runtime.provenance import Provenance, finite_or_none

log = logging.getLogger("ftbench.probes.evaluate")
UNITS = {"energy": "meV/atom", "forces": "meV/A", "stress": "meV/A^3"}
# Beyond these no model is merely inaccurate: the frame (overlapping atoms, a unit mix-up) or the
# model is broken, and one such frame would dominate every RMSE it enters.
MAX_ENERGY_ERROR_EV_PER_ATOM = 1e3
MAX_FORCE_ERROR_EV_PER_A = 1e4
MAX_STRESS_ERROR_EV_PER_A3 = 1e3
INVALID = "invalid"
_LISTED_FRAMES = 5  # frames named in a reason; the record's `problems` lists them all


def error_rows(atoms_list, preds: list[dict]) -> list[dict]:
    """Tidy rows (config_type, quantity, statistic, value, unit, n) for one dataset and head."""
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for a, p in zip(atoms_list, preds):
        for ct in ("all", str(a.info.get("config_type", "default"))):
            g = groups[ct]
            g["n"].append(1)
            g["energy"].append((p["energy"] - a.info["REF_energy"]) / len(a))
            if "REF_forces" in a.arrays:
                g["forces"].append((p["forces"] - a.arrays["REF_forces"]).ravel())
            if "stress" in p and "REF_stress" in a.info:
                ref = np.asarray(a.info["REF_stress"], dtype=float).reshape(-1)
                ref = ref.reshape(3, 3) if ref.size == 9 else _voigt_to_full(ref)
                g["stress"].append((np.asarray(p["stress"]).reshape(3, 3) - ref).ravel())
    rows = []
    for ct, g in groups.items():
        if ct != "all" and len(groups) == 2:
            continue  # a single config_type repeats "all"
        for quantity in ("energy", "forces", "stress"):
            if not g[quantity]:
                continue
            err = np.concatenate([np.atleast_1d(e) for e in g[quantity]]) * 1000.0
            for stat, value in (("rmse", np.sqrt(np.mean(err**2))), ("mae", np.mean(np.abs(err)))):
                rows.append(
                    {
                        "config_type": ct,
                        "quantity": quantity,
                        "statistic": stat,
                        "value": float(value),
                        "unit": UNITS[quantity],
                        "n_configs": len(g["n"]),
                    }
                )
    return rows


def _voigt_to_full(v):
    xx, yy, zz, yz, xz, xy = v
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def _bad(values, limit: float, unit: str, what: str) -> str | None:
    """Why `values` (a label, a prediction or their difference) cannot be scored, or None."""
    arr = np.asarray(values, dtype=float)
    if not np.isfinite(arr).all():
        verb = "are" if what.endswith("forces") else "is"
        return f"{what} {verb} {'NaN' if np.isnan(arr).any() else 'inf'}"
    worst = float(np.abs(arr).max()) if arr.size else 0.0
    return f"{what} {worst:.3g} {unit} (above {limit:g} {unit})" if worst > limit else None


def frame_problems(atoms_list, preds: list[dict], frames: list[int]) -> list[tuple[int, str]]:
    """Return (frame, problem) for every frame whose error is non-finite or absurd.

    Parameters
    ----------
    atoms_list
        Labelled configurations (REF_energy, REF_forces, REF_stress).
    preds
        The model's predictions, one dict per configuration.
    frames
        Each configuration's frame index in its file (for the message).

    Returns
    -------
    list of tuple
        (frame index, what is wrong) per bad frame, with the closest pair distance where atoms
        nearly coincide (the usual cause of a NaN).
    """
    out = []
    for a, p, frame in zip(atoms_list, preds, frames):
        checks = [
            _bad(a.info["REF_energy"], math.inf, "eV", "reference energy"),
            _bad(p["energy"], math.inf, "eV", "predicted energy"),
        ]
        if checks[0] is None and checks[1] is None:
            err = (p["energy"] - a.info["REF_energy"]) / len(a)
            checks.append(_bad(err, MAX_ENERGY_ERROR_EV_PER_ATOM, "eV/atom", "energy error"))
        checks.append(_bad(p["forces"], math.inf, "eV/A", "predicted forces"))
        if "REF_forces" in a.arrays:
            checks.append(_bad(a.arrays["REF_forces"], math.inf, "eV/A", "reference forces"))
            if np.isfinite(p["forces"]).all() and np.isfinite(a.arrays["REF_forces"]).all():
                diff = p["forces"] - a.arrays["REF_forces"]
                checks.append(_bad(diff, MAX_FORCE_ERROR_EV_PER_A, "eV/A", "force error"))
        if "stress" in p and "REF_stress" in a.info:
            checks.append(_bad(p["stress"], math.inf, "eV/A^3", "predicted stress"))
            checks.append(_bad(a.info["REF_stress"], math.inf, "eV/A^3", "reference stress"))
            if checks[-1] is None and checks[-2] is None:
                ref = np.asarray(a.info["REF_stress"], dtype=float).reshape(-1)
                ref = ref.reshape(3, 3) if ref.size == 9 else _voigt_to_full(ref)
                diff = np.asarray(p["stress"], dtype=float).reshape(3, 3) - ref
                checks.append(_bad(diff, MAX_STRESS_ERROR_EV_PER_A3, "eV/A^3", "stress error"))
        found = [c for c in checks if c]
        if found:
            dmin = min_pair_distance(a)
            if not np.isfinite(a.positions).all():
                found.append("its positions are not finite")
            elif dmin < 0.5:
                found.append(f"two atoms are {dmin:.3g} A apart")
            out.append((frame, "; ".join(found)))
    return out


def _problem_text(problems: list[tuple[int, str]], n_frames: int) -> str:
    listed = ", ".join(f"frame {i}: {what}" for i, what in problems[:_LISTED_FRAMES])
    more = f", and {len(problems) - _LISTED_FRAMES} more" if len(problems) > _LISTED_FRAMES else ""
    return f"{len(problems)} of {n_frames} frames give no usable error ({listed}{more})"


def parse_datasets(items: list[str]) -> dict[str, Path]:
    """Return {name: path} of `[NAME=]PATH` items (the name defaults to the file's stem)."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).stem, item
        out[name] = Path(path)
    return out


def read_dataset(path: Path) -> list[tuple[int, object]]:
    """Return (frame index, configuration) of a labelled dataset, isolated atoms left out.

    A missing, unreadable or unlabelled file is an error naming it (and the frame).
    """
    frames = read_frames(
        path, "dataset", "check the --data path (NAME=PATH); give labelled extxyz (`ftbench convert` writes it)"
    )
    out = []
    for i, a in enumerate(frames):
        if is_isolated_atom(a):
            continue
        if "REF_energy" not in a.info:
            keys = ", ".join(sorted(a.info)) or "none"
            raise FtbenchError(
                f"dataset {path}: frame {i} has no REF_energy (info keys: {keys}); evaluate reads labels "
                "under REF_energy/REF_forces/REF_stress: `ftbench convert --energy-key ...` renames them"
            )
        out.append((i, a))
    if not out:
        raise FtbenchError(f"dataset {path} has no configurations to evaluate")
    return out


def model_errors(
    model_path: Path,
    datasets: dict[str, Path],
    heads: list[str] | None,
    batch_size: int,
    device: str,
    name: str | None = None,
) -> tuple[list[dict], list[dict]]:
    """Return the error rows of a model on each dataset (isolated atoms left out) and each head, and the problems.

    Parameters
    ----------
    model_path
        The saved model.
    datasets
        {name: extxyz path} with REF_* labels.
    heads
        Heads to score (None: every head).
    batch_size, device
        Inference settings.
    name
        What the messages call the model (the run's folder); default the model path.

    Returns
    -------
    tuple of list
        The rows (each with `status`: "ok", or "invalid" for a dataset and head with a non-finite
        or absurd frame error; invalid values are None where not finite) and one problem record
        (dataset, path, head, frame, problem) per bad frame.
    """
    name = name or str(model_path)
    loaded = {n: read_dataset(path) for n, path in datasets.items()}  # bad data fails before the model loads
    model = load_model(model_path, device)
    heads = [check_head(model, h, f"model {model_path}") for h in heads] if heads else heads_of(model)
    rows, problems = [], []
    for dataset, frames in loaded.items():
        indices, atoms = [i for i, _ in frames], [a for _, a in frames]
        for head in heads:
            preds = predict(model, atoms, head=head, batch_size=batch_size, device=device)
            bad = frame_problems(atoms, preds, indices)
            status = INVALID if bad else "ok"
            for row in error_rows(atoms, preds):
                rows.append({"dataset": dataset, "head": head, "status": status, **row})
                rows[-1]["value"] = finite_or_none(row["value"]) if bad else row["value"]
            for frame, what in bad:
                problems.append(
                    {"dataset": dataset, "path": str(datasets[dataset]), "head": head, "frame": frame, "problem": what}
                )
            if bad:
                log.warning(
                    "%s on dataset %s (%s), head %s: %s",
                    name,
                    dataset,
                    datasets[dataset],
                    head,
                    _problem_text(bad, len(atoms)),
                )
            log.info("%s head %s: %d configurations evaluated", dataset, head, len(atoms))
    return rows, problems


def invalid_reason(name: str, problems: list[dict], n_frames: dict[tuple[str, str], int]) -> str:
    """One sentence naming the run, every invalid dataset and head, their bad frames and the fix."""
    parts = []
    for dataset, head in dict.fromkeys((p["dataset"], p["head"]) for p in problems):
        mine = [(p["frame"], p["problem"]) for p in problems if (p["dataset"], p["head"]) == (dataset, head)]
        path = next(p["path"] for p in problems if p["dataset"] == dataset)
        parts.append(
            f"dataset {dataset} ({path}), head {head}: {_problem_text(mine, n_frames.get((dataset, head), 0))}"
        )
    return (
        f"evaluation of {name} is invalid: " + "; ".join(parts) + ". These errors are left out of every table "
        "and figure; remove or fix those frames (atoms on top of each other, wrong units), or retrain if the "
        "model itself is broken"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench evaluate` options to `p`."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="a saved mace model")
    src.add_argument("--run", type=Path, help="a run.json from `ftbench finetune` (failed runs give status rows)")
    p.add_argument("--data", required=True, nargs="+", metavar="[NAME=]PATH", help="datasets (extxyz, REF_* keys)")
    p.add_argument(
        "--head", nargs="+", default=None, help="heads to evaluate (default: every head); an unknown head is an error"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto: cuda when a GPU is visible, else cpu")
    p.add_argument("--out", required=True, type=Path)


def _read_run(path: Path) -> tuple[Path | None, str, str | None]:
    """(model, status, reason) of a run.json, or an error naming it."""
    from ftbench.training.finetune import read_run

    if not path.is_file():
        raise FtbenchError(f"run record {path} does not exist; run the fine-tune (or `ftbench untouched`) first")
    return read_run(path)  # a malformed record is refused there, named


def run(args: argparse.Namespace) -> int:
    """Run `ftbench evaluate` with parsed `args`; return the exit code (a failed run gives status rows)."""
    datasets = parse_datasets(args.data)
    for path in datasets.values():
        if not path.is_file():
            raise FtbenchError(f"dataset {path} does not exist; check the --data path (NAME=PATH)")
    model_path, status, reason = args.model, "ok", None
    if args.run is not None:
        model_path, status, reason = _read_run(args.run)
    elif not model_path.is_file():
        raise FtbenchError(f"model file {model_path} does not exist; check --model")
    name = str(args.run.parent if args.run is not None else model_path)
    args.device = resolve_device(args.device)
    prov = Provenance([model_path, *datasets.values()], device=args.device)
    rows, problems = [], []
    if status == "ok":
        rows, problems = model_errors(model_path, datasets, args.head, args.batch_size, args.device, name)
    if problems:
        n_frames = {(r["dataset"], r["head"]): r["n_configs"] for r in rows if r["config_type"] == "all"}
        status, reason = INVALID, invalid_reason(name, problems, n_frames)
        print(f"ftbench evaluate: {reason}", file=sys.stderr)
    prov.write(args.out, extra={"status": status, "reason": reason, "rows": rows, "problems": problems})
    return 0
