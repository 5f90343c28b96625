"""`ftbench grid`: the expanded fine-tune grid, one line per job, and counts."""

from __future__ import annotations

import argparse
from collections import Counter

import yaml

from ftbench.config import (add_config_arguments, config_from_args, dropped_sizes, expand_grid, sizes_for,
                            untouched_runs)


def parse_overrides(items: list[str]) -> dict:
    """Snakemake-style `key=value` overrides; values are YAML (`benchmarks=[sn2]`)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--config expects key=value, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--counts-only", action="store_true")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    runs = expand_grid(cfg)
    if not args.counts_only:
        for r in runs:
            print(r.path)
    print(f"# {len(runs)} fine-tune jobs; {len(untouched_runs(cfg))} untouched foundation-model evaluations")
    for bench in cfg["benchmarks"]:
        print(f"# {bench}: train sizes {sizes_for(cfg, bench)}")
    for bench, dropped in dropped_sizes(cfg).items():
        print(f"# warning: {bench}: sizes {dropped} dropped (train_sizes: auto), the training pool is smaller")
    for axis in ("benchmark", "strategy", "model"):
        counts = Counter(getattr(r, axis) for r in runs)
        print(f"# by {axis}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0
