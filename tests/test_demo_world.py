"""The demo-world build (ftbench.demo.demo_world): thermally sampled tblite trajectories, splits by
trajectory, the shipped files' checksums and quality gates."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.io import read

from ftbench.core.errors import FtbenchError
from ftbench.data import fetch
from ftbench.demo import demo_world

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "demo"


@pytest.mark.slow
def test_trajectory_frames_carry_the_labels_of_their_own_positions():
    settings = {"steps": 12, "every": 4, "equilibrate": 4, "temperatures": [500], "halides": ["F", "Cl"]}
    frames = demo_world.trajectory("sn2_complex", 1, "GFN1-xTB", settings, seed=3)
    assert [a.info["md_step"] for a in frames] == [4, 8, 12]
    assert {a.info["group"] for a in frames} == {"sn2_complex-1"}
    assert all(a.info["total_charge"] == -1 and a.get_chemical_formula() == "CH3ClF" for a in frames)
    # positions move between frames (thermal sampling, not copies of one geometry)
    assert np.abs(frames[0].positions - frames[-1].positions).max() > 0.01
    # relabelling a frame with the same method gives back its stored labels
    again = demo_world.relabel(frames[-1:], "GFN1-xTB")[0]
    assert again.info["REF_energy"] == pytest.approx(frames[-1].info["REF_energy"], abs=1e-6)
    np.testing.assert_allclose(again.arrays["REF_forces"], frames[-1].arrays["REF_forces"], atol=1e-5)


@pytest.mark.slow
def test_relabelling_changes_level_of_theory_not_geometry():
    frames = demo_world.trajectory(
        "water_cluster", 0, "GFN1-xTB", {"steps": 4, "every": 4, "n_min": 2, "n_max": 2}, seed=1
    )
    gfn2 = demo_world.relabel(frames, "GFN2-xTB")
    assert len(gfn2) == len(frames)
    np.testing.assert_array_equal(gfn2[0].positions, frames[0].positions)
    assert abs(gfn2[0].info["REF_energy"] - frames[0].info["REF_energy"]) > 1.0  # eV: another Hamiltonian
    assert gfn2[0].info["group"] == frames[0].info["group"]


def test_periodic_frames_have_stress_and_pack_at_water_density():
    frames = demo_world.trajectory("water_box", 0, "GFN1-xTB", {"steps": 1, "every": 1, "n_water": 8}, seed=1)
    a = frames[0]
    assert a.pbc.all() and a.info["REF_stress"].shape == (9,)
    assert len(a) / 3 / a.get_volume() == pytest.approx(demo_world.WATER_DENSITY, rel=1e-6)


def test_hydrated_ion_charges():
    p = {"species": ["Na", "Cl", "Li+F"], "n_min": 3, "n_max": 3}
    rng = np.random.default_rng(0)
    charges = [demo_world.hydrated_ion(rng, p, i)[1] for i in range(3)]
    assert charges == [1, -1, 0]


def test_held_out_split_is_by_trajectory():
    frames = []
    for g in range(10):
        for k in range(3):
            a = Atoms("H2", positions=[[0, 0, 0], [0.74 + 0.01 * k, 0, 0]])
            a.info["group"] = f"fam-{g}"
            frames.append(a)
    train, held = demo_world.held_out_split(frames, 0.2, seed=4)
    assert len(held) == 6 and len(train) == 24
    assert not {a.info["group"] for a in train} & {a.info["group"] for a in held}
    again, _ = demo_world.held_out_split(frames, 0.2, seed=4)
    assert [a.info["group"] for a in again] == [a.info["group"] for a in train]


def test_unknown_family_is_named():
    with pytest.raises(FtbenchError, match="unknown demo family 'lava'"):
        demo_world.trajectory("lava", 0, "GFN1-xTB", {"steps": 1, "every": 1}, seed=0)


def test_gates_compare_generations_on_every_dataset():
    good = {
        "demo_gen1": {"heldout": {"forces_rmse": 200.0}, "sn2": {"forces_rmse": 300.0}},
        "demo_gen2": {"heldout": {"forces_rmse": 90.0}, "sn2": {"forces_rmse": 250.0}},
    }
    assert demo_world.check_gates(good, {"gen2_heldout_force_rmse_mev_per_a": 150}) == []
    bad = json.loads(json.dumps(good))
    bad["demo_gen2"]["sn2"]["forces_rmse"] = 310.0
    bad["demo_gen2"]["heldout"]["forces_rmse"] = 151.0
    fails = demo_world.check_gates(bad, {"gen2_heldout_force_rmse_mev_per_a": 150})
    assert len(fails) == 2 and "151.0 meV/A > 150" in fails[0] and "on sn2" in fails[1]


def test_force_error_sources_name_the_trajectories_that_hold_the_error():
    def frame(formula, group, ctype):
        a = Atoms(formula, positions=np.arange(3 * len(Atoms(formula))).reshape(-1, 3) * 1.0)
        a.arrays["REF_forces"] = np.zeros((len(a), 3))
        a.info.update(group=group, config_type=ctype)
        return a

    atoms = [frame("CO", "org-1", "organic"), frame("CO", "org-1", "organic"), frame("H2", "h-1", "pair")]
    # errors of 0.1, 0.1 and 0.4 eV/A on every component: squared sums 0.06, 0.06 and 0.96 (eV/A)^2
    preds = [{"forces": np.full((2, 3), e)} for e in (0.1, 0.1, 0.4)]
    got = demo_world.force_error_sources(atoms, preds, seen={"CO"})
    assert [w["group"] for w in got["worst_trajectories"]] == ["h-1", "org-1"]
    h, org = got["worst_trajectories"]
    assert h["forces_rmse"] == pytest.approx(400.0) and h["sse_share"] == pytest.approx(0.96 / 1.08)
    assert org["forces_rmse"] == pytest.approx(100.0) and org["n_configs"] == 2
    assert (h["formula"], h["formula_seen"], org["formula_seen"]) == ("H2", False, True)
    assert got["by_config_type"]["organic"]["sse_share"] == pytest.approx(0.12 / 1.08)
    assert sum(c["sse_share"] for c in got["by_config_type"].values()) == pytest.approx(1.0)


def test_local_source_is_hash_checked(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "m.model").write_bytes(b"weights" * 10)
    good = hashlib.sha256(b"weights" * 10).hexdigest()
    sources = {"demo": {"kind": "local", "path": str(folder), "files": {"m": {"path": "m.model", "sha256": good}}}}
    fetch.validate_sources(sources)
    got = fetch.fetch_file(sources, "demo", "m", data_dir=tmp_path / "cache", lock_path=None)
    assert got.read_bytes() == b"weights" * 10
    sources["demo"]["files"]["m"]["sha256"] = "0" * 64
    with pytest.raises(FtbenchError, match="not .* as pinned"):
        fetch.fetch_file(sources, "demo", "m", data_dir=tmp_path / "cache2", lock_path=None)


def _fake_build(root: Path, gates: dict) -> dict:
    """A build folder as the demo_build rules leave it, with random-weight models and tiny files."""
    from ase.build import molecule

    import model_fixtures as mf

    recipe = {
        "corpus_method": "GFN1-xTB",
        "benchmark_method": "GFN2-xTB",
        "benchmarks": {"sn2": {}},
        "generations": {"demo_gen1": {"pretrain": {}}, "demo_gen2": {"pretrain": {}}},
        "gates": {"gen2_heldout_force_rmse_mev_per_a": 150},
    }
    frame = molecule("H2O")
    frame.info["REF_energy"] = -1.0
    for gen in recipe["generations"]:
        g = root / "pretrain" / gen
        mf.save(
            mf.build_model([1, 8], channels=8, max_L=0, correlation=2, num_interactions=1, radial_mlp=(8,)),
            g / "work" / "model.model",
        )
        (g / "stage1.json").write_text(json.dumps({"stage": 1, "max_num_epochs": 10}))
        (g / "gate.json").write_text(json.dumps(gates[gen]))
        (g / "data").mkdir()
        (g / "data" / "summary.json").write_text(json.dumps({"train": 1}))
        demo_world.write_gz(g / "data" / "train.xyz", [frame])
    (root / "corpus").mkdir()
    (root / "corpus" / "summary.json").write_text(json.dumps({"train": 1}))
    for name in ("corpus/heldout.xyz.gz", "corpus/heldout_GFN2-xTB.xyz.gz", "corpus/isolated.xyz.gz"):
        demo_world.write_gz(root / name, [frame])
    bench = []
    for i, temperature in enumerate((500.0, 300.0, 300.0)):  # the 300 K ones are the robustness reference
        a = frame.copy()
        a.positions[0, 0] += 0.01 * i
        a.info.update(REF_energy=-1.0 - i, temperature=temperature)
        bench.append(a)
    demo_world.write_gz(root / "benchmarks" / "sn2.xyz.gz", bench)
    return recipe


@pytest.mark.slow
def test_ship_refuses_failed_gates_and_writes_a_checksummed_source(tmp_path):
    good = {"demo_gen1": {"heldout": {"forces_rmse": 200.0}}, "demo_gen2": {"heldout": {"forces_rmse": 90.0}}}
    recipe = _fake_build(tmp_path / "build", good)
    bad = json.loads(json.dumps(good))
    bad["demo_gen2"]["heldout"]["forces_rmse"] = 300.0
    (tmp_path / "build" / "pretrain" / "demo_gen2" / "gate.json").write_text(json.dumps(bad["demo_gen2"]))
    with pytest.raises(FtbenchError, match="quality gates failed, nothing shipped: demo_gen2 held-out"):
        demo_world.ship(tmp_path / "build", recipe, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "build" / "pretrain" / "demo_gen2" / "gate.json").write_text(json.dumps(good["demo_gen2"]))
    demo_world.ship(tmp_path / "build", recipe, tmp_path / "out")
    sources = yaml.safe_load((tmp_path / "out" / "sources.yaml").read_text())["sources"]
    fetch.validate_sources(sources)
    model = fetch.fetch_file(sources, "demo_world", "demo_gen2", data_dir=tmp_path / "cache", lock_path=None)
    import torch

    meta = torch.load(model, weights_only=False).ftbench_metadata
    assert meta["gates"] == good["demo_gen2"] and meta["name"] == "demo_gen2" and meta["trained_on"] == ["cpu"]
    # robustness inputs at the reference temperature (300 K unless the recipe says otherwise)
    ref = fetch.fetch_file(sources, "demo_world", "sn2_md_ref", data_dir=tmp_path / "cache", lock_path=None)
    assert [a.info["REF_energy"] for a in read(ref, ":")] == [-2.0, -3.0]
    start = read(tmp_path / "out" / "reference" / "sn2_start.xyz", ":")
    assert len(start) == 1 and start[0].info["REF_energy"] == -2.0
    # a shipped file changed afterwards no longer matches its pin
    heldout = tmp_path / "out" / "corpus" / "heldout.xyz.gz"
    heldout.write_bytes(heldout.read_bytes() + b"\n")
    with pytest.raises(FtbenchError, match="as pinned"):
        fetch.fetch_file(sources, "demo_world", "heldout", data_dir=tmp_path / "cache", lock_path=None)


def _tiny_pretraining(tmp_path, rng):
    """Write small water train/valid/E0 files; return (frames maker, tiny mace flags, stage runner)."""
    from ase.build import molecule

    def frames(n):
        out = []
        for _ in range(n):
            a = molecule("H2O")
            a.positions += rng.normal(0, 0.05, a.positions.shape)
            a.info["REF_energy"] = float(-10 + rng.normal(0, 0.1))
            a.arrays["REF_forces"] = rng.normal(0, 0.3, (3, 3))
            out.append(a)
        return out

    demo_world.write_gz(tmp_path / "train.xyz", frames(8))
    demo_world.write_gz(tmp_path / "valid.xyz", frames(3))
    (tmp_path / "e0.json").write_text(json.dumps({"1": -1.0, "8": -5.0}))
    flags = {
        "model": "MACE",
        "num_channels": 4,
        "max_L": 0,
        "correlation": 1,
        "r_max": 3.0,
        "num_interactions": 1,
        "lr": 1e-2,
        "batch_size": 4,
        "valid_batch_size": 4,
        "default_dtype": "float32",
        "save_all_checkpoints": True,
        "eval_interval": 1,
    }

    def stage(n, flags, epochs=2):
        return demo_world.pretrain_stage(
            flags,
            train=tmp_path / "train.xyz",
            valid=tmp_path / "valid.xyz",
            e0=tmp_path / "e0.json",
            work=tmp_path / "work",
            stage=n,
            epochs_per_stage=epochs,
            seed=1,
            threads=1,
        )

    return frames, flags, stage


@pytest.mark.slow
def test_pretrain_stages_resume_skip_and_start_over_on_new_data(tmp_path):
    """Real mace_run_train: stage 2 continues at stage 1's last epoch, a stage already trained
    past is only recorded, and changed data clears the checkpoints instead of resuming them."""
    frames, flags, run_stage = _tiny_pretraining(tmp_path, np.random.default_rng(0))
    work = tmp_path / "work"

    def stage(n):
        return run_stage(n, flags)

    first = stage(1)
    assert first["last_valid"]["epoch"] == 1 and "already_trained_to_epoch" not in first
    assert [p.name for p in (work / "checkpoints").glob("*.pt")] == ["model_run-1_epoch-1.pt"]
    second = stage(2)
    assert second["last_valid"]["epoch"] == 3
    runs = demo_world.training_runs(work)
    assert [(r["event"], r["from_epoch"]) for r in runs] == [
        ("start", 0),
        ("finished", 0),
        ("start", 2),
        ("finished", 2),
    ]
    again = stage(1)  # a stage the run already went past: recorded from the curve, no training
    assert again["already_trained_to_epoch"] == 4 and again["last_valid"]["epoch"] == 1
    assert len(demo_world.training_runs(work)) == 4
    demo_world.write_gz(tmp_path / "train.xyz", frames(8))  # new data: start over
    fresh = stage(1)
    assert "already_trained_to_epoch" not in fresh and fresh["last_valid"]["epoch"] == 1
    assert [r["from_epoch"] for r in demo_world.training_runs(work)] == [0, 0]


@pytest.mark.slow
def test_stage_two_added_before_its_start_resumes_and_ships_the_stage_two_weights(tmp_path):
    """Real mace_run_train: Stage-Two flags (and a report-only flag) set after stage 1, before their
    start epoch, keep the checkpoints; the stage that crosses the start trains Stage Two at its lower learning rate and its
    model.model is the Stage-Two model; changing them once Stage Two has begun starts over."""
    import torch

    _, flags, stage = _tiny_pretraining(tmp_path, np.random.default_rng(1))
    work = tmp_path / "work"
    stage(1, flags)
    two = {**flags, "swa": True, "start_swa": 3, "swa_lr": 1e-4, "swa_energy_weight": 1, "swa_forces_weight": 1}
    two["error_table"] = "TotalRMSE"  # changes only mace's closing report: resumes too
    second = stage(2, two)
    assert [(r["event"], r["from_epoch"]) for r in demo_world.training_runs(work)][-2:] == [
        ("start", 2),
        ("finished", 2),
    ]
    assert second["last_valid"]["epoch"] == 3
    names = sorted(p.name for p in (work / "checkpoints").glob("*.pt"))
    assert names == ["model_run-1_epoch-2.pt", "model_run-1_epoch-3_swa.pt"]
    assert "Stage Two (after 3 epochs)" in (work / "logs" / "model_run-1.log").read_text()
    assert (work / "model.model").read_bytes() == (work / "model_stagetwo.model").read_bytes()
    lr = torch.load(work / "checkpoints" / "model_run-1_epoch-3_swa.pt", weights_only=False)["optimizer"]
    assert lr["param_groups"][0]["lr"] == pytest.approx(1e-4)
    third = stage(3, two)  # resumes inside Stage Two
    assert third["last_valid"]["epoch"] == 5 and demo_world.training_runs(work)[-1]["from_epoch"] == 4
    stage(3, {**two, "swa_lr": 1e-3})  # Stage Two already ran with other settings: start over
    assert [r["from_epoch"] for r in demo_world.training_runs(work)] == [0, 0]


def test_gzipped_frames_are_byte_reproducible(tmp_path):
    from ase.build import molecule

    frames = [molecule("H2O"), molecule("CH4")]
    demo_world.write_gz(tmp_path / "a.xyz.gz", frames)
    time.sleep(1.1)  # gzip headers hold whole seconds
    demo_world.write_gz(tmp_path / "b.xyz.gz", frames)
    assert (tmp_path / "a.xyz.gz").read_bytes() == (tmp_path / "b.xyz.gz").read_bytes()
    assert [a.get_chemical_formula() for a in demo_world.read_frames(tmp_path / "b.xyz.gz")] == ["H2O", "CH4"]
