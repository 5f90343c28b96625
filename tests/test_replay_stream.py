"""Streaming replay selection: element filter, seeded draws, group-disjoint held-out slice."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read

import model_fixtures as mf
from ftbench.core.errors import FtbenchError
from ftbench.training.replay import parse_frames, select_stream

ELEMENTS = {1, 6, 8, 17}  # H C O Cl


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    # materials of 4 frames; Na appears in some materials, so the subset filter drops them
    return mf.write_mptrj_pool(
        tmp_path_factory.mktemp("pool") / "pool.xyz",
        400,
        elements=("H", "C", "O", "Cl", "Na"),
        atoms_per_frame=3,
        stress_every=3,
    )


def _groups(frames):
    return {f.group for f in frames}


def test_disjoint_groups_exact_counts_and_element_filter(pool):
    replay, held, stats = select_stream(pool, ELEMENTS, 40, 12, seed=7)
    assert len(replay) == 40 and len(held) == 12
    assert stats["groups_from"] == "mp_id"
    assert not _groups(replay) & _groups(held)  # no material on both sides
    assert not {f.index for f in replay} & {f.index for f in held}
    frames = read(pool, ":")
    usable = [i for i, a in enumerate(frames) if set(a.numbers) <= ELEMENTS]
    assert stats["usable"] == len(usable) < len(frames)
    assert all(f.index in usable for f in replay + held)
    # held-out groups are taken whole, except possibly the last one drawn
    counts = {g: sum(frames[i].info["mp_id"] == g for i in usable) for g in _groups(held)}
    partial = [g for g in _groups(held) if sum(f.group == g for f in held) < counts[g]]
    assert len(partial) <= 1


def test_seeded_and_reproducible(pool):
    a = select_stream(pool, ELEMENTS, 30, 10, seed=1)
    b = select_stream(pool, ELEMENTS, 30, 10, seed=1)
    c = select_stream(pool, ELEMENTS, 30, 10, seed=2)
    assert [f.index for f in a[0]] == [f.index for f in b[0]]
    assert [f.index for f in a[0]] != [f.index for f in c[0]]


def test_without_group_ids_frames_are_their_own_group(pool):
    replay, held, stats = select_stream(pool, ELEMENTS, 30, 10, seed=1, group_keys=("no_such_key",))
    assert stats["groups_from"] is None
    assert len(replay) == 30 and len(held) == 10
    assert not {f.index for f in replay} & {f.index for f in held}
    assert _groups(replay) & _groups(held) == set()


def test_large_groups_fall_back_to_a_second_pass(tmp_path):
    path = mf.write_mptrj_pool(
        tmp_path / "big_groups.xyz", 300, elements=("H", "C"), atoms_per_frame=3, frames_per_material=100
    )
    # held out: one whole group and 20 frames of a second (whose other 80 are not replayed);
    # the first pass's spare replay candidates are mostly in those groups
    replay, held, stats = select_stream(path, {1, 6}, 80, 120, seed=3)
    assert len(held) == 120 and len(replay) == 80
    assert len(_groups(held)) == 2 and len(_groups(replay)) == 1
    assert not _groups(replay) & _groups(held)
    assert stats["passes"] == 2
    # asking for more than the other groups hold: all of them, and a warning
    replay, held, stats = select_stream(path, {1, 6}, 150, 120, seed=3)
    assert len(replay) == 100 and not _groups(replay) & _groups(held)


def test_the_second_pass_also_leaves_excluded_config_types_out(tmp_path):
    from ase.io import write

    path = mf.write_mptrj_pool(
        tmp_path / "big_groups.xyz", 300, elements=("H", "C"), atoms_per_frame=3, frames_per_material=100
    )
    frames = read(path, ":")
    for i, a in enumerate(frames):
        a.info["config_type"] = "short_range" if i % 4 == 0 else "mptrj"
    write(path, frames, format="extxyz")
    replay, held, stats = select_stream(path, {1, 6}, 60, 90, seed=3, exclude=("short_range",))
    assert stats["passes"] == 2 and len(replay) == 60
    assert not [f.index for f in replay + held if f.index % 4 == 0]


def test_small_pool_shrinks_both_and_tiny_pool_is_an_error(pool, tmp_path):
    replay, held, stats = select_stream(pool, ELEMENTS, 10_000, 2_000, seed=1)
    assert len(replay) + len(held) <= stats["usable"]
    assert len(held) == max(1, round(stats["usable"] * 2000 / 12000))
    with pytest.raises(FtbenchError, match="need at least 2"):
        select_stream(pool, {26}, 10, 5, seed=1)


def test_parsed_frames_keep_labels_and_stress_only_where_present(pool):
    replay, _, _ = select_stream(pool, ELEMENTS, 20, 5, seed=4)
    atoms = parse_frames(replay, "energy", "forces", "stress", pool)
    source = read(pool, ":")
    for a, f in zip(atoms, replay):
        src = source[f.index]
        assert a.info["REF_energy"] == pytest.approx(src.get_potential_energy())
        assert np.allclose(a.arrays["REF_forces"], src.get_forces())
        assert ("REF_stress" in a.info) == ("stress" in src.calc.results)
    assert {("REF_stress" in a.info) for a in atoms} == {True, False}


def _slice(path, n, seed, shift=0.0):
    from ase import Atoms

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        symbols = ["O", "H", "H"] if i % 3 else ["Na", "Cl"]  # every third has Na: dropped by subset
        a = Atoms(symbols, positions=rng.normal(0, 1.5, (len(symbols), 3)))
        a.info.update(REF_energy=float(i) + shift, config_type="short_range" if i % 5 == 4 else "water")
        a.arrays["REF_forces"] = np.full((len(a), 3), float(i) + shift)
        frames.append(a)
    from ase.io import write

    write(path, frames, format="extxyz")
    return frames


def test_separate_held_out_slice_and_its_relabelled_twin(pool, tmp_path):
    from ftbench.training.replay import held_out_slice

    _slice(tmp_path / "held.xyz", 30, 0)
    _slice(tmp_path / "held_gfn2.xyz", 30, 0, shift=100.0)
    frames, twins = held_out_slice(
        tmp_path / "held.xyz",
        tmp_path / "held_gfn2.xyz",
        ELEMENTS,
        "subset",
        n_eval=100,
        seed=3,
        exclude=("short_range",),
    )
    # 30 frames: 10 hold Na (i % 3 == 0), 6 are short_range (i % 5 == 4), 2 of those overlap (i = 9, 24)
    assert len(frames) == 30 - 10 - 6 + 2
    assert [a.info["REF_energy"] + 100.0 for a in frames] == [b.info["REF_energy"] for b in twins]
    few, _ = held_out_slice(tmp_path / "held.xyz", None, ELEMENTS, "subset", n_eval=5, seed=3)
    assert len(few) == 5 and few == held_out_slice(tmp_path / "held.xyz", None, ELEMENTS, "subset", 5, 3)[0]
    _slice(tmp_path / "other.xyz", 30, 1)  # other structures: not a relabelled copy
    with pytest.raises(FtbenchError, match="not a relabelled copy"):
        held_out_slice(tmp_path / "held.xyz", tmp_path / "other.xyz", ELEMENTS, "subset", 10, 3)
    # a copy lacking frames the target method could not label: those leave both files' slice
    from ase.io import read, write

    write(
        tmp_path / "held_gfn2_gaps.xyz",
        [a for i, a in enumerate(read(tmp_path / "held_gfn2.xyz", ":")) if i not in (1, 2, 7)],
    )
    frames, twins = held_out_slice(
        tmp_path / "held.xyz", tmp_path / "held_gfn2_gaps.xyz", ELEMENTS, "subset", 100, 3, ("short_range",)
    )
    assert len(frames) == 30 - 10 - 6 + 2 - 3  # 1, 2 and 7 are water, not short_range
    assert [a.info["REF_energy"] + 100.0 for a in frames] == [b.info["REF_energy"] for b in twins]
    assert not {1.0, 2.0, 7.0} & {a.info["REF_energy"] for a in frames}
    # the pool then gives replay frames only, all of them drawn from the pool
    replay, held, _ = select_stream(pool, ELEMENTS, 40, 0, seed=7)
    assert len(replay) == 40 and held == []


def test_excluded_config_types_are_never_replayed(tmp_path):
    _slice(tmp_path / "pool.xyz", 60, 2)  # config_type short_range on every fifth frame
    replay, _, stats = select_stream(tmp_path / "pool.xyz", ELEMENTS, 100, 0, seed=1, exclude=("short_range",))
    frames = read(tmp_path / "pool.xyz", ":")
    wanted = [i for i, a in enumerate(frames) if set(a.numbers) <= ELEMENTS and a.info["config_type"] != "short_range"]
    assert sorted(f.index for f in replay) == wanted and stats["usable"] == len(wanted) == 32
