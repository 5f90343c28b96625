"""Random-weight MACE models with the real foundation architectures, and an MPtrj-format pool.

No real checkpoint can be downloaded in tests, so these stand in for them: the same classes,
irreps, element tables and head layouts, with random weights. Imported by tests and bench/.

- `mp0_medium`: MACE-MP-0 medium's shape (ScaleShiftMACE, 89 elements, 128x0e+128x1o,
  correlation 3, max_ell 3, r_max 6, two residual interactions, radial MLP [64, 64, 64]).
- `multihead`: an MH-1-shaped multihead ScaleShiftMACE; its heads' E0s, scales and shifts
  differ, so a step that reads the wrong head gives visibly different numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

# MPtrj's 89 elements: H..Bi and Ac..Pu (no Po, At, Rn, Fr, Ra)
MP_ELEMENTS = list(range(1, 84)) + list(range(89, 95))
MH1_HEADS = ["mp_pbe", "omat_pbe", "spice_wb97m"]  # the adapted head (omat_pbe) is in the middle


def mp_e0s(zs: list[int]) -> dict[int, float]:
    """E0s for the MP-0 shape. mace-torch 0.3.16's wheel does not ship mp_vasp_e0.json (the mace
    repository has it under mace/calculators/foundations_models/): point FTBENCH_MP_E0_JSON at a
    copy to use it; otherwise seeded values of the same magnitude (-0.1 ... -10 eV) stand in."""
    path = os.environ.get("FTBENCH_MP_E0_JSON")
    if path and Path(path).is_file():
        table = json.loads(Path(path).read_text())
        table = table.get("pbe", table) if isinstance(table, dict) else table
        return {z: float(table[str(z)]) for z in zs}
    rng = np.random.default_rng(89)
    return {z: float(-rng.uniform(0.1, 10.0)) for z in zs}


def build_model(
    zs: list[int],
    *,
    heads: list[str] | None = None,
    channels: int = 128,
    max_L: int = 1,
    correlation: int = 3,
    r_max: float = 6.0,
    num_interactions: int = 2,
    max_ell: int = 3,
    radial_mlp=(64, 64, 64),
    e0s: dict[str, dict[int, float]] | None = None,
    avg_num_neighbors: float = 20.0,
    seed: int = 0,
):
    """A random-weight ScaleShiftMACE (float64). `e0s`: {head: {Z: E0}}; default seeded per head."""
    import mace  # noqa: F401  (first: mace makes e3nn's constants loadable under torch 2.6+)
    import torch
    from e3nn import o3
    from mace import modules
    from mace.tools import torch_tools

    torch_tools.set_default_dtype("float64")
    torch.manual_seed(seed)
    heads = heads or ["Default"]
    if e0s is None:
        rng = np.random.default_rng(seed)
        e0s = {h: {z: float(-rng.uniform(0.1, 10.0)) for z in zs} for h in heads}
    irreps = " + ".join(f"{channels}x{ell}{'e' if ell % 2 == 0 else 'o'}" for ell in range(max_L + 1))
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=r_max,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=max_ell,
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=num_interactions,
        num_elements=len(zs),
        hidden_irreps=o3.Irreps(irreps),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.array([[e0s[h][z] for z in zs] for h in heads]),
        avg_num_neighbors=avg_num_neighbors,
        atomic_numbers=list(zs),
        correlation=correlation,
        gate=torch.nn.functional.silu,
        radial_MLP=list(radial_mlp),
        radial_type="bessel",
        heads=heads,
        atomic_inter_scale=[0.8 + 0.3 * i for i in range(len(heads))],
        atomic_inter_shift=[0.1 * i for i in range(len(heads))],
    )
    # random readouts differ per head already; scale them up so head mix-ups cannot hide
    return model.double()


def mp0_medium(seed: int = 0):
    return build_model(MP_ELEMENTS, e0s={"Default": mp_e0s(MP_ELEMENTS)}, seed=seed, avg_num_neighbors=61.96)


def multihead(zs: list[int] | None = None, heads: list[str] = MH1_HEADS, channels: int = 32, seed: int = 1):
    """MH-1's head layout on a smaller body (CPU time); E0s differ per head by whole eV."""
    zs = zs or MP_ELEMENTS
    base = mp_e0s(zs)
    e0s = {h: {z: base[z] - 1.5 * i for z in zs} for i, h in enumerate(heads)}
    return build_model(zs, heads=heads, channels=channels, e0s=e0s, seed=seed)


def save(model, path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, path)
    return path


def write_mptrj_pool(
    path: Path,
    n: int,
    *,
    elements=("H", "C", "F", "Cl", "O", "Na"),
    atoms_per_frame: int = 8,
    frames_per_material: int = 4,
    seed: int = 0,
    stress_every: int = 1,
) -> Path:
    """An extxyz pool in the MPtrj layout mace's mp_traj_combined.xyz uses: periodic frames with
    `energy`, `forces`, `stress` (ASE's calculator keys), `mp_id` shared by the frames of one
    relaxation trajectory, `calc_id`, `ionic_step`, `config_type`. Frames are written one at a
    time (a million of them never sit in memory). `stress_every=k`: only every k-th frame has one."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i in range(n):
            material = i // frames_per_material
            mrng = np.random.default_rng([seed, material])
            symbols = list(mrng.choice(elements, size=atoms_per_frame))
            cell = np.eye(3) * (2.2 * atoms_per_frame ** (1 / 3) + 1.0)
            atoms = Atoms(symbols, scaled_positions=mrng.random((atoms_per_frame, 3)), cell=cell, pbc=True)
            atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
            results = {
                "energy": float(-3.0 * atoms_per_frame + rng.normal()),
                "forces": rng.normal(0, 0.3, (atoms_per_frame, 3)),
            }
            if i % stress_every == 0:
                s = rng.normal(0, 0.01, (3, 3))
                results["stress"] = (s + s.T) / 2
            atoms.calc = SinglePointCalculator(atoms, **results)
            atoms.info.update(
                mp_id=f"mp-{material}", calc_id=0, ionic_step=i % frames_per_material, config_type="mptrj"
            )
            write(f, atoms, format="extxyz")
    return path


def ch3cl_frames(n: int, seed: int, rattle: float = 0.1) -> list:
    """Rattled CH3Cl frames with random REF_energy/REF_forces labels (tiny real mace runs)."""
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = molecule("CH3Cl")
        a.positions += rng.normal(0, rattle, a.positions.shape)
        a.info["REF_energy"] = float(-20 + rng.normal())
        a.arrays["REF_forces"] = rng.normal(0, 0.5, (len(a), 3))
        a.info["config_type"] = "Default"
        out.append(a)
    return out
