"""Benchmark preparation: label checks, deterministic train/valid/test splits, isolated atoms.

The training pool is written in a fixed shuffled order (split_seed), so the training set of size
n is its first n configurations and every smaller set is nested in every larger one.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from ase.io import write

from ftbench.core.config import SPLIT_DEFAULTS
from ftbench.data.convert import check_labels, normalise_atoms, read_frames
from ftbench.data.datacheck import DEFAULTS as CHECK_DEFAULTS
from ftbench.data.datacheck import check_duplicates, check_geometry, check_leakage
from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import is_isolated_atom
from ftbench.runtime.provenance import Provenance

log = logging.getLogger("ftbench.data.prepare")


def split(atoms_list, n_valid: int, n_test: int, seed: int, group_key: str | None = None, path: str = ""):
    """Return (train pool, valid, test, isolated atoms): a seeded shuffle of the non-isolated configurations.

    With `group_key`, whole groups (e.g. MD trajectories, whose frames are correlated) go to one split:
    test, then validation, take shuffled groups until each holds at least its count. The training
    pool is then shuffled frame by frame, since training sets are its first N frames (nested).
    """
    isolated = [a for a in atoms_list if is_isolated_atom(a)]
    rest = [a for a in atoms_list if not is_isolated_atom(a)]
    if n_valid + n_test >= len(rest):
        raise FtbenchError(
            f"split asks for {n_valid} validation + {n_test} test configurations but only "
            f"{len(rest)} exist; lower `split.valid`/`split.test`"
        )
    rng = np.random.default_rng(seed)
    if group_key is None:
        order = rng.permutation(len(rest))
        shuffled = [rest[i] for i in order]
        return shuffled[n_valid + n_test :], shuffled[:n_valid], shuffled[n_valid : n_valid + n_test], isolated
    missing = sum(group_key not in a.info for a in rest)
    if missing:
        raise FtbenchError(
            f"{path}: {missing} configurations have no info key {group_key!r} (`split.group_key`); "
            "label every configuration's group or remove `group_key`"
        )
    groups: dict = {}
    for a in rest:
        groups.setdefault(a.info[group_key], []).append(a)
    names = list(groups)
    parts: dict[str, list] = {"test": [], "valid": []}
    for i in rng.permutation(len(names)):
        target = next((k for k, n in (("test", n_test), ("valid", n_valid)) if len(parts[k]) < n), "train")
        parts.setdefault(target, []).extend(groups[names[i]])
    if not parts.get("train"):
        raise FtbenchError(
            f"{path}: the {len(names)} groups of {group_key!r} leave no training configurations after "
            f"{n_valid} validation + {n_test} test; lower `split.valid`/`split.test`"
        )
    train = [parts["train"][i] for i in rng.permutation(len(parts["train"]))]
    return train, parts["valid"], parts["test"], isolated


def read_configs(path: Path) -> list:
    """All configurations of a benchmark file, or an error naming it (empty, unreadable)."""
    return read_frames(
        path,
        "benchmark file",
        "put the labelled configurations there (extxyz) or remove the benchmark from `benchmarks`",
    )


def label_keys(atoms_list, energy_key: str, forces_key: str, stress_key: str | None):
    """Return the catalog's label keys, or REF_* when the file was already normalised.

    Fetched benchmarks are normalised by `ftbench convert`: the same catalog entry serves files
    placed by hand and fetched ones.
    """
    first = atoms_list[0]
    if energy_key not in first.info and "REF_energy" in first.info:
        return "REF_energy", "REF_forces", ("REF_stress" if stress_key else None)
    return energy_key, forces_key, stress_key


def check_split_elements(pool, others: dict) -> None:
    """Refuse an element seen only in validation or test data.

    Such an element has no training data: every model trained on this benchmark (scratch, and
    fine-tunes whose element table is the training set's) would fail at evaluation.
    """
    from ase.data import chemical_symbols

    trained = {int(z) for a in pool for z in a.numbers}
    for name, (atoms, path) in others.items():
        extra = sorted({int(z) for a in atoms for z in a.numbers} - trained)
        if extra:
            raise FtbenchError(
                f"the {name} split of {path} contains {', '.join(chemical_symbols[z] for z in extra)}, "
                "which no training configuration has; add training data with these elements or "
                "remove those configurations"
            )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench prepare` options to `p`."""
    p.add_argument("--data", required=True, type=Path, help="all labelled configurations (or the train file)")
    p.add_argument("--valid-data", type=Path, default=None, help="the source's own validation split")
    p.add_argument("--test-data", type=Path, default=None, help="the source's own test split")
    p.add_argument("--n-valid", type=int, default=SPLIT_DEFAULTS["valid"])
    p.add_argument("--n-test", type=int, default=SPLIT_DEFAULTS["test"])
    p.add_argument("--split-seed", type=int, default=12345)
    p.add_argument("--group-key", default=None, help="info key whose groups stay in one split (trajectories)")
    p.add_argument("--energy-key", default="REF_energy")
    p.add_argument("--forces-key", default="REF_forces")
    p.add_argument("--stress-key", default=None)
    p.add_argument(
        "--min-pair-distance",
        type=float,
        default=CHECK_DEFAULTS["min_pair_distance"],
        help="refuse frames with two atoms closer than this (A; config data_checks.min_pair_distance)",
    )
    p.add_argument("--out-dir", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run `ftbench prepare` with parsed `args`: write the train pool and splits; return the exit code."""
    for option, value in (("--n-valid", args.n_valid), ("--n-test", args.n_test)):
        if value < 0:
            raise FtbenchError(f"{option} is {value}; give a count of configurations >= 0 (`split.valid`/`split.test`)")
    prov = Provenance([args.data, args.valid_data, args.test_data])
    sets = {}
    for name, path in (("all", args.data), ("valid", args.valid_data), ("test", args.test_data)):
        if path is None:
            continue
        if not path.is_file():
            raise FtbenchError(f"benchmark file {path} does not exist")
        raw = read_configs(path)
        keys = label_keys(raw, args.energy_key, args.forces_key, args.stress_key)
        atoms = normalise_atoms(raw, *keys, path=path)
        check_labels(atoms, path)
        check_geometry(atoms, path, args.min_pair_distance)
        check_duplicates(atoms, path)
        sets[name] = atoms
    # a source's own split wins; a missing one is split off the data (--n-valid/--n-test), never ignored
    pool, valid, test, isolated = split(
        sets["all"],
        0 if "valid" in sets else args.n_valid,
        0 if "test" in sets else args.n_test,
        args.split_seed,
        args.group_key,
        str(args.data),
    )
    valid, test = sets.get("valid", valid), sets.get("test", test)
    others = {"validation": (valid, args.valid_data or args.data), "test": (test, args.test_data or args.data)}
    check_split_elements(pool, others)
    check_leakage(pool, others)
    if "valid" in sets and "test" in sets:
        check_leakage(test, {"validation": others["validation"]})
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    files = {"train_pool": pool, "valid": valid, "test": test, "isolated": isolated}
    for name, atoms in files.items():
        write(out / f"{name}.xyz", atoms, format="extxyz")
    elements = sorted({int(z) for a in pool + valid + test for z in a.numbers})
    summary = {k: len(v) for k, v in files.items()}
    prov.write(
        out / "summary.json",
        [out / f"{k}.xyz" for k in files],
        extra={"counts": summary, "elements": elements, "periodic": bool(pool and all(a.pbc.all() for a in pool))},
    )
    log.info("%s: %s", out, summary)
    return 0
