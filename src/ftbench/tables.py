"""Summary, recommendation and cost tables from the tidy results (aggregate's CSVs).

Every table is written as CSV, Markdown and LaTeX. Errors are in meV/atom (energy) and meV/A
(forces); several seeds are averaged.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ftbench.aggregate import FLAG_COLUMNS, KEY
from ftbench.config import NO_MODEL, UNTOUCHED

log = logging.getLogger("ftbench.tables")
REPLAY = ("replay", "pseudo_replay")
# name -> (column in the summary, lower is better); the broad-deployment score ranks these.
DEPLOYMENT_METRICS = {
    "target force RMSE": ("target_force_rmse", True),
    "pretraining force RMSE": ("pt_force_rmse", True),
    "MD survival": ("md_survival", False),
    "RDF EMD": ("emd_mean", True),
    "RSS collapse": ("rss_collapse", True),
    "dimer wall failures": ("dimer_wall_failures", True),
}
SUMMARY_COLUMNS = {
    "model": "model", "strategy": "strategy", "e0": "E0s", "train_size": "N train", "n_seeds": "seeds",
    "target_energy_rmse": "target E RMSE (meV/atom)", "target_force_rmse": "target F RMSE (meV/A)",
    "pt_force_rmse": "pretraining F RMSE (meV/A)", "pt_rel_untouched": "pretraining F / untouched",
    "md_survival": "MD survival", "md_time_ps": "MD time (ps)", "emd_mean": "RDF EMD (A)",
    "rss_collapse": "RSS collapse", "dimer_wall_failures": "dimer wall failures",
    "wall_time_s": "wall time (s)", "gpu_hours": "GPU hours",
}


def target_rmse(errors: pd.DataFrame, dataset: str, quantity: str) -> pd.DataFrame:
    """RMSE rows of the deployed (target) head, all config types, of the runs that finished ok."""
    return errors[(errors.status == "ok") & (errors.dataset == dataset) & (errors.head_role == "target")
                  & (errors.config_type == "all") & (errors.quantity == quantity) & (errors.statistic == "rmse")]


def run_metrics(errors: pd.DataFrame, runs: pd.DataFrame, robustness: pd.DataFrame) -> pd.DataFrame:
    """One row per run: the numbers every table and finding is computed from."""
    flags = [c for c in FLAG_COLUMNS if c in runs]
    out = runs[KEY + ["status", "wall_time_s", "gpu_hours"] + flags].copy()

    def join(frame, name):
        nonlocal out
        out = out.merge(frame.rename(name).reset_index(), on=KEY, how="left")

    join(target_rmse(errors, "test", "energy").groupby(KEY)["value"].mean(), "target_energy_rmse")
    join(target_rmse(errors, "test", "forces").groupby(KEY)["value"].mean(), "target_force_rmse")
    # Deployed (target) head on the model's own pretraining slice; scratch: mean over all slices.
    pt = target_rmse(errors, "pt_eval", "forces")
    pt = pt[(pt.dataset_model == pt.model) | (pt.model == NO_MODEL)]
    join(pt.groupby(KEY)["value"].mean(), "pt_force_rmse")
    rob = robustness[robustness.status == "ok"] if len(robustness) else robustness

    def metric(evaluation, name, how):
        sel = rob[(rob.evaluation == evaluation) & (rob.metric == name)]
        return sel.groupby(KEY)["value"].agg(how)

    if len(rob):
        join(metric("md", "survival_fraction", "mean"), "md_survival")
        join(metric("md", "mean_time_ps", "mean"), "md_time_ps")
        join(metric("emd", "emd", "mean"), "emd_mean")
        join(metric("rss", "collapse_fraction", "mean"), "rss_collapse")
        join(metric("dimers", "wall_failures", "sum"), "dimer_wall_failures")
    for col in ("md_survival", "md_time_ps", "emd_mean", "rss_collapse", "dimer_wall_failures"):
        if col not in out:
            out[col] = np.nan
    return out


def at_largest_size(frame: pd.DataFrame) -> pd.DataFrame:
    """The untouched foundation rows and the trained runs at the frame's largest training set."""
    largest = frame[frame.strategy != UNTOUCHED].train_size.max()
    return frame[(frame.strategy == UNTOUCHED) | (frame.train_size == largest)]


def summary(metrics: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """Per model x strategy x E0 mode at the benchmark's largest training-set size, seeds averaged."""
    m = metrics[metrics.benchmark == benchmark]
    sel = at_largest_size(m)
    values = [c for c in SUMMARY_COLUMNS if c not in ("model", "strategy", "e0", "train_size", "n_seeds",
                                                       "pt_rel_untouched")]
    grouped = sel.groupby(["model", "strategy", "e0", "train_size"])
    table = grouped[values].mean()
    table["n_seeds"] = grouped.size()
    table = table.reset_index()
    untouched = m[m.strategy == UNTOUCHED].groupby("model")["pt_force_rmse"].mean()
    table["pt_rel_untouched"] = table.pt_force_rmse / table.model.map(untouched)
    order = {s: i for i, s in enumerate(["untouched", "naive", "freeze5", "freeze6", "lora", "replay",
                                         "pseudo_replay", "replay_lora", "scratch"])}
    table["_o"] = table.strategy.map(lambda s: order.get(s, len(order)))
    return table.sort_values(["model", "_o", "e0"]).drop(columns="_o")[list(SUMMARY_COLUMNS)]


def recommendations(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark and foundation model: the best strategy for one target system (lowest target
    force RMSE) and for broad deployment (best mean rank over DEPLOYMENT_METRICS); scratch competes
    with every model's strategies."""
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
            ranks = []
            for col, lower in DEPLOYMENT_METRICS.values():
                if cand[col].notna().any():
                    ranks.append(cand[col].rank(ascending=lower, na_option="bottom"))
            cand["deployment_rank"] = pd.concat(ranks, axis=1).mean(axis=1)
            dep = cand.loc[cand.deployment_rank.idxmin()]
            rows.append({"benchmark": bench, "model": model, "train_size": int(acc.train_size),
                         "accuracy pick": acc.label, "accuracy pick F RMSE (meV/A)": acc.target_force_rmse,
                         "deployment pick": dep.label, "deployment pick mean rank": dep.deployment_rank,
                         "deployment pick F RMSE (meV/A)": dep.target_force_rmse,
                         "deployment pick pretraining F / untouched": dep.pt_rel_untouched,
                         "deployment pick MD survival": dep.md_survival,
                         "candidates": len(cand)})
    return pd.DataFrame(rows)


def cost(metrics: pd.DataFrame) -> pd.DataFrame:
    """Wall time and GPU hours per strategy and model; the ratio to naive on the same cell."""
    trained = metrics[(metrics.strategy != UNTOUCHED) & metrics.wall_time_s.notna()]
    cell = ["benchmark", "train_size", "seed"]
    naive = trained[trained.strategy == "naive"].groupby(cell + ["model"])["wall_time_s"].median()
    naive_any = trained[trained.strategy == "naive"].groupby(cell)["wall_time_s"].median()
    rows = []
    for (model, strategy), grp in trained.groupby(["model", "strategy"]):
        ratios = []
        for _, r in grp.iterrows():
            key = (r.benchmark, r.train_size, r.seed)
            base = naive.get(key + (model,)) if model != NO_MODEL else naive_any.get(key)
            if base is not None and base > 0:
                ratios.append(r.wall_time_s / base)
        rows.append({"model": model, "strategy": strategy, "runs": len(grp),
                     "median wall time (s)": grp.wall_time_s.median(),
                     "total wall time (h)": grp.wall_time_s.sum() / 3600,
                     "total GPU hours": grp.gpu_hours.fillna(0).sum(),
                     "wall time / naive": float(np.median(ratios)) if ratios else np.nan})
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, stem: Path, caption: str, headers: dict | None = None) -> list[Path]:
    """CSV (full precision, machine names), Markdown and LaTeX (4 significant digits, `headers`)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(stem.with_suffix(".csv"), index=False)
    shown = frame.rename(columns=headers or {}).map(lambda v: f"{v:.4g}" if isinstance(v, float) and np.isfinite(v) else
                      ("" if isinstance(v, float) else v))
    stem.with_suffix(".md").write_text(f"{caption}\n\n{shown.to_markdown(index=False)}\n")
    latex = shown.to_latex(index=False, caption=caption, label=f"tab:{stem.name}", escape=True)
    stem.with_suffix(".tex").write_text(latex)
    return [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]


def read_tables(tables: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if not (tables / "errors.csv").is_file():
        from ftbench.errors import FtbenchError

        raise FtbenchError(f"{tables}/errors.csv does not exist: tables are computed from finished "
                           "results; run the grid (or `snakemake aggregate`) first")
    errors = pd.read_csv(tables / "errors.csv")
    runs = pd.read_csv(tables / "runs.csv")
    rob_path = tables / "robustness.csv"
    robustness = pd.read_csv(rob_path) if rob_path.is_file() else pd.DataFrame(columns=KEY + ["status"])
    return errors, runs, robustness


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ftbench.config import add_config_arguments

    p.add_argument("--tables", type=Path, default=None,
                   help="folder with aggregate's errors.csv, runs.csv, robustness.csv; tables are written "
                        "here (default: the config's report_dir/tables, as the pipeline writes them)")
    add_config_arguments(p, "; they set the default --tables")


def run(args: argparse.Namespace) -> int:
    from ftbench.config import report_dir
    from ftbench.findings import findings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.tables is None:
        args.tables = report_dir(args) / "tables"
    metrics = run_metrics(*read_tables(args.tables))
    written = []
    for bench in sorted(metrics.benchmark.unique()):
        written += write_table(summary(metrics, bench), args.tables / f"summary_{bench}",
                               f"ftbench summary, benchmark {bench} (largest training set; untouched = "
                               "foundation model without fine-tuning)", SUMMARY_COLUMNS)
    written += write_table(recommendations(metrics), args.tables / "recommendations",
                           "Recommended strategy per benchmark and foundation model")
    written += write_table(cost(metrics), args.tables / "cost", "Training cost per strategy")
    written += write_table(findings(metrics), args.tables / "findings",
                           "The study's findings, checked against these results")
    print(f"wrote {len(written)} table files into {args.tables}/")
    return 0
