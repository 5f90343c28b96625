"""The full-study path on real-shaped stand-ins: config/paper.yaml through the real fetch path.

A loopback host serves random-weight models with the real architectures (MACE-MP-0 medium's
shape; an MH-1-shaped 3-head model whose configured head, omat_pbe, is in the middle), SN2 data
in the supplementary's format and an MPtrj-format replay pool at the URLs paper.yaml names.
Snakemake then runs one benchmark's cells (download with sha256 lock, head artefact, E0s,
replay, fine-tune, evaluate, robustness) for naive, replay and pseudo_replay on both models,
a few epochs on CPU. The overlay below only shrinks sizes; every path and name is paper.yaml's.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pytest
import yaml
from ase.io import read, write

import model_fixtures as mf
from conftest import ROOT, snakemake
from http_server import make_sn2_extxyz, serve

PAPER = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
MODELS = ["mace_mp0_medium", "mace_mh1"]
STRATEGIES = ["naive", "replay", "pseudo_replay"]


def _url_path(source: str, file: str) -> str:
    """The path on the host where paper.yaml's `sources` put a logical file."""
    src = PAPER["sources"][source]
    path = src["files"][file]["path"]
    if src["kind"] == "hf_dataset":
        return f"/datasets/{src['repo']}/resolve/{src['revision']}/{path}"
    return f"{urllib.parse.urlsplit(src['url']).path}/{path}"


def overlay(tmp: Path) -> Path:
    cfg = {
        "benchmarks": ["sn2"],
        "foundation_models": MODELS,
        "strategies": STRATEGIES,
        "train_sizes": [6],
        "seeds": [1],
        "e0": ["estimated"],
        "device": "cpu",
        "sources_file": str(ROOT / "config" / "paper.yaml"),
        "training": {"max_num_epochs": 2, "patience": 5},
        "replay": {"n_samples": 8, "n_eval": 4},
        "evaluation": {"batch_size": 8},
        "robustness": {
            "md": {"replicas": 1, "steps": 8, "save_every": 2, "thermalise_steps": 2, "friction": 1.0},
            "production": {"steps": 6, "thermalise_steps": 1, "replicas": 1, "save_every": 2, "min_survival": 0.5},
            "rdf": {"skip_frames": 1},
            "rss": {"n_structures": 1, "max_steps": 3},
            "dimers": {"n_points": 6},
        },
    }
    path = tmp / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("smoke")
    files = tmp / "host"
    mf.save(mf.mp0_medium(), files / "mp0.model")
    mf.save(mf.multihead(), files / "mh1.model")
    for part, n in (("train", 8), ("valid", 4), ("test", 4)):
        make_sn2_extxyz(files / f"{part}.xyz", n_configs=n, seed={"train": 0, "valid": 1, "test": 2}[part])
        if part != "train":  # as in the supplementary: isolated atoms only in train.xyz
            frames = [a for a in read(files / f"{part}.xyz", ":") if len(a) > 1]
            write(files / f"{part}.xyz", frames, format="extxyz")
    # MPtrj layout (energy/forces/stress, mp_id per trajectory) with the SN2 elements, plus the
    # study pool's per-configuration energy weight
    pool = mf.write_mptrj_pool(
        files / "pool.xyz", 40, elements=("H", "C", "F", "Cl"), atoms_per_frame=6, frames_per_material=4, seed=5
    )
    text = pool.read_text().replace("config_type=mptrj", "config_type=mptrj config_energy_weight=0.1")
    pool.write_text(text)
    served = {
        ("mace_mp_releases", "mace_mp_0_medium"): files / "mp0.model",
        ("mace_foundations_releases", "mace_mh_1"): files / "mh1.model",
        ("mace_ft_supplementary", "sn2_train"): files / "train.xyz",
        ("mace_ft_supplementary", "sn2_valid"): files / "valid.xyz",
        ("mace_ft_supplementary", "sn2_test"): files / "test.xyz",
        ("mace_ft_supplementary", "sn2_replay_omat24"): pool,
    }
    work = tmp / "work"
    work.mkdir()
    with serve() as host:
        for (source, name), path in served.items():
            host.add(_url_path(source, name), path.read_bytes())
        monkeypatch_module.setenv("FTBENCH_BASE_URL", host.base)
        monkeypatch_module.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch_module.delenv("FTBENCH_DATA_DIR", raising=False)
        args = [
            "results/benchmarks/sn2.done",
            "-c",
            "2",
            "--printshellcmds",
            "--configfile",
            str(ROOT / "config" / "paper.yaml"),
            str(overlay(tmp)),
        ]
        proc = snakemake(work, *args, timeout=1500)
        requests = list(host.requests)
        rerun = snakemake(work, "-n", *args)
    (tmp / "snakemake.log").write_text(proc.stdout + proc.stderr)
    return {
        "work": work,
        "log": proc.stdout + proc.stderr,
        "requests": requests,
        "rerun": rerun.stdout,
        "served": served,
    }


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _run(work, model, strategy):
    if strategy == "untouched":
        return work / f"results/runs/sn2/{model}/untouched/foundation/n0/seed0"
    return work / f"results/runs/sn2/{model}/{strategy}/estimated/n6/seed1"


@pytest.mark.ci
def test_every_rule_ran_and_downloads_were_locked(smoke):
    log = smoke["log"]
    for rule in (
        "fetch_model",
        "fetch_benchmark",
        "fetch_replay_pool",
        "foundation_head",
        "prepare_benchmark",
        "subset",
        "e0",
        "replay",
        "finetune",
        "untouched",
        "evaluate",
        "reference_rdf",
        "robustness",
        "benchmark_done",
    ):
        assert re.search(rf"^(local)?rule {rule}:", log, re.M), rule
    lock = yaml.safe_load((smoke["work"] / "config" / "checksums.lock").read_text())
    assert len(lock) == len(smoke["served"])  # every download's sha256 recorded
    assert "Nothing to be done" in smoke["rerun"]  # and the finished study is up to date


@pytest.mark.ci
def test_both_models_every_strategy_finished_with_the_head_used(smoke):
    work = smoke["work"]
    for model in MODELS:
        head = "omat_pbe" if model == "mace_mh1" else None
        for strategy in STRATEGIES + ["untouched"]:
            run = json.loads((_run(work, model, strategy) / "run.json").read_text())
            assert run["status"] == "ok", (model, strategy, run.get("reason"))
            assert run["foundation_head"] == head
            errors = json.loads((_run(work, model, strategy) / "errors.json").read_text())
            heads = {r["head"] for r in errors["rows"]}
            if strategy == "untouched":
                assert heads == {head or "Default"}  # the configured head only, under its name
            elif strategy in ("replay", "pseudo_replay"):
                assert heads == {"Default", "pt_head"}
            rob = json.loads((_run(work, model, strategy) / "robustness" / "robustness.json").read_text())
            assert rob["status"] == "ok" and "md" in rob and "dimers" in rob
    # the MH-1 stand-in is reduced once to the configured head, and E0s and replay use it
    artefact = work / "results/foundation/mace_mh1/omat_pbe.model"
    assert artefact.is_file()
    for info in (work / "results/e0/sn2/mace_mh1/estimated").glob("*.provenance.json"):
        assert json.loads(info.read_text())["head"] == "omat_pbe"
    assert json.loads((work / "results/replay/sn2/mace_mh1/summary.json").read_text())["head"] == "omat_pbe"
    assert "--head omat_pbe" in smoke["log"]


@pytest.mark.ci
def test_replay_pool_streamed_by_material_with_its_weights(smoke):
    work = smoke["work"]
    summary = json.loads((work / "results/replay/sn2/mace_mp0_medium/summary.json").read_text())
    assert summary["groups_from"] == "mp_id"
    replay = read(work / "results/replay/sn2/mace_mp0_medium/replay.xyz", ":")
    held = read(work / "results/replay/sn2/mace_mp0_medium/pt_eval.xyz", ":")
    assert len(replay) == 8 and len(held) == 4
    assert not {a.info["mp_id"] for a in replay} & {a.info["mp_id"] for a in held}
    assert all(a.info["config_energy_weight"] == 0.1 for a in replay)
