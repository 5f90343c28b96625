"""The micro grid through the real pipeline: every strategy does what it says, on trained models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from ase.io import read

from conftest import MICRO, snakemake
from ftbench.core.config import load_config
from ftbench.core.grid import expand_grid, untouched_runs

pytestmark = pytest.mark.pipeline

BENCH, MODEL, SIZE = "sn2", "micro", 8


def run_dir(workdir, strategy, model=MODEL, e0="estimated"):
    return workdir / "results" / "runs" / BENCH / model / strategy / e0 / f"n{SIZE}" / "seed1"


def load(path):
    from ftbench.probes.inference import load_model

    return load_model(path)


def params(model, group):
    return {n: p.detach().clone() for n, p in getattr(model, group).named_parameters()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


@pytest.fixture(scope="module")
def foundation(micro_run):
    return load(micro_run / "results" / "pretrain" / MODEL / "run" / "model.model")


def finetuned(workdir, strategy, model=MODEL, e0="estimated"):
    info = json.loads((run_dir(workdir, strategy, model, e0) / "run.json").read_text())
    assert info["status"] == "ok", info
    return load(workdir / info["model"]), info  # run.json paths are relative to the work dir


def test_tables_cover_every_cell(micro_run):
    cfg = load_config(None, yaml.safe_load(MICRO.read_text()))
    errors = pd.read_csv(micro_run / "results" / "tables" / "errors.csv")
    runs = pd.read_csv(micro_run / "results" / "tables" / "runs.csv")
    expected = {
        (r.benchmark, r.model, r.strategy, r.e0, r.size, r.seed) for r in expand_grid(cfg) + untouched_runs(cfg)
    }
    key = ["benchmark", "model", "strategy", "e0", "train_size", "seed"]
    assert set(map(tuple, errors[key].drop_duplicates().itertuples(index=False))) == expected
    assert set(map(tuple, runs[key].itertuples(index=False))) == expected
    assert (runs.status == "ok").all(), runs[runs.status != "ok"]
    # target test errors and pretraining-slice errors for every fine-tuned model
    test = errors[(errors.dataset == "test") & (errors.quantity == "forces") & (errors.statistic == "rmse")]
    assert len(test.groupby(key)) == len(expected)
    pt = errors[(errors.dataset == "pt_eval") & (errors["head"] == "pt_head")]
    assert set(pt.strategy) == {"replay", "pseudo_replay", "replay_lora"}
    assert (micro_run / "results" / "figures" / "learning_curves.png").stat().st_size > 10_000


def test_frozen_groups_are_not_trained_parameters(micro_run):
    full = finetuned(micro_run, "naive")[1]["trainable_parameters"]
    f5 = finetuned(micro_run, "freeze5")[1]["trainable_parameters"]
    f6 = finetuned(micro_run, "freeze6")[1]["trainable_parameters"]
    assert full["trained"] > f5["trained"] > f6["trained"] > 0


@pytest.mark.parametrize(
    "strategy,frozen,trained",
    [
        ("freeze5", ["node_embedding", "interactions"], ["products", "readouts"]),
        ("freeze6", ["node_embedding", "interactions", "products"], ["readouts"]),
        ("naive", [], ["node_embedding", "interactions", "products", "readouts"]),
    ],
)
def test_freezing_keeps_frozen_groups(micro_run, foundation, strategy, frozen, trained):
    model, _ = finetuned(micro_run, strategy)
    # Same elements in foundation and benchmark: parameters map one to one.
    assert model.atomic_numbers.tolist() == foundation.atomic_numbers.tolist()
    for group in frozen:
        assert same(params(model, group), params(foundation, group)), f"{strategy}: {group} changed"
    for group in trained:
        assert not same(params(model, group), params(foundation, group)), f"{strategy}: {group} did not train"


def test_lora_merges_into_foundation_architecture(micro_run, foundation):
    model, info = finetuned(micro_run, "lora")
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in foundation.state_dict().items()}
    assert not any("lora" in k.lower() for k in shapes)
    counts = info["trainable_parameters"]
    naive = finetuned(micro_run, "naive")[1]["trainable_parameters"]
    assert counts["total"] == naive["total"] == naive["trained"]
    assert 0 < counts["trained"] < 0.5 * counts["total"], counts
    assert not same(params(model, "interactions"), params(foundation, "interactions"))


@pytest.mark.parametrize("strategy", ["replay", "pseudo_replay", "replay_lora"])
def test_replay_models_carry_two_heads(micro_run, strategy):
    model, info = finetuned(micro_run, strategy)
    assert list(model.heads) == ["pt_head", "Default"]
    argv = " ".join(info["argv"])
    assert "--multiheads_finetuning=True" in argv and "--force_mh_ft_lr=True" in argv
    replay = "replay_pseudo.xyz" if strategy == "pseudo_replay" else "replay.xyz"
    assert f"--pt_train_file=results/replay/{BENCH}/{MODEL}/{replay}" in argv


@pytest.mark.parametrize(
    "strategy", ["naive", "freeze5", "freeze6", "lora", "replay", "pseudo_replay", "replay_lora", "scratch"]
)
def test_e0s_used_equal_e0_json(micro_run, strategy):
    model_key = "none" if strategy == "scratch" else MODEL
    e0_mode = "isolated" if strategy == "scratch" else "estimated"
    model, info = finetuned(micro_run, strategy, model_key, e0_mode)
    e0_file = micro_run / "results" / "e0" / BENCH / model_key / e0_mode / f"n{SIZE}.json"
    expected = {int(z): e for z, e in json.loads(e0_file.read_text()).items()}
    ae = model.atomic_energies_fn.atomic_energies.detach().numpy()
    heads = list(getattr(model, "heads", ["Default"]))
    row = ae[heads.index("Default")] if ae.ndim == 2 else ae
    got = dict(zip(model.atomic_numbers.tolist(), row.tolist()))
    assert got == pytest.approx(expected, abs=1e-10)
    assert not [w for w in info["warnings"] if "E0s in the saved model" in w]
    assert str(e0_file).endswith(
        info["argv"][[a.startswith("--E0s=") for a in info["argv"]].index(True)].split("results/", 1)[1]
    )


def test_estimated_e0s_differ_from_foundation_and_fit_the_data(micro_run, foundation):
    prov = json.loads(
        (micro_run / "results" / "e0" / BENCH / MODEL / "estimated" / f"n{SIZE}.provenance.json").read_text()
    )
    from ftbench.probes.inference import model_e0s

    fm = model_e0s(foundation)
    est = {int(z): e for z, e in prov["e0s"].items()}
    # GFN1 (corpus) vs GFN2 (benchmark) isolated-atom energies differ by eV per element
    assert max(abs(est[z] - fm[z]) for z in est) > 0.1
    assert prov["initial_energy_rmse_ev_per_atom"] < 0.4


def test_pseudolabels_are_foundation_predictions(micro_run, foundation):
    from ftbench.probes.inference import predict

    replay_dir = micro_run / "results" / "replay" / BENCH / MODEL
    original = read(replay_dir / "replay.xyz", ":")
    pseudo = read(replay_dir / "replay_pseudo.xyz", ":")
    preds = predict(foundation, original)
    assert [a.info["REF_energy"] for a in pseudo] == pytest.approx([p["energy"] for p in preds], abs=1e-6)
    assert np.abs(np.array([a.info["REF_energy"] for a in original]) - [p["energy"] for p in preds]).max() > 1e-3
    # the held-out slice is disjoint from the replay set
    held = read(replay_dir / "pt_eval.xyz", ":")

    def key(a):
        return a.positions.round(6).tobytes()

    assert not {key(a) for a in held} & {key(a) for a in original}


def test_training_subsets_are_nested_and_provenance_recorded(micro_run):
    data = micro_run / "results" / "data" / BENCH
    pool = read(data / "train_pool.xyz", ":")
    sub = read(data / f"train_n{SIZE}.xyz", ":")
    assert [a.positions.tolist() for a in sub] == [a.positions.tolist() for a in pool[:SIZE]]
    info = json.loads((run_dir(micro_run, "naive") / "run.json").read_text())
    assert info["argv"][0] == "mace_run_train" and info["versions"]["mace-torch"] == "0.3.16"
    assert any(k.endswith(f"train_n{SIZE}.xyz") for k in info["inputs"])
    assert all(len(v) == 64 for v in info["inputs"].values())
    assert info["wall_time_s"] > 0 and info["device"] == "cpu"


def test_noop_rerun_schedules_nothing(micro_run):
    proc = snakemake(micro_run, "-n", "--configfile", str(MICRO))
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_robustness_rows_for_every_run(micro_run):
    cfg = load_config(None, yaml.safe_load(MICRO.read_text()))
    rob = pd.read_csv(micro_run / "results" / "tables" / "robustness.csv")
    key = ["benchmark", "model", "strategy", "e0", "train_size", "seed"]
    expected = {
        (r.benchmark, r.model, r.strategy, r.e0, r.size, r.seed) for r in expand_grid(cfg) + untouched_runs(cfg)
    }
    assert set(map(tuple, rob[key].drop_duplicates().itertuples(index=False))) == expected
    for _, grp in rob.groupby(key):
        metrics = set(zip(grp.evaluation, grp.metric))
        assert {("md", "survival_fraction"), ("rss", "collapse_fraction"), ("dimers", "wall_failures")} <= metrics
        # every element pair of the SN2 system has a dimer curve: H, C, F, Cl -> 10 pairs
        assert grp[(grp.evaluation == "dimers") & (grp.metric == "wall_failures")].pair.nunique() == 10
    # MD trajectories are kept, so how far a run got can be seen
    traj = run_dir(micro_run, "naive") / "robustness" / "md" / "replica_0.xyz"
    assert len(read(traj, ":")) >= 1
    info = json.loads((run_dir(micro_run, "naive") / "robustness" / "robustness.json").read_text())
    assert info["md"]["summary"]["n_replicas"] == 2 and len(info["rss"]["structures"]) == 2


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table of a dry run, as {rule: count} (without the total)."""
    lines = output.split("Job stats:")[1].strip().splitlines()[2:]
    counts = {}
    for line in lines:
        if not line.strip():
            break
        rule, count = line.split()
        counts[rule] = int(count)
    counts.pop("total", None)
    return counts


FIGURE_RULES = ["--allowed-rules", "aggregate", "tables", "figure", "figures"]


def test_figures_target_redraws_a_deleted_figure_without_training(micro_run):
    from ftbench.report.figures import FIGURES

    figs, tables = micro_run / "results" / "figures", micro_run / "results" / "tables"
    drawn = load_config([MICRO])["figures"]
    # the config's figures, and no placeholder for an ablation that did not run
    assert set(drawn) < set(FIGURES) and not {"multihead_lr_sweep", "stage_two", "e0_dimers"} & set(drawn)
    assert sorted(p.stem for p in figs.glob("*.png")) == sorted(drawn)
    assert sorted(p.stem for p in figs.glob("*.pdf")) == sorted(drawn)
    for stem in ("summary_sn2", "recommendations", "cost", "findings"):
        assert all((tables / f"{stem}.{ext}").stat().st_size > 100 for ext in ("csv", "md", "tex"))
    (figs / "forgetting.png").unlink()
    dry = snakemake(micro_run, "figures", "-n", "--configfile", str(MICRO))
    assert job_counts(dry.stdout) == {"figure": 1, "figures": 1}
    snakemake(micro_run, "figures", "-c", "1", "--configfile", str(MICRO))
    assert (figs / "forgetting.png").stat().st_size > 10_000
    assert "Nothing to be done" in snakemake(micro_run, "figures", "-n", "--configfile", str(MICRO)).stdout
    # A changed setting makes the plain target want to retrain; the figures-only form never does.
    stale = ["--configfile", str(MICRO), "--config", "device=cpu", "--forcerun", "aggregate"]
    assert "finetune" in job_counts(snakemake(micro_run, "figures", "-n", *stale).stdout)
    only = job_counts(snakemake(micro_run, "figures", "-n", *stale, *FIGURE_RULES).stdout)
    assert set(only) == {"aggregate", "tables", "figure", "figures"}


def test_html_report_holds_figures_and_tables(micro_run, tmp_path):
    report = tmp_path / "report.html"
    snakemake(micro_run, "--configfile", str(MICRO), "--report", str(report))
    text = report.read_text(errors="replace")
    assert report.stat().st_size > 100_000
    for name in ("learning_curves.png", "forgetting.png", "findings.md", "Forgetting trade-off"):
        assert name in text, name
