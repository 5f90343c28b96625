"""The study's figures, drawn from aggregate's tidy tables only (never from models or runs).

One colour-blind-safe colour and marker per strategy in every figure (Okabe-Ito). Every figure
is written as PNG and PDF. A figure whose data the current grid lacks (an ablation not run) is
still written, with a panel that says which config produces the data.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ftbench.config import NO_MODEL, UNTOUCHED
from ftbench.tables import at_largest_size, read_tables, run_metrics, target_rmse

log = logging.getLogger("ftbench.figures")

# Okabe-Ito palette (colour-blind safe), fixed per strategy so figures agree with each other.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
STRATEGY_ORDER = ["naive", "freeze5", "freeze6", "lora", "replay", "pseudo_replay", "replay_lora", "scratch"]
MARKERS = "osD^vP*X"
# E0 modes and heads are not strategies: line styles, so strategy colours stay unambiguous.
E0_STYLE = {"estimated": "-", "isolated": "--", "average": ":", "foundation": "-."}
HEAD_STYLE = {"Default": "-", "pt_head": "--"}
HEAD_LABEL = {"Default": "target head", "pt_head": "replay (pt) head"}
ABLATION = {"e0": "config/ablations/e0_modes.yaml", "lr": "config/ablations/multihead_lr.yaml",
            "stage_two": "config/ablations/stage_two.yaml", "lora": "config/ablations/lora_ranks.yaml"}


def strategy_style(name: str) -> dict:
    if name == UNTOUCHED:
        return {"color": "#7f7f7f", "linestyle": "--", "marker": "*"}
    # Strategies beyond the study's eight (new config entries) get stable, distinct styles too.
    i = STRATEGY_ORDER.index(name) if name in STRATEGY_ORDER else len(STRATEGY_ORDER) + sum(map(ord, name))
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)], "linestyle": "-"}


def strategy_sort(names) -> list[str]:
    return sorted(names, key=lambda s: (STRATEGY_ORDER.index(s) if s in STRATEGY_ORDER else 99, s))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(nrows: int, ncols: int, w: float = 4.2, h: float = 3.4):
    plt = _plt()
    fig, axes = plt.subplots(max(1, nrows), max(1, ncols), squeeze=False, layout="constrained",
                             figsize=(w * max(1, ncols), h * max(1, nrows)))
    return fig, axes


def _log(ax, x: bool = True, y: bool = True) -> None:
    """Log axes labelled 1, 2, 5 x 10^k in plain numbers (matplotlib's default minor labels collide)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for on, axis, setter, limits in ((x, ax.xaxis, ax.set_xscale, ax.get_xlim),
                                     (y, ax.yaxis, ax.set_yscale, ax.get_ylim)):
        if on:
            setter("log")
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(plain)
            lo, hi = limits()
            # less than a decade shown: 1-2-5 majors may miss it entirely, so label the minors
            axis.set_minor_formatter(plain if lo > 0 and hi / lo < 6 else NullFormatter())


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

def learning_curves(t: dict, out: Path):
    """Target test force RMSE vs training-set size, per benchmark (rows) and model (columns)."""
    errors = t["errors"]
    ok = _main_e0(target_rmse(errors, "test", "forces"))
    benchmarks, models = sorted(errors.benchmark.unique()), _models(errors) or [NO_MODEL]
    fig, axes = _grid(len(benchmarks), len(models))
    for i, bench in enumerate(benchmarks):
        for j, model in enumerate(models):
            ax = axes[i][j]
            sub = ok[(ok.benchmark == bench) & ok.model.isin([model, NO_MODEL])]
            trained = sub[sub.strategy != UNTOUCHED]
            for strategy in strategy_sort(trained.strategy.unique()):
                curve = trained[trained.strategy == strategy].groupby("train_size")["value"].agg(["mean", "std"])
                ax.errorbar(curve.index, curve["mean"], yerr=curve["std"].fillna(0), label=strategy, capsize=2,
                            **strategy_style(strategy))
            base = sub[sub.strategy == UNTOUCHED]["value"]
            if len(base):
                style = {k: v for k, v in strategy_style(UNTOUCHED).items() if k != "marker"}
                ax.axhline(base.mean(), label="untouched foundation", **style)
            _log(ax)
            ax.set_title(f"{bench} / {model}")
            ax.set_xlabel("training-set size (configurations)")
            ax.set_ylabel("test force RMSE (meV/Å)")
            ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out, axes)


def forgetting(t: dict, out: Path):
    """Target test force RMSE vs pretraining-distribution force RMSE (forgetting trade-off)."""
    m = t["metrics"]
    benchmarks, models = sorted(m.benchmark.unique()), _models(m) or [NO_MODEL]
    fig, axes = _grid(len(benchmarks), len(models))
    for i, bench in enumerate(benchmarks):
        for j, model in enumerate(models):
            ax = axes[i][j]
            sub = at_largest_size(m[(m.benchmark == bench) & m.model.isin([model, NO_MODEL])])
            for strategy in strategy_sort(sub.strategy.unique()):
                pts = sub[sub.strategy == strategy].groupby("e0")[["target_force_rmse", "pt_force_rmse"]].mean()
                style = strategy_style(strategy)
                ax.plot(pts.target_force_rmse, pts.pt_force_rmse, linestyle="none", marker=style["marker"],
                        color=style["color"], markersize=12 if strategy == UNTOUCHED else 8,
                        label="untouched foundation" if strategy == UNTOUCHED else strategy)
            _log(ax)
            size = sub[sub.strategy != UNTOUCHED].train_size.max()
            ax.set_title(f"{bench} / {model}" + (f" (N={size:.0f})" if pd.notna(size) else ""))
            ax.set_xlabel("target test force RMSE (meV/Å)")
            ax.set_ylabel("pretraining-distribution force RMSE (meV/Å)")
            ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Forgetting trade-off: lower left is better")
    return _save(fig, out, axes)


def _training(t: dict) -> pd.DataFrame:
    from ftbench.aggregate import KEY

    runs = t["runs"]
    cols = [c for c in ("lr", "stage_two", "multiheads_finetuning", "lora_rank") if c in runs]
    return t["training_curves"].merge(runs[KEY + cols], on=KEY, how="left")


def multihead_lr_sweep(t: dict, out: Path):
    """Validation force RMSE vs epoch per head of multihead (replay) runs, one colour per lr."""
    tc = _training(t)
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
                style = strategy_style(strategy)
                ax.plot(curve.index, curve.values, color=colours[lr], marker=style["marker"], markevery=max(1, len(curve) // 8),
                        markersize=4, label=f"lr {lr:g} ({strategy})")
            _log(ax, x=False)
            ax.set_title(f"{bench}: {HEAD_LABEL[head]}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("validation force RMSE (meV/Å)")
            ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Multihead fine-tuning: learning-rate sweep (colour: lr, marker: strategy)")
    return _save(fig, out, axes)


def stage_two(t: dict, out: Path):
    """Validation force RMSE vs epoch: constant loss weights (solid) vs Stage Two (dashed,
    mace --stage_two). A Stage-Two strategy named <base>_stage_two shares <base>'s colour."""
    tc = _training(t)
    tc = tc[tc["head"] == "Default"]
    if "stage_two" not in tc:
        tc = tc.assign(stage_two=np.nan)
    tc = tc.assign(two=tc.stage_two.astype(str).isin(["True", "1.0", "1"]))
    benchmarks = sorted(tc.benchmark.unique()) or ["(none)"]
    fig, axes = _grid(len(benchmarks), 1, w=6.0)
    for i, bench in enumerate(benchmarks):
        ax = axes[i][0]
        sub = tc[tc.benchmark == bench]
        for strategy in strategy_sort(sub.strategy.unique()):
            grp = sub[sub.strategy == strategy]
            two = bool(grp.two.any())
            base = strategy.removesuffix("_stage_two")
            curve = grp.groupby("epoch").rmse_f_mev_per_a.mean()
            ax.plot(curve.index, curve.values, color=strategy_style(base)["color"], linestyle="--" if two else "-",
                    label=f"{base}, {'Stage Two' if two else 'constant 10/10'}")
        if not tc.two.any():
            ax.text(0.02, 0.02, f"no Stage-Two runs: run {ABLATION['stage_two']}", transform=ax.transAxes,
                    fontsize=8)
        _log(ax, x=False)
        ax.set_title(f"{bench}: Stage Two vs constant loss weights")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation force RMSE (meV/Å)")
        ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out, axes)


# ---- robustness -----------------------------------------------------------------------------------

def _bars(t: dict, out: Path, column: str, ylabel: str, title: str, ylim=None, ceiling=None):
    m = t["metrics"]
    benchmarks, models = sorted(m.benchmark.unique()), _models(m) or [NO_MODEL]
    fig, axes = _grid(len(benchmarks), 1, w=max(6.0, 0.5 * len(models) * 9), h=3.2)
    for i, bench in enumerate(benchmarks):
        ax = axes[i][0]
        sub = _main_e0(at_largest_size(m[m.benchmark == bench]))
        strategies = [UNTOUCHED] + [s for s in strategy_sort(sub.strategy.unique()) if s != UNTOUCHED]
        width = 0.8 / max(1, len(strategies))
        for k, strategy in enumerate(strategies):
            vals = [sub[(sub.strategy == strategy) & sub.model.isin([model, NO_MODEL])][column].mean()
                    for model in models]
            style = strategy_style(strategy)
            ax.bar(np.arange(len(models)) + (k - len(strategies) / 2 + 0.5) * width, vals, width,
                   color=style["color"], edgecolor="black", linewidth=0.5,
                   hatch="//" if strategy == UNTOUCHED else None,
                   label="untouched foundation" if strategy == UNTOUCHED else strategy)
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


def md_stability(t: dict, out: Path):
    """Mean time before the MD run failed (or ended), per strategy and model."""
    return _bars(t, out, "md_time_ps", "mean MD time survived (ps)", "MD stability (longer is better)",
          ceiling=t["metrics"].md_time_ps.max())


def emd_bars(t: dict, out: Path):
    return _bars(t, out, "emd_mean", "RDF EMD, mean over pairs (Å)", "RDF earth mover's distance (lower is better)")


def rss_collapse(t: dict, out: Path):
    return _bars(t, out, "rss_collapse", "collapsed fraction of RSS structures", "random structure search collapse "
          "(lower is better)", ylim=(0, 1.05))


def rdf_overlays(t: dict, out: Path, max_pairs: int = 3):
    """g(r) of each strategy's MD against the reference (test set), first foundation model."""
    from ftbench.aggregate import REFERENCE

    rdf = t["rdf"]
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
            ax.fill_between(r.r, r.value, color="#bbbbbb", alpha=0.6, linewidth=0, label="reference (test set)")
            nonzero = r.r[r.value > 0]
            if len(nonzero):
                ax.set_xlim(0, min(r.r.max(), 1.25 * nonzero.max()))
            for strategy in [UNTOUCHED] + strategy_sort(set(runs.strategy) - {UNTOUCHED}):
                c = runs[(runs.strategy == strategy) & (runs.pair == pair)].groupby("r").value.mean()
                if len(c):
                    style = strategy_style(strategy)
                    ax.plot(c.index, c.values, color=style["color"], linestyle=style["linestyle"], linewidth=1.2,
                            label="untouched foundation" if strategy == UNTOUCHED else strategy)
            ax.set_title(f"{bench} / {model}: {pair}")
            ax.set_xlabel("r (Å)")
            ax.set_ylabel("g(r)")
            ax.grid(True, alpha=0.3)
    return _save(fig, out, axes)


def e0_dimers(t: dict, out: Path, pairs=("H-H", "F-F", "Cl-Cl"), strategy: str = "naive"):
    """Dimer curves of one strategy trained with each E0 mode, and the untuned foundation model."""
    d = t["dimers"]
    benchmarks = sorted(d.benchmark.unique()) or ["(none)"]
    fig, axes = _grid(len(benchmarks), len(pairs), w=3.8, h=3.0)
    for i, bench in enumerate(benchmarks):
        sub = d[d.benchmark == bench]
        models = _models(sub)
        model = models[0] if models else NO_MODEL
        sub = sub[sub.model == model]
        trained = sub[sub.strategy == strategy]
        trained = trained[trained.train_size == trained.train_size.max()]
        modes = sorted(trained.e0.unique())
        present = set(sub.pair)
        homo = [p for p in pairs if p in present]  # the study's pairs first, then other like pairs
        homo += sorted(p for p in present if p.split("-")[0] == p.split("-")[-1] and p not in homo)
        homo = homo[:len(pairs)]
        for j in range(len(pairs)):
            ax = axes[i][j]
            if j >= len(homo):
                ax.set_visible(False)
                continue
            pair = homo[j]
            for mode in modes:
                c = trained[(trained.e0 == mode) & (trained.pair == pair)].groupby("r").value.mean()
                ax.plot(c.index, c.values, color=strategy_style(strategy)["color"], linestyle=E0_STYLE.get(mode, "-"),
                        label=f"{strategy}, E0s {mode}")
            c = sub[(sub.strategy == UNTOUCHED) & (sub.pair == pair)].groupby("r").value.mean()
            if len(c):
                ax.plot(c.index, c.values, color=strategy_style(UNTOUCHED)["color"], linestyle="-.",
                        label="untuned foundation")
            lo = min(-1.0, float(trained[trained.pair == pair].value.min()) if len(trained) else -1.0)
            ax.set_ylim(max(lo * 1.2, -20), 10)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_title(f"{bench} / {model}: {pair}")
            ax.set_xlabel("r (Å)")
            ax.set_ylabel("E(r) - E(r_max) (eV)")
            ax.grid(True, alpha=0.3)
        if len(modes) < 2 and len(homo):
            axes[i][0].text(0.02, 0.02, f"one E0 mode only: run {ABLATION['e0']}", transform=axes[i][0].transAxes,
                            fontsize=7)
    fig.suptitle(f"E0 ablation: dimer curves of {strategy} fine-tunes")
    return _save(fig, out, axes)


def schematic(t: dict, out: Path):
    from ftbench.schematic import draw_schematic

    fig = draw_schematic(out, t.get("strategies"))
    _plt().close(fig)
    return fig


FIGURES = {
    "schematic": schematic,
    "learning_curves": learning_curves,
    "forgetting": forgetting,
    "multihead_lr_sweep": multihead_lr_sweep,
    "stage_two": stage_two,
    "e0_dimers": e0_dimers,
    "md_stability": md_stability,
    "rdf_overlays": rdf_overlays,
    "emd": emd_bars,
    "rss_collapse": rss_collapse,
}


def load_tables(tables: Path) -> dict:
    errors, runs, robustness = read_tables(tables)
    t = {"errors": errors, "runs": runs, "robustness": robustness,
         "metrics": run_metrics(errors, runs, robustness)}
    for name in ("rdf", "dimers", "training_curves"):
        path = tables / f"{name}.csv.gz"
        t[name] = pd.read_csv(path) if path.is_file() else pd.DataFrame(
            columns=["benchmark", "model", "strategy", "e0", "train_size", "seed", "pair", "r", "value", "epoch",
                     "head", "rmse_f_mev_per_a"])
    t["strategies"] = strategy_sort(s for s in runs.strategy.unique() if s != UNTOUCHED)
    return t


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ftbench.config import add_config_arguments

    p.add_argument("--tables", type=Path, default=None,
                   help="aggregate's tidy tables (default: the config's report_dir/tables)")
    p.add_argument("--out", type=Path, default=None, help="default: the config's report_dir/figures")
    add_config_arguments(p, "; they set the default --tables and --out")
    p.add_argument("--only", nargs="*", default=None, choices=sorted(FIGURES), metavar="NAME",
                   help=f"figures to draw (default all): {', '.join(FIGURES)}")


def run(args: argparse.Namespace) -> int:
    from ftbench.errors import FtbenchError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.tables is None or args.out is None:
        from ftbench.config import report_dir

        base = report_dir(args)
        args.tables = args.tables or base / "tables"
        args.out = args.out or base / "figures"
    if not (args.tables / "errors.csv").is_file():
        raise FtbenchError(f"{args.tables}/errors.csv does not exist: figures are drawn from finished "
                           "results; run the grid (or `snakemake aggregate`) first")
    t = load_tables(args.tables)
    for name in args.only or FIGURES:
        FIGURES[name](t, args.out / f"{name}.png")
        print(f"wrote {args.out / name}.png and .pdf")
    return 0
