"""Per-benchmark training overrides (catalog.benchmarks.<name>.training) and the batch cap."""

from __future__ import annotations

import pytest

from conftest import ROOT
from ftbench.core.config import load_config
from ftbench.core.errors import FtbenchError
from ftbench.core.strategies import mace_flags

PAPER = ROOT / "config" / "paper.yaml"


def test_spice_batch_sized_for_1e5_configurations_other_benchmarks_keep_the_presets():
    cfg = load_config([PAPER])
    for strategy in ("naive", "replay", "scratch"):
        model = None if strategy == "scratch" else "mace_mp0_medium"
        spice = mace_flags(cfg, strategy, model, "spice", 100_000)
        assert spice["batch_size"] == 32 and spice["max_num_epochs"] == 300 and spice["patience"] == 30
    assert mace_flags(cfg, "naive", "mace_mp0_medium", "sn2", 60)["batch_size"] == 2
    assert mace_flags(cfg, "replay", "mace_mp0_medium", "sn2", 60)["batch_size"] == 8
    assert mace_flags(cfg, "replay", "mace_mp0_medium", "sn2", 60)["max_num_epochs"] == 1000


def test_batch_never_exceeds_the_training_set():
    # mace drops the last incomplete batch: batch 32 on 10 configurations would never train
    cfg = load_config([PAPER])
    assert mace_flags(cfg, "naive", "mace_mp0_medium", "spice", 10)["batch_size"] == 10
    assert mace_flags(cfg, "replay", "mace_mp0_medium", "sn2", 6)["batch_size"] == 6


def test_any_preset_flag_can_be_overridden_and_unknown_keys_are_refused():
    over = {"catalog": {"benchmarks": {"sn2": {"training": {"mace_flags": {"lr": 5e-4, "clip_grad": 3.0}}}}}}
    cfg = load_config(None, over)
    flags = mace_flags(cfg, "naive", "demo_gen1", "sn2", 20)
    assert flags["lr"] == 5e-4 and flags["clip_grad"] == 3.0 and flags["ema_decay"] == 0.999
    bad = {"catalog": {"benchmarks": {"sn2": {"training": {"batch_size": 4}}}}}
    with pytest.raises(FtbenchError, match="batch_size"):
        load_config(None, bad)


def test_li_is_the_confirmed_single_file_split_by_the_benchmark():
    cfg = load_config([PAPER])
    li = cfg["catalog"]["benchmarks"]["li"]
    assert li["files"] == {"data": "li_lpsc_600"} and li["split"]["valid"] and li["split"]["test"]
    entry = cfg["sources"]["mace_ft_supplementary"]["files"]["li_lpsc_600"]
    assert entry["path"] == "li/data/LPSC_600.extxyz" and entry["confirmed"] is True
    unconfirmed = [k for k, v in cfg["sources"]["mace_ft_supplementary"]["files"].items() if not v["confirmed"]]
    assert "water_ih_100_train" in unconfirmed and "spice_train" in unconfirmed
