"""Summary, recommendation and cost tables from the tidy results (aggregate's CSVs).

Every table is written as CSV, Markdown and LaTeX. Errors are in meV/atom (energy) and meV/A
(forces); several seeds are averaged.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ftbench.config import add_config_arguments, config_from_args, report_dir
from ftbench.errors import FtbenchError
from ftbench.findings import findings
from ftbench.grid import NO_MODEL, UNTOUCHED
from ftbench.metrics import (
    METRICS,
    at_largest_size,
    cost,
    read_replay_steps,
    read_tables,
    roles_by_strategy,
    run_metrics,
    seed_stats,
)
from ftbench.style import strategy_sort

log = logging.getLogger("ftbench.tables")
# The summary's metric columns: every registry metric, with its seed spread (`<column>_sd`).
SUMMARY_METRICS = [m.column for m in METRICS] + ["optimiser_time_s", "wall_time_s", "gpu_hours"]
SUMMARY_COLUMNS = {
    "model": "model",
    "strategy": "strategy",
    "e0": "E0s",
    "train_size": "N train",
    "n_seeds": "seeds",
    **{m.column: m.header for m in METRICS},
    "pt_rel_untouched": "pretraining F / untouched",
    "optimiser_time_s": "optimiser time (s)",
    "wall_time_s": "wall time (s)",
    "gpu_hours": "GPU hours",
}


def summary(metrics: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """Return the summary of one benchmark at its largest training-set size.

    Per model x strategy x E0 mode: the seed mean of every metric and its spread (`<column>_sd`,
    sample SD over seeds; empty for one seed).
    """
    m = metrics[metrics.benchmark == benchmark]
    sel = at_largest_size(m)
    values = [c for c in SUMMARY_METRICS if c in sel]
    table = seed_stats(sel, ["model", "strategy", "e0", "train_size"], values)
    untouched = m[m.strategy == UNTOUCHED].groupby("model")["pt_force_rmse"].mean()
    table["pt_rel_untouched"] = table.pt_force_rmse / table.model.map(untouched)
    table["pt_rel_untouched_sd"] = table.pt_force_rmse_sd / table.model.map(untouched)
    order = {s: i for i, s in enumerate(strategy_sort(table.strategy.unique(), roles_by_strategy(m)))}
    table["_o"] = table.strategy.map(order)
    columns = []
    for c in [c for c in SUMMARY_COLUMNS if c in table]:
        columns.append(c)
        if c + "_sd" in table:
            columns.append(c + "_sd")
    return table.sort_values(["model", "_o", "e0"]).drop(columns="_o")[columns]


def recommendations(metrics: pd.DataFrame) -> pd.DataFrame:
    """Return the best strategies per benchmark and foundation model.

    The best strategy for one target system (lowest seed-mean target force RMSE) and for broad
    deployment (best weighted mean rank over the metrics registry's deployment weights); scratch
    competes with every model's strategies.
    """
    rows = []
    for bench in sorted(metrics.benchmark.unique()):
        table = summary(metrics, bench)
        table = table[(table.strategy != UNTOUCHED)]
        for model in sorted(m for m in table.model.unique() if m != NO_MODEL):
            cand = table[table.model.isin([model, NO_MODEL])].copy()
            cand = cand[cand.target_force_rmse.notna()]
            if cand.empty:
                continue
            several_e0 = cand[cand.model != NO_MODEL].e0.nunique() > 1
            cand["label"] = cand.strategy + (("/" + cand.e0) if several_e0 else "")
            acc = cand.loc[cand.target_force_rmse.idxmin()]
            ranks, weights = [], []
            for metric in METRICS:
                if metric.weight > 0 and metric.column in cand and cand[metric.column].notna().any():
                    ranks.append(cand[metric.column].rank(ascending=metric.lower_is_better, na_option="bottom"))
                    weights.append(metric.weight)
            cand["deployment_rank"] = (pd.concat(ranks, axis=1) * weights).sum(axis=1) / sum(weights)
            dep = cand.loc[cand.deployment_rank.idxmin()]
            rows.append(
                {
                    "benchmark": bench,
                    "model": model,
                    "train_size": int(acc.train_size),
                    "accuracy pick": acc.label,
                    "accuracy pick F RMSE (meV/A)": acc.target_force_rmse,
                    "accuracy pick F RMSE spread": acc.target_force_rmse_sd,
                    "seeds": acc.n_seeds,
                    "deployment pick": dep.label,
                    "deployment pick mean rank": dep.deployment_rank,
                    "deployment pick F RMSE (meV/A)": dep.target_force_rmse,
                    "deployment pick pretraining F / untouched": dep.pt_rel_untouched,
                    "deployment pick MD survival": dep.md_survival,
                    "candidates": len(cand),
                }
            )
    return pd.DataFrame(rows)


def _with_spread(frame: pd.DataFrame) -> pd.DataFrame:
    """`x` and `x_sd` columns as one "mean ± sd" text column (4 significant digits)."""

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) and np.isfinite(v) else ("" if isinstance(v, float) else v)

    out = pd.DataFrame(index=frame.index)
    for c in frame.columns:
        if c.endswith("_sd") and c[:-3] in frame:
            continue
        if c + "_sd" in frame:
            out[c] = [
                fmt(v) + (f" ± {sd:.2g}" if isinstance(sd, float) and np.isfinite(sd) else "")
                for v, sd in zip(frame[c], frame[c + "_sd"])
            ]
        else:
            out[c] = frame[c].map(fmt)
    return out


def write_table(frame: pd.DataFrame, stem: Path, caption: str, headers: dict | None = None) -> list[Path]:
    """Write a table as CSV, Markdown and LaTeX; return the paths.

    CSV: full precision, machine names, spreads in `_sd` columns. Markdown and LaTeX: 4 significant
    digits, "mean ± seed SD", `headers`.
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(stem.with_suffix(".csv"), index=False)
    shown = _with_spread(frame).rename(columns=headers or {})
    stem.with_suffix(".md").write_text(f"{caption}\n\n{shown.to_markdown(index=False)}\n")
    latex = shown.to_latex(index=False, caption=caption.split("\n\n")[0], label=f"tab:{stem.name}", escape=True)
    stem.with_suffix(".tex").write_text(latex)
    return [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]


def run_warnings(runs: pd.DataFrame, benchmark: str) -> list[str]:
    """Distinct warnings (E0 mismatch, E0s not in the model) of a benchmark's runs (runs.csv)."""
    if "e0_warnings" not in runs:
        return []
    texts = runs.loc[runs.benchmark == benchmark, "e0_warnings"].dropna().astype(str)
    return list(dict.fromkeys(w for t in texts for w in t.split(" | ") if w.strip()))


def missing_cells(
    runs: pd.DataFrame,
    benchmarks: list[str],
    models: list[str],
    strategies: list[str],
    no_foundation: set[str] = frozenset(),
) -> dict[str, list[str]]:
    """Per benchmark, the model/strategy cells of the grid that have no run in runs.csv."""
    have = set(zip(runs.benchmark, runs.model, runs.strategy))
    out = {}
    for bench in benchmarks:
        cells = [(m, UNTOUCHED) for m in models]
        for strategy in strategies:
            cells += [(NO_MODEL, strategy)] if strategy in no_foundation else [(m, strategy) for m in models]
        gone = [f"{m}/{s}" for m, s in dict.fromkeys(cells) if (bench, m, s) not in have]
        if gone:
            out[bench] = gone
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench tables` options to `p`."""
    # No silent default: a bare `ftbench tables` must not rewrite results/. The folder comes from
    # --tables, or from the config's report_dir when a --configfile/--config is given.
    p.add_argument(
        "--tables",
        type=Path,
        default=None,
        help="folder with aggregate's errors.csv, runs.csv, robustness.csv; tables are written here",
    )
    add_config_arguments(p, "; they set the default --tables")
    p.add_argument(
        "--benchmarks",
        nargs="*",
        default=[],
        help="benchmarks the config expects: each gets its summary table, an empty one that "
        "says so when it has no finished runs",
    )
    p.add_argument("--models", nargs="*", default=[], help="foundation models the config expects")
    p.add_argument("--strategies", nargs="*", default=[], help="strategies the config expects")
    p.add_argument(
        "--no-foundation", nargs="*", default=[], help="strategies that train without a foundation model (scratch)"
    )
    p.add_argument(
        "--findings", default=None, help="JSON of the config's `findings:` thresholds (default: from the config)"
    )


def run(args: argparse.Namespace) -> int:
    """Run `ftbench tables` with parsed `args`; return the exit code.

    Writes the summary, recommendation, cost and findings tables.
    """
    if args.tables is None:
        if not (args.configfile or args.config):
            raise FtbenchError(
                "name the folder: --tables results/tables, or give --configfile/--config "
                "to take it from the config's report_dir"
            )
        args.tables = report_dir(args) / "tables"
    errors, runs, robustness = read_tables(args.tables)
    metrics = run_metrics(errors, runs, robustness)
    replay_steps = read_replay_steps(args.tables)
    settings = json.loads(args.findings) if args.findings else config_from_args(args)["findings"]
    written = []
    # Draw from what exists and say what is missing: every expected summary is written (a
    # missing output would make Snakemake delete all of this job's tables).
    missing = missing_cells(runs, args.benchmarks, args.models, args.strategies, set(args.no_foundation))
    for bench, cells in missing.items():
        print(
            f"missing: {bench}: {len(cells)} cells have no finished run in {args.tables}/runs.csv: {', '.join(cells)}"
        )
    for bench in args.benchmarks:
        if bench not in set(metrics.benchmark):
            written += write_table(
                pd.DataFrame(columns=list(SUMMARY_COLUMNS.values())),
                args.tables / f"summary_{bench}",
                f"ftbench summary, benchmark {bench}: no finished runs in these results "
                "(run its grid, then the tables again)",
            )
    for bench in sorted(metrics.benchmark.unique()):
        warnings = run_warnings(runs, bench)
        for w in warnings:
            print(f"warning: {bench}: {w}")
        caption = (
            f"ftbench summary, benchmark {bench} (largest training set; seed mean ± seed SD; "
            "untouched = foundation model without fine-tuning)" + "".join(f"\n\nWarning: {w}" for w in warnings)
        )
        written += write_table(summary(metrics, bench), args.tables / f"summary_{bench}", caption, SUMMARY_COLUMNS)
    written += write_table(
        recommendations(metrics),
        args.tables / "recommendations",
        "Recommended strategy per benchmark and foundation model",
    )
    written += write_table(
        cost(metrics, replay_steps),
        args.tables / "cost",
        "Training cost per strategy (optimiser-step time from mace's per-step log; replay step "
        "once per model and benchmark)",
    )
    written += write_table(
        findings(metrics, settings, replay_steps),
        args.tables / "findings",
        "The study's findings, checked against these results",
    )
    print(
        f"wrote {len(written)} table files into {args.tables}/"
        + (f"; {sum(map(len, missing.values()))} grid cells missing (listed above)" if missing else "")
    )
    return 0
