"""The robustness protocol of one model: common start, batched ramp, NVT production for the RDF,
failures built on calculator errors, roles and optimiser-step cost in the tidy tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write

from ftbench.cli import main
from ftbench.core.config import load_config
from ftbench.core.errors import FtbenchError

sys.path.insert(0, str(Path(__file__).parent))
from robustness_support import build_tiny_mace, water_box  # noqa: E402

SETTINGS = {
    "structure_index": 0,
    "md": {
        "replicas": 2,
        "steps": 10,
        "timestep_fs": 0.5,
        "t_start": 300,
        "t_end": 600,
        "friction": 0.5,
        "thermalise_steps": 2,
        "save_every": 5,
        "min_distance": 0.1,
        "max_force": 1e4,
        "max_temperature_factor": 100.0,
        "seed": 0,
    },
    "production": {
        "temperature": 300,
        "steps": 8,
        "thermalise_steps": 2,
        "replicas": 1,
        "save_every": 2,
        "min_survival": 0.0,
    },
    "rdf": {"bin_width": 0.1, "skip_frames": 1},
    "rss": {"n_structures": 1, "density_range": [0.9, 1.1], "fmax": 0.5, "max_steps": 3, "collapse_fraction": 0.5},
    "dimers": {"r_min": 0.5, "r_max": 4.0, "n_points": 6, "core_fraction": 0.5},
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_mace(tmp_path_factory.mktemp("m") / "tiny.model", elements=("H", "O"), pair_repulsion=True)


@pytest.fixture(scope="module")
def evaluated(model, tmp_path_factory):
    work = tmp_path_factory.mktemp("rob")
    write(work / "test.xyz", [water_box(2), water_box(2, seed=1)])
    assert (
        main(["md-start", "--structures", str(work / "test.xyz"), "--index", "1", "--out", str(work / "md_start.xyz")])
        == 0
    )
    assert (
        main(
            [
                "rdf",
                str(work / "test.xyz"),
                "--bin-width",
                "0.1",
                "--label",
                "test set",
                "--out",
                str(work / "reference_rdf.csv"),
            ]
        )
        == 0
    )
    out = work / "out"
    assert (
        main(
            [
                "robustness",
                "--model",
                str(model),
                "--structure",
                str(work / "md_start.xyz"),
                "--reference-rdf",
                str(work / "reference_rdf.csv"),
                "--settings",
                json.dumps(SETTINGS),
                "--device",
                "cpu",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    return work, json.loads((out / "robustness.json").read_text())


@pytest.mark.slow
def test_common_start_is_the_test_structure_as_is_without_a_reference_calculator(evaluated):
    work, _ = evaluated
    start = read(work / "md_start.xyz")
    np.testing.assert_allclose(start.positions, water_box(2, seed=1).positions)
    assert "as is" in json.loads((work / "md_start.json").read_text())["rule"]
    # a shipped reference frame wins over the test structure
    write(work / "frame.xyz", water_box(2, seed=7))
    assert (
        main(
            [
                "md-start",
                "--structures",
                str(work / "test.xyz"),
                "--from-file",
                str(work / "frame.xyz"),
                "--out",
                str(work / "start2.xyz"),
            ]
        )
        == 0
    )
    np.testing.assert_allclose(read(work / "start2.xyz").positions, water_box(2, seed=7).positions)


def test_ramp_then_separate_nvt_production_for_the_rdf(evaluated):
    work, rec = evaluated
    assert rec["status"] == "ok", rec.get("reason")
    md = rec["md"]
    assert md["summary"]["n_replicas"] == 2 and md["summary"]["batched"]
    assert all(r["thermalise_steps"] == 2 for r in md["replicas"])
    prod = rec["production"]
    assert prod["run"] and prod["temperature_K"] == 300
    stable = [r for r in prod["replicas"] if r["reason"] == "stable"]
    frames = read(work / "out" / "md" / "production_0.xyz", ":")
    assert all(f.info["target_temperature"] == 300 for f in frames)
    if stable:  # the stable run's last frame is kept: frames 0, 2, 4, 6, 8 minus skip_frames=1
        assert rec["rdf"]["n_frames"] == len(frames) - 1 == 4
    assert rec["emd"]["reference"] == "test set"
    # RSS densities are factors of the start's density; dimers report holes apart from the wall
    rho = rec["rss"]["reference_density"]
    assert rho["source"] == "the MD start structure's cell" and 0.5 < rho["g_per_cm3"] < 2.0
    assert {"wall_failures", "holes", "r_core"} <= set(rec["dimers"]["H-O"])


def test_unknown_element_is_a_failed_evaluation_not_an_ok_result(model, tmp_path):
    write(tmp_path / "cu.xyz", bulk("Cu", "fcc", a=3.6) * (2, 2, 2))
    out = tmp_path / "out"
    assert (
        main(
            [
                "robustness",
                "--model",
                str(model),
                "--structure",
                str(tmp_path / "cu.xyz"),
                "--settings",
                json.dumps(SETTINGS),
                "--device",
                "cpu",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    rec = json.loads((out / "robustness.json").read_text())
    assert rec["status"] == "failed" and "Cu" in rec["reason"]
    # aggregate keeps it as a status row, no metric rows
    from ftbench.report.aggregate import robustness_rows

    run = tmp_path / "runs" / "b" / "m" / "s" / "estimated" / "n1" / "seed1"
    (run / "robustness").mkdir(parents=True)
    (run / "robustness" / "robustness.json").write_text(json.dumps(rec))
    rows = robustness_rows(json.loads((run / "robustness" / "robustness.json").read_text()), {"strategy": "s"})
    assert len(rows) == 1 and rows[0]["status"] == "failed"


def test_coupling_time_longer_than_the_run_is_refused():
    with pytest.raises(FtbenchError, match=r"coupling time 1/md.friction = 100 fs .*`robustness.md.steps`"):
        load_config(None, {"robustness": {"md": {"steps": 100, "timestep_fs": 0.5, "friction": 0.01}}})
    with pytest.raises(FtbenchError, match="production.steps"):
        load_config(None, {"robustness": {"production": {"steps": 10}}})


def test_runs_table_records_roles_and_optimiser_step_cost(tmp_path):
    from ftbench.report.aggregate import collect

    runs_root = tmp_path / "runs"
    roles = {"foundation": True, "replay": "pseudo", "frozen": 0, "lora": True}
    run = runs_root / "sn2" / "m" / "my_strategy" / "estimated" / "n10" / "seed1"
    (run / "mace_results").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "ok", "wall_time_s": 100.0, "epochs": 2, "roles": roles}))
    (run / "errors.json").write_text(json.dumps({"status": "ok", "rows": []}))
    # mace's own log: one "opt" row per optimiser step with its time, "eval" rows per epoch
    lines = [{"mode": "opt", "epoch": e, "loss": 1.0, "time": 0.25} for e in range(2) for _ in range(3)]
    lines += [{"mode": "eval", "epoch": e, "loss": 1.0, "time": 5.0} for e in range(2)]
    (run / "mace_results" / "x_run-1_train.txt").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    _, runs, _ = collect([run / "errors.json"], runs_root)
    row = runs.iloc[0]
    assert (row.role_foundation, row.role_replay, row.role_frozen, row.role_lora) == (True, "pseudo", 0, True)
    assert row.optimiser_steps == 6 and row.optimiser_time_s == pytest.approx(1.5)


def test_aggregate_reads_the_run_record_not_mace_results(tmp_path):
    from ftbench.report.aggregate import collect
    from ftbench.runtime.provenance import Provenance
    from ftbench.training.runrecord import RunRecord

    runs_root = tmp_path / "runs"
    run = runs_root / "sn2" / "m" / "naive" / "estimated" / "n10" / "seed1"
    curve = [{"mode": "eval", "epoch": e, "head": "Default", "loss": 1.0, "rmse_f": 0.1 / (e + 1)} for e in range(3)]
    record = RunRecord(status="ok", model="x.model", optimiser_steps=6, optimiser_time_s=1.5, training_curve=curve)
    record.write(run / "run.json", Provenance([]))
    (run / "errors.json").write_text(json.dumps({"status": "ok", "rows": []}))
    assert not (run / "mace_results").exists()  # everything aggregate needs is in the declared run.json
    _, runs, training = collect([run / "errors.json"], runs_root)
    assert runs.iloc[0].optimiser_steps == 6 and runs.iloc[0].optimiser_time_s == pytest.approx(1.5)
    assert list(training.epoch) == [0, 1, 2] and training.rmse_f_mev_per_a.iloc[-1] == pytest.approx(100 / 3)


def test_roles_come_from_the_catalog():
    from ftbench.core.strategies import roles

    cfg = load_config()
    assert roles(cfg, "naive") == {"foundation": True, "replay": None, "frozen": 0, "lora": False, "trained": True}
    assert roles(cfg, "freeze6")["frozen"] == 6
    assert roles(cfg, "replay_lora") == {
        "foundation": True,
        "replay": "original",
        "frozen": 0,
        "lora": True,
        "trained": True,
    }
    assert roles(cfg, "zeroshot")["trained"] is False
    assert roles(cfg, "scratch")["foundation"] is False
    cfg["catalog"]["strategies"]["lora_r16"] = {"mace_flags": {"lora": True, "lora_rank": 16}}
    assert roles(cfg, "lora_r16") == {"foundation": True, "replay": None, "frozen": 0, "lora": True, "trained": True}


def test_a_record_with_the_old_optimizer_spelling_reads_its_steps(tmp_path):
    from ftbench.training.runrecord import RunRecord

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"status": "ok", "model": "m.model", "optimizer_steps": 42, "training_curve": []}))
    assert RunRecord.read(path).optimiser_steps == 42
