"""The zero-shot strategy (`train: false`): the foundation model with the run's E0s, nothing
trained. Its forces are the foundation's, its energies move by the E0 change of its atoms."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from ase.build import molecule
from ase.io import write

import model_fixtures as mf
from conftest import ftbench, snakemake
from ftbench.probes.inference import load_model, predict

ZS = [1, 6, 17]


@pytest.mark.slow
def test_e0_only_run_shifts_energies_and_keeps_forces(tmp_path):
    model = mf.build_model(ZS, channels=8, max_L=0, correlation=2, num_interactions=1, radial_mlp=(16,))
    mf.save(model, tmp_path / "foundation.model")
    old = dict(zip(ZS, model.atomic_energies_fn.atomic_energies.detach().numpy().reshape(-1).tolist()))
    new = {1: old[1] - 0.5, 6: old[6] + 2.0, 17: old[17] - 1.25}
    (tmp_path / "e0.json").write_text(json.dumps({str(z): e for z, e in new.items()}))
    frames = []
    for i in range(3):
        a = molecule("CH3Cl")
        a.positions += np.random.default_rng(i).normal(0, 0.05, a.positions.shape)
        a.info["REF_energy"], a.arrays["REF_forces"] = -1.0, np.zeros((5, 3))
        frames.append(a)
    write(tmp_path / "train.xyz", frames)
    write(tmp_path / "valid.xyz", frames[:1])
    out = tmp_path / "run"
    proc = ftbench(
        "finetune",
        "--e0-only",
        "--flags",
        "{}",
        "--roles",
        json.dumps({"trained": False}),
        "--train",
        str(tmp_path / "train.xyz"),
        "--valid",
        str(tmp_path / "valid.xyz"),
        "--e0",
        str(tmp_path / "e0.json"),
        "--foundation",
        str(tmp_path / "foundation.model"),
        "--out-dir",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "ok" and run["epochs"] == 0 and run["trainable_parameters"]["trained"] == 0
    assert {int(z): e for z, e in run["e0s_in_model"].items()} == new
    before = predict(load_model(tmp_path / "foundation.model"), frames)
    after = predict(load_model(out / "model.model"), frames)
    shift = 3 * (-0.5) + 2.0 - 1.25  # CH3Cl: three H, one C, one Cl
    for b, a in zip(before, after):
        assert np.allclose(a["forces"], b["forces"], atol=1e-10)
        assert abs(a["energy"] - b["energy"] - shift) < 1e-8


@pytest.mark.slow
def test_zero_shot_runs_get_no_robustness_jobs(tmp_path):
    proc = snakemake(
        tmp_path,
        "-n",
        "-p",
        "--config",
        "benchmarks=[sn2]",
        "strategies=[zeroshot,naive]",
        "foundation_models=[demo_gen2]",
        "train_sizes=[10,20]",
        "seeds=[1]",
        "robustness={benchmarks: all}",  # the default probes no benchmark
    )
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert int(counts["finetune"]) == 4
    # naive at the largest size and the untouched model only (robustness.sizes: largest)
    assert int(counts["robustness"]) == 2
    commands = [line for line in proc.stdout.splitlines() if "ftbench finetune --flags" in line]
    assert len(commands) == 4
    assert all(("--e0-only" in c) == ("/zeroshot/" in c) for c in commands)
