"""`ftbench subset`: the first n configurations of a shuffled training pool (nested subsets)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ase.io import read, write

from ftbench.errors import FtbenchError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench subset` options to `p`."""
    p.add_argument("--pool", required=True, type=Path)
    p.add_argument("--size", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run `ftbench subset` with parsed `args`: write the pool's first --size configurations; return the exit code."""
    pool = read(args.pool, ":")
    if args.size > len(pool):
        raise FtbenchError(
            f"training size {args.size} exceeds the {len(pool)} configurations in "
            f"{args.pool}; lower `train_sizes` or use `train_sizes: auto`"
        )
    write(args.out, pool[: args.size], format="extxyz")
    return 0
