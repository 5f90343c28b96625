"""The fine-tune grid: its cells (Run), their expansion from the config and their folder layout.

`ftbench grid` prints it, one line per job, and counts.

Cheap on purpose (no torch): the Snakefile expands the grid at parse time.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import asdict, dataclass

from ftbench.core.config import add_config_arguments, config_from_args, robustness_settings, split_sizes, strategy
from ftbench.core.errors import FtbenchError
from ftbench.core.strategies import roles

NO_MODEL = "none"  # model key of runs without a foundation model (scratch)
UNTOUCHED = "untouched"  # strategy key of the untouched foundation model
UNTOUCHED_E0 = "foundation"  # an untouched model keeps its own E0s
# A run's folder below results/runs (and its logs and checkpoints below theirs): the one layout
# Run.path, the rules' wildcards and parse_run_path share.
RUN_PATTERN = "{benchmark}/{model}/{strategy}/{e0}/n{size}/seed{seed}"


@dataclass(frozen=True, order=True)
class Run:
    """One cell of the grid: a fine-tune (or an untouched foundation model) and its key."""

    benchmark: str
    model: str
    strategy: str
    e0: str
    size: int
    seed: int

    @property
    def path(self) -> str:
        """The run's folder under the runs root (RUN_PATTERN)."""
        return RUN_PATTERN.format(**asdict(self))

    @property
    def has_foundation(self) -> bool:
        """Whether the run starts from a foundation model (not from scratch)."""
        return self.model != NO_MODEL


def benchmark_axes(cfg: dict, benchmark: str) -> dict:
    """Return the grid axes one benchmark sets for itself (its `benchmark_grid` entry, or {})."""
    return (cfg.get("benchmark_grid") or {}).get(benchmark, {})


def _train_sizes(cfg: dict, benchmark: str):
    """Return the `train_sizes` axis of one benchmark: its `benchmark_grid` entry, else the top level."""
    return benchmark_axes(cfg, benchmark).get("train_sizes", cfg["train_sizes"])


def models_for(cfg: dict, benchmark: str) -> list[str]:
    """Return the foundation models run on one benchmark.

    `foundation_models`, restricted to the benchmark's `benchmark_grid` list when it has one (so
    slicing the top-level axis still slices).
    """
    only = benchmark_axes(cfg, benchmark).get("foundation_models")
    return [m for m in cfg["foundation_models"] if only is None or m in only]


def models_used(cfg: dict) -> list[str]:
    """Return the foundation models some benchmark of the grid runs, in config order."""
    used = {m for b in cfg["benchmarks"] for m in models_for(cfg, b)}
    return [m for m in cfg["foundation_models"] if m in used]


def sizes_for(cfg: dict, benchmark: str) -> list[int]:
    """Return the training-set sizes of one benchmark.

    An explicit list (checked against the pool) or `auto` (the size ladder up to the pool, plus the
    whole pool).
    """
    pool = _pool(cfg, benchmark)
    wanted = _train_sizes(cfg, benchmark)
    if wanted == "auto":
        sizes = [s for s in cfg["size_ladder"] if pool is None or s <= pool]
        return sizes + [pool] if pool is not None and pool not in sizes else sizes
    too_big = [s for s in wanted if pool is not None and s > pool]
    if too_big:
        raise FtbenchError(
            f"train_sizes {too_big} exceed the {pool} training configurations of benchmark "
            f"{benchmark!r}; lower `train_sizes` or set `train_sizes: auto` to cap them"
        )
    return list(wanted)


def dropped_sizes(cfg: dict) -> dict[str, list[int]]:
    """Ladder sizes that `train_sizes: auto` leaves out because a benchmark holds less data."""
    out = {}
    for benchmark in cfg["benchmarks"]:
        if _train_sizes(cfg, benchmark) != "auto":
            continue
        pool = _pool(cfg, benchmark)
        dropped = [s for s in cfg["size_ladder"] if pool is not None and s > pool]
        if dropped:
            out[benchmark] = dropped
    return out


def _pool(cfg: dict, benchmark: str) -> int | None:
    """Training configurations a benchmark holds: `max_train`, or what the demo split leaves."""
    bench = cfg["catalog"]["benchmarks"][benchmark]
    if bench.get("max_train"):
        return bench["max_train"]
    if bench["source"] != "demo":
        return None
    split = split_sizes(bench)
    return bench["generator"]["n"] - split["valid"] - split["test"]


def e0_for(cfg: dict, e0: str, has_foundation: bool) -> str:
    """E0 modes that need a foundation model fall back to `e0_without_foundation` for scratch."""
    if not has_foundation and e0 in ("estimated", "foundation"):
        return cfg["e0_without_foundation"]
    return e0


def pt_slice_available(cfg: dict, model: str, benchmark: str) -> bool:
    """Whether (model, benchmark) has pretraining data: a replay pool, or a corpus the pipeline pretrains on."""
    catalog = cfg["catalog"]
    entry = catalog["foundation_models"][model]
    return bool(catalog["benchmarks"][benchmark].get("replay_pool") or entry.get("replay_pool")) or (
        entry["source"] == "pretrain"
    )


def replay_pool_missing(cfg: dict, strategy_name: str, model: str, benchmark: str) -> str | None:
    """Why a replay strategy cannot run on (model, benchmark), or None when it can.

    A replay fine-tune needs pretraining data: the benchmark's or the model's `replay_pool`, or the
    corpus of a model the pipeline pretrains itself.
    """
    if not strategy(cfg, strategy_name).get("replay"):
        return None
    if pt_slice_available(cfg, model, benchmark):
        return None
    return f"foundation model {model!r} has no `replay_pool` (add `replay_pool: {{path: FILE}}` to its catalog entry)"


def skipped_runs(cfg: dict) -> dict[str, list[str]]:
    """Strategies of the grid left out per reason, as {reason: [strategy on model, ...]}."""
    out: dict[str, list[str]] = {}
    for bench in cfg["benchmarks"]:
        for name in cfg["strategies"]:
            for model in models_for(cfg, bench):
                reason = replay_pool_missing(cfg, name, model, bench)
                if reason:
                    out.setdefault(reason, []).append(f"{name} on {bench}")
    return out


def expand_grid(cfg: dict) -> list[Run]:
    """All fine-tune runs of the grid (scratch once per benchmark, not once per foundation model).

    Replay strategies are left out for a foundation model without pretraining data (skipped_runs).
    """
    runs = set()
    for bench in cfg["benchmarks"]:
        for size in sizes_for(cfg, bench):
            for name in cfg["strategies"]:
                uses_fm = strategy(cfg, name).get("foundation", True)
                models = models_for(cfg, bench) if uses_fm else [NO_MODEL]
                for model in models:
                    if uses_fm and replay_pool_missing(cfg, name, model, bench):
                        continue
                    for e0 in cfg["e0"]:
                        for seed in cfg["seeds"]:
                            runs.add(Run(bench, model, name, e0_for(cfg, e0, uses_fm), size, seed))
    return sorted(runs)


def untouched_runs(cfg: dict) -> list[Run]:
    """Return the untouched foundation models as runs, evaluated like runs (no training)."""
    return [Run(b, m, UNTOUCHED, UNTOUCHED_E0, 0, 0) for b in cfg["benchmarks"] for m in models_for(cfg, b)]


def robustness_runs(cfg: dict, runs: list[Run]) -> list[Run]:
    """Return the runs that get robustness tests: untouched models and trained runs.

    Only on the benchmarks `robustness.benchmarks` names (`all`: every one). With
    `robustness.sizes: largest`, only trained runs at their benchmark's largest size. A
    `train: false` run has the untouched model's forces, so its dynamics are the untouched one's.
    """
    scope = cfg["robustness"].get("benchmarks", "all")
    runs = [r for r in runs if scope == "all" or r.benchmark in scope]
    largest = {}
    for r in runs:
        if r.strategy != UNTOUCHED:
            largest[r.benchmark] = max(largest.get(r.benchmark, 0), r.size)
    # once per benchmark, not per run: the Snakefile calls this at every parse
    every_size = {b: robustness_settings(cfg, b).get("sizes", "all") == "all" for b in {r.benchmark for r in runs}}
    return [
        r
        for r in runs
        if r.strategy == UNTOUCHED
        or (roles(cfg, r.strategy)["trained"] and (every_size[r.benchmark] or r.size == largest[r.benchmark]))
    ]


def parse_run_path(path: str) -> Run:
    """Return the Run of a run folder path (benchmark/model/strategy/e0/nSIZE/seedSEED)."""
    parts = path.strip("/").split("/")
    if len(parts) != 6 or not parts[4].startswith("n") or not parts[5].startswith("seed"):
        raise FtbenchError(f"not a run path: {path} (expected benchmark/model/strategy/e0/nSIZE/seedSEED)")
    return Run(parts[0], parts[1], parts[2], parts[3], int(parts[4][1:]), int(parts[5][4:]))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench grid` options to `p`."""
    add_config_arguments(p)
    p.add_argument("--counts-only", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Run `ftbench grid` with parsed `args`: print the jobs and counts; return the exit code."""
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
    from ftbench.core.preflight import preflight

    report = preflight(cfg)
    print(report.text(), file=sys.stderr)
    report.raise_errors()
    return 0
