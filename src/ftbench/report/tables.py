"""Summary, recommendation and cost tables from the tidy results (aggregate's CSVs).

Every table is written as CSV, Markdown and LaTeX. Errors are in meV/atom (energy) and meV/A
(forces); several seeds are averaged.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ftbench.core.config import add_config_arguments, config_from_args, report_dir
from ftbench.core.errors import FtbenchError
from ftbench.core.grid import NO_MODEL, UNTOUCHED
from ftbench.core.strategies import baseline_strategy
from ftbench.report.findings import DEFAULTS, Stat, compare, findings, forgetting_metric
from ftbench.report.metrics import (
    METRICS,
    at_largest_size,
    cost,
    read_replay_steps,
    read_tables,
    roles_by_strategy,
    run_metrics,
    seed_stats,
)
from ftbench.report.style import strategy_sort

log = logging.getLogger("ftbench.report.tables")
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
    "pt_rel_slice": "pretraining slice labels",
    "optimiser_time_s": "optimiser time (s)",
    "wall_time_s": "wall time (s)",
    "gpu_hours": "GPU hours",
}


def pretraining_basis(frame: pd.DataFrame) -> str:
    """Return the pretraining-error column a model's forgetting is read on (finding 3's choice).

    The slice relabelled at the target level of theory where it exists, else the original labels
    (findings.forgetting_metric): the summary, the deployment rank and finding 3 use the same one.
    """
    return forgetting_metric(frame[frame.strategy != UNTOUCHED])[0]


def summary(metrics: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """Return the summary of one benchmark at its largest training-set size.

    Per model x strategy x E0 mode: the seed mean of every metric and its spread (`<column>_sd`,
    sample SD over seeds; empty for one seed). `pt_rel_untouched` is the pretraining error over the
    untouched model's on the slice `pretraining_basis` picks per model (`pt_rel_slice` says which).
    """
    m = metrics[metrics.benchmark == benchmark]
    sel = at_largest_size(m)
    values = [c for c in SUMMARY_METRICS if c in sel]
    table = seed_stats(sel, ["model", "strategy", "e0", "train_size"], values)
    table["pt_rel_untouched"] = table["pt_rel_untouched_sd"] = np.nan
    table["pt_rel_slice"] = ""
    untouched = m[m.strategy == UNTOUCHED]
    for model, rows in sel[sel.model != NO_MODEL].groupby("model"):
        col = pretraining_basis(rows)
        base = untouched.loc[untouched.model == model, col].mean()
        here = table.model == model
        table.loc[here, "pt_rel_untouched"] = table.loc[here, col] / base
        table.loc[here, "pt_rel_untouched_sd"] = table.loc[here, col + "_sd"] / base
        table.loc[here, "pt_rel_slice"] = "relabelled" if col == "pt_relabelled_force_rmse" else "original labels"
    order = {s: i for i, s in enumerate(strategy_sort(table.strategy.unique(), roles_by_strategy(m)))}
    table["_o"] = table.strategy.map(order)
    columns = []
    for c in [c for c in SUMMARY_COLUMNS if c in table]:
        columns.append(c)
        if c + "_sd" in table:
            columns.append(c + "_sd")
    return table.sort_values(["model", "_o", "e0"]).drop(columns="_o")[columns]


# ---- recommendations ---------------------------------------------------------------------------

ACCURACY, DEPLOYMENT = "one target system", "broad deployment"
MEASURES = {ACCURACY: "target F RMSE (meV/A)", DEPLOYMENT: "deployment rank (per seed)"}


def _candidates(metrics: pd.DataFrame, bench: str, model: str) -> pd.DataFrame:
    """Finished runs of one model's strategies (and scratch) at the benchmark's largest size, with a `label`."""
    m = metrics[metrics.benchmark == bench]
    cand = at_largest_size(m)
    cand = cand[(cand.strategy != UNTOUCHED) & (cand.status == "ok") & cand.model.isin([model, NO_MODEL])].copy()
    several_e0 = cand[cand.model != NO_MODEL].e0.nunique() > 1
    cand["label"] = cand.strategy + (("/" + cand.e0) if several_e0 else "")
    return cand


def deployment_ranks(cand: pd.DataFrame, pt_column: str = "pt_force_rmse") -> pd.Series:
    """Return each run's weighted rank among the runs of the same seed (1 = best).

    Every registry metric with a deployment weight is ranked over the candidates of one seed (ties
    share the mean rank; a missing value ranks last), and the ranks are averaged with the weights.
    The pretraining error is read on `pt_column` (the slice finding 3 uses). Ranking each seed on
    its own gives every candidate one rank per seed, so the seed-to-seed change of the ranks is its
    spread, judged like any other seed spread.
    """
    out = pd.Series(np.nan, index=cand.index)
    for _, runs in cand.groupby("seed"):
        ranks, weights = [], []
        for metric in METRICS:
            col = pt_column if metric.column == "pt_force_rmse" else metric.column
            if metric.weight > 0 and col in runs and runs[col].notna().any():
                ranks.append(runs[col].rank(ascending=metric.lower_is_better, na_option="bottom"))
                weights.append(metric.weight)
        if ranks:
            out[runs.index] = (pd.concat(ranks, axis=1) * weights).sum(axis=1) / sum(weights)
    return out


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _value(st: Stat, scope: str) -> str:
    """Return `mean ± sd unit, n seeds` of one candidate."""
    spread = f" ± {st.sd:.2g}" if np.isfinite(st.sd) else ""
    number = f"{st.mean:.3g}{spread} meV/A" if scope == ACCURACY else f"mean rank {st.mean:.3g}{spread}"
    return f"{number}, {st.seeds} seed{'s' if st.seeds != 1 else ''}"


def decide(stats: dict[str, Stat], cfg: dict, scope: str = ACCURACY) -> dict:
    """Return the answer of one scope from each candidate's seed statistics (lower is better).

    The pick is the lowest seed mean, the runner-up the next. Every candidate that findings.compare
    cannot put above the pick (within `spread_factor` x the larger seed SD, or fewer than
    `min_seeds` seeds on either side) is not separable from it; the answer names a winner only
    when no candidate is left inseparable, else "undecided between" all of them.
    """
    ranked = sorted((k for k, v in stats.items() if v.n), key=lambda k: stats[k].mean)
    if not ranked:
        return {}
    pick = ranked[0]
    tied = [k for k in ranked[1:] if compare(stats[k], stats[pick], cfg) != 1]
    few = stats[pick].seeds < cfg["min_seeds"]
    if len(ranked) == 1:
        answer = f"only {pick} finished" + (f" (fewer than {cfg['min_seeds']} seeds)" if few else "")
    elif tied:
        answer = "undecided between " + _join([pick, *tied])
    else:
        answer = pick
    return {
        "answer": answer,
        "decided": bool(len(ranked) > 1 and not tied),
        "pick": pick,
        "runner_up": ranked[1] if len(ranked) > 1 else None,
        "not_separable": ", ".join(tied),
        "not_separable_values": "; ".join(f"{k} ({_value(stats[k], scope)})" for k in tied),
        "candidates": len(ranked),
    }


def slice_seen(bench: str, model: str, runs: pd.DataFrame | None, replay_steps: pd.DataFrame | None) -> bool | None:
    """Whether the model's pretraining slice was in its training data: True, False or None (not recorded).

    Read from an optional boolean `pt_eval_seen_in_training` column of runs.csv or replay_steps.csv.
    """
    values = []
    for frame in (runs, replay_steps):
        if frame is not None and "pt_eval_seen_in_training" in frame:
            rows = frame[(frame.benchmark == bench) & (frame.model == model)]
            values += [v for v in rows.pt_eval_seen_in_training if pd.notna(v)]
    if not values:
        return None
    return any(str(v).strip().lower() in ("true", "1", "1.0") for v in values)


def _short(warning: str) -> str:
    """Return the first clause of a run warning (its statement; runs.csv keeps the advice)."""
    return warning.split("; ")[0].strip()


def caveats(
    scope: str,
    names: list[str],
    cand: pd.DataFrame,
    pt_column: str,
    seen: bool | None,
    runs: pd.DataFrame | None,
    cost_table: pd.DataFrame,
) -> list[str]:
    """Return the caveats of one answer: slice labels and provenance, run warnings, cost under load.

    Parameters
    ----------
    scope
        ACCURACY or DEPLOYMENT; only the deployment rank reads the pretraining slice.
    names
        Candidate labels the answer names (pick, runner-up, those not separable from the pick).
    cand
        The candidates' runs (`_candidates`).
    pt_column
        Pretraining-error column of the deployment rank.
    seen
        `slice_seen` of the model's pretraining slice.
    runs
        runs.csv (its `e0_warnings`), or None.
    cost_table
        metrics.cost of these results.
    """
    out = []
    named = cand[cand.label.isin(names)]
    measured = pt_column in cand and cand[pt_column].notna().any()
    if scope == DEPLOYMENT and not measured:
        out.append("forgetting not measured: no pretraining data (`replay_pool`) for this model")
    if scope == DEPLOYMENT and measured:
        if pt_column == "pt_force_rmse":
            out.append(
                "pretraining error on the slice's original labels (the foundation's level of theory, no "
                "relabelled slice in catalog.foundation_models.<model>.pt_eval.relabelled): where the target "
                "is at another level, it counts the move to the target's level as forgetting"
            )
        if seen is None:
            out.append(
                "not recorded whether the pretraining slice was in the models' training data "
                "(runs.csv has no pt_eval_seen_in_training)"
            )
        elif seen:
            out.append(
                "the pretraining slice was in the models' training data (pt_eval_seen_in_training): its error "
                "measures recall, not transfer"
            )
    if runs is not None and "e0_warnings" in runs:
        keys = ["benchmark", "model", "strategy", "e0", "train_size", "seed"]
        mine = runs.merge(named[keys], on=keys)
        texts = mine.e0_warnings.dropna().astype(str)
        for w in dict.fromkeys(_short(w) for t in texts for w in t.split(" | ") if w.strip()):
            who = sorted(set(mine.loc[texts.index[texts.str.contains(w, regex=False)], "strategy"]))
            out.append(f"run warning ({', '.join(who)}; runs.csv e0_warnings): {w}")
    strategies = set(named.strategy)
    rows = cost_table[cost_table.strategy.isin(strategies) & cost_table.model.isin(set(named.model))]
    for _, r in rows[rows.caveat.astype(bool)].iterrows():
        out.append(f"cost of {r.strategy}: {r.caveat}")
    if len(rows) and (rows["compute basis"] != "CPU time").any():
        out.append("cost ratios on wall-clock optimiser-step time (no CPU time in runs.csv): sensitive to load")
    return out


def recommendations(
    metrics: pd.DataFrame,
    runs: pd.DataFrame | None = None,
    replay_steps: pd.DataFrame | None = None,
    settings: dict | None = None,
) -> pd.DataFrame:
    """Return the answer per benchmark, foundation model and scope, with its uncertainty and caveats.

    Parameters
    ----------
    metrics
        Per-run metrics (run_metrics).
    runs
        runs.csv, for the run warnings and `pt_eval_seen_in_training` (optional).
    replay_steps
        replay_steps.csv, for `pt_eval_seen_in_training` (optional).
    settings
        The config's `findings:` block (over findings.DEFAULTS).

    Returns
    -------
    DataFrame
        Two rows per benchmark and model, at the largest training set; scratch competes with every
        model's strategies. Scope "one target system": the lowest seed-mean target force RMSE.
        Scope "broad deployment": the best seed mean of the per-seed deployment rank
        (`deployment_ranks`: within each seed, the weighted mean rank over the registry's deployment
        weights). For both, the pick and runner-up with seed mean, seed SD and seeds, and the answer
        from `decide`: a winner only when it is separable from every other candidate by
        findings.compare's rule (difference beyond `spread_factor` x the larger seed SD, at least
        `min_seeds` seeds), else "undecided between" the inseparable ones. Its cost relative to naive
        (metrics.cost's compute basis) and `caveats` come with it.
    """
    cfg = {**DEFAULTS, **(settings or {})}
    cost_table = cost(metrics, replay_steps, cfg["cost_load_spread"])
    rows = []
    for bench in sorted(metrics.benchmark.unique()):
        models = metrics[(metrics.benchmark == bench) & (metrics.strategy != UNTOUCHED)].model.unique()
        for model in sorted(m for m in models if m != NO_MODEL):
            cand = _candidates(metrics, bench, model)
            cand = cand[cand.target_force_rmse.notna()]
            if cand.empty:
                continue
            pt_column = pretraining_basis(cand)
            cand["deployment_rank"] = deployment_ranks(cand, pt_column)
            seen = slice_seen(bench, model, runs, replay_steps)
            for scope, column in ((ACCURACY, "target_force_rmse"), (DEPLOYMENT, "deployment_rank")):
                stats = {label: Stat.of(g[column], g.seed) for label, g in cand.groupby("label")}
                d = decide(stats, cfg, scope)
                if not d:
                    continue
                pick, runner = stats[d["pick"]], stats.get(d["runner_up"]) if d["runner_up"] else None
                named = [
                    d["pick"],
                    *([d["runner_up"]] if d["runner_up"] else []),
                    *filter(None, d["not_separable"].split(", ")),
                ]
                strategy = cand.loc[cand.label == d["pick"], "strategy"].iloc[0]
                pick_model = cand.loc[cand.label == d["pick"], "model"].iloc[0]
                c = cost_table[(cost_table.model == pick_model) & (cost_table.strategy == strategy)]
                rows.append(
                    {
                        "benchmark": bench,
                        "model": model,
                        "train_size": int(cand.train_size.max()),
                        "scope": scope,
                        "measure": MEASURES[scope],
                        "answer": d["answer"],
                        "decided": d["decided"],
                        "pick": d["pick"],
                        "pick_value": pick.mean,
                        "pick_value_sd": pick.sd,
                        "pick_seeds": pick.seeds,
                        "runner_up": d["runner_up"],
                        "runner_up_value": runner.mean if runner else np.nan,
                        "runner_up_value_sd": runner.sd if runner else np.nan,
                        "runner_up_seeds": runner.seeds if runner else 0,
                        "not_separable": d["not_separable"],
                        "not_separable_values": d["not_separable_values"],
                        "candidates": d["candidates"],
                        "pick_compute_vs_naive": c["compute / naive"].iloc[0] if len(c) else np.nan,
                        "caveats": " | ".join(caveats(scope, named, cand, pt_column, seen, runs, cost_table)),
                    }
                )
    return pd.DataFrame(rows)


RECOMMENDATION_HEADERS = {
    "train_size": "N train",
    "pick": "pick",
    "pick_value": "pick value",
    "pick_seeds": "pick seeds",
    "runner_up": "runner-up",
    "runner_up_value": "runner-up value",
    "runner_up_seeds": "runner-up seeds",
    "not_separable": "not separable from the pick",
    "pick_compute_vs_naive": "pick compute / naive",
}


def recommendation_rule(cfg: dict) -> str:
    """Return how the recommendation decides, with the configured thresholds."""
    return (
        "One target system: lowest seed-mean target force RMSE at the largest training set. Broad "
        "deployment: within each seed every candidate is ranked on each metric with a deployment weight "
        "(metrics registry; pretraining error on the relabelled slice where there is one, as finding 3) "
        "and the ranks are averaged with the weights; the pick has the best seed mean of that per-seed "
        "rank, so seed-to-seed changes of the rank are its spread. A strategy is named only when every "
        f"other candidate is worse by more than {cfg['spread_factor']:g} x the larger seed SD "
        f"(findings.spread_factor) with >= {cfg['min_seeds']} seeds on each side (findings.min_seeds); "
        "otherwise the answer is undecided between the pick and every candidate not separable from it. "
        "Values: seed mean ± seed SD."
    )


def recommendation_text(table: pd.DataFrame, cfg: dict) -> str:
    """Return the plain-text answer a chemist reads at the end of a run (recommendations.txt)."""
    lines = ["ftbench recommendation", "", recommendation_rule(cfg)]
    if table.empty:
        return "\n".join(lines + ["", "No finished fine-tune to recommend from."]) + "\n"
    for (bench, model), rows in table.groupby(["benchmark", "model"], sort=False):
        lines += ["", f"{bench}, foundation model {model} (N train = {rows.train_size.iloc[0]}):"]
        notes = []
        for _, r in rows.iterrows():
            pick = _value(Stat(r.pick_value, r.pick_value_sd, r.pick_seeds, r.pick_seeds), r.scope)
            if r.decided:
                said = (
                    f"{r.pick} ({pick}); runner-up {r.runner_up} "
                    f"({_value(Stat(r.runner_up_value, r.runner_up_value_sd, r.runner_up_seeds), r.scope)}) is worse "
                    "beyond the seed spread"
                )
            elif r.not_separable:
                said = "undecided between " + _join([f"{r.pick} ({pick})", *r.not_separable_values.split("; ")])
            else:
                said = f"{r.answer} ({pick})"
            lines.append(f"  For {r.scope}: {said}.")
            notes += [c for c in str(r.caveats).split(" | ") if c and c != "nan"]
        if notes:
            lines.append("  Caveats:")
            lines += [f"  - {c}" for c in dict.fromkeys(notes)]
    return "\n".join(lines) + "\n"


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


# the training file a warning names differs only by size: one line for all sizes
SIZED_TRAIN_FILE = re.compile(r"train_n\d+\.xyz")


def run_warnings(runs: pd.DataFrame, benchmark: str) -> list[str]:
    """Distinct warnings (E0 mismatch, E0s not in the model) of a benchmark's runs (runs.csv)."""
    if "e0_warnings" not in runs:
        return []
    texts = runs.loc[runs.benchmark == benchmark, "e0_warnings"].dropna().astype(str)
    return list(
        dict.fromkeys(SIZED_TRAIN_FILE.sub("train_n<size>.xyz", w) for t in texts for w in t.split(" | ") if w.strip())
    )


def missing_cells(
    runs: pd.DataFrame,
    benchmarks: list[str],
    models: list[str] | dict[str, list[str]],
    strategies: list[str],
    no_foundation: set[str] = frozenset(),
) -> dict[str, list[str]]:
    """Per benchmark, the model/strategy cells of the grid that have no run in runs.csv.

    `models`: the foundation models of every benchmark, or {benchmark: its models}.
    """
    have = set(zip(runs.benchmark, runs.model, runs.strategy))
    out = {}
    for bench in benchmarks:
        ms = models.get(bench, []) if isinstance(models, dict) else models
        cells = [(m, UNTOUCHED) for m in ms]
        for strategy in strategies:
            cells += [(NO_MODEL, strategy)] if strategy in no_foundation else [(m, strategy) for m in ms]
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
    p.add_argument(
        "--benchmark-models",
        nargs="*",
        default=[],
        metavar="BENCHMARK=M1,M2",
        help="a benchmark that runs other foundation models than --models (config `benchmark_grid`)",
    )
    p.add_argument("--strategies", nargs="*", default=[], help="strategies the config expects")
    p.add_argument(
        "--no-foundation", nargs="*", default=[], help="strategies that train without a foundation model (scratch)"
    )
    p.add_argument(
        "--findings", default=None, help="JSON of the config's `findings:` thresholds (default: from the config)"
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="the reference strategy of cost ratios and finding 2, or `none` (default: the config's "
        "`baseline: true` one)",
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
    cfg = None if args.findings and args.baseline else config_from_args(args)
    baseline = baseline_strategy(cfg) if cfg is not None and not args.baseline else args.baseline
    baseline = None if baseline == "none" else baseline
    metrics = run_metrics(errors, runs, robustness, baseline)
    replay_steps = read_replay_steps(args.tables)
    settings = json.loads(args.findings) if args.findings else cfg["findings"]
    written = []
    # Draw from what exists and say what is missing: every expected summary is written (a
    # missing output would make Snakemake delete all of this job's tables).
    models = {b: list(args.models) for b in args.benchmarks}
    for item in args.benchmark_models:
        bench, _, names = item.partition("=")
        models[bench] = [m for m in names.split(",") if m]
    missing = missing_cells(runs, args.benchmarks, models, args.strategies, set(args.no_foundation))
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
    cfg = {**DEFAULTS, **settings}
    rec = recommendations(metrics, runs, replay_steps, cfg)
    notes = [
        f"Caveats, {r.benchmark}/{r.model}, {r.scope}: " + "; ".join(r.caveats.split(" | "))
        for _, r in rec.iterrows()
        if r.caveats
    ]
    written += write_table(
        rec,
        args.tables / "recommendations",
        "Recommended strategy per benchmark, foundation model and scope, with its seed spread\n\n"
        + recommendation_rule(cfg)
        + "".join(f"\n\n{n}" for n in notes),
        RECOMMENDATION_HEADERS,
    )
    text = recommendation_text(rec, cfg)
    (args.tables / "recommendations.txt").write_text(text)
    written.append(args.tables / "recommendations.txt")
    cost_table = cost(metrics, replay_steps, cfg["cost_load_spread"])
    basis = cost_table["compute basis"].iloc[0] if len(cost_table) else "optimiser time"
    written += write_table(
        cost_table,
        args.tables / "cost",
        "Training cost per strategy (compute / naive on "
        + (
            "CPU time of mace's training call: it does not grow when other jobs share the cores"
            if basis == "CPU time"
            else "optimiser-step wall time from mace's per-step log: no CPU time recorded, sensitive to load"
        )
        + "; optimiser-step time for reference; replay step once per model and benchmark)"
        + "".join(f"\n\nCaveat, {r.model}/{r.strategy}: {r.caveat}" for _, r in cost_table.iterrows() if r.caveat),
    )
    written += write_table(
        findings(metrics, settings, replay_steps),
        args.tables / "findings",
        "The study's findings, checked against these results",
    )
    print(text, end="")
    print(
        f"wrote {len(written)} table files into {args.tables}/"
        + (f"; {sum(map(len, missing.values()))} grid cells missing (listed above)" if missing else "")
    )
    return 0
