"""Config validation, cross-references and grid expansion (no training)."""

from __future__ import annotations

import pytest
import yaml

from conftest import ROOT, ftbench
from ftbench.core.config import load_config
from ftbench.core.errors import FtbenchError
from ftbench.core.grid import Run, expand_grid, parse_run_path, robustness_runs, sizes_for, untouched_runs
from ftbench.core.strategies import mace_flags

PAPER = ROOT / "config" / "paper.yaml"
DEFAULT = ROOT / "config" / "config.yaml"


def test_default_grid_counts():
    cfg = load_config(
        overrides={
            "benchmarks": ["sn2", "water"],
            "foundation_models": ["demo_gen1", "demo_gen2"],
            "train_sizes": [10, 20],
            "seeds": [1, 2],
            "e0": ["estimated"],
            "strategies": ["naive", "freeze5", "freeze6", "lora", "replay", "pseudo_replay", "replay_lora", "scratch"],
        }
    )
    runs = expand_grid(cfg)
    # 2 benchmarks x 2 sizes x 2 seeds x (2 models x 7 foundation strategies + scratch once) = 120
    assert len(runs) == 120
    assert {r.strategy for r in runs} == set(cfg["strategies"])
    scratch = [r for r in runs if r.strategy == "scratch"]
    assert all(r.model == "none" and r.e0 == cfg["e0_without_foundation"] for r in scratch)
    assert len(untouched_runs(cfg)) == 4  # 2 benchmarks x 2 models


def test_robustness_goes_to_trained_runs_at_the_largest_size_and_the_untouched_models():
    cfg = load_config(
        overrides={
            "benchmarks": ["sn2"],
            "foundation_models": ["demo_gen2"],
            "train_sizes": [10, 30],
            "seeds": [1, 2],
            "strategies": ["zeroshot", "naive", "scratch"],
            "robustness": {"sizes": "largest", "benchmarks": "all"},
        }
    )
    chosen = robustness_runs(cfg, expand_grid(cfg) + untouched_runs(cfg))
    # naive and scratch at n30 x 2 seeds, plus the untouched model; zeroshot has its forces
    assert sorted((r.strategy, r.size) for r in chosen) == [("naive", 30)] * 2 + [("scratch", 30)] * 2 + [
        ("untouched", 0)
    ]


def test_benchmark_grid_gives_one_benchmark_its_own_sizes_and_models_and_robustness_its_benchmarks():
    cfg = load_config(
        overrides={
            "benchmarks": ["sn2", "water"],
            "foundation_models": ["demo_gen1", "demo_gen2"],
            "train_sizes": [10, 30, 100],
            "seeds": [1, 2],
            "strategies": ["naive", "replay", "scratch"],
            "benchmark_grid": {"water": {"train_sizes": [30], "foundation_models": ["demo_gen2"]}},
            "robustness": {"benchmarks": ["water"], "sizes": "largest"},
        }
    )
    runs = expand_grid(cfg)
    water = [r for r in runs if r.benchmark == "water"]
    assert {r.size for r in water} == {30} and {r.model for r in water} == {"demo_gen2", "none"}
    # water: (naive, replay on gen2 + scratch) x 2 seeds; sn2: 3 sizes x 2 seeds x (2 x 2 + 1)
    assert len(water) == 6 and len(runs) - len(water) == 30
    assert {(r.benchmark, r.model) for r in untouched_runs(cfg)} == {
        ("sn2", "demo_gen1"),
        ("sn2", "demo_gen2"),
        ("water", "demo_gen2"),
    }
    chosen = robustness_runs(cfg, runs + untouched_runs(cfg))
    assert {r.benchmark for r in chosen} == {"water"} and len(chosen) == 7
    # slicing the top-level axis still slices the benchmark's own list
    sliced = load_config(
        overrides={**{k: cfg[k] for k in ("benchmarks", "benchmark_grid")}, "foundation_models": ["demo_gen1"]}
    )
    assert not [r for r in expand_grid(sliced) if r.benchmark == "water" and r.model != "none"]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"benchmark_grid": {"watr": {"train_sizes": [10]}}}, "`benchmark_grid.watr`: no benchmark 'watr'"),
        (
            {"benchmark_grid": {"water": {"foundation_models": ["gen9"]}}},
            "`benchmark_grid.water.foundation_models`: unknown foundation model(s) ['gen9']",
        ),
        ({"robustness": {"benchmarks": ["sn3"]}}, "`robustness.benchmarks`: unknown benchmark(s) ['sn3']"),
    ],
)
def test_benchmark_grid_and_robustness_scope_name_unknown_entries(override, needle):
    with pytest.raises(FtbenchError) as err:
        load_config(overrides=override)
    assert needle in str(err.value)


def test_paper_grid_is_the_full_study():
    cfg = load_config([DEFAULT, PAPER])
    assert len(cfg["foundation_models"]) == 3 and len(cfg["benchmarks"]) == 5 and len(cfg["strategies"]) == 8
    runs = expand_grid(cfg)
    sizes = {b: sizes_for(cfg, b) for b in cfg["benchmarks"]}
    assert sizes["sn2"] == [10, 30, 60]  # capped by the 60 training structures, whole pool included
    assert [len(s) for s in sizes.values()] == [3, 5, 5, 9, 5] and cfg["seeds"] == [1, 2, 3]
    # 27 sizes x 3 seeds x (3 models x 7 foundation strategies + scratch once) = 1782
    assert len(runs) == 1782
    # study presets survive the merge with the demo config
    assert mace_flags(cfg, "replay", "mace_mp0_medium")["lr"] == 1e-4
    assert mace_flags(cfg, "replay_lora", "mace_mh1")["foundation_head"] == "omat_pbe"


@pytest.mark.parametrize(
    "override,match",
    [
        ({"strategies": ["naive", "frozen"]}, r"unknown strategy 'frozen'.*catalog\.strategies"),
        ({"benchmarks": ["sn3"]}, r"unknown benchmark 'sn3'.*catalog\.benchmarks"),
        ({"foundation_models": ["mace_mp1"]}, r"unknown foundation model 'mace_mp1'"),
        ({"e0": ["guess"]}, r"config does not match"),
        ({"train_sizes": [500]}, r"train_sizes \[500\] exceed the \d+ training configurations of benchmark 'sn2'"),
        (
            {"catalog": {"strategies": {"lora": {"baseline": True}}}},
            r"naive, lora all have `baseline: true`.*keep `baseline: true` on one",
        ),
    ],
)
def test_bad_config_names_the_key_and_fix(override, match):
    with pytest.raises(FtbenchError, match=match):
        cfg = load_config(None, override)
        for b in cfg["benchmarks"]:
            sizes_for(cfg, b)


def test_auto_sizes_cap_at_the_pool():
    cfg = load_config(None, {"train_sizes": "auto"})
    pool = 90 - 15 - 20  # nacl: generated - valid - test
    assert sizes_for(cfg, "nacl") == [10, 30, pool]
    assert sizes_for(cfg, "water") == [10, 30, 100, 204]  # shipped: its catalog `max_train`


def test_strategy_presets_follow_the_study():
    cfg = load_config()
    assert mace_flags(cfg, "naive", "demo_gen1")["multiheads_finetuning"] is False
    assert mace_flags(cfg, "freeze5", "demo_gen1")["freeze"] == 5
    assert mace_flags(cfg, "freeze6", "demo_gen1")["freeze"] == 6
    lora = mace_flags(cfg, "lora", "demo_gen1")
    assert (lora["lora"], lora["lr"], lora["ema_decay"], lora["clip_grad"]) == (True, 1e-2, 0.99, 10.0)
    replay = mace_flags(cfg, "replay", "demo_gen1")
    assert replay["multiheads_finetuning"] and replay["force_mh_ft_lr"] and replay["batch_size"] == 8
    scratch = mace_flags(cfg, "scratch", None)
    assert "foundation_model" not in scratch and scratch["num_channels"] > 0
    for name in cfg["strategies"]:
        flags = mace_flags(cfg, name, "demo_gen1")
        assert flags["loss"] == "universal" and flags["energy_weight"] == 10 and flags["forces_weight"] == 10


def test_new_strategy_is_a_config_entry(tmp_path):
    extra = tmp_path / "lora16.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "strategies": ["lora_r16"],
                "catalog": {
                    "strategies": {
                        "lora_r16": {
                            "mace_flags": {"multiheads_finetuning": False, "lora": True, "lora_rank": 16, "lr": 1e-2}
                        }
                    }
                },
            }
        )
    )
    cfg = load_config([DEFAULT, extra])
    assert {r.strategy for r in expand_grid(cfg)} == {"lora_r16"}
    assert mace_flags(cfg, "lora_r16", "demo_gen1")["lora_rank"] == 16


def test_unknown_mace_option_is_refused_before_training():
    from ftbench.core.strategies import to_argv

    with pytest.raises(FtbenchError, match="no option --lora_rnak"):
        to_argv({"lora_rnak": 4})


def test_run_paths_round_trip():
    run = Run("sn2", "demo_gen1", "lora", "estimated", 30, 2)
    assert parse_run_path(run.path) == run


@pytest.mark.slow
def test_grid_cli_slices_axes():
    proc = ftbench("grid", "--config", "benchmarks=[sn2]", "strategies=[naive,replay]")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith("#")]
    assert lines and all(ln.startswith("sn2/") for ln in lines)
    assert {ln.split("/")[2] for ln in lines} == {"naive", "replay"}
    bad = ftbench("grid", "--config", "strategies=[nope]")
    assert bad.returncode == 2 and "unknown strategy 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_cueq_only_on_cuda_and_paper_runtimes():
    from pathlib import Path

    from ftbench.training.finetune import build_argv

    kw = dict(
        train=Path("t.xyz"), valid=Path("v.xyz"), e0=Path("e0.json"), out_dir=Path("o"), checkpoints=Path("c"), seed=1
    )
    flags = mace_flags(load_config(), "naive", "demo_gen1")
    assert "--enable_cueq=True" in build_argv(flags, device="cuda", enable_cueq=True, **kw)
    assert not any("cueq" in a for a in build_argv(flags, device="cpu", enable_cueq=True, **kw))
    paper = load_config([ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml"])
    assert paper["runtime_minutes"]["finetune"] == 720 and paper["runtime_minutes"]["default"] == 30


@pytest.mark.parametrize("ablation", sorted(p.name for p in (ROOT / "config" / "ablations").glob("*.yaml")))
def test_ablation_configs_expand_on_the_demo_and_the_paper_config(ablation):
    extra = ROOT / "config" / "ablations" / ablation
    demo = load_config([ROOT / "config" / "config.yaml", extra])
    paper = load_config([ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml", extra])
    assert demo["report_dir"] == f"results/ablations/{extra.stem}" == paper["report_dir"]
    for cfg in (demo, paper):
        runs = expand_grid(cfg)
        assert {r.strategy for r in runs} == set(cfg["strategies"])


def test_mace_option_aliases_are_accepted():
    from ftbench.core.strategies import to_argv

    # mace spells Stage Two both --swa and --stage_two; the ablation config uses the latter
    assert to_argv({"stage_two": True, "start_stage_two": 10}) == ["--stage_two", "--start_stage_two=10"]
    with pytest.raises(FtbenchError, match="no option --stage_tow"):
        to_argv({"stage_tow": True})


@pytest.mark.parametrize(
    "override,match",
    [
        ({"strategy": ["naive"]}, r"unknown config key `strategy`; did you mean `strategies`\?"),
        (
            {"training": {"max_num_epoch": 40}},
            r"unknown config key `training.max_num_epoch`; did you mean `training.max_num_epochs`\?",
        ),
        ({"e0_mismatch": {"treshold": 1.0}}, r"did you mean `e0_mismatch.threshold_ev_per_atom`\?"),
        (
            {"catalog": {"benchmarks": {"sn2": {"energy_kye": "E"}}}},
            r"`catalog.benchmarks.sn2.energy_kye`.*`catalog.benchmarks.sn2.energy_key`",
        ),
    ],
)
def test_unknown_config_keys_are_refused_with_the_nearest_key(override, match):
    with pytest.raises(FtbenchError, match=match):
        load_config(None, override)


@pytest.mark.parametrize(
    "path",
    [
        PAPER,
        *sorted((ROOT / "config" / "ablations").glob("*.yaml")),
        ROOT / "tests" / "data" / "micro.yaml",
        *sorted((ROOT / ".ci" / "slurm").glob("*.yaml")),
    ],
)
def test_shipped_configs_use_only_known_keys(path):
    load_config([DEFAULT, path])


def test_command_line_strings_become_the_numbers_the_schema_asks_for():
    # what Snakemake's --config hands over: YAML BaseLoader strings, nested ones included
    cfg = load_config(
        None,
        {
            "seeds": ["1", "2"],
            "train_sizes": ["20"],
            "split_seed": "7",
            "training": {"max_num_epochs": "40"},
            "enable_cueq": "false",
            "e0_mismatch": {"threshold_ev_per_atom": "0.5"},
        },
    )
    assert cfg["seeds"] == [1, 2] and cfg["train_sizes"] == [20] and cfg["split_seed"] == 7
    assert cfg["training"]["max_num_epochs"] == 40 and cfg["enable_cueq"] is False
    assert cfg["e0_mismatch"]["threshold_ev_per_atom"] == 0.5
    assert load_config(None, {"train_sizes": "auto"})["train_sizes"] == "auto"
    with pytest.raises(FtbenchError, match="config does not match"):
        load_config(None, {"seeds": ["one"]})


def test_auto_sizes_without_a_split_leave_the_default_valid_and_test_out():
    # organic generates 120 configurations; with no `split:` prepare holds out 20 + 30 of them
    cfg = load_config(overrides={"benchmarks": ["organic"], "train_sizes": "auto"})
    del cfg["catalog"]["benchmarks"]["organic"]["split"]
    assert cfg["catalog"]["benchmarks"]["organic"]["generator"]["n"] == 120
    assert sizes_for(cfg, "organic") == [10, 30, 70]


def test_the_paper_config_inherits_no_demo_world_file():
    # config.yaml's shipped sn2/water share names with the study's: catalog entries merge key by key
    from ftbench.core.config import robustness_settings, split_sizes

    paper = load_config([ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml"])
    assert paper["sources_file"] == "config/paper.yaml"
    for b in paper["benchmarks"]:
        settings = robustness_settings(paper, b)
        assert settings["start"]["file"] is None and settings["rdf"]["reference_trajectory"] is None, b
        assert not split_sizes(paper["catalog"]["benchmarks"][b]).get("group_key"), b
        assert paper["catalog"]["benchmarks"][b].get("fetch_source") != "demo_world", b
    demo = load_config()
    assert robustness_settings(demo, "sn2")["start"]["file"] == "data/demo/reference/sn2_start.xyz"


def test_the_study_config_does_not_inherit_the_demo_worlds_cpu_budget():
    """config/paper.yaml shares benchmark names with the demo world; none of its budget may leak in."""
    from ftbench.core.config import robustness_settings
    from ftbench.core.strategies import mace_flags

    paper = load_config([ROOT / "config" / "paper.yaml"])
    top = {k: v for k, v in paper["robustness"].items() if k not in ("start", "rdf")}
    for bench in paper["benchmarks"]:
        settings = robustness_settings(paper, bench)
        assert {k: settings[k] for k in top} == top, bench
        flags = mace_flags(paper, "naive", paper["foundation_models"][0], bench, 100)
        assert flags["default_dtype"] == "float64", bench
    # the demo default probes no benchmark and draws no robustness figure; the study does both
    assert paper["robustness"]["benchmarks"] == "all"
    assert {"md_survival", "rdf_overlays", "emd", "rss_collapse"} <= set(paper["figures"])
