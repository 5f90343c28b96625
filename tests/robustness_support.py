"""Test support for the robustness modules: small real ASE calculators and a tiny MACE model.

Imported by tests/test_{md,rss,dimers,...}.py; not a test module itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from vesin import ase_neighbor_list as neighbor_list


class PairPotential(Calculator):
    """Pairwise-additive potential e(r) with energy, forces and stress (ASE's own neighbour list)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, pair, cutoff: float = 6.0, **kwargs):
        super().__init__(**kwargs)
        self.pair = pair  # r -> (e(r), de/dr)
        self.cutoff = cutoff

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        i, d, vec = neighbor_list("idD", atoms, self.cutoff)  # full list: every pair twice
        e, de = self.pair(d)
        forces = np.zeros((len(atoms), 3))
        np.add.at(forces, i, (de / d)[:, None] * vec)
        energy = 0.5 * float(e.sum())
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if atoms.pbc.all():
            virial = 0.5 * np.einsum("k,ka,kb->ab", de / d, vec, vec)
            stress = virial / atoms.get_volume()
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]


def morse(depth=0.3, a=1.2, r0=1.5):
    def pair(r):
        x = np.exp(-a * (r - r0))
        return depth * (x * x - 2 * x), depth * (-2 * a * x * x + 2 * a * x)

    return pair


def with_hole(pair, height=15.0, width=0.35):
    """Adds a deep Gaussian well at r = 0: the wall has a hole below ~0.55 A."""

    def holed(r):
        e, de = pair(r)
        g = height * np.exp(-((r / width) ** 2))
        return e - g, de + 2 * r / width**2 * g

    return holed


def attractive_only(depth=1.0, width=1.5):
    """A Gaussian well at r = 0 and no repulsion at all."""

    def pair(r):
        g = depth * np.exp(-((r / width) ** 2))
        return -g, 2 * r / width**2 * g

    return pair


def build_tiny_mace(
    path: Path, elements=("H", "O"), heads=None, r_max: float = 4.0, seed: int = 0, pair_repulsion: bool = False
) -> Path:
    """An untrained, very small ScaleShiftMACE saved as a whole-model file MACECalculator can load.

    pair_repulsion adds mace's ZBL wall, which keeps MD with the random model from collapsing.
    """
    import mace  # noqa: F401  (sets up torch.load for e3nn before e3nn is imported)
    import torch
    from ase.data import atomic_numbers
    from e3nn import o3
    from mace import modules

    heads = list(heads or ["Default"])
    zs = sorted(atomic_numbers[e] for e in elements)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(seed)
        model = modules.ScaleShiftMACE(
            r_max=r_max,
            num_bessel=4,
            num_polynomial_cutoff=5,
            max_ell=1,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
            num_interactions=1,
            num_elements=len(zs),
            hidden_irreps=o3.Irreps("8x0e"),
            MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=np.zeros((len(heads), len(zs))),
            avg_num_neighbors=8.0,
            atomic_numbers=zs,
            correlation=2,
            gate=torch.nn.functional.silu,
            atomic_inter_scale=[1.0] * len(heads),
            atomic_inter_shift=[0.0] * len(heads),
            heads=heads,
            pair_repulsion=pair_repulsion,
        )
        torch.save(model, path)
    finally:
        torch.set_default_dtype(previous)
    return Path(path)


def water_box(n: int = 2, seed: int = 0):
    """n^3 water molecules on a 3.1 A grid (about 1 g/cm^3), slightly rattled."""
    from ase.build import molecule

    w = molecule("H2O")
    w.cell = [3.1, 3.1, 3.1]
    w.pbc = True
    w.center()
    box = w.repeat(n)
    box.rattle(0.02, seed=seed)
    return box
