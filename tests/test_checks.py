"""Bad data and contradictory settings are refused before any training, with the file, frame or
key named and the fix (issue 24). Real CLI calls on real files; the unit check runs the shipped
demo foundation model. No workflow runs: fast tier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.io import read, write

from conftest import ROOT, ftbench

SN2 = ROOT / "data" / "demo" / "benchmarks" / "sn2.xyz.gz"
GEN1 = ROOT / "data" / "demo" / "foundation" / "demo_gen1.model"


def _water(n: int, seed: int = 0, energy_key: str = "REF_energy", forces_key: str = "REF_forces") -> list[Atoms]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = Atoms("OH2", positions=np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]) + rng.normal(0, 0.05, (3, 3)))
        a.info[energy_key] = float(-470.0 + rng.normal())
        a.arrays[forces_key] = rng.normal(0, 0.5, (3, 3))
        out.append(a)
    return out


def _prepare(tmp_path, data, *extra):
    return ftbench(
        "prepare", "--data", str(data), "--n-valid", "2", "--n-test", "2", "--out-dir", str(tmp_path / "o"), *extra
    )


def _refused(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


# ---- geometry ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_periodic_frame_with_a_zero_cell_is_refused(tmp_path):
    frames = _water(8)
    frames[5].pbc = True  # cell stays all zeros
    data = tmp_path / "zero_cell.xyz"
    write(data, frames, format="extxyz")
    _refused(_prepare(tmp_path, data), f"{data}: frame 5", "zero or flat", "Lattice=", "pbc=False")
    assert not (tmp_path / "o" / "train_pool.xyz").exists()


@pytest.mark.slow
def test_atoms_on_top_of_each_other_are_refused_with_the_frame(tmp_path):
    frames = _water(8)
    frames[6].positions[2] = frames[6].positions[1]
    test = tmp_path / "test.xyz"
    write(test, frames[6:], format="extxyz")
    train = tmp_path / "train.xyz"
    write(train, frames[:6], format="extxyz")
    valid = tmp_path / "valid.xyz"
    write(valid, _water(2, seed=9), format="extxyz")
    proc = _prepare(tmp_path, train, "--valid-data", str(valid), "--test-data", str(test))
    _refused(proc, f"{test}: frame 0", "0 A apart", "data_checks.min_pair_distance")


@pytest.mark.slow
def test_mixed_periodic_and_molecular_frames_are_refused(tmp_path):
    frames = _water(8)
    for a in frames[:3]:
        a.cell = [10, 10, 10]
        a.pbc = True
    data = tmp_path / "mixed.xyz"
    write(data, frames, format="extxyz")
    _refused(_prepare(tmp_path, data), str(data), "mixes periodic and non-periodic", "frame 0", "frame 3")


# ---- splits -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_duplicate_frames_in_one_file_are_refused(tmp_path):
    frames = _water(8)
    frames.append(frames[2].copy())
    frames[-1].info["REF_energy"] = frames[2].info["REF_energy"]
    frames[-1].arrays["REF_forces"] = frames[2].arrays["REF_forces"]
    data = tmp_path / "dup.xyz"
    write(data, frames, format="extxyz")
    _refused(_prepare(tmp_path, data), str(data), "frames 2 and 8 are the same structure", "remove the duplicates")


@pytest.mark.slow
def test_test_frames_copied_from_training_are_refused(tmp_path):
    frames = _water(10)
    train, valid, test = tmp_path / "train.xyz", tmp_path / "valid.xyz", tmp_path / "test.xyz"
    write(train, frames[:6], format="extxyz")
    write(valid, frames[6:8], format="extxyz")
    write(test, [frames[8], frames[3]], format="extxyz")
    proc = _prepare(tmp_path, train, "--valid-data", str(valid), "--test-data", str(test))
    _refused(proc, f"{test}: test frame 1 is a copy of training-pool frame")


@pytest.mark.slow
def test_own_validation_file_without_a_test_file_is_used(tmp_path):
    data, valid = tmp_path / "data.xyz", tmp_path / "valid.xyz"
    write(data, _water(10), format="extxyz")
    write(valid, _water(3, seed=7), format="extxyz")
    proc = _prepare(tmp_path, data, "--valid-data", str(valid))
    assert proc.returncode == 0, proc.stderr
    counts = json.loads((tmp_path / "o" / "summary.json").read_text())["counts"]
    # the user's 3 validation frames, 2 test frames split off the data, 8 left to train on
    assert counts["valid"] == 3 and counts["test"] == 2 and counts["train_pool"] == 8
    assert read(tmp_path / "o" / "valid.xyz", ":")[0].positions.tolist() == read(valid, 0).positions.tolist()


@pytest.mark.parametrize("option", ["--n-valid", "--n-test"])
def test_negative_split_counts_are_refused(tmp_path, option):
    data = tmp_path / "data.xyz"
    write(data, _water(10), format="extxyz")
    proc = ftbench("prepare", "--data", str(data), option, "-5", "--out-dir", str(tmp_path / "o"))
    _refused(proc, f"{option} is -5", "split.valid")


# ---- units ------------------------------------------------------------------------------------


def _sn2_train(tmp_path, scale: float):
    frames = [a for a in read(SN2, ":40") if len(a) > 1][:24]
    for a in frames:
        a.info["REF_energy"] = a.info["REF_energy"] * scale
        a.arrays["REF_forces"] = a.arrays["REF_forces"] * scale
    path = tmp_path / f"train_{scale:.4g}.xyz"
    write(path, frames, format="extxyz")
    return path


@pytest.mark.slow
def test_labels_in_another_unit_are_refused_by_the_e0_step(tmp_path):
    train = _sn2_train(tmp_path, 1 / 27.211386)
    out = tmp_path / "e0.json"
    proc = ftbench("e0", "--mode", "estimated", "--data", str(train), "--model", str(GEN1), "--out", str(out))
    _refused(proc, f"training set {train}", "the labels look like Hartree/A, not eV/A", "data_checks.unit_slope_range")
    assert not out.exists()


@pytest.fixture(scope="module")
def gen1_on_sn2():
    """The shipped demo_gen1's predictions on 24 sn2 frames, the frames the e0 step would check.

    Under a float32 torch default, as other tests in the session may leave it: predict must cast
    the data to the (float64) model's dtype.
    """
    import torch

    from ftbench.probes.inference import predict, read_model

    frames = [a for a in read(SN2, ":40") if len(a) > 1][:24]
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        return frames, predict(read_model(GEN1), frames)
    finally:
        torch.set_default_dtype(before)


@pytest.mark.parametrize(("scale", "unit"), [(23.0605, "kcal/mol/A"), (1 / 51.422, "Hartree/Bohr")])
def test_labels_in_another_unit_are_named(gen1_on_sn2, scale, unit):
    from ftbench.core.errors import FtbenchError
    from ftbench.data.datacheck import unit_verdict

    frames, preds = gen1_on_sn2
    scaled = [a.copy() for a in frames]
    for a in scaled:
        a.info["REF_energy"] = a.info["REF_energy"] * scale
        a.arrays["REF_forces"] = a.arrays["REF_forces"] * scale
    with pytest.raises(FtbenchError, match=f"the labels look like {unit}, not eV/A"):
        unit_verdict(scaled, preds, "training set train.xyz")
    assert unit_verdict(frames, preds, "training set train.xyz")["forces"]["judged"]


@pytest.mark.slow
def test_labels_in_ev_pass_the_unit_check_and_record_it(tmp_path):
    train = _sn2_train(tmp_path, 1.0)
    out = tmp_path / "e0.json"
    proc = ftbench("e0", "--mode", "estimated", "--data", str(train), "--model", str(GEN1), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    check = json.loads(out.with_suffix(".provenance.json").read_text())["unit_check"]
    assert 0.5 < check["forces"]["slope"] < 2.0 and check["forces"]["correlation"] > 0.5


def _unit_case(n: int, scale: float, noise: float, seed: int):
    """n water frames whose labels are `scale` x a stand-in model's predictions plus noise."""
    from ftbench.data.datacheck import unit_verdict

    rng = np.random.default_rng(seed)
    frames, preds = _water(n, seed=seed), []
    for a in frames:
        e, f = float(rng.normal()), rng.normal(0, 0.5, (3, 3))
        preds.append({"energy": e, "forces": f})
        a.info["REF_energy"] = scale * e + noise * float(rng.normal())
        a.arrays["REF_forces"] = f + 0.05 * rng.normal(size=(3, 3))
    return frames, preds, unit_verdict


def test_energy_scale_on_a_handful_of_frames_is_not_judged():
    # the smoke test's case: 6 frames of one composition, a model that knows nothing of them; a
    # chance correlation above unit_min_correlation must not refuse the data
    for seed in range(40):
        frames, preds, unit_verdict = _unit_case(6, 0.0, 300.0, seed)
        got = unit_verdict(frames, preds, "train.xyz")
        assert got["forces"]["judged"] and 0.9 < got["forces"]["slope"] < 1.1
        if got["energies"]["correlation"] >= 0.5:
            assert not got["energies"]["judged"] and got["energies"]["p_value"] >= 0.01
            return
    pytest.fail("no seed gave a chance correlation above 0.5")


def test_energy_scale_on_many_correlated_frames_is_refused():
    from ftbench.core.errors import FtbenchError

    frames, preds, unit_verdict = _unit_case(60, 300.0, 300.0, 0)
    with pytest.raises(FtbenchError, match=r"train.xyz: the reference energies are .* x the foundation"):
        unit_verdict(frames, preds, "train.xyz")


def test_missing_e0_data_file_is_named(tmp_path):
    missing = tmp_path / "nope.xyz"
    proc = ftbench("e0", "--mode", "average", "--data", str(missing), "--out", str(tmp_path / "e0.json"))
    _refused(proc, f"--data {missing}: no such file")


# ---- contradictory or inert settings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        (
            "catalog={'strategies': {'scratch': {'replay': 'original'}}}",
            ["`catalog.strategies.scratch`", "`foundation: false` and `replay: original`"],
        ),
        (
            "catalog={'strategies': {'replay': {'mace_flags': {'multiheads_finetuning': False}}}}",
            ["`catalog.strategies.replay`", "train without the replay data", "multiheads_finetuning: true"],
        ),
        (
            "catalog={'strategies': {'naive': {'mace_flags': {'multiheads_finetuning': True}}}}",
            ["`catalog.strategies.naive`", "multiheads_finetuning: false"],
        ),
        (
            "catalog={'strategies': {'freeze6': {'mace_flags': {'freeze': 99}}}}",
            ["freeze 99", "nothing is left to learn", "Use 0, 5 or 6"],
        ),
        ("catalog={'strategies': {'naive': {'mace_flags': {'batch_size': 0}}}}", ["batch_size = 0", "at least 1"]),
        ("catalog={'strategies': {'lora': {'mace_flags': {'lr': -1}}}}", ["lr = -1", "must be a number positive"]),
        ("train_sizes=[abc", ["--config 'train_sizes=[abc'", "not valid YAML"]),
    ],
)
@pytest.mark.slow
def test_contradictory_or_inert_settings_stop_the_grid(override, needles):
    _refused(ftbench("grid", "--counts-only", "--config", override), *needles)


# ---- pre-flight: the user's own data, read before any job ---------------------------------------


def _own_config(tmp_path, frames, *, keys=None, strategies=None, e0=None) -> str:
    data = tmp_path / "mine.xyz"
    write(data, frames, format="extxyz")
    cfg = {
        "benchmarks": ["mine"],
        "foundation_models": ["demo_gen1"],
        "train_sizes": [4, 8],
        "strategies": strategies or ["naive", "scratch"],
        "sources": {"mine_src": {"kind": "local", "path": str(tmp_path), "files": {"mine": {"path": "mine.xyz"}}}},
        "catalog": {
            "benchmarks": {
                "mine": {
                    "source": "files",
                    "fetch_source": "mine_src",
                    "files": {"data": "mine"},
                    "split": {"valid": 2, "test": 2},
                    **(keys or {}),
                }
            }
        },
    }
    if e0:
        cfg["e0"] = e0
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.slow
def test_grid_names_a_label_key_the_file_lacks_and_the_keys_it_has(tmp_path):
    frames = _water(14, energy_key="dft_energy", forces_key="dft_forces")
    cfg = _own_config(tmp_path, frames, keys={"energy_key": "energy_dft", "forces_key": "dft_forces"})
    proc = ftbench("grid", "--configfile", cfg, cwd=tmp_path)
    _refused(proc, "no energy under key 'energy_dft'", "dft_energy", "`energy_key` in `catalog.benchmarks.mine`")


@pytest.mark.slow
def test_scratch_without_isolated_atoms_is_refused_with_advice_that_fits_scratch(tmp_path):
    frames = _water(14, energy_key="dft_energy", forces_key="dft_forces")
    cfg = _own_config(tmp_path, frames, keys={"energy_key": "dft_energy", "forces_key": "dft_forces"})
    proc = ftbench("grid", "--configfile", cfg, cwd=tmp_path)
    _refused(proc, "scratch (no foundation model)", "none for H, O", "e0_without_foundation: average", "drop scratch")
    assert "e0: [estimated]" not in proc.stderr.split("scratch (no foundation model)")[1].split("\n")[0]


@pytest.mark.slow
def test_single_composition_fit_is_named_with_advice_that_acts(tmp_path):
    frames = _water(14, energy_key="dft_energy", forces_key="dft_forces")
    cfg = _own_config(
        tmp_path, frames, keys={"energy_key": "dft_energy", "forces_key": "dft_forces"}, strategies=["naive"]
    )
    proc = ftbench("grid", "--configfile", cfg, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "under-determined: the data has one composition" in proc.stderr
    assert "isolated atoms alone do not enter an estimated or average fit" in proc.stderr
    assert "add IsolatedAtom frames for H, O" in proc.stderr and "e0: [isolated]" in proc.stderr
    assert "sizes [4, 8]" in proc.stderr and "needs 3" in proc.stderr  # a 2-point learning curve is flagged


@pytest.mark.slow
def test_sizes_beyond_the_data_are_refused_before_any_job(tmp_path):
    frames = _water(10, energy_key="dft_energy", forces_key="dft_forces")
    cfg = _own_config(
        tmp_path, frames, keys={"energy_key": "dft_energy", "forces_key": "dft_forces"}, strategies=["naive"]
    )
    proc = ftbench("grid", "--configfile", cfg, cwd=tmp_path)
    _refused(proc, "train_sizes [8] exceed its 6 training configurations", "max_train: 6")


@pytest.mark.slow
def test_stress_is_asked_of_periodic_frames_only(tmp_path):
    # isolated atoms and molecules carry no stress; a periodic frame without one is named
    frames = []
    for a in _water(14, energy_key="dft_energy", forces_key="dft_forces"):
        a.cell, a.pbc = [8.0, 8.0, 8.0], True
        a.info["dft_stress"] = [0.01, 0.01, 0.01, 0.0, 0.0, 0.0]
        frames.append(a)
    for symbol, energy in (("H", -13.6), ("O", -432.0)):
        free = Atoms(symbol, positions=[[0, 0, 0]])
        free.info.update(dft_energy=energy, config_type="IsolatedAtom")
        free.arrays["dft_forces"] = np.zeros((1, 3))
        frames.append(free)
    keys = {"energy_key": "dft_energy", "forces_key": "dft_forces", "stress_key": "dft_stress"}
    ok = ftbench("grid", "--configfile", _own_config(tmp_path, frames, keys=keys, strategies=["naive"]), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    del frames[3].info["dft_stress"]
    bad = ftbench("grid", "--configfile", _own_config(tmp_path, frames, keys=keys, strategies=["naive"]), cwd=tmp_path)
    _refused(bad, "1 frames (first: frame 3) have no stress under key 'dft_stress'")
