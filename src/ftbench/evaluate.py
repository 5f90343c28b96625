"""Test errors of one model on each dataset and head.

Energy per atom, forces and stress, RMSE and MAE, overall and per config_type, for every dataset
and every head asked for. Units: meV/atom, meV/A, meV/A^3.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from ase.io import read

from ftbench.errors import FtbenchError
from ftbench.geometry import is_isolated_atom
from ftbench.inference import check_head, heads_of, load_model, predict, resolve_device
from ftbench.provenance import Provenance

log = logging.getLogger("ftbench.evaluate")
UNITS = {"energy": "meV/atom", "forces": "meV/A", "stress": "meV/A^3"}


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


def parse_datasets(items: list[str]) -> dict[str, Path]:
    """Return {name: path} of `[NAME=]PATH` items (the name defaults to the file's stem)."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).stem, item
        out[name] = Path(path)
    return out


def model_errors(
    model_path: Path, datasets: dict[str, Path], heads: list[str] | None, batch_size: int, device: str
) -> list[dict]:
    """Return the error rows of a model on each dataset (isolated atoms left out) and each head."""
    model = load_model(model_path, device)
    heads = [check_head(model, h, f"model {model_path}") for h in heads] if heads else heads_of(model)
    rows = []
    for name, path in datasets.items():
        atoms = [a for a in read(path, ":") if not is_isolated_atom(a)]
        if not atoms:
            raise FtbenchError(f"dataset {path} has no configurations to evaluate")
        for head in heads:
            preds = predict(model, atoms, head=head, batch_size=batch_size, device=device)
            for row in error_rows(atoms, preds):
                rows.append({"dataset": name, "head": head, **row})
            log.info("%s head %s: %d configurations evaluated", name, head, len(atoms))
    return rows


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


def run(args: argparse.Namespace) -> int:
    """Run `ftbench evaluate` with parsed `args`; return the exit code (a failed run gives status rows)."""
    datasets = parse_datasets(args.data)
    for path in datasets.values():
        if not path.is_file():
            raise FtbenchError(f"dataset {path} does not exist")
    model_path, status, reason = args.model, "ok", None
    if args.run is not None:
        from ftbench.finetune import read_run

        model_path, status, reason = read_run(args.run)
    args.device = resolve_device(args.device)
    prov = Provenance([model_path, *datasets.values()], device=args.device)
    rows = model_errors(model_path, datasets, args.head, args.batch_size, args.device) if status == "ok" else []
    prov.write(args.out, extra={"status": status, "reason": reason, "rows": rows})
    return 0
