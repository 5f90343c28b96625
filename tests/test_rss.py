"""Random structure search: a hole in the repulsive wall shows as collapse, a sound wall does not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_masses
from ase.io import read

from ftbench.core.errors import FtbenchError
from ftbench.probes.rss import covalent_threshold, min_covalent_ratio, parse_composition, random_structure, run_rss

sys.path.insert(0, str(Path(__file__).parent))
from robustness_support import PairPotential, build_tiny_mace, morse, with_hole  # noqa: E402

WALL = morse(depth=0.3, a=2.5, r0=2.0)
HOLE = with_hole(WALL, height=5000.0, width=0.35)  # below ~0.55 A the energy plunges


ARAR = 2 * 1.06  # sum of the Ar covalent radii (ase.data.covalent_radii): 0.6 A collapse distance


def test_collapse_thresholds_are_pair_specific():
    from ase import Atoms

    # 0.5 x (r_cov(Na) 1.66 + r_cov(Cl) 1.02) = 1.34 A; 0.5 x (2 x r_cov(H) 0.31) = 0.31 A
    assert covalent_threshold(["Na", "H"], ["Cl", "H"], 0.5) == pytest.approx([1.34, 0.31])
    # a Na-Cl pair at 1.2 A is a collapse on the Na-Cl scale; an H-H pair at 0.4 A is not on the H-H scale,
    # though a single 0.6 A threshold would have called the H-H pair collapsed and the Na-Cl pair fine
    salt = Atoms("NaCl", positions=[[0, 0, 0], [1.2, 0, 0]])
    ratio, pair = min_covalent_ratio(salt)
    assert ratio == pytest.approx(1.2 / 2.68) and pair == "Cl-Na" and ratio < 0.5
    hydrogen = Atoms("H2", positions=[[0, 0, 0], [0.4, 0, 0]])
    ratio, pair = min_covalent_ratio(hydrogen)
    assert ratio == pytest.approx(0.4 / 0.62) and pair == "H-H" and ratio > 0.5


def test_parse_composition():
    assert parse_composition("H2O") == {"H": 2, "O": 1}
    assert parse_composition("Na1Cl1H16O8") == {"Na": 1, "Cl": 1, "H": 16, "O": 8}
    with pytest.raises(FtbenchError, match="--composition"):
        parse_composition("Xx2")


@pytest.mark.parametrize("periodic", [True, False])
def test_random_structure_has_the_requested_density(periodic):
    rng = np.random.default_rng(0)
    density = 1.2  # g/cm^3
    atoms = random_structure({"Na": 1, "Cl": 1, "H": 16, "O": 8}, density, rng, periodic=periodic, close_contact=0.3)
    assert sorted(atoms.get_chemical_symbols()) == sorted(["Na", "Cl"] + ["H"] * 16 + ["O"] * 8)
    volume = atomic_masses[atoms.numbers].sum() * 1.66053906660e-24 / density * 1e24  # A^3
    if periodic:
        assert atoms.get_volume() == pytest.approx(volume)
    else:  # uniform in a sphere of that volume, centred on the origin
        radius = (3 * volume / (4 * np.pi)) ** (1 / 3)
        distance = np.linalg.norm(atoms.positions, axis=1)
        assert distance.max() <= radius + 0.3 + 1e-9  # + the inserted contact
        assert distance.max() > 0.6 * radius
    d = atoms.get_all_distances(mic=periodic)
    assert d[np.triu_indices(len(atoms), 1)].min() <= 0.3 + 1e-9  # the inserted close contact


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.slow
def test_hole_collapses_and_sound_wall_does_not(periodic):
    # periodic runs are slow (FrechetCellFilter's matrix functions), so fewer and shorter
    kwargs = dict(
        n_structures=2 if periodic else 4,
        density_range=(1.0, 2.0),
        periodic=periodic,
        fmax=0.05,
        max_steps=25 if periodic else 80,
        collapse_fraction=0.6 / ARAR,
        close_contact_fraction=0.5,
        seed=0,
    )
    holed, relaxed_holed = run_rss(PairPotential(HOLE, cutoff=5.0), "Ar8", **kwargs)
    sound, relaxed_sound = run_rss(PairPotential(WALL, cutoff=5.0), "Ar8", **kwargs)
    assert holed["summary"]["collapse_fraction"] > 0
    assert sound["summary"]["collapse_fraction"] == 0
    # the verdict agrees with an independent look at the relaxed geometries
    for relaxed, result in ((relaxed_holed, holed), (relaxed_sound, sound)):
        for atoms, record in zip(relaxed, result["structures"]):
            d = atoms.get_all_distances(mic=periodic)[np.triu_indices(len(atoms), 1)].min()
            assert record["collapsed"] == (d < 0.6)
            assert record["min_distance"] == pytest.approx(d)
    # same seed, same starting structures: the inserted close contacts were relaxed away by the wall
    starts = [r["min_distance_initial"] for r in sound["structures"]]
    assert min(starts) < 0.6 and sound["summary"]["min_distance"]["min"] > 1.5
    if periodic:  # FrechetCellFilter relaxed the cell too
        assert any(abs(r["density_final"] - r["density_initial"]) > 0.05 for r in sound["structures"])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_mace(tmp_path_factory.mktemp("model") / "tiny.model", elements=("H", "O"))


@pytest.mark.parametrize("periodic", ["--periodic", "--no-periodic"])
@pytest.mark.slow
def test_cli_end_to_end_with_mace(tmp_path, tiny_model, periodic):
    from ftbench.cli import main

    out = tmp_path / "rss"
    argv = [
        "rss",
        "--model",
        str(tiny_model),
        "--composition",
        "H4O2",
        "--n-structures",
        "2",
        "--density-range",
        "0.8,1.2",
        periodic,
        "--max-steps",
        "3",
        "--seed",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    relaxed = read(out / "relaxed.xyz", ":")
    assert len(relaxed) == len(result["structures"]) == 2
    assert relaxed[0].get_potential_energy() == pytest.approx(result["structures"][0]["energy"])
    assert result["options"]["periodic"] is (periodic == "--periodic")
    collapsed = sum(s["collapsed"] for s in result["structures"])
    assert result["summary"]["n_collapsed"] == collapsed
    assert result["summary"]["collapse_fraction"] == collapsed / 2
    assert all(a.pbc.all() == (periodic == "--periodic") for a in relaxed)
    assert main(argv[:4] + ["NaCl"] + argv[5:]) == 2  # elements the model does not know
