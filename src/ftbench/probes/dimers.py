"""Dimer curves E(r) for every element pair and metrics of their short-range repulsive wall.

Energies are shifted to zero at the largest r. The well is the deepest interior local minimum
deeper than `depth_tol` beyond a core radius (`core_fraction` of the sum of the two covalent
radii), so neither a tail wiggle nor a hole at short range is taken for the well; without a well
the wall starts where |E| first exceeds `depth_tol`. From there inwards down to the core radius
the energy must keep rising as r falls: every grid point where it does not (including a
non-finite one) is a wall failure. Inside the core radius, energy falling again as r shrinks is
counted apart, as holes. An attractive-only or flat curve therefore fails everywhere.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from ase import Atoms

from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import element_pairs, pair_name
from ftbench.probes.calculators import add_model_arguments
from ftbench.probes.rdf import write_curves
from ftbench.runtime.provenance import write_json


def parse_elements(text: str) -> list[str]:
    """Return the element symbols of a comma-separated list, without repeats; refuse unknown symbols."""
    from ase.data import atomic_numbers

    elements = [e.strip() for e in text.split(",") if e.strip()]
    bad = [e for e in elements if e not in atomic_numbers]
    if not elements or bad:
        raise FtbenchError(f"--elements {text!r}: write element symbols separated by commas, e.g. H,F,Cl (bad: {bad})")
    return list(dict.fromkeys(elements))


def dimer_curve(calc, a: str, b: str, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw energies and radial forces (on atom b along the bond; > 0 repulsive) of an a-b dimer.

    A point where the calculator fails or returns non-finite numbers is NaN.
    """
    r = np.asarray(r, dtype=float)
    energy = np.full(r.shape, np.nan)
    force = np.full(r.shape, np.nan)
    atoms = Atoms([a, b], positions=[[0.0, 0.0, 0.0], [float(r[0]), 0.0, 0.0]], pbc=False)
    atoms.calc = calc
    for k, rk in enumerate(r):
        atoms.positions = [[0.0, 0.0, 0.0], [rk, 0.0, 0.0]]
        try:
            energy[k] = atoms.get_potential_energy()
            force[k] = atoms.get_forces()[1, 0]
        except Exception:  # a model that fails at short range is a result, not a crash
            continue
    energy[~np.isfinite(energy)] = np.nan
    force[~np.isfinite(force)] = np.nan
    return energy, force


def wall_metrics(
    r: np.ndarray,
    energy: np.ndarray,
    force: np.ndarray | None = None,
    depth_tol: float = 1e-3,
    force_tol: float = 1e-3,
    r_core: float | None = None,
) -> dict:
    """Minimum, well, wall and hole metrics of a shifted curve E(r) on an ascending grid.

    r_core: the core radius (A); None: no core, the well is the outermost minimum and every
    non-rising point inside it is a wall failure (no holes).
    """
    r = np.asarray(r, dtype=float)
    e = np.asarray(energy, dtype=float)
    if r.ndim != 1 or r.shape != e.shape or len(r) < 3 or np.any(np.diff(r) <= 0):
        raise ValueError("need an ascending grid of at least 3 points with one energy each")
    finite = np.isfinite(e)
    out: dict = {"nonfinite_points": int((~finite).sum())}
    if not finite.any():
        return {
            **out,
            "r_min": None,
            "e_min": None,
            "r_well": None,
            "e_well": None,
            "r_wall_start": None,
            "min_at_shortest_r": None,
            "wall_failures": None,
            "r_wall_failures": [],
            "monotonic_wall": False,
            "force_sign_flips": None,
            "r_core": r_core,
            "holes": None,
            "r_holes": [],
            "hole": None,
        }
    e_f = np.where(finite, e, np.inf)
    i_glob = int(np.argmin(e_f))
    n = len(e)
    # first grid point at or beyond the core radius: the wall is checked down to it
    i_core = 0 if r_core is None else int(min(np.searchsorted(r, r_core), n - 1))
    wells = [
        k for k in range(max(1, i_core), n - 1) if e_f[k] < e_f[k - 1] and e_f[k] <= e_f[k + 1] and e[k] < -depth_tol
    ]
    if wells:
        # with a core radius the deepest well (a tail wiggle is never the deepest); without, the outermost
        well = wells[-1] if r_core is None else min(wells, key=lambda k: e_f[k])
        i_start = well
    else:
        well = None
        # no well: check from where the curve leaves zero (flat everywhere: the whole grid)
        significant = np.flatnonzero(np.abs(np.where(finite, e, 0.0)) > depth_tol)
        i_start = int(significant[-1]) if significant.size else n - 1
    i_start = max(i_start, i_core)
    # going inwards (k+1 -> k) from the start the energy must rise; NaN counts as a failure
    fails = [k for k in range(i_core, i_start) if not (e[k] > e[k + 1])]
    # inside the core: energy falling again as r shrinks (or a non-finite point) is a hole
    holes = [k for k in range(i_core) if not (e[k] > e[k + 1] - depth_tol)]
    wells = [well] if well is not None else []
    out.update(
        r_min=float(r[i_glob]),
        e_min=float(e[i_glob]),
        r_well=float(r[wells[-1]]) if wells else None,
        e_well=float(e[wells[-1]]) if wells else None,
        r_wall_start=float(r[i_start]),
        min_at_shortest_r=bool(i_glob == 0),
        wall_failures=len(fails),
        r_wall_failures=[float(r[k]) for k in fails],
        monotonic_wall=bool(len(fails) == 0 and out["nonfinite_points"] == 0),
        r_core=r_core,
        holes=len(holes),
        r_holes=[float(r[k]) for k in holes],
        hole=bool(holes),
    )
    if force is not None:
        f = np.asarray(force, dtype=float)
        signs = np.sign(f[np.isfinite(f) & (np.abs(f) > force_tol)])
        out["force_sign_flips"] = int(np.count_nonzero(signs[1:] != signs[:-1]))
    return out


def core_radius(a: str, b: str, fraction: float | None) -> float | None:
    """`fraction` of the sum of the covalent radii of a and b (A); None without a fraction."""
    from ase.data import atomic_numbers, covalent_radii

    if fraction is None:
        return None
    return float(fraction * (covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]]))


def dimer_curves(
    calc,
    elements: list[str],
    r: np.ndarray,
    depth_tol: float = 1e-3,
    force_tol: float = 1e-3,
    core_fraction: float | None = 0.5,
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Shifted energies (zero at the largest r) and wall and hole metrics for every element pair."""
    curves, metrics = {}, {}
    for a, b in element_pairs(elements):
        energy, force = dimer_curve(calc, a, b, r)
        shift = energy[-1]
        shifted = energy - shift if math.isfinite(shift) else energy
        name = pair_name(a, b)
        curves[name] = shifted
        metrics[name] = {
            "e_reference": None if not math.isfinite(shift) else float(shift),
            **wall_metrics(r, shifted, force, depth_tol, force_tol, core_radius(a, b, core_fraction)),
        }
    return curves, metrics


def probe(ctx) -> dict:
    """Probe `dimers` (ftbench.probes.registry): every element pair of the MD start (or the configured elements)."""
    s = ctx.settings["dimers"]
    r = np.linspace(s["r_min"], s["r_max"], s["n_points"])
    elements = s.get("elements") or sorted(set(ctx.structure.get_chemical_symbols()))
    curves, metrics = dimer_curves(ctx.calc, elements, r, core_fraction=s["core_fraction"])
    write_curves(ctx.out_dir / "dimers.csv", r, curves, fmt="%.8g", r_fmt="%.6f")
    return {"dimers": metrics}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `ftbench dimers` options to `parser`."""
    add_model_arguments(parser)
    parser.add_argument("--elements", required=True, help="comma-separated symbols, e.g. H,F,Cl")
    parser.add_argument("--r-min", type=float, default=0.3, help="shortest distance (A)")
    parser.add_argument("--r-max", type=float, default=6.0, help="longest distance (A); energies are zero here")
    parser.add_argument("--n-points", type=int, default=60)
    parser.add_argument(
        "--depth-tol", type=float, default=1e-3, help="a local minimum shallower than this (eV) is not a well"
    )
    parser.add_argument(
        "--core-fraction",
        type=float,
        default=0.5,
        help="core radius as a fraction of the sum of covalent radii: the well is the deepest "
        "minimum beyond it; energy falling again inside it counts as a hole",
    )
    parser.add_argument(
        "--force-tol", type=float, default=1e-3, help="forces below this (eV/A) are ignored when counting sign flips"
    )
    parser.add_argument("--out", required=True, help="CSV of E(r) (r, then one column per pair); metrics go to .json")


def run(args: argparse.Namespace) -> int:
    """Run `ftbench dimers` with parsed `args`: write the curves and their metrics; return the exit code."""
    from ftbench.probes.calculators import calculator_for

    elements = parse_elements(args.elements)
    if not (0 < args.r_min < args.r_max) or args.n_points < 3:
        raise FtbenchError("need 0 < --r-min < --r-max and --n-points >= 3")
    calc = calculator_for(args, elements, "--elements")
    r = np.linspace(args.r_min, args.r_max, args.n_points)
    curves, metrics = dimer_curves(calc, elements, r, args.depth_tol, args.force_tol, args.core_fraction)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    labels = sorted(curves)
    write_curves(out, r, curves)
    options = {k: v for k, v in vars(args).items() if k != "command"}
    write_json(out.with_suffix(".json"), {"options": options, "pairs": metrics})
    for name in labels:
        m = metrics[name]
        print(
            f"{name}\twall_failures={m['wall_failures']}\tholes={m['holes']}\tr_min={m['r_min']}\te_min={m['e_min']}"
            f"\tr_well={m['r_well']}\te_well={m['e_well']}"
        )
    return 0
