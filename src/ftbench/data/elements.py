"""Every split of a benchmark against one foundation model's elements, before any model job.

The pipeline runs this once per (benchmark, foundation model); e0, replay and untouched depend on
it, so an element the model has no embedding for stops the grid before E0s, replay, training or
evaluation instead of surfacing as `35 is not in list` in an evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ase.data import chemical_symbols
from ase.io import read

from ftbench.core.errors import FtbenchError
from ftbench.runtime.provenance import Provenance


def check_splits(known: set[int], splits: dict[str, Path], model_name: str) -> dict[str, list[int]]:
    """Elements of each split; an error naming every split and element the model lacks."""
    found, problems = {}, []
    for name, path in splits.items():
        zs = sorted({int(z) for a in read(path, ":") for z in a.numbers}) if path.stat().st_size else []
        found[name] = zs
        missing = [chemical_symbols[z] for z in zs if z not in known]
        if missing:
            problems.append(f"the {name} split {path} contains {', '.join(missing)}")
    if problems:
        raise FtbenchError(
            f"{'; '.join(problems)}, which foundation model {model_name!r} does not know (it covers "
            f"{', '.join(chemical_symbols[z] for z in sorted(known))}); choose a foundation model that covers "
            "these elements, or remove the benchmark from `benchmarks` or the model from `foundation_models`"
        )
    return found


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench elements` options to `p`."""
    p.add_argument("--model", required=True, type=Path, help="foundation model file")
    p.add_argument("--model-name", default=None, help="its name in the catalog, for messages")
    p.add_argument("--split", nargs="+", required=True, metavar="NAME=PATH", help="benchmark splits (extxyz)")
    p.add_argument("--out", required=True, type=Path, help="JSON record of the elements checked")


def run(args: argparse.Namespace) -> int:
    """Run `ftbench elements` with parsed `args`: refuse splits with elements the model lacks; return the exit code."""
    from ftbench.probes.inference import elements_of, read_model

    splits = {}
    for item in args.split:
        name, sep, path = item.partition("=")
        if not sep:
            raise FtbenchError(f"--split expects NAME=PATH, got {item!r}")
        splits[name] = Path(path)
    prov = Provenance([args.model, *splits.values()])
    known = set(elements_of(read_model(args.model)))
    found = check_splits(known, splits, args.model_name or str(args.model))
    prov.write(args.out, extra={"model_elements": sorted(known), "splits": found})
    return 0
