"""E0 fits that the training compositions cannot determine are flagged (ftbench e0, real CLI)."""

from __future__ import annotations

import json

import numpy as np
from ase.build import molecule
from ase.io import write

from ftbench.cli import main as cli


def _frames(names, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for name in names:
        a = molecule(name)
        a.positions += rng.normal(0, 0.02, a.positions.shape)
        a.info["REF_energy"] = float(-14.0 * len(a) + rng.normal(0, 0.1))
        a.arrays["REF_forces"] = np.zeros((len(a), 3))
        out.append(a)
    return out


def _warnings(tmp_path, names):
    """Warnings of an `average` E0 fit (no foundation model) on molecules `names`."""
    write(tmp_path / "train.xyz", _frames(names), format="extxyz")
    out = tmp_path / "e0.json"
    assert cli(["e0", "--mode", "average", "--data", str(tmp_path / "train.xyz"), "--out", str(out)]) == 0
    return json.loads(out.with_suffix(".provenance.json").read_text())["warnings"]


def test_pure_water_leaves_the_e0_split_undetermined_and_says_so(tmp_path):
    (msg,) = _warnings(tmp_path, ["H2O"] * 6)
    assert "span 1 of 2 element directions (H, O)" in msg and "isolated" in msg


def test_varied_stoichiometry_fixes_every_e0(tmp_path):
    assert _warnings(tmp_path, ["H2O", "H2O2", "H2", "H2O"]) == []
