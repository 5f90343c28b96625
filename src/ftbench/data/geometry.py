"""Geometry helpers shared by the data and robustness modules.

Isolated atoms, element pairs, pair lists (vesin), minimum-image radius.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

# vesin's cell list slows down with many tiny cells, so short-range checks search at least this far.
_MIN_SEARCH_CUTOFF = 1.0
_MAX_SEARCH_CUTOFF = 4.0


ISOLATED = "IsolatedAtom"  # config_type of a single free atom (mace reads its energy as an E0)


def is_isolated_atom(atoms) -> bool:
    """Return True for an isolated-atom configuration: what mace reads as an E0 rather than a training sample."""
    return len(atoms) == 1 and atoms.info.get("config_type") == ISOLATED


def element_pairs(elements) -> list[tuple]:
    """Return every unordered pair of the distinct elements (self pairs included).

    Each pair and the list are sorted: symbols alphabetically, atomic numbers numerically.
    """
    unique = sorted(set(elements))
    return [(a, b) for i, a in enumerate(unique) for b in unique[i:]]


def pair_name(a: str, b: str) -> str:
    """Canonical pair label: element symbols in alphabetical order, e.g. 'H-O'."""
    return "-".join(sorted((a, b)))


def perpendicular_widths(cell) -> np.ndarray:
    """Distance between opposite faces of the cell, one per lattice direction (0 if degenerate)."""
    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    volume = abs(np.linalg.det(cell))
    widths = np.zeros(3)
    for k in range(3):
        area = np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
        widths[k] = volume / area if area > 0 else 0.0
    return widths


def minimum_image_radius(atoms: Atoms) -> float:
    """Half the smallest perpendicular width over periodic directions; inf when nothing is periodic."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.any():
        return float("inf")
    return float(perpendicular_widths(atoms.cell)[pbc].min() / 2.0)


def _box(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(atoms.cell[:], dtype=float), np.asarray(atoms.pbc, dtype=bool)


def pair_list(atoms: Atoms, cutoff: float, quantities: str = "ijd") -> list[np.ndarray]:
    """Half neighbour list (each pair once, periodic images included) from vesin."""
    from vesin import NeighborList

    box, pbc = _box(atoms)
    nl = NeighborList(cutoff=float(cutoff), full_list=False, n_threads=1)
    return nl.compute(np.asarray(atoms.positions, dtype=float), box, pbc, quantities)


def _mean_spacing(atoms: Atoms) -> float:
    """(volume per atom)^(1/3), using the bounding box for non-periodic systems."""
    n = max(len(atoms), 1)
    if np.asarray(atoms.pbc).all():
        volume = abs(atoms.cell.volume)
    else:
        volume = float(np.prod(np.ptp(atoms.positions, axis=0) + 1.0))
    return (volume / n) ** (1.0 / 3.0)


def min_distance_below(atoms: Atoms, threshold: float) -> float | None:
    """Return the smallest pair distance if it is below `threshold`, else None (cheap: one short-range list)."""
    if len(atoms) < 2 and not np.asarray(atoms.pbc).any():
        return None
    spacing = min(max(_mean_spacing(atoms), _MIN_SEARCH_CUTOFF), _MAX_SEARCH_CUTOFF)
    (d,) = pair_list(atoms, max(threshold, spacing), "d")
    if d.size == 0:
        return None
    dmin = float(d.min())
    return dmin if dmin < threshold else None


def min_pair_distance(atoms: Atoms) -> float:
    """Smallest interatomic distance (periodic images included); inf for a single free atom.

    The search radius starts near the mean spacing and doubles, so a dense or collapsed
    structure never builds a huge list. NaN for non-finite positions.
    """
    if not np.isfinite(atoms.positions).all():
        return float("nan")
    periodic = np.asarray(atoms.pbc).any()
    if len(atoms) < 2 and not periodic:
        return float("inf")
    if periodic:
        widths = perpendicular_widths(atoms.cell)[np.asarray(atoms.pbc)]
        if (widths <= 1e-8).any():
            return 0.0  # a flattened cell puts periodic images on top of each other
    cutoff = max(min(_mean_spacing(atoms), _MAX_SEARCH_CUTOFF), 1e-3)
    limit = 2.0 * float(np.ptp(atoms.positions, axis=0).max()) + 2.0 * float(np.abs(atoms.cell).sum()) + 1.0
    while True:
        (d,) = pair_list(atoms, cutoff, "d")
        if d.size:
            return float(d.min())
        if cutoff > limit:
            return float("inf")
        cutoff *= 2.0
