"""MD stability runner: stable LJ argon survives; potentials without a wall or with bad output fail."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.lj import LennardJones
from ase.cluster import Icosahedron
from ase.io import read, write

from ftbench.probes.md import Criteria, ramp_temperature, run_replica, run_replicas

sys.path.insert(0, str(Path(__file__).parent))
from robustness_support import PairPotential, attractive_only, build_tiny_mace, water_box  # noqa: E402


def argon_lj():
    return LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True)


def argon_solid():
    return bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)  # 32 atoms near the LJ lattice constant


def min_distance(atoms):
    d = atoms.get_all_distances(mic=atoms.pbc.any())
    return d[np.triu_indices(len(atoms), 1)].min()


def test_ramp_is_linear():
    assert ramp_temperature(0, 100, 300, 1000) == 300
    assert ramp_temperature(50, 100, 300, 1000) == pytest.approx(650)
    assert ramp_temperature(100, 100, 300, 1000) == 1000


@pytest.mark.slow
def test_lj_argon_solid_is_stable(tmp_path):
    steps, save_every = 200, 20
    result = run_replicas(
        argon_solid(),
        argon_lj(),
        replicas=2,
        seed=3,
        out_dir=tmp_path,
        steps=steps,
        timestep_fs=5.0,
        t_start=20,
        t_end=60,
        save_every=save_every,
    )
    assert result["summary"]["survival_fraction"] == 1.0
    for rep in result["replicas"]:
        assert rep["reason"] == "stable" and rep["time_to_failure_ps"] is None
        assert rep["steps_completed"] == steps and rep["time_ps"] == pytest.approx(1.0)
        frames = read(tmp_path / f"replica_{rep['replica']}.xyz", ":")
        assert len(frames) == steps // save_every + 1
        assert frames[-1].info["step"] == steps
        assert min_distance(frames[-1]) > 3.0  # still a solid
    # replicas use different seeds, so they are different runs
    a, b = (read(tmp_path / f"replica_{i}.xyz", -1) for i in (0, 1))
    assert not np.allclose(a.positions, b.positions)


def test_attractive_only_potential_is_flagged(tmp_path):
    cluster = Icosahedron("Ar", 2)  # 13 atoms, 3.7 A apart
    calc = PairPotential(attractive_only(depth=1.0, width=1.5))
    res = run_replica(
        cluster, calc, steps=2000, timestep_fs=2.0, t_start=50, t_end=100, seed=1, trajectory=tmp_path / "a.xyz"
    )
    assert res["reason"] != "stable"
    assert 0 < res["time_to_failure_ps"] < 4.0

    # with the temperature criterion switched off the collapse shows as a close contact
    res = run_replica(
        cluster,
        calc,
        steps=2000,
        timestep_fs=2.0,
        t_start=50,
        t_end=100,
        seed=1,
        criteria=Criteria(min_distance=0.5, max_temperature_factor=1e9),
        save_every=50,
        trajectory=tmp_path / "b.xyz",
    )
    assert res["reason"] == "close_contact"
    frames = read(tmp_path / "b.xyz", ":")
    assert frames[-1].info["step"] == res["steps_completed"]  # the failing frame is kept
    assert min_distance(frames[-1]) < 0.5
    assert all(min_distance(f) >= 0.5 for f in frames[:-1])


class NaNAfter(LennardJones):
    """LJ that returns NaN forces from the n-th force evaluation on."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n, self.calls = n, 0

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.calls += 1
        if self.calls > self.n:
            self.results["forces"] = np.full_like(self.results["forces"], np.nan)


class RaiseAfter(LennardJones):
    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n, self.calls = n, 0

    def calculate(self, *args, **kwargs):
        self.calls += 1
        if self.calls > self.n:
            raise RuntimeError("neighbour list exploded")
        super().calculate(*args, **kwargs)


def test_nonfinite_forces_end_the_run_and_the_frame_is_saved(tmp_path):
    calc = NaNAfter(30, sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True)
    res = run_replica(
        argon_solid(),
        calc,
        steps=100,
        timestep_fs=5.0,
        t_start=20,
        t_end=20,
        save_every=7,
        trajectory=tmp_path / "t.xyz",
    )
    assert res["reason"] == "nonfinite_force"
    assert res["steps_completed"] == 30  # evaluation 31 is the one after step 30
    frames = read(tmp_path / "t.xyz", ":")
    assert frames[-1].info["step"] == 30 and np.isnan(frames[-1].get_forces()).all()


def test_huge_forces_and_calculator_errors_are_results(tmp_path):
    squeezed = argon_solid()
    squeezed.set_cell(squeezed.cell * 0.7, scale_atoms=True)
    squeezed.rattle(0.05, seed=0)  # off the symmetric sites: LJ forces of several eV/A
    res = run_replica(squeezed, argon_lj(), steps=10, timestep_fs=1.0, criteria=Criteria(max_force=1.0))
    assert res["reason"] == "huge_force" and res["steps_completed"] == 0

    calc = RaiseAfter(5, sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True)
    res = run_replica(
        argon_solid(), calc, steps=20, timestep_fs=5.0, t_start=20, t_end=20, trajectory=tmp_path / "e.xyz"
    )
    assert res["reason"] == "calculator_error" and "exploded" in res["detail"]
    assert read(tmp_path / "e.xyz", -1).info["step"] == res["steps_completed"] == 5


def test_temperature_criterion():
    # start far above the target: the first check after one step flags it
    res = run_replica(
        argon_solid(),
        argon_lj(),
        steps=50,
        timestep_fs=5.0,
        t_start=300,
        t_end=10,
        criteria=Criteria(max_temperature_factor=1.5),
        friction=1e-6,
    )
    assert res["reason"] == "temperature"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_mace(tmp_path_factory.mktemp("model") / "tiny.model", elements=("H", "O"))


def test_cli_end_to_end_with_mace(tmp_path, tiny_model):
    from ftbench.cli import main

    structure = tmp_path / "water.xyz"
    write(structure, water_box(2))
    out = tmp_path / "md"
    argv = [
        "md",
        "--model",
        str(tiny_model),
        "--structure",
        str(structure),
        "--out",
        str(out),
        "--replicas",
        "2",
        "--steps",
        "10",
        "--save-every",
        "5",
        "--t-start",
        "300",
        "--t-end",
        "400",
        "--max-temperature-factor",
        "100",
    ]
    assert main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["options"]["steps"] == 10 and result["n_atoms"] == 24
    assert len(result["replicas"]) == 2
    for rep in result["replicas"]:
        # a stable replica ran every step; a failed one stopped early
        assert (rep["steps_completed"] == 10) == (rep["reason"] == "stable")
        frames = read(out / rep["trajectory"], ":")
        assert frames[-1].info["step"] == rep["steps_completed"]
    stable = sum(rep["reason"] == "stable" for rep in result["replicas"])
    assert result["summary"]["survival_fraction"] == stable / 2
    assert result["summary"]["n_failed"] == 2 - stable

    assert main(argv + ["--index", "5"]) == 2  # the file has one frame
    # a structure with an element the model does not know is a clear error
    write(structure, bulk("Cu", "fcc", a=3.6))
    assert main(argv) == 2


def test_batched_forces_equal_per_replica_forces(tiny_model):
    from ftbench.probes.calculators import load_calculator
    from ftbench.probes.md import CalculatorEvaluator, MaceBatchEvaluator

    calc = load_calculator(tiny_model)
    boxes = [water_box(2, seed=s) for s in range(3)]
    boxes.append(boxes[0][:6])  # a different size in the same batch (a non-periodic fragment)
    boxes[-1].pbc = False
    boxes[-1].cell = None
    batched = MaceBatchEvaluator(calc)(boxes)
    sequential = CalculatorEvaluator(calc)(boxes)
    for (e_b, f_b), (e_s, f_s), atoms in zip(batched, sequential, boxes):
        assert f_b.shape == (len(atoms), 3)
        assert e_b == pytest.approx(e_s, rel=1e-10, abs=1e-10)
        np.testing.assert_allclose(f_b, f_s, rtol=1e-9, atol=1e-10)


def test_batched_and_sequential_replicas_run_the_same_trajectories(tiny_model, tmp_path):
    from ftbench.probes.calculators import load_calculator
    from ftbench.probes.md import CalculatorEvaluator, MaceBatchEvaluator

    calc = load_calculator(tiny_model)
    kwargs = dict(
        replicas=3,
        seed=5,
        steps=6,
        timestep_fs=0.5,
        t_start=300,
        t_end=400,
        friction=0.05,
        thermalise_steps=2,
        save_every=3,
        criteria=Criteria(max_temperature_factor=100),
    )
    a = run_replicas(water_box(2), MaceBatchEvaluator(calc), out_dir=tmp_path / "a", **kwargs)
    b = run_replicas(water_box(2), CalculatorEvaluator(calc), out_dir=tmp_path / "b", **kwargs)
    assert a["summary"]["batched"] and not b["summary"]["batched"]
    for i in range(3):
        fa, fb = read(tmp_path / "a" / f"replica_{i}.xyz", ":"), read(tmp_path / "b" / f"replica_{i}.xyz", ":")
        assert [f.info["step"] for f in fa] == [0, 3, 6] == [f.info["step"] for f in fb]
        np.testing.assert_allclose(fa[-1].positions, fb[-1].positions, atol=1e-8)
    # replicas differ from each other (their own seeds), all start from the same structure
    last = [read(tmp_path / "a" / f"replica_{i}.xyz", -1).positions for i in range(3)]
    assert not np.allclose(last[0], last[1])


def test_a_failing_replica_stops_alone():
    # replica seeds 0 and 1 under an evaluator that raises for one structure in the batch only
    from ftbench.probes.md import CalculatorEvaluator

    class OneBad(CalculatorEvaluator):
        batched = True

        def __init__(self, calc):
            super().__init__(calc)
            self.calls = 0

        def __call__(self, structures):
            self.calls += 1
            out = super().__call__(structures)
            if self.calls == 4 and len(structures) == 2:
                out[1] = RuntimeError("replica 1 exploded")
            return out

    res = run_replicas(
        argon_solid(), OneBad(argon_lj()), replicas=2, steps=10, timestep_fs=2.0, t_start=20, t_end=20, friction=0.05
    )
    first, second = res["replicas"]
    assert first["reason"] == "stable" and first["steps_completed"] == 10
    assert second["reason"] == "calculator_error" and second["steps_completed"] == 3
    assert res["summary"]["survival_fraction"] == 0.5


def test_kaplan_meier_on_hand_made_data():
    from ftbench.probes.md import kaplan_meier

    # 5 replicas: failures at 1, 2, 2 ps; one censored (still running) at 1.5 ps, one at the end (3 ps)
    t, s = kaplan_meier([1.0, 2.0, 2.0, 1.5, 3.0], [True, True, True, False, False])
    # at 1: 5 at risk, 1 fails -> 4/5; at 2: 3 at risk (1.5 censored), 2 fail -> 4/5 * 1/3
    assert t.tolist() == [0.0, 1.0, 2.0]
    assert s == pytest.approx([1.0, 0.8, 0.8 / 3])
    # no failures at all: flat at 1 (a saturated observable)
    t, s = kaplan_meier([3.0] * 4, [False] * 4)
    assert t.tolist() == [0.0] and s.tolist() == [1.0]
