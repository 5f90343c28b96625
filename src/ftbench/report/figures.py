"""The study's figures, drawn from aggregate's tidy tables only (never from models or runs).

One colour-blind-safe colour and marker per strategy in every figure (Okabe-Ito). Every figure
is written as PNG and PDF. A figure whose data the current grid lacks (an ablation not run) is
still written, with a panel that says which config produces the data. Non-finite values (an
evaluation aggregate marked invalid, a diverged training curve) are skipped, never drawn, and a
panel left without data says so.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ftbench.core.config import add_config_arguments, report_dir
from ftbench.core.errors import FtbenchError
from ftbench.core.grid import NO_MODEL, UNTOUCHED
from ftbench.probes.md import kaplan_meier
from ftbench.probes.registry import BarFigure, bar_figures
from ftbench.report.aggregate import REFERENCE
from ftbench.report.figure_names import figure_names
from ftbench.report.metrics import KEY, at_largest_size, read_tables, roles_by_strategy, run_metrics, target_rmse
from ftbench.report.schematic import draw_schematic
from ftbench.report.style import E0_STYLE, HEAD_LABEL, OKABE_ITO, strategy_sort, strategy_styles

log = logging.getLogger("ftbench.report.figures")

ABLATION = {
    "e0": "config/ablations/e0_modes.yaml",
    "lr": "config/ablations/multihead_lr.yaml",
    "stage_two": "config/ablations/stage_two.yaml",
    "lora": "config/ablations/lora_ranks.yaml",
}


def strategy_style(name: str, tables: dict | None = None) -> dict:
    """Return the strategy's style in this figure set (distinct for every strategy of the run)."""
    styles = (tables or {}).get("styles") or strategy_styles([name])
    return styles.get(name) or strategy_styles([name])[name]


def _sort(tables: dict, names) -> list[str]:
    return strategy_sort(names, tables.get("roles"))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(nrows: int, ncols: int, w: float = 4.2, h: float = 3.4):
    plt = _plt()
    fig, axes = plt.subplots(
        max(1, nrows),
        max(1, ncols),
        squeeze=False,
        layout="constrained",
        figsize=(w * max(1, ncols), h * max(1, nrows)),
    )
    return fig, axes


def _log(ax, x: bool = True, y: bool = True) -> None:
    """Log axes labelled 1, 2, 5 x 10^k in plain numbers (matplotlib's default minor labels collide)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for on, axis, setter, limits in (
        (x, ax.xaxis, ax.set_xscale, ax.get_xlim),
        (y, ax.yaxis, ax.set_yscale, ax.get_ylim),
    ):
        if on:
            setter("log")
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(plain)
            lo, hi = limits()
            # less than a decade shown: 1-2-5 majors may miss it entirely, so label the minors
            axis.set_minor_formatter(plain if lo > 0 and hi / lo < 6 else NullFormatter())


def _finite(frame: pd.DataFrame, columns: list[str], figure: str, what: str) -> pd.DataFrame:
    """Return the rows whose `columns` are all finite numbers; log how many were skipped.

    NaN and inf (an invalid evaluation, a diverged run) cannot sit on a log axis, and one of them
    would turn a seed mean into NaN or inf.
    """
    if frame.empty:
        return frame
    ok = np.ones(len(frame), dtype=bool)
    for c in columns:
        ok &= np.isfinite(pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float))
    if not ok.all():
        skipped = frame[~ok]
        runs = sorted({"/".join(str(v) for v in r) for r in skipped[[k for k in KEY if k in skipped]].values})
        log.warning(
            "%s: skipped %d non-finite %s value(s) (invalid or diverged runs; runs.csv says why): %s",
            figure,
            int((~ok).sum()),
            what,
            ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else ""),
        )
    return frame[ok]


NO_FINITE = "no finite results for this panel (invalid or diverged runs: see runs.csv)"


def _no_finite(ax, figure: str, panel: str) -> None:
    """Say so, on the panel and in the log, when nothing in a panel can be drawn."""
    log.warning("%s: %s: %s", figure, panel, NO_FINITE)
    _empty(ax, NO_FINITE)


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, out: Path, legend_ax=None):
    if legend_ax is not None:
        handles, labels = [], []
        for ax in np.ravel(legend_ax):
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            fig.legend(handles, labels, loc="outside right center")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    fig.savefig(out.with_suffix(".pdf"))
    _plt().close(fig)  # closed for pyplot; the object (axes, lines) stays inspectable
    return fig


def _main_e0(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop E0-ablation runs (average E0s) from figures about strategies; scratch has its own."""
    return frame[frame.e0.isin(["estimated", "foundation", "isolated"]) | (frame.model == NO_MODEL)]


def _models(frame: pd.DataFrame) -> list[str]:
    return sorted(m for m in frame.model.dropna().unique() if m not in (NO_MODEL, ""))


# ---- accuracy -------------------------------------------------------------------------------------


def learning_curves(tables: dict, out: Path):
    """Target test force RMSE vs training-set size, per benchmark (rows) and model (columns)."""
    errors = tables["errors"]
    ok = _finite(_main_e0(target_rmse(errors, "test", "forces")), ["value"], "learning_curves", "test force RMSE")
    benchmarks, models = sorted(errors.benchmark.unique()), _models(errors) or [NO_MODEL]
    fig, axes = _grid(len(benchmarks), len(models))
    for i, bench in enumerate(benchmarks):
        for j, model in enumerate(models):
            ax = axes[i][j]
            sub = ok[(ok.benchmark == bench) & ok.model.isin([model, NO_MODEL])]
            ax.set_title(f"{bench} / {model}")
            if sub.empty:
                _no_finite(ax, "learning_curves", f"{bench} / {model}")
                continue
            trained = sub[sub.strategy != UNTOUCHED]
            for strategy in _sort(tables, trained.strategy.unique()):
                curve = trained[trained.strategy == strategy].groupby("train_size")["value"].agg(["mean", "std"])
                ax.errorbar(
                    curve.index,
                    curve["mean"],
                    yerr=curve["std"].fillna(0),
                    label=strategy,
                    capsize=2,
                    **strategy_style(strategy, tables),
                )
            base = sub[sub.strategy == UNTOUCHED]["value"]
            if len(base):
                style = {k: v for k, v in strategy_style(UNTOUCHED, tables).items() if k != "marker"}
                ax.axhline(base.mean(), label="untouched foundation", **style)
            _log(ax)
            ax.set_xlabel("training-set size (configurations)")
            ax.set_ylabel("test force RMSE (meV/Å)")
            ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out, axes)


def forgetting(tables: dict, out: Path):
    """Plot target test force RMSE vs pretraining-distribution force RMSE (the forgetting trade-off).

    Seed mean, seed-SD error bars.
    """
    metrics = tables["metrics"]
    benchmarks, models = sorted(metrics.benchmark.unique()), _models(metrics) or [NO_MODEL]
    fig, axes = _grid(len(benchmarks), len(models))
    for i, bench in enumerate(benchmarks):
        for j, model in enumerate(models):
            ax = axes[i][j]
            sub = at_largest_size(metrics[(metrics.benchmark == bench) & metrics.model.isin([model, NO_MODEL])])
            # the largest size of the grid, less what has no finite error (never a smaller size instead)
            sub = _finite(sub, ["target_force_rmse", "pt_force_rmse"], "forgetting", "force RMSE")
            if sub.empty:
                ax.set_title(f"{bench} / {model}")
                _no_finite(ax, "forgetting", f"{bench} / {model}")
                continue
            for strategy in _sort(tables, sub.strategy.unique()):
                grouped = sub[sub.strategy == strategy].groupby("e0")[["target_force_rmse", "pt_force_rmse"]]
                pts, spread = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
                style = strategy_style(strategy, tables)
                # seed spread (sample SD) as error bars; no caps, so only the markers are lines
                ax.errorbar(
                    pts.target_force_rmse,
                    pts.pt_force_rmse,
                    xerr=spread.target_force_rmse,
                    yerr=spread.pt_force_rmse,
                    fmt="none",
                    ecolor=style["color"],
                    elinewidth=0.8,
                    capsize=0,
                )
                ax.plot(
                    pts.target_force_rmse,
                    pts.pt_force_rmse,
                    linestyle="none",
                    marker=style["marker"],
                    color=style["color"],
                    markersize=12 if strategy == UNTOUCHED else 8,
                    label="untouched foundation" if strategy == UNTOUCHED else strategy,
                )
            _log(ax)
            size = sub[sub.strategy != UNTOUCHED].train_size.max()
            ax.set_title(f"{bench} / {model}" + (f" (N={size:.0f})" if pd.notna(size) else ""))
            ax.set_xlabel("target test force RMSE (meV/Å)")
            ax.set_ylabel("pretraining-distribution force RMSE (meV/Å)")
            ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Forgetting trade-off: lower left is better")
    return _save(fig, out, axes)


def _training(tables: dict, figure: str) -> pd.DataFrame:
    runs = tables["runs"]
    cols = [c for c in ("lr", "stage_two", "multiheads_finetuning", "lora_rank") if c in runs]
    curves = _finite(tables["training_curves"], ["rmse_f_mev_per_a"], figure, "validation force RMSE")
    return curves.merge(runs[KEY + cols], on=KEY, how="left")


def multihead_lr_sweep(tables: dict, out: Path):
    """Plot validation force RMSE vs epoch per head of multihead (replay) runs, one colour per lr."""
    tc = _training(tables, "multihead_lr_sweep")
    mh = tc[tc.get("multiheads_finetuning", pd.Series(False, index=tc.index)).astype(str) == "True"]
    benchmarks = sorted(mh.benchmark.unique()) or ["(none)"]
    heads = ["Default", "pt_head"]
    fig, axes = _grid(len(benchmarks), 2)
    lrs = sorted(mh.lr.dropna().unique())
    colours = {lr: OKABE_ITO[(i * 3 + 4) % len(OKABE_ITO)] for i, lr in enumerate(lrs)}
    for i, bench in enumerate(benchmarks):
        for j, head in enumerate(heads):
            ax = axes[i][j]
            sub = mh[(mh.benchmark == bench) & (mh["head"] == head)]
            if sub.empty:
                _empty(ax, f"no multihead runs; run {ABLATION['lr']}")
                continue
            for (lr, strategy), grp in sub.groupby(["lr", "strategy"]):
                curve = grp.groupby("epoch").rmse_f_mev_per_a.mean()
                style = strategy_style(strategy, tables)
                ax.plot(
                    curve.index,
                    curve.values,
                    color=colours[lr],
                    marker=style["marker"],
                    markevery=max(1, len(curve) // 8),
                    markersize=4,
                    label=f"lr {lr:g} ({strategy})",
                )
            _log(ax, x=False)
            ax.set_title(f"{bench}: {HEAD_LABEL[head]}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("validation force RMSE (meV/Å)")
            ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Multihead fine-tuning: learning-rate sweep (colour: lr, marker: strategy)")
    return _save(fig, out, axes)


def stage_two(tables: dict, out: Path):
    """Plot validation force RMSE vs epoch: constant loss weights (solid) vs Stage Two (dashed).

    Stage Two is mace --stage_two. A Stage-Two strategy named <base>_stage_two shares <base>'s colour.
    """
    tc = _training(tables, "stage_two")
    tc = tc[tc["head"] == "Default"]
    if "stage_two" not in tc:
        tc = tc.assign(stage_two=np.nan)
    tc = tc.assign(two=tc.stage_two.astype(str).isin(["True", "1.0", "1"]))
    benchmarks = sorted(tc.benchmark.unique()) or ["(none)"]
    fig, axes = _grid(len(benchmarks), 1, w=6.0)
    for i, bench in enumerate(benchmarks):
        ax = axes[i][0]
        sub = tc[tc.benchmark == bench]
        for strategy in _sort(tables, sub.strategy.unique()):
            grp = sub[sub.strategy == strategy]
            two = bool(grp.two.any())
            base = strategy.removesuffix("_stage_two")
            curve = grp.groupby("epoch").rmse_f_mev_per_a.mean()
            ax.plot(
                curve.index,
                curve.values,
                color=strategy_style(base, tables)["color"],
                linestyle="--" if two else "-",
                label=f"{base}, {'Stage Two' if two else 'constant 10/10'}",
            )
        if not tc.two.any():
            ax.text(0.02, 0.02, f"no Stage-Two runs: run {ABLATION['stage_two']}", transform=ax.transAxes, fontsize=8)
        _log(ax, x=False)
        ax.set_title(f"{bench}: Stage Two vs constant loss weights")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation force RMSE (meV/Å)")
        ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out, axes)


# ---- robustness -----------------------------------------------------------------------------------


def _bars(tables: dict, out: Path, column: str, ylabel: str, title: str, ylim=None, ceiling=None):
    metrics = tables["metrics"]
    benchmarks, models = sorted(metrics.benchmark.unique()), _models(metrics) or [NO_MODEL]
    fig, axes = _grid(len(benchmarks), 1, w=max(6.0, 0.5 * len(models) * 9), h=3.2)
    for i, bench in enumerate(benchmarks):
        ax = axes[i][0]
        sub = _main_e0(at_largest_size(metrics[metrics.benchmark == bench]))
        sub = sub.assign(**{column: pd.to_numeric(sub[column], errors="coerce").replace([np.inf, -np.inf], np.nan)})
        strategies = [UNTOUCHED] + [s for s in _sort(tables, sub.strategy.unique()) if s != UNTOUCHED]
        # a strategy without this metric (zeroshot has no robustness runs) gets no bar and no legend entry
        strategies = [s for s in strategies if sub.loc[sub.strategy == s, column].notna().any()]
        width = 0.8 / max(1, len(strategies))
        for k, strategy in enumerate(strategies):
            # seed mean per model, and the seed spread (sample SD) as an error bar
            cells = [sub[(sub.strategy == strategy) & sub.model.isin([model, NO_MODEL])][column] for model in models]
            vals = [c.mean() for c in cells]
            spread = [c.std(ddof=1) if c.notna().sum() > 1 else 0.0 for c in cells]
            style = strategy_style(strategy, tables)
            ax.bar(
                np.arange(len(models)) + (k - len(strategies) / 2 + 0.5) * width,
                vals,
                width,
                yerr=spread,
                capsize=2,
                error_kw={"linewidth": 0.8},
                color=style["color"],
                edgecolor="black",
                linewidth=0.5,
                hatch="//" if strategy == UNTOUCHED else None,
                label="untouched foundation" if strategy == UNTOUCHED else strategy,
            )
        ax.set_xticks(np.arange(len(models)), models)
        ax.set_xlabel("foundation model (scratch: no foundation)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{bench}: {title}")
        if ceiling is not None and np.isfinite(ceiling):
            ax.axhline(ceiling, color="black", linestyle=":", linewidth=1, label="full run length")
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, out, axes)


def md_survival(tables: dict, out: Path):
    """Plot Kaplan-Meier survival of the MD replicas over the ramp, one curve per strategy.

    Replicas of every seed are pooled; one panel per benchmark (rows) and model (columns), at the
    largest training set.
    """
    surv = tables["survival"]
    surv = _finite(surv[surv.segment == "ramp"], ["time_ps"], "md_survival", "MD time") if len(surv) else surv
    benchmarks = sorted(surv.benchmark.unique()) or ["(none)"]
    models = _models(surv) or [NO_MODEL]
    fig, axes = _grid(len(benchmarks), len(models), w=5.2)
    for i, bench in enumerate(benchmarks):
        for j, model in enumerate(models):
            ax = axes[i][j]
            sub = surv[(surv.benchmark == bench) & surv.model.isin([model, NO_MODEL])] if len(surv) else surv
            if sub.empty:
                _empty(ax, "no MD results")
                continue
            sub = _main_e0(at_largest_size(sub))
            end = float(sub.time_ps.max())
            for strategy in [UNTOUCHED] + _sort(tables, set(sub.strategy) - {UNTOUCHED}):
                reps = sub[sub.strategy == strategy]
                if reps.empty:
                    continue
                times, surv_frac = kaplan_meier(reps.time_ps, reps.failed.astype(bool))
                style = strategy_style(strategy, tables)
                x = np.append(times, end)
                y = np.append(surv_frac, surv_frac[-1])
                ax.step(
                    x,
                    y,
                    where="post",
                    color=style["color"],
                    linestyle=style["linestyle"],
                    label=("untouched foundation" if strategy == UNTOUCHED else strategy) + f" ({len(reps)} replicas)",
                )
            if not sub.failed.astype(bool).any():
                ax.text(
                    0.03, 0.04, "no replica failed: saturated, longer ramp needed", transform=ax.transAxes, fontsize=8
                )
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlim(0, end if end > 0 else 1)
            ax.set_title(f"{bench} / {model}")
            ax.set_xlabel("ramp time (ps)")
            ax.set_ylabel("fraction of replicas still stable")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, loc="center left")  # per panel: replica counts differ between panels
    fig.suptitle("MD survival over the ramp (Kaplan-Meier)")
    return _save(fig, out)


def _reference_label(tables: dict, bench: str) -> str:
    refs = tables.get("references")
    if refs is not None and len(refs) and (refs.benchmark == bench).any():
        return str(refs[refs.benchmark == bench].label.iloc[0])
    return "test set"


def rdf_overlays(tables: dict, out: Path, max_pairs: int = 3):
    """Plot g(r) of each strategy's NVT production against the benchmark's reference, first model.

    The reference is a reference-level trajectory, or the test set where none is configured: the
    legend says which.
    """
    rdf = tables["rdf"]
    benchmarks = sorted(rdf.benchmark.unique()) or ["(none)"]
    fig, axes = _grid(len(benchmarks), max_pairs, w=3.8, h=3.0)
    for i, bench in enumerate(benchmarks):
        sub = rdf[rdf.benchmark == bench]
        ref = sub[sub.strategy == REFERENCE]
        # the pairs with the most reference weight: the ones an RDF comparison can resolve
        pairs = ref.groupby("pair").value.sum().sort_values(ascending=False).index[:max_pairs].tolist()
        models = _models(sub)
        model = models[0] if models else NO_MODEL
        runs = sub[sub.model.isin([model, NO_MODEL]) & (sub.strategy != REFERENCE)]
        runs = at_largest_size(runs)
        for j in range(max_pairs):
            ax = axes[i][j]
            if j >= len(pairs):
                ax.set_visible(False)
                continue
            pair = pairs[j]
            r = ref[ref.pair == pair]
            # a grey area, not a line: no strategy colour (scratch is black) can be mistaken for it
            ax.fill_between(
                r.r,
                r.value,
                color="#bbbbbb",
                alpha=0.6,
                linewidth=0,
                label=f"reference ({_reference_label(tables, bench)})",
            )
            nonzero = r.r[r.value > 0]
            if len(nonzero):
                ax.set_xlim(0, min(r.r.max(), 1.25 * nonzero.max()))
            for strategy in [UNTOUCHED] + _sort(tables, set(runs.strategy) - {UNTOUCHED}):
                c = runs[(runs.strategy == strategy) & (runs.pair == pair)].groupby("r").value.mean()
                if len(c):
                    style = strategy_style(strategy, tables)
                    ax.plot(
                        c.index,
                        c.values,
                        color=style["color"],
                        linestyle=style["linestyle"],
                        linewidth=1.2,
                        label="untouched foundation" if strategy == UNTOUCHED else strategy,
                    )
            ax.set_title(f"{bench} / {model}: {pair}")
            ax.set_xlabel("r (Å)")
            ax.set_ylabel("g(r)")
            ax.grid(True, alpha=0.3)
    return _save(fig, out, axes)


def e0_dimers(tables: dict, out: Path, pairs=("H-H", "F-F", "Cl-Cl"), strategy: str = "naive"):
    """Dimer curves of one strategy trained with each E0 mode, and the untuned foundation model."""
    dimers = tables["dimers"]
    benchmarks = sorted(dimers.benchmark.unique()) or ["(none)"]
    fig, axes = _grid(len(benchmarks), len(pairs), w=3.8, h=3.0)
    for i, bench in enumerate(benchmarks):
        sub = dimers[dimers.benchmark == bench]
        models = _models(sub)
        model = models[0] if models else NO_MODEL
        sub = sub[sub.model == model]
        trained = sub[sub.strategy == strategy]
        trained = trained[trained.train_size == trained.train_size.max()]
        modes = sorted(trained.e0.unique())
        present = set(sub.pair)
        homo = [p for p in pairs if p in present]  # the study's pairs first, then other like pairs
        homo += sorted(p for p in present if p.split("-")[0] == p.split("-")[-1] and p not in homo)
        homo = homo[: len(pairs)]
        for j in range(len(pairs)):
            ax = axes[i][j]
            if j >= len(homo):
                ax.set_visible(False)
                continue
            pair = homo[j]
            for mode in modes:
                c = trained[(trained.e0 == mode) & (trained.pair == pair)].groupby("r").value.mean()
                ax.plot(
                    c.index,
                    c.values,
                    color=strategy_style(strategy, tables)["color"],
                    linestyle=E0_STYLE.get(mode, "-"),
                    label=f"{strategy}, E0s {mode}",
                )
            c = sub[(sub.strategy == UNTOUCHED) & (sub.pair == pair)].groupby("r").value.mean()
            if len(c):
                ax.plot(
                    c.index,
                    c.values,
                    color=strategy_style(UNTOUCHED, tables)["color"],
                    linestyle="-.",
                    label="untuned foundation",
                )
            lo = min(-1.0, float(trained[trained.pair == pair].value.min()) if len(trained) else -1.0)
            ax.set_ylim(max(lo * 1.2, -20), 10)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_title(f"{bench} / {model}: {pair}")
            ax.set_xlabel("r (Å)")
            ax.set_ylabel("E(r) - E(r_max) (eV)")
            ax.grid(True, alpha=0.3)
        if len(modes) < 2 and len(homo):
            axes[i][0].text(
                0.02, 0.02, f"one E0 mode only: run {ABLATION['e0']}", transform=axes[i][0].transAxes, fontsize=7
            )
    fig.suptitle(f"E0 ablation: dimer curves of {strategy} fine-tunes")
    return _save(fig, out, axes)


def schematic(tables: dict, out: Path):
    """Draw the strategy schematic (what each strategy trains, freezes, adapts and replays)."""
    fig = draw_schematic(out, tables.get("strategies"), tables.get("roles"))
    _plt().close(fig)
    return fig


def bar_figure(spec: BarFigure):
    """Return the figure function of a probe's bar figure (ftbench.probes.registry)."""

    def draw(tables: dict, out: Path):
        ceiling = None
        if spec.ceiling:
            values = pd.to_numeric(tables["metrics"][spec.column], errors="coerce").replace(np.inf, np.nan)
            ceiling = values.max()
        return _bars(tables, out, spec.column, spec.ylabel, spec.title, ylim=spec.ylim, ceiling=ceiling)

    draw.__doc__ = f"Plot {spec.ylabel} per strategy and model (seed mean, seed-SD error bars)."
    return draw


# Figure functions by name; a probe's bar figures are data in its registry entry, and its own
# figures (md_survival, rdf_overlays) are functions here that its entry names.
_DRAWN = {
    "schematic": schematic,
    "learning_curves": learning_curves,
    "forgetting": forgetting,
    "multihead_lr_sweep": multihead_lr_sweep,
    "stage_two": stage_two,
    "e0_dimers": e0_dimers,
    "md_survival": md_survival,
    "rdf_overlays": rdf_overlays,
}
_BARS = bar_figures()
FIGURES = {name: _DRAWN[name] if name in _DRAWN else bar_figure(_BARS[name]) for name in figure_names()}


def load_tables(tables: Path) -> dict:
    """Read aggregate's tables under `tables` and derive the metrics, roles and styles.

    A missing curve, survival or references table reads as an empty frame.
    """
    errors, runs, robustness = read_tables(tables)
    loaded = {
        "errors": errors,
        "runs": runs,
        "robustness": robustness,
        "metrics": run_metrics(errors, runs, robustness, baseline=None),  # no figure reads the reference role
    }
    for name in ("rdf", "dimers", "training_curves"):
        path = tables / f"{name}.csv.gz"
        loaded[name] = (
            pd.read_csv(path)
            if path.is_file()
            else pd.DataFrame(
                columns=[
                    "benchmark",
                    "model",
                    "strategy",
                    "e0",
                    "train_size",
                    "seed",
                    "pair",
                    "r",
                    "value",
                    "epoch",
                    "head",
                    "rmse_f_mev_per_a",
                ]
            )
        )
    for name in ("survival", "references"):
        path = tables / f"{name}.csv"
        loaded[name] = (
            pd.read_csv(path)
            if path.is_file()
            else pd.DataFrame(columns=KEY + ["segment", "time_ps", "failed", "label"])
        )
    loaded["roles"] = roles_by_strategy(loaded["metrics"])
    loaded["styles"] = strategy_styles(list(runs.strategy.unique()))
    loaded["strategies"] = _sort(loaded, [s for s in runs.strategy.unique() if s != UNTOUCHED])
    return loaded


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench figures` options to `p`."""
    # No silent default: a bare `ftbench figures` must not redraw results/. The folders come from
    # --tables/--out, or from the config's report_dir when a --configfile/--config is given.
    p.add_argument("--tables", type=Path, default=None, help="aggregate's tidy tables (e.g. results/tables)")
    p.add_argument("--out", type=Path, default=None, help="folder for the figures (e.g. results/figures)")
    add_config_arguments(p, "; they set the default --tables and --out")
    p.add_argument(
        "--only",
        nargs="*",
        default=None,
        choices=sorted(FIGURES),
        metavar="NAME",
        help=f"figures to draw (default all): {', '.join(FIGURES)}",
    )


def run(args: argparse.Namespace) -> int:
    """Run `ftbench figures` with parsed `args`: draw the chosen figures; return the exit code."""
    if args.tables is None or args.out is None:
        if not (args.configfile or args.config):
            raise FtbenchError(
                "name the folders: --tables results/tables --out results/figures, or give "
                "--configfile/--config to take them from the config's report_dir"
            )
        base = report_dir(args)
        args.tables = args.tables or base / "tables"
        args.out = args.out or base / "figures"
    if not (args.tables / "errors.csv").is_file():
        raise FtbenchError(
            f"{args.tables}/errors.csv does not exist: figures are drawn from finished "
            "results; run the grid (or `snakemake aggregate`) first"
        )
    tables = load_tables(args.tables)
    for name in args.only or FIGURES:
        FIGURES[name](tables, args.out / f"{name}.png")
        print(f"wrote {args.out / name}.png and .pdf")
    return 0
