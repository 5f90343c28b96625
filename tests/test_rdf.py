"""Partial RDFs: physics checks on real structures and an independent brute-force reference."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from ftbench.cli import main
from ftbench.core.errors import FtbenchError
from ftbench.probes.rdf import coordination_number, parse_pairs, partial_rdf, read_csv


def test_fcc_first_peak_and_coordination():
    a = 3.6
    crystal = bulk("Cu", "fcc", a=a).repeat(6)  # rhombohedral primitive cell, minimum-image radius 6.2 A
    res = partial_rdf(crystal, r_max=6.0, bin_width=0.02)
    r, g = res.r, res.g["Cu-Cu"]
    dr = r[1] - r[0]
    peak = np.argmax(g)
    assert abs(r[peak] - a / np.sqrt(2)) <= dr / 2
    # first minimum: lowest g between the first and second shells (a/sqrt(2) and a)
    between = np.flatnonzero((r > r[peak]) & (r < a))
    first_min = between[np.argmin(g[between])]
    rho = len(crystal) / crystal.get_volume()
    coordination = np.sum(4 * np.pi * rho * r[: first_min + 1] ** 2 * g[: first_min + 1] * dr)
    assert coordination == pytest.approx(12.0, rel=1e-3)
    assert coordination_number(r, g, rho, r[first_min]) == pytest.approx(12.0, rel=1e-9)


def test_thermal_fcc_coordination_is_still_12():
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    frames = []
    for seed in range(3):
        f = crystal.copy()
        f.rattle(0.08, seed=seed)
        frames.append(f)
    res = partial_rdf(frames, r_max=5.0, bin_width=0.05)
    r, g = res.r, res.g["Cu-Cu"]
    rho = len(crystal) / crystal.get_volume()
    mask = r < 3.1  # between the broadened first (2.55) and second (3.6) shells
    assert np.sum(4 * np.pi * rho * r[mask] ** 2 * g[mask] * (r[1] - r[0])) == pytest.approx(12.0, rel=0.02)


def test_ideal_gas_tends_to_one():
    rng = np.random.default_rng(1)
    length, n = 15.0, 200
    frames = [
        Atoms(["Ar"] * (n // 2) + ["Ne"] * (n // 2), scaled_positions=rng.random((n, 3)), cell=[length] * 3, pbc=True)
        for _ in range(40)
    ]
    res = partial_rdf(frames, r_max=7.0, bin_width=0.25)
    far = res.r > 1.5
    for pair in ("Ar-Ar", "Ar-Ne", "Ne-Ne"):
        g = res.g[pair][far]
        assert abs(g.mean() - 1.0) < 0.03, pair
        assert np.all(np.abs(g - 1.0) < 0.15), pair


def _brute_force_rdf(frames, pair, r_max, n_bins):
    """Minimum-image g_ab(r) with every pair and all 27 neighbouring images (numpy only)."""
    a, b = pair
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    total = np.zeros(n_bins)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)
    for atoms in frames:
        cell = atoms.cell[:]
        symbols = np.array(atoms.get_chemical_symbols())
        ia, ib = np.flatnonzero(symbols == a), np.flatnonzero(symbols == b)
        frac = atoms.get_scaled_positions(wrap=True)
        dists = []
        for i in ia:
            for j in ib:
                if i == j:
                    continue
                df = frac[j] - frac[i]
                d = np.linalg.norm((df[None, :] + shifts) @ cell, axis=1).min()
                dists.append(d)
        hist, _ = np.histogram(dists, bins=edges)
        total += hist * atoms.get_volume() / (len(ia) * len(ib))
    return total / len(frames) / shell


def test_matches_brute_force_minimum_image_triclinic():
    rng = np.random.default_rng(7)
    cell = np.array([[9.0, 0.0, 0.0], [2.5, 8.5, 0.0], [-1.8, 2.2, 9.3]])
    frames = []
    for _ in range(3):
        symbols = rng.choice(["H", "O", "Na"], size=60, p=[0.5, 0.3, 0.2])
        frames.append(Atoms(symbols, scaled_positions=rng.random((60, 3)), cell=cell, pbc=True))
    r_max = (
        0.99
        * min(
            abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)
        )
        / 2
    )
    n_bins = 40
    res = partial_rdf(frames, r_max=r_max, bin_width=r_max / n_bins)
    assert len(res.g) == 6
    for label, g in res.g.items():
        reference = _brute_force_rdf(frames, label.split("-"), r_max, n_bins)
        np.testing.assert_allclose(g, reference, atol=1e-6, rtol=0)


def test_r_max_above_minimum_image_radius_is_refused():
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)  # 7.2 A cube: radius 3.6 A
    partial_rdf(crystal, r_max=3.6, bin_width=0.1)
    with pytest.raises(FtbenchError, match="minimum-image radius"):
        partial_rdf(crystal, r_max=3.7, bin_width=0.1)


def test_mixed_periodicity_is_refused():
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.pbc = [True, True, False]
    with pytest.raises(FtbenchError, match="periodic"):
        partial_rdf(slab, r_max=1.5, bin_width=0.1)


def test_cluster_pair_distance_density_is_normalised():
    rng = np.random.default_rng(3)
    frames = [Atoms("H4O2", positions=rng.random((6, 3)) * 3.0) for _ in range(5)]
    res = partial_rdf(frames, r_max=8.0, bin_width=0.05)  # r_max beyond the cluster diameter
    assert res.kind == "pdf"
    for label, p in res.g.items():
        assert np.sum(p) * res.bin_width == pytest.approx(1.0), label
    # and the mean distance agrees with the raw distances
    d_oo = [np.linalg.norm(f.positions[4] - f.positions[5]) for f in frames]
    assert np.sum(res.r * res.g["O-O"]) * res.bin_width == pytest.approx(np.mean(d_oo), abs=0.03)


def test_pairs_are_named_alphabetically():
    assert parse_pairs("O-H,O-O,H-O", ["H", "O"]) == [("H", "O"), ("O", "O")]
    assert parse_pairs(None, ["O", "H", "O"]) == [("H", "H"), ("H", "O"), ("O", "O")]
    with pytest.raises(FtbenchError, match="--pairs"):
        parse_pairs("O-Cl", ["H", "O"])


def test_cli_writes_csv_and_refuses_large_r_max(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frames = [Atoms("H8O4", scaled_positions=rng.random((12, 3)), cell=[8.0] * 3, pbc=True) for _ in range(4)]
    traj = tmp_path / "traj.xyz"
    write(traj, frames)
    out = tmp_path / "rdf.csv"
    args = ["rdf", str(traj), "--pairs", "O-H,O-O", "--r-max", "3.5", "--bin-width", "0.1", "--skip", "1"]
    assert main(args + ["--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "r,H-O,O-O"
    r, table = read_csv(out)
    direct = partial_rdf(frames[1:], 3.5, 0.1, "O-H,O-O")
    np.testing.assert_allclose(table["H-O"], direct.g["H-O"], rtol=1e-9)
    meta = json.loads((tmp_path / "rdf.meta.json").read_text())
    assert meta["kind"] == "rdf" and meta["n_frames"] == 3
    assert main(["rdf", str(traj), "--r-max", "4.5", "--out", str(tmp_path / "x.csv")]) == 2
    assert "--r-max" in capsys.readouterr().err
