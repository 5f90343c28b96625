"""Test-error rows (meV, per config_type, Voigt stress) and predictions on mixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms

from ftbench.probes.evaluate import error_rows


def _config(n_atoms, config_type, energy, forces=None, stress=None):
    a = Atoms("H" * n_atoms, positions=[[i, 0, 0] for i in range(n_atoms)])
    a.info.update(REF_energy=energy, config_type=config_type)
    a.arrays["REF_forces"] = np.zeros((n_atoms, 3)) if forces is None else np.array(forces)
    if stress is not None:
        a.info["REF_stress"] = np.array(stress)
    return a


def _table(rows):
    return {(r["config_type"], r["quantity"], r["statistic"]): r for r in rows}


def test_error_rows_by_hand():
    # a: 2 atoms, energy off by +0.1 eV -> +50 meV/atom; forces off by 1 and -2 meV/A in two
    #    components; Voigt stress label (xx yy zz yz xz xy), prediction off by 1 meV/A^3 in xx and
    #    2 meV/A^3 in yz (both yz and zy of the 3x3 prediction).
    # b: 4 atoms, energy off by -0.4 eV -> -100 meV/atom; exact forces; no stress.
    voigt = [0.010, 0.020, 0.030, 0.004, 0.005, 0.006]
    pred_stress = [[0.011, 0.006, 0.005], [0.006, 0.020, 0.006], [0.005, 0.006, 0.030]]
    a = _config(2, "a", 1.0, stress=voigt)
    b = _config(4, "b", 2.0)
    preds = [
        {"energy": 1.1, "forces": np.array([[0.001, 0, 0], [0, -0.002, 0]]), "stress": np.array(pred_stress)},
        {"energy": 1.6, "forces": np.zeros((4, 3))},
    ]
    t = _table(error_rows([a, b], preds))

    assert t["all", "energy", "rmse"]["value"] == pytest.approx(math.sqrt((50**2 + 100**2) / 2))
    assert t["all", "energy", "mae"]["value"] == pytest.approx(75.0)
    assert t["a", "energy", "rmse"]["value"] == pytest.approx(50.0)
    assert t["b", "energy", "mae"]["value"] == pytest.approx(100.0)
    # forces: a has 6 components (1, 0, 0, 0, -2, 0), b 12 zeros
    assert t["a", "forces", "rmse"]["value"] == pytest.approx(math.sqrt(5 / 6))
    assert t["a", "forces", "mae"]["value"] == pytest.approx(3 / 6)
    assert t["all", "forces", "rmse"]["value"] == pytest.approx(math.sqrt(5 / 18))
    assert t["all", "forces", "mae"]["value"] == pytest.approx(3 / 18)
    assert t["b", "forces", "rmse"]["value"] == pytest.approx(0.0)
    # stress: 9 components (1, 0, 0, 0, 0, 2, 0, 2, 0): a wrong Voigt order would add errors
    assert t["a", "stress", "rmse"]["value"] == pytest.approx(math.sqrt(9 / 9))
    assert t["a", "stress", "mae"]["value"] == pytest.approx(5 / 9)
    assert t["all", "stress", "rmse"]["value"] == pytest.approx(1.0)
    assert ("b", "stress", "rmse") not in t
    assert t["all", "energy", "rmse"]["n_configs"] == 2 and t["a", "stress", "mae"]["n_configs"] == 1
    assert {r["unit"] for r in t.values() if r["quantity"] == "stress"} == {"meV/A^3"}
    assert t["all", "forces", "mae"]["unit"] == "meV/A" and t["all", "energy", "mae"]["unit"] == "meV/atom"


def test_a_full_3x3_stress_label_is_compared_as_is():
    label = np.array([[1.0, 0.2, 0.3], [0.2, 2.0, 0.4], [0.3, 0.4, 3.0]]) * 1e-3
    a = _config(1, "x", 0.0, stress=label.reshape(9))
    pred = label.copy()
    pred[0, 1] += 3e-3  # one component off by 3 meV/A^3
    t = _table(error_rows([a], [{"energy": 0.0, "forces": np.zeros((1, 3)), "stress": pred}]))
    assert t["all", "stress", "rmse"]["value"] == pytest.approx(math.sqrt(9 / 9))
    assert t["all", "stress", "mae"]["value"] == pytest.approx(3 / 9)


def test_a_single_config_type_gives_only_the_all_rows():
    a, b = _config(1, "same", 0.0), _config(1, "same", 0.0)
    preds = [{"energy": 0.002, "forces": np.zeros((1, 3))}, {"energy": -0.002, "forces": np.zeros((1, 3))}]
    rows = error_rows([a, b], preds)
    assert {r["config_type"] for r in rows} == {"all"}
    assert _table(rows)["all", "energy", "mae"]["value"] == pytest.approx(2.0)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from robustness_support import build_tiny_mace

    return build_tiny_mace(tmp_path_factory.mktemp("model") / "tiny.model", elements=("H", "O"))


def test_stress_of_a_periodic_config_does_not_depend_on_its_batch(tiny_model):
    from ase.build import molecule

    from ftbench.probes.inference import load_model, predict
    from robustness_support import water_box

    in_box = molecule("H2O")
    in_box.center(vacuum=3.0)  # a cell, but not periodic
    no_cell = molecule("H2O")  # zero cell: no volume to divide by
    box = water_box(1)
    configs = [in_box, box, no_cell]
    model = load_model(tiny_model)
    alone = predict(model, configs, batch_size=1)
    mixed = predict(model, configs, batch_size=3)  # one batch holding all three
    for k in (0, 2):
        assert "stress" not in alone[k] and "stress" not in mixed[k]
    assert "stress" in alone[1] and "stress" in mixed[1]
    np.testing.assert_allclose(mixed[1]["stress"], alone[1]["stress"], atol=1e-10)
    for k in range(3):
        np.testing.assert_allclose(mixed[k]["forces"], alone[k]["forces"], atol=1e-10)
        assert mixed[k]["energy"] == pytest.approx(alone[k]["energy"], abs=1e-10)
