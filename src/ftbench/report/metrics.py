"""The metrics registry and the per-run metrics every table, finding and figure is computed from.

One registry entry per metric: where it comes from (a row selection of errors.csv, or a path
into robustness.json that aggregate reads), its unit, which direction is better and its weight
in the broad-deployment rank. The error metrics are listed here; each robustness probe brings its
own in its registry entry (ftbench.probes.registry).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ftbench.core.config import schema_defaults
from ftbench.core.errors import FtbenchError
from ftbench.core.grid import NO_MODEL, UNTOUCHED
from ftbench.core.strategies import UNTOUCHED_ROLES, default_catalog_roles
from ftbench.probes.registry import PROBES, Metric

KEY = ["benchmark", "model", "strategy", "e0", "train_size", "seed"]
# Role flags of a run's strategy (strategies.roles), as runs.csv columns.
ROLE_COLUMNS = ["role_foundation", "role_replay", "role_frozen", "role_lora", "role_trained"]


METRICS = [
    Metric("target_energy_rmse", "target E RMSE", "meV/atom", True, 0.0, "errors", ("test", "energy", "target")),
    Metric("target_force_rmse", "target F RMSE", "meV/A", True, 1.0, "errors", ("test", "forces", "target")),
    # target (deployed) head on the model's own held-out pretraining slice, original labels
    Metric("pt_force_rmse", "pretraining F RMSE", "meV/A", True, 1.0, "errors", ("pt_eval", "forces", "target")),
    # the pretraining (pt) head of a multihead model on the same slice: no level-of-theory shift
    Metric(
        "pt_head_force_rmse",
        "pretraining F RMSE, pt head",
        "meV/A",
        True,
        0.0,
        "errors",
        ("pt_eval", "forces", "pretraining"),
    ),
    # target head on the slice relabelled at the target level of theory (catalog pt_eval.relabelled)
    Metric(
        "pt_relabelled_force_rmse",
        "pretraining F RMSE, relabelled",
        "meV/A",
        True,
        0.0,
        "errors",
        ("pt_eval_relabelled", "forces", "target"),
    ),
] + [m for probe in PROBES for m in probe.metrics]  # a probe's metrics are its registry entry's
BY_COLUMN = {m.column: m for m in METRICS}


def read_path(record: dict, path: tuple) -> list[tuple[str | None, float]]:
    """(pair, value) pairs a registry path selects in a robustness.json record."""
    out = []

    def walk(node, rest, pair):
        if not rest:
            if isinstance(node, (int, float)):
                out.append((pair, float(node)))
            return
        if not isinstance(node, dict):
            return
        head, *tail = rest
        if head == "*":
            for key, child in node.items():
                walk(child, tail, key)
        elif head in node and node[head] is not None:
            walk(node[head], tail, pair)

    walk(record, list(path), None)
    return out


def target_rmse(errors: pd.DataFrame, dataset: str, quantity: str, head_role: str = "target") -> pd.DataFrame:
    """RMSE rows of one head role, all config types, of the runs that finished ok."""
    return errors[
        (errors.status == "ok")
        & (errors.dataset == dataset)
        & (errors.head_role == head_role)
        & (errors.config_type == "all")
        & (errors.quantity == quantity)
        & (errors.statistic == "rmse")
    ]


def run_metrics(
    errors: pd.DataFrame, runs: pd.DataFrame, robustness: pd.DataFrame, baseline: str | None
) -> pd.DataFrame:
    """One row per run: every registry metric, status, cost and role flags.

    `baseline` is the config's reference strategy (strategies.baseline_strategy): `role_baseline`
    marks its runs. It is an analysis choice, not what a run did, so it is not in run.json.
    """
    extra = [c for c in runs.columns if c not in KEY and c not in ("status", "reason", "e0_warnings")]
    out = runs[KEY + ["status"] + extra].copy()

    def join(frame, name):
        nonlocal out
        out = out.merge(frame.rename(name).reset_index(), on=KEY, how="left")

    rob = robustness[robustness.status == "ok"] if len(robustness) else robustness
    for m in METRICS:
        if m.evaluation == "errors":
            dataset, quantity, role = m.select
            sel = target_rmse(errors, dataset, quantity, role)
            if dataset.startswith("pt_eval"):
                # a model's own slice; scratch (no pretraining of its own): mean over all slices
                sel = sel[(sel.dataset_model == sel.model) | (sel.model == NO_MODEL)]
            join(sel.groupby(KEY)["value"].mean(), m.column)
        elif len(rob):
            sel = rob[(rob.evaluation == m.evaluation) & (rob.metric == m.metric)]
            join(sel.groupby(KEY)["value"].agg(m.how), m.column)
        if m.column not in out:
            out[m.column] = np.nan
    _fill_roles(out)
    out["role_baseline"] = out.strategy == baseline
    return out


def _fill_roles(frame: pd.DataFrame) -> None:
    """Role columns from runs.csv; results without them get the study strategies' catalog roles."""
    catalog = default_catalog_roles()
    plain = {"foundation": True, "replay": None, "frozen": 0, "lora": False, "trained": True}  # unknown names
    for col in ROLE_COLUMNS:
        key = col.removeprefix("role_")
        fallback = frame.strategy.map(
            lambda s, k=key: (UNTOUCHED_ROLES if s == UNTOUCHED else catalog.get(s, plain))[k]
        )
        frame[col] = frame[col].where(frame[col].notna(), fallback) if col in frame else fallback
    frame["role_replay"] = frame.role_replay.where(frame.role_replay.notna() & (frame.role_replay != ""), None)


def roles_by_strategy(frame: pd.DataFrame) -> dict[str, dict]:
    """Strategy -> roles (foundation, replay, frozen, lora), from a frame with role columns."""
    out = {}
    for strategy, grp in frame.groupby("strategy"):
        r = grp.iloc[0]
        replay = r.role_replay if isinstance(r.role_replay, str) and r.role_replay else None
        frozen = int(r.role_frozen) if pd.notna(r.role_frozen) else 0
        out[strategy] = {
            "foundation": bool(r.role_foundation),
            "replay": replay,
            "frozen": frozen,
            "lora": bool(r.role_lora),
            "trained": bool(r.role_trained),
        }
    return out


def at_largest_size(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the untouched foundation rows and the trained runs at the frame's largest training set."""
    largest = frame[frame.strategy != UNTOUCHED].train_size.max()
    return frame[(frame.strategy == UNTOUCHED) | (frame.train_size == largest)]


# Per-step times of one strategy on one cell (same data, same batches) that differ across seeds by
# more than this factor (max / min) mean the machine's load changed during the grid
# (findings.cost_load_spread; the wall-clock cost of that strategy is then suspect).
LOAD_SPREAD = schema_defaults("findings")["cost_load_spread"]
COMPUTE_LABELS = {"cpu_time_s": "CPU time", "optimiser_time_s": "optimiser time"}
COST_COLUMNS = [
    "model",
    "strategy",
    "runs",
    "optimiser steps (median)",
    "time per step (ms)",
    "time per epoch (s)",
    "optimiser time (median s)",
    "CPU time (median s)",
    "compute basis",
    "compute / naive",
    "compute / naive (spread)",
    "compute / naive (pairs)",
    "optimiser time / naive",
    "optimiser time / naive (spread)",
    "per-step time spread (max/min)",
    "caveat",
    "replay step (s)",
    "median wall time (s)",
    "total GPU hours",
]


def compute_column(trained: pd.DataFrame) -> str:
    """Return the column training compute is compared on.

    Parameters
    ----------
    trained
        Per-run metrics of the trained runs (runs.csv columns included).

    Returns
    -------
    str
        `cpu_time_s` (CPU time of mace's training call, recorded by `ftbench finetune`) when some
        run has it and none ran on a GPU: unlike wall time it does not grow when other jobs share
        the cores. Otherwise `optimiser_time_s`, mace's own per-step wall time (on a GPU, the GPU's
        time; on a shared CPU, load-sensitive).
    """
    on_gpu = trained.device.astype(str).str.startswith("cuda").any() if "device" in trained else False
    if "cpu_time_s" in trained and trained.cpu_time_s.notna().any() and not on_gpu:
        return "cpu_time_s"
    return "optimiser_time_s"


def baseline_runs(frame: pd.DataFrame) -> pd.Series:
    """Return which runs are of the reference strategy (`baseline: true`, the study's naive)."""
    return frame.role_baseline.astype(bool)


def partial_finetunes(frame: pd.DataFrame) -> pd.Series:
    """Return which runs adapt part of a foundation model without replay: LoRA or frozen groups."""
    return (
        frame.role_foundation.astype(bool)
        & frame.role_replay.isna()
        & (frame.role_lora.astype(bool) | (frame.role_frozen.fillna(0) > 0))
    )


def step_time_spread(grp: pd.DataFrame) -> float:
    """Return the largest max / min of per-step wall time across the seeds of one cell (NaN without two seeds).

    A cell (benchmark, model, strategy, E0 mode, size) trains the same data in the same batches on
    every seed, so its per-step time differs across seeds only when the machine's load did.
    """
    per_step = grp.optimiser_time_s / grp.optimiser_steps.where(grp.optimiser_steps > 0)
    spreads = [
        s.max() / s.min()
        for _, s in per_step.groupby([grp.benchmark, grp.e0, grp.train_size])
        if s.notna().sum() > 1 and s.min() > 0
    ]
    return float(max(spreads)) if spreads else np.nan


def cost(
    metrics: pd.DataFrame, replay_steps: pd.DataFrame | None = None, load_spread: float = LOAD_SPREAD
) -> pd.DataFrame:
    """Return the training cost per model and strategy.

    Parameters
    ----------
    metrics
        Per-run metrics (run_metrics).
    replay_steps
        aggregate's replay_steps.csv (the replay step's cost), or None.
    load_spread
        Factor (findings.cost_load_spread) above which a strategy's per-step times across the seeds
        of one cell are flagged as measured under uneven load.

    Returns
    -------
    DataFrame
        Per model and strategy: optimiser-step time (mace's own per-step timing, so start-up and
        evaluation are excluded), per step and per epoch; training compute (`compute_column`: CPU
        time where recorded, else optimiser-step time) and its ratio to naive (the plain fine-tunes:
        no replay, LoRA or frozen groups) on the same benchmark, size and seed, median and spread
        over those pairs; the optimiser-time ratio for reference; the per-step time spread across
        seeds (`step_time_spread`) with a caveat above `load_spread`; wall time; for replay
        strategies the replay step's own cost (selection + pseudolabels, once per model and benchmark).
    """
    trained = metrics[(metrics.strategy != UNTOUCHED) & metrics.role_trained.astype(bool)].copy()
    for col in ("optimiser_time_s", "optimiser_steps", "epochs", "wall_time_s", "gpu_hours", "cpu_time_s"):
        if col not in trained:
            trained[col] = np.nan
    basis = compute_column(trained)
    cell = ["benchmark", "train_size", "seed"]
    base = trained[baseline_runs(trained)]
    refs = {
        col: (base.groupby(cell + ["model"])[col].median(), base.groupby(cell)[col].median())
        for col in dict.fromkeys(["optimiser_time_s", basis])
    }
    replay_cost = {}
    if replay_steps is not None and len(replay_steps):
        replay_cost = replay_steps.groupby(["benchmark", "model"]).wall_time_s.sum().to_dict()

    def ratios(grp, model, col):
        by_model, any_model = refs[col]
        out = []
        for _, r in grp.iterrows():
            key = (r.benchmark, r.train_size, r.seed)
            b = by_model.get(key + (model,)) if model != NO_MODEL else any_model.get(key)
            if b is not None and b > 0 and pd.notna(r[col]):
                out.append(r[col] / b)
        return out

    rows = []
    for (model, strategy), grp in trained.groupby(["model", "strategy"]):
        wall, compute = ratios(grp, model, "optimiser_time_s"), ratios(grp, model, basis)
        steps = grp.optimiser_steps.sum()
        replays = grp.role_replay.notna().any()
        spread = step_time_spread(grp)
        rows.append(
            {
                "model": model,
                "strategy": strategy,
                "runs": len(grp),
                "optimiser steps (median)": grp.optimiser_steps.median(),
                "time per step (ms)": 1000 * grp.optimiser_time_s.sum() / steps if steps else np.nan,
                "time per epoch (s)": (grp.optimiser_time_s / grp.epochs.where(grp.epochs > 0)).median(),
                "optimiser time (median s)": grp.optimiser_time_s.median(),
                "CPU time (median s)": grp.cpu_time_s.median(),
                "compute basis": COMPUTE_LABELS[basis],
                "compute / naive": float(np.median(compute)) if compute else np.nan,
                "compute / naive (spread)": float(np.std(compute, ddof=1)) if len(compute) > 1 else np.nan,
                "compute / naive (pairs)": len(compute),
                "optimiser time / naive": float(np.median(wall)) if wall else np.nan,
                "optimiser time / naive (spread)": float(np.std(wall, ddof=1)) if len(wall) > 1 else np.nan,
                "per-step time spread (max/min)": spread,
                "caveat": (
                    f"per-step time varies {spread:.2f}x across seeds of one cell (> {load_spread:g}, "
                    "findings.cost_load_spread): measured under uneven load"
                    + ("" if basis == "cpu_time_s" else "; its wall-clock cost is suspect")
                    if spread > load_spread
                    else ""
                ),
                "replay step (s)": sum(v for (b, m), v in replay_cost.items() if m == model and b in set(grp.benchmark))
                if replays
                else np.nan,
                "median wall time (s)": grp.wall_time_s.median(),
                "total GPU hours": grp.gpu_hours.fillna(0).sum(),
            }
        )
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def read_tables(tables: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read aggregate's errors, runs and robustness tables (robustness may be absent)."""
    if not (tables / "errors.csv").is_file():
        raise FtbenchError(
            f"{tables}/errors.csv does not exist: tables are computed from finished "
            "results; run the grid (or `snakemake aggregate`) first"
        )
    errors = pd.read_csv(tables / "errors.csv")
    runs = pd.read_csv(tables / "runs.csv")
    rob_path = tables / "robustness.csv"
    robustness = pd.read_csv(rob_path) if rob_path.is_file() else pd.DataFrame(columns=KEY + ["status"])
    return errors, runs, robustness


def read_replay_steps(tables: Path) -> pd.DataFrame:
    """Read aggregate's replay-step costs (empty when there are none)."""
    path = tables / "replay_steps.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["benchmark", "model", "wall_time_s"])


def seed_stats(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Seed mean, spread (sample standard deviation; NaN for one seed) and seed count."""
    grouped = frame.groupby(by)
    mean = grouped[columns].mean()
    sd = grouped[columns].std(ddof=1).add_suffix("_sd")
    out = pd.concat([mean, sd], axis=1)
    out["n_seeds"] = grouped.size()
    return out.reset_index()
