"""The metrics registry and the per-run metrics every table, finding and figure is computed from.

One registry entry per metric: where it comes from (a row selection of errors.csv, or a path
into robustness.json that aggregate reads), its unit, which direction is better and its weight
in the broad-deployment rank. A new probe is one module plus one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ftbench.errors import FtbenchError
from ftbench.grid import NO_MODEL, UNTOUCHED
from ftbench.style import STUDY_ROLES

KEY = ["benchmark", "model", "strategy", "e0", "train_size", "seed"]
# Role flags of a run's strategy (strategies.roles), as runs.csv columns.
ROLE_COLUMNS = ["role_foundation", "role_replay", "role_frozen", "role_lora", "role_trained"]


@dataclass(frozen=True)
class Metric:
    """One number per run.

    column: name in the per-run metrics and the summary tables; label, unit: for people;
    lower_is_better: the direction; weight: weight in the deployment rank (0: not ranked);
    evaluation: "errors" (errors.csv) or the robustness.json section (md, emd, rss, dimers);
    select: errors: (dataset, quantity, head_role); robustness: the path in robustness.json, "*"
    standing for the pairs; how: how pairs (and several rows of a run) are combined.
    """

    column: str
    label: str
    unit: str
    lower_is_better: bool
    weight: float
    evaluation: str
    select: tuple
    how: str = "mean"

    @property
    def metric(self) -> str:
        """The robustness.csv `metric` name (the last key of the path)."""
        return self.select[-1] if self.select[-1] != "*" else self.select[-2]

    @property
    def header(self) -> str:
        """The column header: label and unit."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


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
    Metric("md_survival", "MD survival", "", False, 1.0, "md", ("md", "summary", "survival_fraction")),
    Metric("md_time_ps", "MD time", "ps", False, 0.0, "md", ("md", "summary", "mean_time_ps")),
    Metric("md_steps_per_s", "MD speed", "steps/s", False, 0.0, "md", ("md", "summary", "steps_per_s")),
    Metric("emd_mean", "RDF EMD", "A", True, 1.0, "emd", ("emd", "emd", "*")),
    Metric("rss_collapse", "RSS collapse", "", True, 1.0, "rss", ("rss", "summary", "collapse_fraction")),
    Metric("rss_converged", "RSS converged", "", False, 0.0, "rss", ("rss", "summary", "converged_fraction")),
    Metric(
        "dimer_wall_failures", "dimer wall failures", "", True, 1.0, "dimers", ("dimers", "*", "wall_failures"), "sum"
    ),
    Metric("dimer_holes", "dimer holes", "", True, 1.0, "dimers", ("dimers", "*", "holes"), "sum"),
]
BY_COLUMN = {m.column: m for m in METRICS}
ROBUSTNESS_METRICS = [m for m in METRICS if m.evaluation != "errors"]


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


def run_metrics(errors: pd.DataFrame, runs: pd.DataFrame, robustness: pd.DataFrame) -> pd.DataFrame:
    """One row per run: every registry metric, status, cost and role flags."""
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
    return out


def _fill_roles(frame: pd.DataFrame) -> None:
    """Role columns from runs.csv; results without them get the study strategies' catalog roles."""
    defaults = {
        "role_foundation": ("foundation", True),
        "role_replay": ("replay", None),
        "role_frozen": ("frozen", 0),
        "role_lora": ("lora", False),
        "role_trained": ("trained", True),
    }
    for col, (key, default) in defaults.items():
        fallback = frame.strategy.map(lambda s, k=key, d=default: STUDY_ROLES.get(s, {}).get(k, d))
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


def cost(metrics: pd.DataFrame, replay_steps: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return the training cost per model and strategy.

    Optimiser-step time (mace's own per-step timing, so start-up and evaluation are excluded), per
    step and per epoch, and its ratio to naive (the plain fine-tunes: no replay, LoRA or frozen
    groups) on the same cell; wall time for reference. Replay strategies also get the replay step's
    own cost (selection + pseudolabels, once per model and benchmark).
    """
    trained = metrics[(metrics.strategy != UNTOUCHED) & metrics.role_trained.astype(bool)].copy()
    for col in ("optimiser_time_s", "optimiser_steps", "epochs", "wall_time_s", "gpu_hours"):
        if col not in trained:
            trained[col] = np.nan
    plain = (
        trained.role_foundation.astype(bool)
        & trained.role_replay.isna()
        & ~trained.role_lora.astype(bool)
        & (trained.role_frozen.fillna(0) == 0)
    )
    cell = ["benchmark", "train_size", "seed"]
    base = trained[plain]  # plain full fine-tunes (naive): no replay, LoRA or frozen groups
    naive = base.groupby(cell + ["model"])["optimiser_time_s"].median()
    naive_any = base.groupby(cell)["optimiser_time_s"].median()
    replay_cost = {}
    if replay_steps is not None and len(replay_steps):
        replay_cost = replay_steps.groupby(["benchmark", "model"]).wall_time_s.sum().to_dict()
    rows = []
    for (model, strategy), grp in trained.groupby(["model", "strategy"]):
        ratios = []
        for _, r in grp.iterrows():
            key = (r.benchmark, r.train_size, r.seed)
            b = naive.get(key + (model,)) if model != NO_MODEL else naive_any.get(key)
            if b is not None and b > 0 and pd.notna(r.optimiser_time_s):
                ratios.append(r.optimiser_time_s / b)
        steps = grp.optimiser_steps.sum()
        replays = grp.role_replay.notna().any()
        rows.append(
            {
                "model": model,
                "strategy": strategy,
                "runs": len(grp),
                "optimiser steps (median)": grp.optimiser_steps.median(),
                "time per step (ms)": 1000 * grp.optimiser_time_s.sum() / steps if steps else np.nan,
                "time per epoch (s)": (grp.optimiser_time_s / grp.epochs.where(grp.epochs > 0)).median(),
                "optimiser time (median s)": grp.optimiser_time_s.median(),
                "optimiser time / naive": float(np.median(ratios)) if ratios else np.nan,
                "optimiser time / naive (spread)": float(np.std(ratios, ddof=1)) if len(ratios) > 1 else np.nan,
                "replay step (s)": sum(v for (b, m), v in replay_cost.items() if m == model and b in set(grp.benchmark))
                if replays
                else np.nan,
                "median wall time (s)": grp.wall_time_s.median(),
                "total GPU hours": grp.gpu_hours.fillna(0).sum(),
            }
        )
    return pd.DataFrame(rows)


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
