"""Collect every run's errors into tidy tables and draw the learning curves.

errors.csv: one row per run x dataset x head x config_type x quantity x statistic. A run that
failed or diverged keeps one row with its status and an empty value, so every grid cell shows.
runs.csv: one row per run (status, reason, cost, epochs, parameters, E0 warnings).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from ftbench.config import parse_run_path

log = logging.getLogger("ftbench.aggregate")
KEY = ["benchmark", "model", "strategy", "e0", "train_size", "seed"]
ERROR_COLUMNS = KEY + ["status", "dataset", "dataset_model", "head", "head_role", "config_type", "quantity",
                       "statistic", "value", "unit", "n_configs"]


def run_key(run_dir: Path, runs_root: Path) -> dict:
    r = parse_run_path(str(run_dir.relative_to(runs_root)))
    return {"benchmark": r.benchmark, "model": r.model, "strategy": r.strategy, "e0": r.e0,
            "train_size": r.size, "seed": r.seed}


def collect(errors_files: list[Path], runs_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    error_rows, run_rows = [], []
    for path in errors_files:
        key = run_key(path.parent, runs_root)
        errors = json.loads(path.read_text())
        run = json.loads((path.parent / "run.json").read_text())
        params = run.get("trainable_parameters") or {}
        last = run.get("last_valid") or {}
        run_rows.append({**key, "status": run["status"], "reason": run.get("reason"),
                         "wall_time_s": run.get("wall_time_s"), "gpu_hours": run.get("gpu_hours"),
                         "epochs": run.get("epochs"), "device": run.get("device"),
                         "parameters": params.get("total"), "trained_parameters": params.get("trained"),
                         "valid_force_rmse_mev_per_a": _mev(last.get("rmse_f")),
                         "e0_warnings": " | ".join(run.get("warnings") or [])})
        if errors["status"] != "ok" or not errors["rows"]:
            error_rows.append({**key, "status": errors["status"], "dataset": None, "value": None})
            continue
        for row in errors["rows"]:
            dataset, _, dataset_model = row["dataset"].partition("__")
            error_rows.append({**key, "status": "ok", **row, "dataset": dataset,
                               "dataset_model": dataset_model or None,
                               "head_role": "pretraining" if row["head"] == "pt_head" else "target"})
    return pd.DataFrame(error_rows, columns=ERROR_COLUMNS), pd.DataFrame(run_rows)


ROBUSTNESS_COLUMNS = KEY + ["status", "evaluation", "pair", "metric", "value", "unit"]


def robustness_rows(path: Path, runs_root: Path) -> list[dict]:
    """Tidy rows of one robustness.json: MD survival, EMD per pair, RSS collapse, dimer walls."""
    key = run_key(path.parent.parent, runs_root)  # <run>/robustness/robustness.json
    rec = json.loads(path.read_text())
    if rec["status"] != "ok":
        return [{**key, "status": rec["status"]}]
    rows = []

    def add(evaluation, metric, value, unit="", pair=None):
        if value is not None:
            rows.append({**key, "status": "ok", "evaluation": evaluation, "pair": pair, "metric": metric,
                         "value": float(value), "unit": unit})

    md = rec["md"]["summary"]
    add("md", "survival_fraction", md["survival_fraction"])
    add("md", "mean_time_ps", md["mean_time_ps"], "ps")
    add("md", "mean_time_to_failure_ps", md["mean_time_to_failure_ps"], "ps")
    add("md", "steps_per_s", md["mean_steps_per_s"], "1/s")
    for reason, count in md["reasons"].items():
        add("md", f"n_{reason}", count)
    for pair, value in (rec.get("emd") or {}).get("emd", {}).items():
        add("emd", "emd", value, "A", pair)
    rss = rec["rss"]["summary"]
    add("rss", "collapse_fraction", rss["collapse_fraction"])
    add("rss", "converged_fraction", rss["converged_fraction"])
    add("rss", "median_min_distance", (rss["min_distance"] or {}).get("median"), "A")
    add("rss", "median_energy_per_atom", (rss["energy_per_atom"] or {}).get("median"), "eV/atom")
    for pair, m in rec["dimers"].items():
        add("dimers", "wall_failures", m["wall_failures"], "", pair)
        add("dimers", "monotonic_wall", m["monotonic_wall"], "", pair)
        add("dimers", "r_min", m["r_min"], "A", pair)
        add("dimers", "e_min", m["e_min"], "eV", pair)
        add("dimers", "force_sign_flips", m.get("force_sign_flips"), "", pair)
    return rows


def _mev(value):
    return None if value is None else 1000.0 * float(value)


def learning_curves(errors: pd.DataFrame, out: Path, quantity: str = "forces") -> None:
    """Target test RMSE vs training-set size, per benchmark (rows) and foundation model (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ftbench.figures import strategy_style

    ok = errors[(errors.status == "ok") & (errors.dataset == "test") & (errors.head_role == "target")
                & (errors.config_type == "all") & (errors.quantity == quantity)
                & (errors.statistic == "rmse")]
    benchmarks = sorted(errors.benchmark.unique())
    models = sorted(m for m in errors.model.unique() if m != "none")
    fig, axes = plt.subplots(len(benchmarks), max(1, len(models)), squeeze=False, layout="constrained",
                             figsize=(4.2 * max(1, len(models)), 3.4 * len(benchmarks)))
    for i, bench in enumerate(benchmarks):
        for j, model in enumerate(models or ["none"]):
            ax = axes[i][j]
            sub = ok[(ok.benchmark == bench) & ok.model.isin([model, "none"])]
            for strategy, grp in sub[sub.strategy != "untouched"].groupby("strategy"):
                curve = grp.groupby("train_size")["value"].agg(["mean", "std"]).reset_index()
                ax.errorbar(curve.train_size, curve["mean"], yerr=curve["std"].fillna(0), label=strategy,
                            capsize=2, **strategy_style(strategy))
            base = sub[sub.strategy == "untouched"]["value"]
            if len(base):
                ax.axhline(base.mean(), label="untouched", **strategy_style("untouched"))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{bench} / {model}")
            ax.set_xlabel("training-set size (configurations)")
            ax.set_ylabel(f"test {quantity} RMSE ({'meV/A' if quantity == 'forces' else 'meV/atom'})")
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right center")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    fig.savefig(out.with_suffix(".pdf"), bbox_inches="tight")
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--errors", nargs="+", required=True, type=Path, help="errors.json files of the runs")
    p.add_argument("--robustness", nargs="*", default=[], type=Path, help="robustness.json files of the runs")
    p.add_argument("--runs-root", type=Path, default=Path("results/runs"))
    p.add_argument("--tables", type=Path, default=Path("results/tables"))
    p.add_argument("--figures", type=Path, default=Path("results/figures"))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    errors, runs = collect(args.errors, args.runs_root)
    args.tables.mkdir(parents=True, exist_ok=True)
    errors.sort_values(KEY).to_csv(args.tables / "errors.csv", index=False)
    runs.sort_values(KEY).to_csv(args.tables / "runs.csv", index=False)
    if args.robustness:
        rob = [row for path in args.robustness for row in robustness_rows(path, args.runs_root)]
        pd.DataFrame(rob, columns=ROBUSTNESS_COLUMNS).sort_values(KEY).to_csv(
            args.tables / "robustness.csv", index=False)
    learning_curves(errors, args.figures / "learning_curves.png")
    counts = runs.status.value_counts().to_dict()
    print(f"aggregated {len(runs)} runs ({', '.join(f'{k}: {v}' for k, v in counts.items())}) "
          f"into {args.tables}/errors.csv and {args.tables}/runs.csv; figure {args.figures}/learning_curves.png")
    bad = runs[runs.status != "ok"]
    for _, r in bad.iterrows():
        print(f"  {r.status}: {r.benchmark}/{r.model}/{r.strategy}/{r.e0}/n{r.train_size}/seed{r.seed}: {r.reason}")
    return 0
