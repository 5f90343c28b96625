"""Dimer curves and wall metrics: LJ and Morse have a sound wall, a holed or wall-less potential does not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential

from ftbench.data.geometry import element_pairs
from ftbench.probes.dimers import dimer_curves, wall_metrics

sys.path.insert(0, str(Path(__file__).parent))
from robustness_support import PairPotential, attractive_only, build_tiny_mace, morse, with_hole  # noqa: E402

R = np.linspace(0.3, 6.0, 60)
DR = R[1] - R[0]


def test_lennard_jones_wall():
    sigma, eps = 2.0, 0.1
    curves, metrics = dimer_curves(LennardJones(sigma=sigma, epsilon=eps, rc=8.0), ["Ar"], R)
    m = metrics["Ar-Ar"]
    assert m["monotonic_wall"] and m["wall_failures"] == 0
    assert abs(m["r_min"] - 2 ** (1 / 6) * sigma) <= DR / 2
    lj_6 = 4 * eps * ((sigma / 6.0) ** 12 - (sigma / 6.0) ** 6)  # the shift: E(6 A) is zero
    assert m["e_min"] == pytest.approx(-eps - lj_6, abs=2e-3)
    assert m["force_sign_flips"] == 1  # repulsive inside the minimum, attractive outside
    assert curves["Ar-Ar"][-1] == 0.0


def test_morse_wall():
    curves, metrics = dimer_curves(MorsePotential(epsilon=0.3, r0=1.5, rho0=3.0), ["Ar", "Ne"], R)
    assert sorted(metrics) == ["Ar-Ar", "Ar-Ne", "Ne-Ne"]
    for m in metrics.values():
        assert m["monotonic_wall"] and m["wall_failures"] == 0
        assert abs(m["r_min"] - 1.5) <= DR / 2 and m["e_min"] == pytest.approx(-0.3, abs=0.01)


def test_hole_in_the_wall_is_counted():
    calc = PairPotential(with_hole(morse(depth=0.3, a=2.5, r0=2.0), height=5000.0, width=0.35))
    _, metrics = dimer_curves(calc, ["Ar"], R)  # Ar-Ar core radius: 0.5 x 2 x 1.06 = 1.06 A
    m = metrics["Ar-Ar"]
    assert m["min_at_shortest_r"]  # the hole is deeper than the well
    assert abs(m["r_well"] - 2.0) <= DR  # the real well is still found
    assert m["wall_failures"] == 0 and m["hole"] and m["holes"] > 0  # counted apart, as a hole
    assert max(m["r_holes"]) < 0.7  # it sits where the Gaussian hole is
    assert m["force_sign_flips"] >= 2
    _, no_core = dimer_curves(calc, ["Ar"], R, core_fraction=None)  # no core: the hole is a wall failure
    assert no_core["Ar-Ar"]["wall_failures"] > 0 and no_core["Ar-Ar"]["holes"] == 0


def test_wall_from_the_deepest_minimum_beyond_the_core_on_hand_made_curves():
    r = np.round(np.arange(0.4, 6.01, 0.1), 10)
    e = np.zeros_like(r)
    # a well of -0.5 eV at 1.5 A with a clean wall inside it ...
    e[r <= 1.5] = -0.5 + 4.0 * (1.5 - r[r <= 1.5])
    e[(r > 1.5) & (r < 3.0)] = -0.5 * (3.0 - r[(r > 1.5) & (r < 3.0)]) / 1.5
    # ... and a 5 meV tail wiggle at 4.5 A, deeper than 1 meV: the old outermost-minimum rule took it
    e[np.isclose(r, 4.5)] = -0.005
    old = wall_metrics(r, e)
    assert old["r_well"] == pytest.approx(4.5) and old["wall_failures"] > 0
    m = wall_metrics(r, e, r_core=0.8)
    assert m["r_well"] == pytest.approx(1.5) and m["wall_failures"] == 0 and m["holes"] == 0
    # energy falling again inside the core (0.4, 0.5, 0.6 A below 0.8 A): three hole points, no wall failure
    holed = e.copy()
    holed[r < 0.75] = [-3.0, -2.0, -1.0, 0.5]
    m = wall_metrics(r, holed, r_core=0.8)
    assert m["wall_failures"] == 0 and m["holes"] == 4 and m["r_holes"] == pytest.approx([0.4, 0.5, 0.6, 0.7])
    # a dip between the core and the well is a wall failure, not a hole
    dipped = e.copy()
    dipped[np.isclose(r, 1.0)] = 1.0
    m = wall_metrics(r, dipped, r_core=0.8)
    assert m["wall_failures"] == 1 and m["r_wall_failures"] == pytest.approx([1.0]) and m["holes"] == 0


def test_attractive_only_has_no_wall():
    _, metrics = dimer_curves(PairPotential(attractive_only()), ["Ar"], R)
    m = metrics["Ar-Ar"]
    assert m["wall_failures"] > 10 and m["r_well"] is None and m["min_at_shortest_r"]


def test_metrics_on_analytic_curves():
    r = np.linspace(0.5, 5.0, 46)
    wall = np.exp(-3 * (r - 0.5)) * 10  # purely repulsive: fine, no well
    m = wall_metrics(r, wall - wall[-1])
    assert m["wall_failures"] == 0 and m["r_well"] is None and m["r_min"] == 5.0
    flat = np.zeros_like(r)  # no interaction at all: no wall anywhere
    assert wall_metrics(r, flat)["wall_failures"] == len(r) - 1
    noisy = wall - wall[-1] + np.where(r > 4.0, 1e-5 * np.sin(40 * r), 0.0)  # tail noise is no well
    assert wall_metrics(r, noisy)["r_well"] is None
    broken = wall.copy()
    broken[3] = np.nan
    m = wall_metrics(r, broken)
    assert m["nonfinite_points"] == 1 and not m["monotonic_wall"]


def test_pairs():
    assert element_pairs(["H", "F", "Cl"]) == [
        ("Cl", "Cl"),
        ("Cl", "F"),
        ("Cl", "H"),
        ("F", "F"),
        ("F", "H"),
        ("H", "H"),
    ]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    return (
        build_tiny_mace(folder / "tiny.model", elements=("H", "O")),
        build_tiny_mace(folder / "multi.model", elements=("H", "O"), heads=["pt_head", "target"]),
    )


@pytest.mark.slow
def test_cli_end_to_end_with_mace(tmp_path, tiny_models, capsys):
    from ftbench.cli import main

    single, multi = tiny_models
    out = tmp_path / "dimers.csv"
    argv = [
        "dimers",
        "--model",
        str(single),
        "--elements",
        "O,H",
        "--r-min",
        "0.4",
        "--r-max",
        "5.0",
        "--n-points",
        "12",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "r,H-H,H-O,O-O" and len(lines) == 13
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[-1, 1:], 0.0, atol=1e-12)
    report = json.loads((tmp_path / "dimers.json").read_text())
    assert set(report["pairs"]) == {"H-H", "H-O", "O-O"}
    assert all(isinstance(m["wall_failures"], int) for m in report["pairs"].values())
    assert "wall_failures" in capsys.readouterr().out

    # multihead: the chosen head is used, and different heads give different curves
    outs = []
    for head in ("pt_head", "target"):
        o = tmp_path / f"{head}.csv"
        assert main(argv[:-1] + [str(o)] + ["--model", str(multi), "--head", head]) == 0
        outs.append(np.loadtxt(o, delimiter=",", skiprows=1))
    assert not np.allclose(outs[0], outs[1])
    assert main(["dimers", "--model", str(single), "--elements", "H,Cl", "--out", str(out)]) == 2
