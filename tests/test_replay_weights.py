"""Which replay weights a real multihead (replay) mace_run_train reads, and the refusal of the
ones it does not. The observable: mace's "Initial: head: pt_head, loss=..." line, the replay
head's validation loss before any step, on the same validation split in every run."""

from __future__ import annotations

import json
import re

import pytest
from ase.io import read, write

import model_fixtures as mf
from conftest import ftbench
from ftbench.core.config import load_config
from ftbench.core.errors import FtbenchError

ZS = [1, 6, 17]


def _frames(n, seed):
    return mf.ch3cl_frames(n, seed)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    model = mf.build_model(ZS, channels=8, max_L=0, correlation=2, num_interactions=1, radial_mlp=(16,))
    mf.save(model, d / "foundation.model")
    write(d / "train.xyz", _frames(6, 1))
    write(d / "valid.xyz", _frames(4, 2))
    e0 = model.atomic_energies_fn.atomic_energies.detach().numpy().reshape(-1)
    (d / "e0.json").write_text(json.dumps({str(z): float(e) for z, e in zip(ZS, e0)}))
    pool = _frames(20, 3)
    variants = {"plain": {}, "config_weight": {"config_weight": 0.5}, "energy_weight": {"config_energy_weight": 0.1}}
    for name, info in variants.items():
        frames = [a.copy() for a in pool]
        for a, src in zip(frames, pool):
            a.arrays["REF_forces"] = src.arrays["REF_forces"]
            a.info.update(info)
        write(d / f"pool_{name}.xyz", frames)
    return d


def _initial_pt_loss(d, name):
    flags = {
        "multiheads_finetuning": True,
        "force_mh_ft_lr": True,
        "lr": 1e-4,
        "ema": True,
        "ema_decay": 0.99,
        "batch_size": 2,
        "valid_batch_size": 4,
        "max_num_epochs": 1,
        "loss": "universal",
        "energy_weight": 10,
        "forces_weight": 10,
        "default_dtype": "float64",
        "error_table": "PerAtomRMSE",
        "energy_key": "REF_energy",
        "forces_key": "REF_forces",
        "eval_interval": 1,
    }
    out = d / f"run_{name}"
    proc = ftbench(
        "finetune",
        "--flags",
        json.dumps(flags),
        "--train",
        str(d / "train.xyz"),
        "--valid",
        str(d / "valid.xyz"),
        "--e0",
        str(d / "e0.json"),
        "--foundation",
        str(d / "foundation.model"),
        "--pt-train",
        str(d / f"pool_{name}.xyz"),
        "--device",
        "cpu",
        "--out-dir",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["status"] == "ok"
    log = "\n".join(p.read_text() for p in (out / "logs").glob("*.log"))
    losses = re.findall(r"Initial: head: pt_head, loss=\s*([0-9.eE+-]+)", log)
    assert losses, log[-3000:]
    return float(losses[0])


@pytest.mark.ci
def test_mace_reads_config_energy_weight_but_not_config_weight(setup):
    plain = _initial_pt_loss(setup, "plain")
    # mace's own weight_pt_head path writes config_weight; multihead mode forces the universal
    # loss, which never reads it: the replay head's loss is unchanged
    assert _initial_pt_loss(setup, "config_weight") == pytest.approx(plain, rel=1e-9)
    # the per-property weight the study's SN2 pool carries does act
    assert _initial_pt_loss(setup, "energy_weight") < 0.99 * plain
    # ...and the replay step keeps it in the file mace reads
    assert all(a.info["config_energy_weight"] == 0.1 for a in read(setup / "pool_energy_weight.xyz", ":"))


def test_weight_pt_head_other_than_one_is_refused_with_the_reason():
    with pytest.raises(FtbenchError, match="replay.weight_pt_head is 0.5.*universal loss.*config_energy_weight"):
        load_config(None, {"replay": {"weight_pt_head": 0.5}})
    assert load_config(None, {"replay": {"weight_pt_head": 1.0}})["replay"]["weight_pt_head"] == 1.0
