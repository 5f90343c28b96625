"""Collect every run's results into tidy tables (the only input of tables and figures).

errors.csv: one row per run x dataset x head x config_type x quantity x statistic. A run that
failed or diverged keeps one row with its status and an empty value, so every grid cell shows.
runs.csv: one row per run (status, reason, cost, epochs, parameters, key flags, E0 warnings).
robustness.csv: MD survival, EMD per pair, RSS collapse, dimer walls, per run.
curves: rdf.csv.gz (g(r) per pair, reference included), dimers.csv.gz (E(r) per pair) and
training_curves.csv.gz (mace's per-epoch validation rows, per head).
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
ROBUSTNESS_COLUMNS = KEY + ["status", "evaluation", "pair", "metric", "value", "unit"]
CURVE_COLUMNS = KEY + ["pair", "r", "value"]
TRAINING_COLUMNS = KEY + ["epoch", "head", "loss", "rmse_e_per_atom_mev", "rmse_f_mev_per_a"]
# Strategy flags worth a column of their own (ablations sweep them).
FLAG_COLUMNS = ["lr", "lora", "lora_rank", "multiheads_finetuning", "pseudolabel_replay", "freeze", "stage_two",
                "energy_weight", "forces_weight"]
REFERENCE = "reference"  # strategy name of a benchmark's reference RDF rows


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
        flags = run.get("flags") or {}
        if "swa" in flags:
            flags = {**flags, "stage_two": flags["swa"]}
        run_rows.append({**key, "status": run["status"], "reason": run.get("reason"),
                         "wall_time_s": run.get("wall_time_s"), "gpu_hours": run.get("gpu_hours"),
                         "epochs": run.get("epochs"), "device": run.get("device"),
                         "foundation_head": run.get("foundation_head"),
                         "parameters": params.get("total"), "trained_parameters": params.get("trained"),
                         "valid_force_rmse_mev_per_a": _mev(last.get("rmse_f")),
                         **{f: flags.get(f) for f in FLAG_COLUMNS},
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


def curve_rows(path: Path, key: dict) -> pd.DataFrame:
    """A wide per-pair curve file (r, A-B, ...) as long rows with the run key."""
    if not path.is_file():
        return pd.DataFrame(columns=CURVE_COLUMNS)
    wide = pd.read_csv(path)
    long = wide.melt(id_vars="r", var_name="pair", value_name="value")
    return long.assign(**key)[CURVE_COLUMNS]


def training_rows(run_dir: Path, key: dict) -> list[dict]:
    """mace's per-epoch validation rows ({run}/mace_results/*_train.txt), one per epoch and head."""
    from ftbench.mace_runner import training_curve

    rows = []
    for rec in training_curve(run_dir / "mace_results"):
        if rec.get("mode") != "eval" or rec.get("epoch") is None:
            continue
        rows.append({**key, "epoch": int(rec["epoch"]), "head": rec.get("head", "Default"),
                     "loss": rec.get("loss"), "rmse_e_per_atom_mev": _mev(rec.get("rmse_e_per_atom")),
                     "rmse_f_mev_per_a": _mev(rec.get("rmse_f"))})
    return rows


def _mev(value):
    return None if value is None else 1000.0 * float(value)


def _frame(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def collect_curves(errors_files: list[Path], robustness_files: list[Path], references: list[Path],
                   runs_root: Path) -> dict[str, pd.DataFrame]:
    rdf, dimers, training = [], [], []
    for path in errors_files:
        training += training_rows(path.parent, run_key(path.parent, runs_root))
    for path in robustness_files:
        key = run_key(path.parent.parent, runs_root)
        rdf.append(curve_rows(path.parent / "rdf.csv", key))
        dimers.append(curve_rows(path.parent / "dimers.csv", key))
    for path in references:  # results/data/<benchmark>/reference_rdf.csv
        key = {"benchmark": path.parent.name, "model": "", "strategy": REFERENCE, "e0": "", "train_size": 0,
               "seed": 0}
        rdf.append(curve_rows(path, key))
    return {"rdf": _frame(rdf, CURVE_COLUMNS), "dimers": _frame(dimers, CURVE_COLUMNS),
            "training_curves": pd.DataFrame(training, columns=TRAINING_COLUMNS)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--errors", nargs="+", required=True, type=Path, help="errors.json files of the runs")
    p.add_argument("--robustness", nargs="*", default=[], type=Path, help="robustness.json files of the runs")
    p.add_argument("--reference-rdf", nargs="*", default=[], type=Path,
                   help="reference_rdf.csv of each benchmark (results/data/<benchmark>/)")
    p.add_argument("--runs-root", type=Path, default=Path("results/runs"))
    p.add_argument("--tables", type=Path, default=Path("results/tables"))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    errors, runs = collect(args.errors, args.runs_root)
    args.tables.mkdir(parents=True, exist_ok=True)
    errors.sort_values(KEY).to_csv(args.tables / "errors.csv", index=False)
    runs.sort_values(KEY).to_csv(args.tables / "runs.csv", index=False)
    rob = [row for path in args.robustness for row in robustness_rows(path, args.runs_root)]
    pd.DataFrame(rob, columns=ROBUSTNESS_COLUMNS).sort_values(KEY).to_csv(args.tables / "robustness.csv",
                                                                          index=False)
    for name, frame in collect_curves(args.errors, args.robustness, args.reference_rdf, args.runs_root).items():
        frame.to_csv(args.tables / f"{name}.csv.gz", index=False)
    counts = runs.status.value_counts().to_dict()
    print(f"aggregated {len(runs)} runs ({', '.join(f'{k}: {v}' for k, v in counts.items())}) into "
          f"{args.tables}/: errors.csv, runs.csv, robustness.csv, rdf.csv.gz, dimers.csv.gz, "
          "training_curves.csv.gz")
    bad = runs[runs.status != "ok"]
    for _, r in bad.iterrows():
        print(f"  {r.status}: {r.benchmark}/{r.model}/{r.strategy}/{r.e0}/n{r.train_size}/seed{r.seed}: {r.reason}")
    return 0
