"""Checks of labelled data before anything trains on it: geometry, duplicates, leakage, units.

Each check raises FtbenchError naming the file, the frame and the fix. No torch: `prepare` and the
pre-flight report (`ftbench grid`, the Snakefile's parse) run them. The unit check against a
foundation model's predictions (`unit_verdict`) is pure numpy; the `e0` step feeds it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import is_isolated_atom, min_pair_distance, perpendicular_widths

# Defaults of the config's `data_checks` block (workflow/schemas/config.schema.yaml).
DEFAULTS = {"min_pair_distance": 0.3, "unit_slope_range": [0.25, 4.0], "unit_min_correlation": 0.5}

# 1 unit = this many eV (energies) or eV/A (forces): what a label in that unit looks like to a
# model that predicts eV, as the slope reference / prediction = 1 / factor.
ENERGY_UNITS = {"Hartree": 27.211386, "Rydberg": 13.605693, "kcal/mol": 0.0433641, "kJ/mol": 0.0103643, "meV": 1e-3}
FORCE_UNITS = {
    "Hartree/Bohr": 51.422067,
    "Hartree/A": 27.211386,
    "Rydberg/Bohr": 25.711034,
    "kcal/mol/A": 0.0433641,
    "kJ/mol/A": 0.0103643,
    "meV/A": 1e-3,
}


def _frame(path, i: int) -> str:
    return f"{path}: frame {i}"


def check_geometry(atoms_list, path, min_distance: float = DEFAULTS["min_pair_distance"]) -> None:
    """Refuse frames an MLIP cannot train or be scored on.

    Non-finite positions, a periodic direction with a zero or flat cell (every atom sits on its
    own images), two atoms closer than `min_distance` (A), and a file that mixes periodic and
    non-periodic frames (isolated atoms aside).
    """
    kinds: dict[tuple, int] = {}
    for i, atoms in enumerate(atoms_list):
        where = _frame(path, i)
        if not np.isfinite(atoms.positions).all():
            raise FtbenchError(f"{where}: positions contain NaN or inf; remove the frame or fix its coordinates")
        pbc = tuple(bool(p) for p in atoms.pbc)
        if any(pbc):
            widths = perpendicular_widths(atoms.cell)[np.asarray(pbc)]
            if not np.isfinite(atoms.cell.array).all() or (widths <= 1e-6).any():
                raise FtbenchError(
                    f"{where}: pbc={list(pbc)} but the cell {np.round(atoms.cell.array, 4).tolist()} is zero or "
                    "flat along a periodic direction; give the real cell (extxyz `Lattice=`) or set pbc=False "
                    '(`pbc="F F F"`) for a molecule'
                )
        if not is_isolated_atom(atoms):
            kinds.setdefault(pbc, i)
            dmin = min_pair_distance(atoms)
            if dmin < min_distance:
                raise FtbenchError(
                    f"{where}: two atoms are {dmin:.3g} A apart (below data_checks.min_pair_distance = "
                    f"{min_distance} A): atoms on top of each other give non-finite errors; remove the frame, "
                    "or lower `data_checks.min_pair_distance` if such close contacts are intended"
                )
    if len(kinds) > 1:
        examples = ", ".join(f"frame {i} pbc={list(p)}" for p, i in kinds.items())
        raise FtbenchError(
            f"{path}: mixes periodic and non-periodic frames ({examples}); mace trains one kind per "
            "benchmark: split them into two benchmarks, or give every frame the same pbc"
        )


def fingerprint(atoms) -> str:
    """Hash of a frame's species, positions (1e-5 A), cell and pbc: equal for copies of one structure."""
    h = hashlib.sha1()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.positions, dtype=float), 5).tobytes())
    h.update(np.round(np.asarray(atoms.cell.array, dtype=float), 5).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    return h.hexdigest()


def check_duplicates(atoms_list, path) -> None:
    """Refuse identical frames in one file: a split could put copies on both sides of it."""
    seen: dict[str, int] = {}
    for i, atoms in enumerate(atoms_list):
        if is_isolated_atom(atoms):
            continue
        key = fingerprint(atoms)
        if key in seen:
            raise FtbenchError(
                f"{path}: frames {seen[key]} and {i} are the same structure (species, positions, cell); a copy in "
                "the training set and one in the test set would score the model on its own training data: "
                "remove the duplicates"
            )
        seen[key] = i


def check_leakage(train, others: dict) -> None:
    """Refuse validation or test frames that are copies of training frames (`others`: name -> (frames, path))."""
    trained = {fingerprint(a): i for i, a in enumerate(train)}
    for name, (frames, path) in others.items():
        for i, atoms in enumerate(frames):
            j = trained.get(fingerprint(atoms))
            if j is not None and not is_isolated_atom(atoms):
                raise FtbenchError(
                    f"{path}: {name} frame {i} is a copy of training-pool frame {j}: its error would be measured "
                    f"on training data; remove it from the {name} file (or from the training data)"
                )


# A correlation this likely by chance (few frames, a model that knows nothing of the data) says
# nothing about units: six random energies correlate above 0.5 about one time in six.
UNIT_CHECK_MAX_P = 0.01


def _slope(ref: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope of ref on pred through zero, their correlation and its p-value."""
    from scipy.stats import pearsonr

    ref, pred = np.ravel(ref), np.ravel(pred)
    denom = float(pred @ pred)
    if denom <= 0 or ref.size < 3 or not (np.std(ref) > 0 and np.std(pred) > 0):
        return float("nan"), float("nan"), float("nan")
    res = pearsonr(ref, pred)
    return float(ref @ pred) / denom, float(res.statistic), float(res.pvalue)


def _nearest_unit(slope: float, units: dict[str, float]) -> str | None:
    """Return the unit whose labels would give this slope (within a factor 1.5), if any."""
    if not np.isfinite(slope) or slope <= 0:
        return None
    name, factor = min(units.items(), key=lambda kv: abs(np.log(slope * kv[1])))
    return name if abs(np.log(slope * factor)) < np.log(1.5) else None


def energy_residuals(frames, energies) -> np.ndarray:
    """Energies less their least-squares fit on composition: what no E0 choice can absorb."""
    zs = sorted({int(z) for a in frames for z in a.numbers})
    counts = np.array([[np.sum(a.numbers == z) for z in zs] for a in frames], dtype=float)
    energies = np.asarray(energies, dtype=float)
    coef, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return energies - counts @ coef


def unit_verdict(frames, preds: list[dict], path, settings: dict | None = None) -> dict:
    """Compare the labels' scale with a foundation model's predictions; raise on a unit mismatch.

    Forces: slope of reference on predicted components. Energies: the same on the energies less
    their composition fit (E0s cannot absorb a scale). A slope is judged only where reference and
    prediction correlate (`unit_min_correlation`, and not by chance: p < UNIT_CHECK_MAX_P): a model
    that is merely poor on the data, or a handful of frames, says nothing about units. Outside
    `unit_slope_range` the error names the unit the slope fits.
    """
    cfg = {**DEFAULTS, **(settings or {})}
    lo, hi = cfg["unit_slope_range"]
    f_ref = np.concatenate([a.arrays["REF_forces"].ravel() for a in frames])
    f_pred = np.concatenate([np.asarray(p["forces"]).ravel() for p in preds])
    e_ref = energy_residuals(frames, [a.info["REF_energy"] for a in frames])
    e_pred = energy_residuals(frames, [p["energy"] for p in preds])
    out = {}
    for quantity, (ref, pred, units, si) in {
        "forces": (f_ref, f_pred, FORCE_UNITS, "eV/A"),
        "energies": (e_ref, e_pred, ENERGY_UNITS, "eV"),
    }.items():
        slope, corr, p = _slope(ref, pred)
        judged = bool(np.isfinite(corr) and corr >= cfg["unit_min_correlation"] and p < UNIT_CHECK_MAX_P)
        out[quantity] = {"slope": slope, "correlation": corr, "p_value": p, "judged": judged}
        if not judged or lo <= slope <= hi:
            continue
        unit = _nearest_unit(slope, units)
        cause = (
            f"the labels look like {unit}, not {si}" if unit else f"the labels are not in {si}, or of another quantity"
        )
        raise FtbenchError(
            f"{path}: the reference {quantity} are {slope:.3g} x the foundation model's predictions (least-squares "
            f"slope, correlation {corr:.2f}; expected about 1, allowed {lo}-{hi} by data_checks.unit_slope_range): "
            f"{cause}. Convert the benchmark's labels to eV and eV/A (energy_key/forces_key in the catalog entry), "
            "or widen `data_checks.unit_slope_range` if the scale is real"
        )
    return out
