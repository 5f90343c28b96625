"""Every figure drawn from small tidy tables written by the tests: axes, labels, series."""

from __future__ import annotations

import pytest
from matplotlib.colors import to_hex

from conftest import ftbench
from ftbench.report import figures
from ftbench.report.figures import FIGURES, load_tables, strategy_style
from results_tables import MODELS, STRATEGIES, write_tables


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    path = write_tables(tmp_path_factory.mktemp("tables"))
    return load_tables(path)


def _draw(tables, name, tmp_path):
    fig = FIGURES[name](tables, tmp_path / f"{name}.png")
    assert (tmp_path / f"{name}.png").stat().st_size > 5_000
    assert (tmp_path / f"{name}.pdf").stat().st_size > 1_000
    return fig


def _labels(fig):
    return {text.get_text() for legend in fig.legends for text in legend.get_texts()}


def _units(ax):
    return ax.get_xlabel(), ax.get_ylabel()


def test_learning_curves_log_log_one_series_per_strategy(tables, tmp_path):
    fig = _draw(tables, "learning_curves", tmp_path)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == [f"sn2 / {m}" for m in MODELS]
    ax = axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert _units(ax) == ("training-set size (configurations)", "test force RMSE (meV/Å)")
    assert set(STRATEGIES) | {"untouched foundation"} <= _labels(fig)
    naive = next(c for c in ax.containers if c.get_label() == "naive").lines[0]  # errorbar's data line
    assert list(naive.get_xdata()) == [10, 100]
    # the naive curve is the mean of the estimated-E0 runs only (average-E0 runs are an ablation)
    assert list(naive.get_ydata()) == pytest.approx([100.0, 50.0])
    assert to_hex(naive.get_color()) == strategy_style("naive")["color"].lower()


def test_forgetting_places_replay_near_untouched(tables, tmp_path):
    fig = _draw(tables, "forgetting", tmp_path)
    ax = fig.axes[0]
    assert _units(ax) == ("target test force RMSE (meV/Å)", "pretraining-distribution force RMSE (meV/Å)")
    points = {line.get_label(): (line.get_xdata(), line.get_ydata()) for line in ax.get_lines()}
    assert points["replay"][1][0] == pytest.approx(105.0)
    assert points["untouched foundation"][1][0] == pytest.approx(100.0)
    assert sorted(points["naive"][1]) == pytest.approx([300.0, 300.0])  # estimated and average E0


def test_multihead_lr_sweep_one_panel_per_head(tables, tmp_path):
    fig = _draw(tables, "multihead_lr_sweep", tmp_path)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["sn2: target head", "sn2: replay (pt) head"]
    ax = fig.axes[0]
    assert _units(ax) == ("epoch", "validation force RMSE (meV/Å)")
    assert {"lr 0.0001 (replay)", "lr 0.0001 (pseudo_replay)"} <= {line.get_label() for line in ax.get_lines()}
    assert len(ax.get_lines()[0].get_xdata()) == 20


def test_stage_two_says_which_ablation_to_run(tables, tmp_path):
    fig = _draw(tables, "stage_two", tmp_path)
    ax = fig.axes[0]
    assert _units(ax) == ("epoch", "validation force RMSE (meV/Å)")
    labels = {line.get_label() for line in ax.get_lines()}
    assert "replay, constant 10/10" in labels and "naive, constant 10/10" not in labels  # no epochs for naive
    assert any("config/ablations/stage_two.yaml" in t.get_text() for t in ax.texts)


def test_e0_dimers_one_line_per_e0_mode_and_the_foundation(tables, tmp_path):
    fig = _draw(tables, "e0_dimers", tmp_path)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["sn2 / gen_a: H-H", "sn2 / gen_a: F-F", "sn2 / gen_a: Cl-Cl"]
    labels = [line.get_label() for line in axes[0].get_lines() if not line.get_label().startswith("_")]
    assert labels == ["naive, E0s average", "naive, E0s estimated", "untuned foundation"]
    assert _units(axes[0]) == ("r (Å)", "E(r) - E(r_max) (eV)")


@pytest.mark.parametrize(
    "name,ylabel,expected",
    [
        ("md_stability", "mean MD time survived (ps)", {"naive": 1.0, "replay": 5.0, "untouched foundation": 5.0}),
        ("emd", "RDF EMD, mean over pairs (Å)", {"naive": 0.1}),
        ("rss_collapse", "collapsed fraction of RSS structures", {"naive": 0.5, "replay": 0.0}),
    ],
)
def test_bar_figures_one_bar_per_strategy_and_model(tables, tmp_path, name, ylabel, expected):
    fig = _draw(tables, name, tmp_path)
    ax = fig.axes[0]
    assert ax.get_ylabel() == ylabel and ax.get_xlabel().startswith("foundation model")
    assert [t.get_text() for t in ax.get_xticklabels()] == MODELS
    from matplotlib.container import BarContainer

    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers if isinstance(c, BarContainer)}
    for label, value in expected.items():
        assert bars[label] == pytest.approx([value, value])


def test_bar_figures_leave_out_strategies_without_the_metric(tables, tmp_path):
    from matplotlib.container import BarContainer

    metrics = tables["metrics"].copy()
    metrics.loc[metrics.strategy == "lora", "md_time_ps"] = float("nan")  # as zeroshot: no MD run
    fig = FIGURES["md_stability"]({**tables, "metrics": metrics}, tmp_path / "md_stability.png")
    labels = {c.get_label() for c in fig.axes[0].containers if isinstance(c, BarContainer)}
    assert "lora" not in labels and {"naive", "replay", "untouched foundation"} <= labels


def test_md_survival_kaplan_meier_per_strategy(tables, tmp_path):
    fig = _draw(tables, "md_survival", tmp_path)
    ax = [a for a in fig.axes if a.get_title()][0]
    assert ax.get_title() == f"sn2 / {MODELS[0]}" and ax.get_xlabel() == "ramp time (ps)"
    curves = {line.get_label().split(" (")[0]: line for line in ax.get_lines()}
    # naive: 4 of 5 replicas per seed fail at 1 ps -> 0.2 after 1 ps; replay: all survive
    naive_y = curves["naive"].get_ydata()
    assert naive_y[0] == 1.0 and naive_y[-1] == pytest.approx(0.2)
    assert set(curves["replay"].get_ydata()) == {1.0}
    assert "10 replicas" in [t.get_text() for t in ax.get_legend().get_texts() if t.get_text().startswith("naive")][0]


def test_rdf_overlays_reference_and_strategies(tables, tmp_path):
    fig = _draw(tables, "rdf_overlays", tmp_path)
    ax = fig.axes[0]
    assert _units(ax) == ("r (Å)", "g(r)")
    assert "reference (test set)" in _labels(fig)
    assert {"naive", "replay", "scratch"} <= {line.get_label() for line in ax.get_lines()}


def test_schematic_column_per_strategy(tables, tmp_path):
    fig = _draw(tables, "schematic", tmp_path)
    names = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert set(STRATEGIES) <= names


@pytest.mark.slow
def test_cli_draws_every_figure_and_refuses_missing_tables(tmp_path):
    tables = write_tables(tmp_path / "tables")
    proc = ftbench("figures", "--tables", str(tables), "--out", str(tmp_path / "fig"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.stem for p in (tmp_path / "fig").glob("*.png")) == sorted(figures.FIGURES)
    missing = ftbench("figures", "--tables", str(tmp_path / "nowhere"), "--out", str(tmp_path / "fig"))
    assert missing.returncode == 2 and "nowhere/errors.csv does not exist" in missing.stderr
