"""The fixed optimiser-step budget: epochs from size, batch and replay pool, checked by hand and
against the steps a real mace_run_train takes (its per-step "opt" rows)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

import model_fixtures as mf
from conftest import ftbench
from ftbench.core.config import load_config
from ftbench.core.errors import FtbenchError
from ftbench.core.strategies import epochs_for_budget, mace_flags, step_budget

ZS = [1, 6, 17]


def test_epochs_for_budget_by_hand():
    budget = {"steps": 150, "patience_fraction": 0.3}
    # 10 configs, batch 2: 5 steps an epoch -> 30 epochs, patience ceil(9.0) = 9
    assert epochs_for_budget(budget, 10, 2) == {
        "steps": 150,
        "train_configs": 10,
        "steps_per_epoch": 5,
        "max_num_epochs": 30,
        "patience": 9,
    }
    # 31 configs, batch 4: 7 full batches (the last 3 configs are dropped) -> ceil(150/7) = 22 epochs
    assert epochs_for_budget(budget, 31, 4)["steps_per_epoch"] == 7
    assert epochs_for_budget(budget, 31, 4)["max_num_epochs"] == 22
    # replay: 40 pool configs lose int(0.1*40) = 4 to the replay validation split; 30 + 36 = 66
    # configs, batch 8 -> 8 steps an epoch -> ceil(150/8) = 19 epochs
    r = epochs_for_budget(budget, 30, 8, n_replay=40)
    assert (r["train_configs"], r["steps_per_epoch"], r["max_num_epochs"]) == (66, 8, 19)
    # a fine-tuning set below 0.1 x the replay set is repeated: 2 / 90 = 0.0222 -> 2 * (1 + int(4.5)) = 10
    r = epochs_for_budget(budget, 2, 10, n_replay=100)
    assert (r["train_configs"], r["steps_per_epoch"]) == (100, 10)
    # more configs than the budget's steps: still one epoch
    assert epochs_for_budget({"steps": 3, "patience_fraction": 1.0}, 100, 2)["max_num_epochs"] == 1


def test_evaluations_every_few_epochs_by_hand():
    budget = {"steps": 600, "patience_fraction": 0.3, "evals": 20}
    # 10 configs, batch 2: 5 steps an epoch -> 120 epochs; every 120 // 20 = 6th epoch is evaluated,
    # and the epochs round up to an evaluated last one: 6 * ceil(119 / 6) + 1 = 121 (epochs 0..120)
    r = epochs_for_budget(budget, 10, 2)
    assert (r["max_num_epochs"], r["eval_interval"], r["evaluations"]) == (121, 6, 21)
    assert (r["max_num_epochs"] - 1) % r["eval_interval"] == 0
    assert r["patience"] == 7  # ceil(0.3 * 21) evaluations, the unit mace counts patience in
    assert r["planned_steps"] == 605  # one epoch of 5 steps over the budget, recorded
    # 100 configs: 50 steps an epoch -> 12 epochs, fewer than 20: every epoch, as without `evals`
    r = epochs_for_budget(budget, 100, 2)
    assert (r["max_num_epochs"], r["eval_interval"], r["evaluations"], r["patience"]) == (12, 1, 12, 4)


def test_max_num_epochs_anywhere_wins_over_the_budget():
    cfg = load_config(None, {"training": {"steps": 100, "patience_fraction": 0.5}})
    assert {k: v for k, v in step_budget(cfg, "naive", "sn2").items() if k != "evals"} == {
        "steps": 100,
        "patience_fraction": 0.5,
    }
    assert "max_num_epochs" not in mace_flags(cfg, "naive", "demo_gen2", "sn2", 10)
    fixed = load_config(None, {"training": {"max_num_epochs": 7, "patience": 3}})
    assert step_budget(fixed, "naive", "sn2") is None
    assert mace_flags(fixed, "naive", "demo_gen2", "sn2", 10)["max_num_epochs"] == 7
    per_bench = load_config(None, {"catalog": {"benchmarks": {"sn2": {"training": {"steps": 40}}}}})
    assert step_budget(per_bench, "naive", "sn2")["steps"] == 40


def _frames(n, seed, isolated=False):
    out = mf.ch3cl_frames(n, seed)
    if isolated:  # E0s for mace, never training samples: the budget must not count them
        for z in ZS:
            iso = Atoms(numbers=[z])
            iso.info.update(REF_energy=-1.0, config_type="IsolatedAtom")
            iso.arrays["REF_forces"] = np.zeros((1, 3))
            out.append(iso)
    return out


@pytest.mark.parametrize("replay,evals", [(False, None), (True, None), (False, 2)], ids=["naive", "replay", "evals2"])
@pytest.mark.slow
def test_real_mace_takes_the_budgeted_steps(tmp_path, replay, evals):
    model = mf.build_model(ZS, channels=8, max_L=0, correlation=2, num_interactions=1, radial_mlp=(16,))
    mf.save(model, tmp_path / "foundation.model")
    write(tmp_path / "train.xyz", _frames(7, 1, isolated=True))
    write(tmp_path / "valid.xyz", _frames(3, 2))
    write(tmp_path / "pool.xyz", _frames(12, 3))
    e0 = model.atomic_energies_fn.atomic_energies.detach().numpy().reshape(-1)
    (tmp_path / "e0.json").write_text(json.dumps({str(z): float(e) for z, e in zip(ZS, e0)}))
    flags = {
        "multiheads_finetuning": replay,
        "lr": 1e-3,
        "ema": True,
        "ema_decay": 0.99,
        "batch_size": 3,
        "valid_batch_size": 4,
        "loss": "universal",
        "default_dtype": "float64",
        "energy_key": "REF_energy",
        "forces_key": "REF_forces",
        "eval_interval": 1,
    }
    if replay:
        flags["force_mh_ft_lr"] = True
    extra = ["--pt-train", str(tmp_path / "pool.xyz")] if replay else []
    out = tmp_path / "run"
    proc = ftbench(
        "finetune",
        "--flags",
        json.dumps(flags),
        "--budget",
        json.dumps({"steps": 10, "patience_fraction": 0.5, **({"evals": evals} if evals else {})}),
        "--train",
        str(tmp_path / "train.xyz"),
        "--valid",
        str(tmp_path / "valid.xyz"),
        "--e0",
        str(tmp_path / "e0.json"),
        "--foundation",
        str(tmp_path / "foundation.model"),
        *extra,
        "--device",
        "cpu",
        "--out-dir",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "ok", run["reason"]
    # naive: 7 configs (isolated atoms are E0s), batch 3 -> 2 steps an epoch, 5 epochs;
    # replay: 7 + (12 - 1) = 18 configs -> 6 steps an epoch, 2 epochs
    expected = (2, 5) if not replay else (6, 2)
    assert (run["budget"]["steps_per_epoch"], run["budget"]["max_num_epochs"]) == expected
    assert run["epochs"] == expected[1]
    assert run["optimiser_steps"] == expected[0] * expected[1]
    validated = sorted(
        {c["epoch"] for c in run["training_curve"] if c.get("mode") == "eval" and c["epoch"] is not None}
    )
    # evals 2 of 5 epochs: every 5 // 2 = 2nd epoch, the last one (4) among them; else every epoch
    assert validated == ([0, 2, 4] if evals else list(range(expected[1])))
    assert f"--eval_interval={2 if evals else 1}" in run["argv"]


def test_an_eval_interval_flag_beside_evals_is_refused():
    with pytest.raises(FtbenchError, match=r"`eval_interval` in training.mace_flags and `training.evals`"):
        load_config(None, {"training": {"mace_flags": {"eval_interval": 2}}})
    cfg = load_config(None, {"training": {"evals": None, "mace_flags": {"eval_interval": 2}}})
    assert mace_flags(cfg, "naive", "demo_gen2", "sn2", 10)["eval_interval"] == 2
