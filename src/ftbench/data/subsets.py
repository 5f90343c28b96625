"""`ftbench subset`: the first n configurations of a shuffled training pool (nested subsets)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ase.io import write

from ftbench.data.convert import read_frames
from ftbench.core.errors import FtbenchError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench subset` options to `p`."""
    p.add_argument("--pool", required=True, type=Path)
    p.add_argument("--size", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)


def read_pool(path: Path) -> list:
    """Return the configurations of a training pool, or an error naming the file (missing, unreadable, empty)."""
    return read_frames(
        path, "training pool", "`ftbench prepare` writes it (results/data/<benchmark>/train_pool.xyz): rerun it"
    )


def run(args: argparse.Namespace) -> int:
    """Run `ftbench subset` with parsed `args`: write the pool's first --size configurations; return the exit code."""
    if args.size < 1:
        raise FtbenchError(
            f"--size {args.size}: a training set needs at least 1 configuration; give a positive size "
            "(config `train_sizes`)"
        )
    pool = read_pool(args.pool)
    if args.size > len(pool):
        raise FtbenchError(
            f"training size {args.size} exceeds the {len(pool)} configurations in "
            f"{args.pool}; lower `train_sizes` or use `train_sizes: auto`"
        )
    write(args.out, pool[: args.size], format="extxyz")
    return 0
