"""Head selection on a 3-head ScaleShiftMACE whose configured head (omat_pbe) is neither first nor
last: every step must use that head, and an unknown head must be an error that lists the heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import molecule
from ase.io import read, write

import model_fixtures as mf
from conftest import ftbench
from ftbench.cli import main

ZS = [1, 6, 8, 9, 11, 17]  # H C O F Na Cl
HEAD = "omat_pbe"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("heads")
    model = mf.multihead(zs=ZS, channels=16, seed=3)
    mf.save(model, d / "mh.model")
    single = mf.build_model(ZS, channels=16, seed=4)
    mf.save(single, d / "single.model")
    replay_like = mf.build_model(ZS, heads=["Default", "pt_head"], channels=16, seed=5)
    mf.save(replay_like, d / "replay.model")
    rng = np.random.default_rng(0)
    frames = []
    names = ["CH3Cl", "HF", "H2O", "CH3OH", "CH4", "ClF"]  # compositions that fix all five E0s
    for i in range(12):
        a = molecule(names[i % len(names)])
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        frames.append(a)
    # Reference energies: the omat_pbe head's own predictions (mace's calculator, an independent
    # path) plus known per-element offsets; `estimated` must recover exactly those offsets.
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(d / "mh.model"), head=HEAD, default_dtype="float64", device="cpu")
    offsets = {1: 0.3, 6: -1.2, 8: 0.7, 9: 2.0, 17: -0.4}
    for a in frames:
        a.calc = calc
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = None
        a.info["REF_energy"] = e + sum(offsets[z] for z in a.numbers)
        a.arrays["REF_forces"] = f
        a.info["config_type"] = "Default"
    write(d / "train.xyz", frames)
    return {"dir": d, "model": model, "offsets": offsets, "frames": frames}


def _e0(world, *args):
    d = world["dir"]
    out = d / f"e0_{len(list(d.glob('e0_*.json')))}.json"
    rc = main(["e0", "--model", str(d / "mh.model"), "--data", str(d / "train.xyz"), "--out", str(out), *args])
    return rc, out


def head_e0s(model, head):
    row = model.atomic_energies_fn.atomic_energies.detach().numpy()[model.heads.index(head)]
    return {int(z): float(e) for z, e in zip(model.atomic_numbers, row)}


@pytest.mark.slow
def test_e0_foundation_mode_returns_that_heads_e0s(world):
    rc, out = _e0(world, "--head", HEAD, "--mode", "foundation")
    assert rc == 0
    got = {int(z): e for z, e in json.loads(out.read_text()).items()}
    want = head_e0s(world["model"], HEAD)
    assert got == pytest.approx({z: want[z] for z in got})
    first = head_e0s(world["model"], "mp_pbe")
    assert all(abs(got[z] - first[z]) > 1.0 for z in got)  # not head 0's
    assert json.loads(out.with_suffix(".provenance.json").read_text())["head"] == HEAD


def test_estimated_uses_that_heads_predictions(world):
    rc, out = _e0(world, "--head", HEAD, "--mode", "estimated")
    assert rc == 0
    got = {int(z): e for z, e in json.loads(out.read_text()).items()}
    want = head_e0s(world["model"], HEAD)
    for z, delta in world["offsets"].items():
        assert got[z] == pytest.approx(want[z] + delta, abs=1e-6)
    info = json.loads(out.with_suffix(".provenance.json").read_text())
    assert info["initial_energy_rmse_ev_per_atom"] < 1e-6  # the mismatch check used the same head


def test_multihead_without_head_or_with_unknown_head_is_an_error(world, capsys):
    rc, _ = _e0(world, "--mode", "estimated")
    assert rc == 2
    assert "mp_pbe, omat_pbe, spice_wb97m" in capsys.readouterr().err
    rc, _ = _e0(world, "--head", "no_such_head", "--mode", "foundation")
    assert rc == 2
    assert "no head 'no_such_head'; its heads are: mp_pbe, omat_pbe, spice_wb97m" in capsys.readouterr().err


@pytest.mark.parametrize(
    "model,heads",
    [("mh.model", "mp_pbe, omat_pbe, spice_wb97m"), ("single.model", "Default"), ("replay.model", "Default, pt_head")],
)
@pytest.mark.slow
def test_evaluate_unknown_head_fails_and_lists_heads(world, model, heads):
    d = world["dir"]
    out = d / f"errors_{model}.json"
    proc = ftbench(
        "evaluate",
        "--model",
        str(d / model),
        "--head",
        "no_such_head",
        "--data",
        f"test={d / 'train.xyz'}",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert proc.returncode == 2, proc.stderr
    assert f"its heads are: {heads}" in proc.stderr
    assert not out.exists()


def test_head_artefact_predicts_like_the_head_it_keeps(world):
    d = world["dir"]
    assert main(["head", "--model", str(d / "mh.model"), "--head", HEAD, "--out", str(d / "omat.model")]) == 0
    a = main(
        [
            "evaluate",
            "--model",
            str(d / "omat.model"),
            "--data",
            f"t={d / 'train.xyz'}",
            "--device",
            "cpu",
            "--out",
            str(d / "ev_single.json"),
        ]
    )
    b = main(
        [
            "evaluate",
            "--model",
            str(d / "mh.model"),
            "--head",
            HEAD,
            "--data",
            f"t={d / 'train.xyz'}",
            "--device",
            "cpu",
            "--out",
            str(d / "ev_multi.json"),
        ]
    )
    assert a == b == 0
    single = json.loads((d / "ev_single.json").read_text())["rows"]
    multi = json.loads((d / "ev_multi.json").read_text())["rows"]
    assert {r["head"] for r in single} == {r["head"] for r in multi} == {HEAD}  # scored on that head only
    assert [r["value"] for r in single] == pytest.approx([r["value"] for r in multi], rel=1e-9)
    assert main(["head", "--model", str(d / "mh.model"), "--head", "nope", "--out", str(d / "x.model")]) == 2


def test_replay_pseudolabels_with_that_head(world, tmp_path):
    d = world["dir"]
    pool = mf.write_mptrj_pool(
        tmp_path / "pool.xyz", 24, elements=("H", "C", "O", "Cl"), atoms_per_frame=4, stress_every=2
    )
    rc = main(
        [
            "replay",
            "--pool",
            str(pool),
            "--model",
            str(d / "mh.model"),
            "--head",
            HEAD,
            "--benchmark-data",
            str(d / "train.xyz"),
            "--n-samples",
            "6",
            "--n-eval",
            "4",
            "--energy-key",
            "energy",
            "--forces-key",
            "forces",
            "--stress-key",
            "stress",
            "--out-dir",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0
    pseudo = read(tmp_path / "out" / "replay_pseudo.xyz", ":")
    original = read(tmp_path / "out" / "replay.xyz", ":")
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(d / "mh.model"), head=HEAD, default_dtype="float64", device="cpu")
    for p, o in zip(pseudo, original):
        a = o.copy()
        a.calc = calc
        assert p.info["REF_energy"] == pytest.approx(a.get_potential_energy(), rel=1e-9)
        assert np.allclose(p.arrays["REF_forces"], a.get_forces(), atol=1e-9)
        # stress only where the source frame has one
        assert ("REF_stress" in p.info) == ("REF_stress" in o.info)
    assert any("REF_stress" in o.info for o in original) and any("REF_stress" not in o.info for o in original)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["head"] == HEAD
