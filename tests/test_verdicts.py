"""Verdicts a referee would accept: seed spread, ties and saturation, roles instead of names."""

from __future__ import annotations

import pytest

from ftbench.report.findings import DEFAULTS, Stat, compare, findings
from ftbench.report.metrics import read_tables, run_metrics
from ftbench.report.style import EXTRA_COLOURS, MARKERS, OKABE_ITO, strategy_style, strategy_styles
from results_tables import write_tables


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    return run_metrics(*read_tables(write_tables(tmp_path_factory.mktemp("tables"))), "naive")


def verdicts(m, **settings):
    return findings(m, settings).set_index("finding")


def test_clear_case_is_supported(metrics):
    f = verdicts(metrics)
    # 0.7 % seed spread, differences of 30 % and more: every finding the fixture encodes holds
    assert (f.loc[[1, 2, 3, 5, 6], "verdict"] == "supported").all(), f.loc[:, ["verdict", "evidence"]]


def test_saturated_md_is_not_testable(metrics):
    # every run survives the whole ramp: no MD failure at all, every time on the ceiling
    saturated = metrics.assign(md_survival=1.0, md_time_ps=5.0)
    f = verdicts(saturated)
    assert f.loc[5, "verdict"] == "not testable"
    assert "no MD failure at all" in f.loc[5, "evidence"] and "robustness.md.t_end" in f.loc[5, "evidence"]


def test_a_run_without_robustness_probes_says_so(metrics):
    # the demo default probes no benchmark: finding 5 names the key and the config that probes water
    unprobed = metrics.assign(md_survival=float("nan"), md_time_ps=float("nan"))
    f = verdicts(unprobed)
    assert f.loc[5, "verdict"] == "not testable"
    assert "robustness.benchmarks" in f.loc[5, "evidence"] and "robustness_water.yaml" in f.loc[5, "evidence"]
    assert "robustness.benchmarks" not in verdicts(metrics).loc[5, "evidence"]


def test_equal_means_are_a_tie_not_a_verdict(metrics):
    # float rounding of equal group means must not decide anything (the old `<=` did)
    equal = metrics.assign(md_time_ps=2.0 + 1e-12 * metrics.seed, md_survival=0.5)
    assert verdicts(equal).loc[5, "verdict"] == "not testable"


def test_two_disagreeing_seeds_do_not_support(metrics):
    # seed 1 says naive is far less stable than replay, seed 2 says the opposite: the seed mean
    # difference is inside the seed spread, so nothing is decided
    flip = metrics.copy()
    flip.loc[(flip.seed == 2) & (flip.strategy == "naive"), "md_time_ps"] = 9.0
    flip.loc[(flip.seed == 2) & flip.strategy.isin(["replay", "pseudo_replay"]), "md_time_ps"] = 0.1
    flip.loc[(flip.seed == 2) & (flip.strategy == "lora"), "md_time_ps"] = 3.0
    f = verdicts(flip)
    assert f.loc[5, "verdict"] != "supported"
    assert "within the seed spread" in f.loc[5, "evidence"]


def test_one_seed_is_not_testable(tmp_path):
    one = run_metrics(*read_tables(write_tables(tmp_path / "t", seeds=[1])), "naive")
    f = verdicts(one)
    assert (f.verdict == "not testable").all(), f.loc[:, ["verdict", "evidence"]]
    assert "findings.min_seeds" in f.loc[2, "evidence"]
    # ... unless the config asks for fewer seeds explicitly? min_seeds >= 2 is the schema's floor
    assert DEFAULTS["min_seeds"] == 2


def test_thresholds_come_from_the_findings_block(metrics):
    # a replay / naive cost ratio of 5 is inside the study's 3-15x, outside a 6-15x range
    assert verdicts(metrics).loc[6, "verdict"] == "supported"
    f = verdicts(metrics, cost_range=[6.0, 15.0])
    assert f.loc[6, "verdict"] == "not supported" and "6-15x (findings.cost_range)" in f.loc[6, "evidence"]
    # a spread factor this large swallows every difference
    assert (verdicts(metrics, spread_factor=1e9).loc[[1, 2, 5], "verdict"] == "not testable").all()


def test_compare_uses_the_seed_spread():
    cfg = dict(DEFAULTS)
    a, b = Stat(10.0, 1.0, 3), Stat(12.5, 1.5, 3)
    assert compare(a, b, cfg) == -1 and compare(b, a, cfg) == 1
    assert compare(a, Stat(11.0, 1.5, 3), cfg) == 0  # 1.0 apart, spread 1.5
    assert compare(a, Stat(12.5, 1.5, 1), cfg) is None  # one seed: no spread to compare with


def test_custom_replay_strategy_counts_as_replay(metrics):
    # a custom strategy whose catalog entry replays (roles from runs.csv), named like nothing known
    custom = metrics.copy()
    rows = custom[custom.strategy == "replay"].assign(strategy="my_mh_variant")
    custom = custom[custom.strategy != "replay"]
    import pandas as pd

    custom = pd.concat([custom, rows], ignore_index=True)
    assert (custom[custom.strategy == "my_mh_variant"].role_replay == "original").all()
    f = verdicts(custom)
    assert f.loc[3, "verdict"] == "supported"
    assert "replay my_mh_variant" in f.loc[3, "evidence"] or "my_mh_variant 1.05" in f.loc[3, "evidence"]
    # and if it forgets like naive, finding 3 no longer holds: it is judged as replay
    forgetful = custom.assign(pt_force_rmse=custom.pt_force_rmse.where(custom.strategy != "my_mh_variant", 300.0))
    assert verdicts(forgetful).loc[3, "verdict"] in ("mixed", "not supported")


def test_the_reference_strategy_is_declared_not_inferred(tmp_path):
    import pandas as pd

    errors, runs, rob = read_tables(write_tables(tmp_path / "t"))

    def with_variant(frame, **changes):
        variant = frame[frame.strategy == "naive"].assign(strategy="naive_stage_two", **changes)
        return pd.concat([frame, variant], ignore_index=True)

    # an ablation's naive variant (no freeze, LoRA or replay flags either) at 100x naive's step time
    slow = runs[runs.strategy == "naive"].optimiser_time_s * 100
    m = run_metrics(with_variant(errors), with_variant(runs, optimiser_time_s=slow.values), rob, baseline="naive")
    f = verdicts(m)
    # the cost reference stays naive: replay / naive ~5, inside the study's 3-15x
    assert f.loc[6, "verdict"] == "supported", f.loc[6, "evidence"]
    assert "(largest): naive 50" in f.loc[2, "evidence"] and "(largest): naive_stage_two" not in f.loc[2, "evidence"]
    # a renamed naive is the reference when the config says so, and only then
    renamed = [t.replace({"strategy": {"naive": "plain_ft"}}) for t in (errors, runs, rob)]
    assert verdicts(run_metrics(*renamed, baseline="plain_ft")).loc[5, "verdict"] == "supported"
    f = verdicts(run_metrics(*renamed, baseline=None))
    # without a reference: no strategy order in MD (only finding 5's E0 part), no cost ratio
    assert "MD time survived naive" not in f.loc[5, "evidence"] and f.loc[6, "verdict"] == "not testable"


def test_forgetting_uses_the_relabelled_slice_when_present(metrics):
    f = verdicts(metrics)
    assert "original labels" in f.loc[3, "evidence"] and "level-of-theory shift" in f.loc[3, "evidence"]
    relabelled = metrics.assign(pt_relabelled_force_rmse=metrics.pt_force_rmse)
    f = verdicts(relabelled)
    assert "relabelled at the target level of theory" in f.loc[3, "evidence"]


def test_custom_strategies_get_distinct_styles():
    names = [
        "naive",
        "freeze5",
        "freeze6",
        "lora",
        "replay",
        "pseudo_replay",
        "replay_lora",
        "scratch",
        "lora_r16",
        "lora_r64",
        "naive_lr2",
    ]
    styles = strategy_styles(names)
    pairs = {(s["color"].lower(), s["marker"]) for s in styles.values()}
    colours = {s["color"].lower() for s in styles.values()}
    assert len(pairs) == len(colours) == len(names)  # no twins, not even in colour alone
    # the lora_r16 example of docs/extending.md is not styled like replay_lora (the old `i % 8` twin)
    assert styles["lora_r16"]["color"] != styles["replay_lora"]["color"]
    assert styles["lora_r16"]["marker"] not in MARKERS
    # without the figure set's list a custom name still avoids every study colour
    assert strategy_style("lora_r16")["color"] in EXTRA_COLOURS
    assert strategy_style("lora_r16")["color"] not in OKABE_ITO
