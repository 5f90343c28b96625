"""Bad input gives one clear message naming the file/key/option and the fix; a diverged run is
recorded as a result. Real CLI calls on the micro pipeline's real files and models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.io import read, write

from conftest import ftbench

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def paths(micro_run):
    r = micro_run / "results"
    return {
        "foundation": r / "pretrain" / "micro" / "run" / "model.model",
        "train": r / "data" / "sn2" / "train_n8.xyz",
        "valid": r / "data" / "sn2" / "valid.xyz",
        "test": r / "data" / "sn2" / "test.xyz",
        "isolated": r / "data" / "sn2" / "isolated.xyz",
        "e0": r / "e0" / "sn2" / "micro" / "estimated" / "n8.json",
    }


def test_missing_energy_key_names_file_record_and_fix(tmp_path, paths):
    bad = tmp_path / "bench.xyz"
    atoms = read(paths["train"], ":")
    for a in atoms:
        a.info.pop("REF_energy")
    write(bad, atoms, format="extxyz")
    proc = ftbench("prepare", "--data", str(bad), "--n-valid", "2", "--n-test", "2", "--out-dir", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "'REF_energy'" in proc.stderr and "energy_key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_forces_key(tmp_path, paths):
    bad = tmp_path / "bench.xyz"
    atoms = read(paths["train"], ":")
    for a in atoms:
        del a.arrays["REF_forces"]
    write(bad, atoms, format="extxyz")
    proc = ftbench("prepare", "--data", str(bad), "--out-dir", str(tmp_path / "o"))
    assert proc.returncode == 2 and "'REF_forces'" in proc.stderr and "forces_key" in proc.stderr


def test_element_unknown_to_foundation_stops_before_training(tmp_path, paths):
    water = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    water.info["REF_energy"] = -100.0
    water.arrays["REF_forces"] = np.zeros((3, 3))
    data = tmp_path / "water.xyz"
    write(data, [water], format="extxyz")
    proc = ftbench(
        "e0",
        "--mode",
        "estimated",
        "--data",
        str(data),
        "--model",
        str(paths["foundation"]),
        "--model-name",
        "micro",
        "--out",
        str(tmp_path / "e0.json"),
    )
    assert proc.returncode == 2
    assert "contains O" in proc.stderr and "'micro' does not know" in proc.stderr and "benchmarks" in proc.stderr
    assert not (tmp_path / "e0.json").exists()


def test_e0_mismatch_warns_or_errors(tmp_path, paths):
    # Foundation E0s (GFN1 isolated atoms) on GFN2 data: the classic mismatch symptom.
    args = ["e0", "--mode", "foundation", "--data", str(paths["train"]), "--model", str(paths["foundation"])]
    warn = ftbench(*args, "--out", str(tmp_path / "warn.json"))
    assert warn.returncode == 0
    info = json.loads((tmp_path / "warn.provenance.json").read_text())
    assert info["initial_energy_rmse_ev_per_atom"] > 0.4
    assert "E0 mismatch" in info["warnings"][0] and "E0 mismatch" in warn.stderr
    err = ftbench(*args, "--on-mismatch", "error", "--out", str(tmp_path / "err.json"))
    assert err.returncode == 2 and "e0: [estimated]" in err.stderr
    # estimated E0s on the same data pass the check
    ok = ftbench(
        "e0",
        "--mode",
        "estimated",
        "--data",
        str(paths["train"]),
        "--model",
        str(paths["foundation"]),
        "--on-mismatch",
        "error",
        "--out",
        str(tmp_path / "ok.json"),
    )
    assert ok.returncode == 0, ok.stderr


def test_diverged_run_is_a_result_in_the_tables(tmp_path, paths):
    run_dir = tmp_path / "runs" / "sn2" / "micro" / "naive" / "estimated" / "n8" / "seed1"
    flags = {
        "multiheads_finetuning": False,
        "max_num_epochs": 1,
        "batch_size": 2,
        "lr": 1e-3,
        "energy_key": "REF_energy",
        "forces_key": "REF_forces",
        "default_dtype": "float64",
    }
    proc = ftbench(
        "finetune",
        "--flags",
        json.dumps(flags),
        "--train",
        str(paths["train"]),
        "--valid",
        str(paths["valid"]),
        "--e0",
        str(paths["e0"]),
        "--foundation",
        str(paths["foundation"]),
        "--out-dir",
        str(run_dir),
        "--device",
        "cpu",
        "--max-force-rmse",
        "1e-9",
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "diverged" and "above 1e-09" in run["reason"] and run["model"] is None
    assert not (run_dir / "model.model").exists()
    ev = ftbench(
        "evaluate",
        "--run",
        str(run_dir / "run.json"),
        "--data",
        f"test={paths['test']}",
        "--out",
        str(run_dir / "errors.json"),
    )
    assert ev.returncode == 0, ev.stderr
    agg = ftbench(
        "aggregate",
        "--errors",
        str(run_dir / "errors.json"),
        "--runs-root",
        str(tmp_path / "runs"),
        "--tables",
        str(tmp_path / "tables"),
    )
    assert agg.returncode == 0, agg.stderr
    errors = pd.read_csv(tmp_path / "tables" / "errors.csv")
    assert errors.status.tolist() == ["diverged"] and errors.value.isna().all()
    assert "diverged: sn2/micro/naive" in agg.stdout


def test_unknown_mace_flag_fails_before_training(tmp_path, paths):
    proc = ftbench(
        "finetune",
        "--flags",
        json.dumps({"lora_rnak": 4}),
        "--train",
        str(paths["train"]),
        "--valid",
        str(paths["valid"]),
        "--e0",
        str(paths["e0"]),
        "--out-dir",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2 and "no option --lora_rnak" in proc.stderr
    assert not (tmp_path / "r" / "run.json").exists()
