"""The demo-world build (ftbench.demo_world): thermally sampled tblite trajectories, splits by
trajectory, the shipped files' checksums and quality gates."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from ftbench import demo_world, fetch
from ftbench.errors import FtbenchError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "demo"


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


def test_relabelling_changes_level_of_theory_not_geometry():
    frames = demo_world.trajectory("water_cluster", 0, "GFN1-xTB",
                                   {"steps": 4, "every": 4, "n_min": 2, "n_max": 2}, seed=1)
    gfn2 = demo_world.relabel(frames, "GFN2-xTB")
    assert len(gfn2) == len(frames)
    np.testing.assert_array_equal(gfn2[0].positions, frames[0].positions)
    assert abs(gfn2[0].info["REF_energy"] - frames[0].info["REF_energy"]) > 1.0  # eV: another Hamiltonian
    assert gfn2[0].info["group"] == frames[0].info["group"]


def test_periodic_frames_have_stress_and_pack_at_water_density():
    frames = demo_world.trajectory("water_box", 0, "GFN1-xTB",
                                   {"steps": 1, "every": 1, "n_water": 8}, seed=1)
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
    good = {"demo_gen1": {"heldout": {"forces_rmse": 200.0}, "sn2": {"forces_rmse": 300.0}},
            "demo_gen2": {"heldout": {"forces_rmse": 90.0}, "sn2": {"forces_rmse": 250.0}}}
    assert demo_world.check_gates(good, {"gen2_heldout_force_rmse_mev_per_a": 150}) == []
    bad = json.loads(json.dumps(good))
    bad["demo_gen2"]["sn2"]["forces_rmse"] = 310.0
    bad["demo_gen2"]["heldout"]["forces_rmse"] = 151.0
    fails = demo_world.check_gates(bad, {"gen2_heldout_force_rmse_mev_per_a": 150})
    assert len(fails) == 2 and "151.0 meV/A > 150" in fails[0] and "on sn2" in fails[1]


def test_local_source_is_hash_checked(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "m.model").write_bytes(b"weights" * 10)
    good = hashlib.sha256(b"weights" * 10).hexdigest()
    sources = {"demo": {"kind": "local", "path": str(folder),
                        "files": {"m": {"path": "m.model", "sha256": good}}}}
    fetch.validate_sources(sources)
    got = fetch.fetch_file(sources, "demo", "m", data_dir=tmp_path / "cache", lock_path=None)
    assert got.read_bytes() == b"weights" * 10
    sources["demo"]["files"]["m"]["sha256"] = "0" * 64
    with pytest.raises(FtbenchError, match="not .* as pinned"):
        fetch.fetch_file(sources, "demo", "m", data_dir=tmp_path / "cache2", lock_path=None)
