"""prepare.split: sizes, disjoint splits, isolated atoms set apart, a fixed seeded order."""

from __future__ import annotations

import pytest
from ase import Atoms

from ftbench.core.errors import FtbenchError
from ftbench.data.prepare import split


def _data():
    configs = []
    for i in range(8):
        a = Atoms("H2", positions=[[0, 0, 0], [0.7 + 0.01 * i, 0, 0]])
        a.info.update(config_type="h2", tag=i)
        configs.append(a)
    for k, symbol in enumerate(("H", "O")):
        atom = Atoms(symbol)
        atom.info.update(config_type="IsolatedAtom", tag=100 + k)
        configs.insert(3 * k, atom)  # isolated atoms anywhere in the file
    return configs


def _tags(atoms_list):
    return [a.info["tag"] for a in atoms_list]


def test_sizes_disjoint_and_isolated_atoms_apart():
    pool, valid, test, isolated = split(_data(), 2, 3, seed=5)
    assert (len(pool), len(valid), len(test)) == (3, 2, 3)  # 8 configurations: 8 - 2 - 3 = 3 to train
    assert sorted(_tags(isolated)) == [100, 101]
    tags = _tags(pool) + _tags(valid) + _tags(test)
    assert sorted(tags) == list(range(8))  # each configuration in exactly one split


def test_same_seed_same_split_and_the_pool_order_is_kept():
    a = split(_data(), 2, 3, seed=5)
    b = split(_data(), 2, 3, seed=5)
    assert [_tags(x) for x in a] == [_tags(x) for x in b]
    # another seed reorders: over a few seeds the validation set is not always the same
    assert len({tuple(_tags(split(_data(), 2, 3, seed=s)[1])) for s in range(5)}) > 1


def test_no_valid_or_test_keeps_everything_for_training():
    pool, valid, test, isolated = split(_data(), 0, 0, seed=1)
    assert sorted(_tags(pool)) == list(range(8)) and valid == [] and test == []


def test_asking_for_all_configurations_is_an_error():
    with pytest.raises(FtbenchError, match="asks for 3 validation \\+ 5 test configurations but only 8 exist"):
        split(_data(), 3, 5, seed=1)


def _trajectories():
    """Four trajectories (groups t0..t3) of 3, 3, 2 and 4 frames, plus an isolated atom."""
    configs = [Atoms("O")]
    configs[0].info.update(config_type="IsolatedAtom", tag=100)
    tag = 0
    for g, n in enumerate((3, 3, 2, 4)):
        for _ in range(n):
            a = Atoms("H2", positions=[[0, 0, 0], [0.7 + 0.01 * tag, 0, 0]])
            a.info.update(config_type="h2", tag=tag, traj=f"t{g}")
            configs.append(a)
            tag += 1
    return configs


@pytest.mark.parametrize("seed", range(6))
def test_group_key_keeps_each_trajectory_in_one_split(seed):
    pool, valid, test, isolated = split(_trajectories(), 2, 3, seed=seed, group_key="traj")
    groups = [{a.info["traj"] for a in part} for part in (pool, valid, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert len(test) >= 3 and len(valid) >= 2 and pool  # counts are minimums, whole groups
    assert sorted(_tags(pool + valid + test)) == list(range(12)) and _tags(isolated) == [100]


def test_group_key_missing_on_a_frame_is_named():
    data = _trajectories()
    del data[5].info["traj"]
    with pytest.raises(FtbenchError, match="1 configurations have no info key 'traj'"):
        split(data, 2, 3, seed=1, group_key="traj", path="bench.xyz")


def test_groups_too_few_for_a_training_set_are_an_error():
    with pytest.raises(FtbenchError, match="leave no training configurations"):
        split(_trajectories(), 4, 5, seed=1, group_key="traj")


def test_grouped_pool_is_shuffled_by_frame_so_small_training_sets_mix_trajectories():
    data = _trajectories()
    for i, a in enumerate(data[1:]):  # four trajectories of three frames
        a.info["traj"] = f"t{i // 3}"
    pools = [split(data, 1, 1, seed=s, group_key="traj")[0] for s in range(8)]
    assert all(len(p) == 6 and len({a.info["traj"] for a in p}) == 2 for p in pools)
    # a pool in trajectory order would start with three frames of one trajectory every time
    assert any(len({a.info["traj"] for a in p[:3]}) > 1 for p in pools)
