"""The embedded demo world: a pretraining corpus and small benchmarks labelled offline with tblite.

The corpus is labelled with GFN1-xTB and the benchmarks with GFN2-xTB: the change of Hamiltonian
plays the part of the study's change of level of theory (PBE -> MP2 etc.), isolated-atom
energies included, so E0 handling matters here as it does for the real models.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.data import atomic_numbers, chemical_symbols
from scipy.spatial.transform import Rotation

from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import element_pairs

log = logging.getLogger("ftbench.demo.demo")

# Molecules from ASE's g2 collection used in the corpus, grouped by the elements they bring.
CORPUS_MOLECULES = [
    "H2",
    "CH4",
    "C2H2",
    "C2H4",
    "C2H6",
    "CH3OH",
    "CH3CH2OH",
    "H2CO",
    "HCOOH",
    "CO",
    "CO2",
    "H2O",
    "H2O2",
    "O2",
    "NH3",
    "N2",
    "HCN",
    "H3CNH2",
    "NO",
    "HF",
    "F2",
    "CH3Cl",
    "HCl",
    "Cl2",
    "ClF",
    "LiH",
    "LiF",
    "Li2",
    "Na2",
    "NaCl",
    "CH3F",
    "CF4",
]
# Small molecules for the organic (SPICE-like) benchmark: H, C, N, O only.
ORGANIC_MOLECULES = ["CH3OH", "CH3CH2OH", "H2CO", "HCOOH", "H3CNH2", "CH3CHO", "CH3CONH2", "C2H6", "CH3COOH", "HCOOCH3"]


def _rotated(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    a = atoms.copy()
    com = a.get_center_of_mass()
    a.positions = Rotation.random(random_state=int(rng.integers(2**31))).apply(a.positions - com)
    return a


def _rattled(atoms: Atoms, rng: np.random.Generator, sigma: float, scale: tuple[float, float]) -> Atoms:
    """Random bond scaling around the centre plus Gaussian noise: compressed and stretched geometries."""
    a = atoms.copy()
    com = a.get_center_of_mass()
    a.positions = com + (a.positions - com) * rng.uniform(*scale)
    a.positions += rng.normal(0.0, sigma, a.positions.shape)
    return a


def _molecule(name: str) -> Atoms:
    if name == "NaCl":
        return Atoms("NaCl", positions=[[0, 0, 0], [2.36, 0, 0]])
    if name == "LiF":
        return Atoms("LiF", positions=[[0, 0, 0], [1.56, 0, 0]])
    if name == "CH3F":
        return Atoms(
            "CH3F", positions=[[0, 0, 0], [1.03, 0, -0.36], [-0.51, 0.89, -0.36], [-0.51, -0.89, -0.36], [0, 0, 1.38]]
        )
    return molecule(name)


def _dimer(z1: int, z2: int, r: float) -> Atoms:
    return Atoms([z1, z2], positions=[[0, 0, 0], [r, 0, 0]])


def _water_box(n_water: int, length: float, rng: np.random.Generator, extra: list[str] = ()) -> Atoms:
    """Randomly placed, randomly oriented molecules in a periodic cube (rejection on O-O distance)."""
    units = [molecule("H2O") for _ in range(n_water)] + [Atoms(s) for s in extra]
    centres: list[np.ndarray] = []
    box = Atoms(cell=[length] * 3, pbc=True)
    for unit in units:
        for _ in range(10000):
            c = rng.uniform(0, length, 3)
            d = [np.linalg.norm((c - x + length / 2) % length - length / 2) for x in centres]
            if all(dd > 2.6 for dd in d):
                break
        else:
            raise FtbenchError(f"could not pack {len(units)} units into a {length} A box")
        centres.append(c)
        box += _rotated(unit, rng).copy() if len(unit) > 1 else unit.copy()
        box.positions[-len(unit) :] += c
    box.wrap()
    return box


def _sn2_config(rng: np.random.Generator) -> Atoms:
    """F- + CH3Cl -> CH3F + Cl- along the collinear reaction coordinate, with umbrella inversion."""
    d_cf = rng.uniform(1.35, 3.6)
    d_ccl = rng.uniform(1.7, 3.6)
    # Umbrella: hydrogens lean away from the nearer partner; planar at equal bond orders.
    lean = np.tanh((d_cf - d_ccl) * 1.5)  # >0: F far, H lean towards F side
    theta = np.deg2rad(90 + 19.5 * lean)
    h = []
    for k in range(3):
        phi = 2 * np.pi * k / 3 + rng.normal(0, 0.05)
        h.append([1.08 * np.sin(theta) * np.cos(phi), 1.08 * np.sin(theta) * np.sin(phi), 1.08 * np.cos(theta)])
    pos = [[0, 0, 0], *h, [0, 0, d_cf], [0, 0, -d_ccl]]
    a = Atoms("CH3FCl", positions=pos)
    a.positions += rng.normal(0, 0.06, a.positions.shape)
    return _rotated(a, rng)


def _ionic_crystal(rng: np.random.Generator, a0: float, species: tuple[str, str]) -> Atoms:
    from ase.build import bulk

    a = bulk("".join(species), "rocksalt", a=a0, cubic=True)
    strain = np.eye(3) + rng.normal(0, 0.02, (3, 3))
    a.set_cell(a.cell @ strain, scale_atoms=True)
    a.positions += rng.normal(0, 0.08, a.positions.shape)
    return a


def generate_structures(kind: str, n: int, seed: int, elements: list[str] | None = None) -> list[Atoms]:
    """Unlabelled structures of one demo family. Families are the demo world's 'benchmarks'."""
    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    if kind == "corpus":
        zs = sorted({atomic_numbers[e] for e in elements}) if elements else None
        mols = [m for m in CORPUS_MOLECULES if zs is None or set(_molecule(m).numbers) <= set(zs)]
        n_dimer = n // 6  # short-range pairs teach the foundation a repulsive wall
        for i in range(n - n_dimer):
            m = _molecule(mols[i % len(mols)])
            out.append(_rotated(_rattled(m, rng, rng.uniform(0.02, 0.12), (0.85, 1.2)), rng))
        # without an element filter the pairs are those of the molecules the corpus holds
        zs = zs or sorted({int(z) for m in mols for z in _molecule(m).numbers})
        pairs = element_pairs(zs)
        for i in range(n_dimer):
            z1, z2 = pairs[i % len(pairs)]
            out.append(_dimer(z1, z2, rng.uniform(0.55, 3.5)))
    elif kind == "sn2":
        out = [_sn2_config(rng) for _ in range(n)]
    elif kind == "water":
        for _ in range(n):
            out.append(_water_box(6, rng.uniform(5.5, 5.9), rng))
    elif kind == "nacl":
        for _ in range(n):
            out.append(_water_box(5, rng.uniform(5.6, 6.0), rng, extra=["Na", "Cl"]))
    elif kind == "organic":
        for i in range(n):
            m = molecule(ORGANIC_MOLECULES[i % len(ORGANIC_MOLECULES)])
            out.append(_rotated(_rattled(m, rng, rng.uniform(0.03, 0.12), (0.92, 1.1)), rng))
    elif kind == "licl":
        out = [_ionic_crystal(rng, rng.uniform(5.0, 5.3), ("Li", "Cl")) for _ in range(n)]
    else:
        raise FtbenchError(
            f"unknown demo generator '{kind}'; choose one of "
            "corpus, sn2, water, nacl, organic, licl (config key `generator`)"
        )
    for i, a in enumerate(out):
        a.info["config_type"] = kind
        a.info["demo_index"] = i
    return out


def label(structures: list[Atoms], method: str, charge: int = 0, progress_every: int = 25) -> list[Atoms]:
    """Attach REF_energy / REF_forces (/ REF_stress when periodic) from tblite; drop failed SCFs."""
    from tblite.ase import TBLite

    labelled = []
    t0 = time.time()
    for i, atoms in enumerate(structures):
        a = atoms.copy()
        a.calc = TBLite(method=method, charge=charge, verbosity=0)
        try:
            energy = a.get_potential_energy()
            forces = a.get_forces()
            stress = a.get_stress(voigt=False) if a.pbc.all() else None
        except Exception as err:  # an unconverged SCF is a lost sample, not a failed world
            log.warning("%s: structure %d skipped, tblite failed: %s", method, i, err)
            continue
        a.calc = None
        a.info["REF_energy"] = float(energy)
        a.arrays["REF_forces"] = np.asarray(forces)
        if stress is not None:
            a.info["REF_stress"] = np.asarray(stress).reshape(9)
        if charge:
            a.info["total_charge"] = charge
        labelled.append(a)
        if (i + 1) % progress_every == 0 or i + 1 == len(structures):
            log.info("labelled %d/%d with %s (%.1f s)", i + 1, len(structures), method, time.time() - t0)
    return labelled


def isolated_atoms(elements: list[str], method: str) -> list[Atoms]:
    """Single-atom energies at the labelling level of theory, as mace expects them."""
    from tblite.ase import TBLite

    out = []
    for el in elements:
        a = Atoms(el)
        a.calc = TBLite(method=method, verbosity=0)
        energy = a.get_potential_energy()
        a.calc = None
        a.info.update(REF_energy=float(energy), config_type="IsolatedAtom")
        a.arrays["REF_forces"] = np.zeros((1, 3))
        out.append(a)
    return out


def make_dataset(
    kind: str, n: int, seed: int, method: str, charge: int = 0, elements: list[str] | None = None
) -> list[Atoms]:
    """Return `n` labelled `kind` structures, preceded by the isolated atoms of the elements they hold."""
    structures = generate_structures(kind, n, seed, elements)
    data = label(structures, method, charge)
    present = sorted({chemical_symbols[z] for a in data for z in a.numbers}, key=lambda s: atomic_numbers[s])
    return isolated_atoms(present, method) + data


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench demo` options to `p`."""
    p.add_argument("--generator", required=True, help="demo family: corpus, sn2, water, nacl, organic, licl")
    p.add_argument("--n", type=int, required=True, help="number of labelled structures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="GFN2-xTB", help="tblite method (GFN1-xTB, GFN2-xTB)")
    p.add_argument("--charge", type=int, default=0)
    p.add_argument("--elements", default=None, help="comma-separated element filter (corpus)")
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run `ftbench demo` with parsed `args`: write the dataset and its provenance; return the exit code."""
    from ase.io import write

    from ftbench.runtime.provenance import Provenance

    prov = Provenance(inputs=[])
    elements = args.elements.split(",") if args.elements else None
    data = make_dataset(args.generator, args.n, args.seed, args.method, args.charge, elements)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(args.out, data, format="extxyz")
    prov.write(
        args.out.with_suffix(".provenance.json"),
        outputs=[args.out],
        extra={"n_structures": len(data), "method": args.method},
    )
    log.info("wrote %d configurations to %s", len(data), args.out)
    return 0
