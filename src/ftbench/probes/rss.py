"""Random structure search as a probe of the repulsive wall.

Random structures at a fixed composition over a density range, positions uniform with no
minimum separation (so close contacts occur), and a fraction with one pair deliberately placed
closer than the collapse distance. Each is relaxed with FIRE (cell too, through
FrechetCellFilter, when periodic). A structure collapses when a pair ends closer than
`collapse_fraction` of the sum of its two covalent radii (a hole in the repulsive wall; pair
specific, so a Na-Cl contact is judged on its own scale, not on H-H's), when the calculator returns non-finite
numbers, or when the cell caves in.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from ase import Atoms

from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import min_pair_distance
from ftbench.probes.calculators import add_model_arguments
from ftbench.runtime.provenance import finite_or_none, write_json

# g/cm^3 per amu/A^3
_AMU_PER_A3_IN_G_PER_CM3 = 1.66053906660
# below this volume per atom (A^3) a periodic cell has caved in
_MIN_VOLUME_PER_ATOM = 0.5


def parse_composition(text: str) -> dict[str, int]:
    """'H2O' -> {'H': 2, 'O': 1}; 'Na1Cl1H16O8' -> {'Na': 1, 'Cl': 1, 'H': 16, 'O': 8}."""
    from ase.data import atomic_numbers
    from ase.formula import Formula

    try:
        counts = Formula(text).count()
    except Exception as err:
        raise FtbenchError(
            f"--composition {text!r} is not a chemical formula ({err}); write e.g. H2O or Na1Cl1H16O8"
        ) from None
    bad = [s for s in counts if s not in atomic_numbers]
    if not counts or bad:
        raise FtbenchError(f"--composition {text!r}: unknown element(s) {bad}")
    return {s: int(n) for s, n in counts.items() if n > 0}


def parse_range(text: str, option: str = "--density-range") -> tuple[float, float]:
    """Return (low, high) of a `low,high` option, refusing anything but 0 < low <= high."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise FtbenchError(f"{option} {text!r}: write two numbers separated by a comma, e.g. 0.5,1.5") from None
    if not (0 < lo <= hi):
        raise FtbenchError(f"{option} {text!r}: need 0 < low <= high")
    return lo, hi


def random_structure(
    composition: dict[str, int],
    density: float,
    rng: np.random.Generator,
    periodic: bool = True,
    close_contact: float | None = None,
) -> Atoms:
    """Atoms at `density` (g/cm^3): uniform positions in a cube (periodic) or a sphere (cluster).

    With `close_contact` (A), one random atom is moved to that distance from another.
    """
    from ase.data import atomic_masses, atomic_numbers

    symbols = [s for s, n in composition.items() for _ in range(n)]
    rng.shuffle(symbols)
    mass = sum(atomic_masses[atomic_numbers[s]] for s in symbols)
    volume = mass * _AMU_PER_A3_IN_G_PER_CM3 / density  # A^3
    n = len(symbols)
    if periodic:
        length = volume ** (1.0 / 3.0)
        atoms = Atoms(symbols, scaled_positions=rng.random((n, 3)), cell=[length] * 3, pbc=True)
    else:
        radius = (3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0)
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1)[:, None]
        positions = direction * radius * rng.random(n)[:, None] ** (1.0 / 3.0)
        atoms = Atoms(symbols, positions=positions, pbc=False)
    if close_contact is not None and n >= 2:
        i, j = rng.choice(n, size=2, replace=False)
        u = rng.normal(size=3)
        atoms.positions[j] = atoms.positions[i] + close_contact * u / np.linalg.norm(u)
        if periodic:
            atoms.wrap()
    return atoms


def covalent_threshold(symbols_a, symbols_b, fraction: float) -> np.ndarray:
    """Pair-specific collapse distance: `fraction` of the sum of the two covalent radii (A)."""
    from ase.data import atomic_numbers, covalent_radii

    ra = covalent_radii[[atomic_numbers[s] for s in symbols_a]]
    rb = covalent_radii[[atomic_numbers[s] for s in symbols_b]]
    return fraction * (np.asarray(ra) + np.asarray(rb))


def min_covalent_ratio(atoms: Atoms) -> tuple[float, str | None]:
    """Smallest pair distance / sum of covalent radii, and that pair ('H-O'); (nan, None) if no pair."""
    from ase.data import covalent_radii

    from ftbench.data.geometry import pair_list, pair_name

    if len(atoms) < 2 or not np.isfinite(atoms.positions).all():
        return float("nan"), None
    cutoff = 2.0 * float(covalent_radii[atoms.numbers].max())
    i, j, d = pair_list(atoms, cutoff, "ijd")
    if len(d) == 0:
        return float("inf"), None
    ratio = d / (covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]])
    k = int(np.argmin(ratio))
    symbols = atoms.get_chemical_symbols()
    return float(ratio[k]), pair_name(symbols[i[k]], symbols[j[k]])


def _results_snapshot(atoms: Atoms) -> Atoms:
    from ase.calculators.singlepoint import SinglePointCalculator

    frame = atoms.copy()
    results = {k: v for k, v in getattr(atoms.calc, "results", {}).items() if k in ("energy", "forces", "stress")}
    if results:
        frame.calc = SinglePointCalculator(frame, **results)
    return frame


def relax(atoms: Atoms, calc, fmax: float = 0.05, max_steps: int = 200) -> tuple[Atoms, dict]:
    """FIRE relaxation (positions and, if periodic, cell). Returns the last geometry and a record."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms = atoms.copy()
    atoms.calc = calc
    periodic = bool(np.asarray(atoms.pbc).all())
    target = FrechetCellFilter(atoms) if periodic else atoms
    opt = FIRE(target, logfile=None)
    status, detail, converged = "max_steps", "", False
    try:
        for converged in opt.irun(fmax=fmax, steps=max_steps):
            forces = atoms.calc.results.get("forces")
            energy = atoms.calc.results.get("energy")
            if forces is None or not np.isfinite(forces).all() or (energy is not None and not np.isfinite(energy)):
                status = "nonfinite"
                break
            if periodic and abs(atoms.cell.volume) / len(atoms) < _MIN_VOLUME_PER_ATOM:
                status = "cell_collapse"
                break
            if converged:
                status = "converged"
                break
    except Exception as err:  # a calculator failing on a collapsed geometry is a result
        status, detail = "error", f"{type(err).__name__}: {err}"
    record = {"status": status, "converged": status == "converged", "steps": int(opt.nsteps)}
    if detail:
        record["detail"] = detail
    return atoms, record


def run_rss(
    calc,
    composition: dict[str, int] | str,
    *,
    n_structures: int = 20,
    density_range: tuple[float, float] = (0.5, 1.5),
    periodic: bool = True,
    fmax: float = 0.05,
    max_steps: int = 200,
    collapse_fraction: float = 0.5,
    close_contact_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[dict, list[Atoms]]:
    """Generate, relax and classify `n_structures`; returns (result dict, relaxed structures)."""
    from ase.data import atomic_masses

    if isinstance(composition, str):
        composition = parse_composition(composition)
    if n_structures < 1:
        raise FtbenchError("--n-structures must be >= 1")
    if not 0 <= close_contact_fraction <= 1:
        raise FtbenchError("--close-contact-fraction must be in [0, 1]")
    if not 0 < collapse_fraction < 2:
        raise FtbenchError("--collapse-fraction must be in (0, 2): a fraction of the sum of covalent radii")
    rng = np.random.default_rng(seed)
    symbols = [s for s, n in composition.items() for _ in range(n)]
    densities = np.linspace(density_range[0], density_range[1], n_structures)
    n_close = int(round(close_contact_fraction * n_structures))
    close = np.zeros(n_structures, dtype=bool)
    close[rng.choice(n_structures, size=n_close, replace=False)] = True

    records, relaxed = [], []
    for k in range(n_structures):
        # the inserted contact: 0.25-1 x the collapse distance of the pair the insertion will make
        # (the smallest threshold of the composition, so it is a close contact for any pair)
        smallest = float(covalent_threshold(symbols, symbols, collapse_fraction).min()) if symbols else 0.0
        contact = rng.uniform(0.25, 1.0) * smallest if close[k] else None
        start = random_structure(composition, float(densities[k]), rng, periodic, contact)
        d0 = min_pair_distance(start)
        final, record = relax(start, calc, fmax, max_steps)
        d1 = min_pair_distance(final)
        ratio, pair = min_covalent_ratio(final)
        energy = final.calc.results.get("energy") if final.calc is not None else None
        broken = record["status"] in ("nonfinite", "cell_collapse", "error")
        collapsed = broken or math.isnan(d1) or math.isnan(ratio) or ratio < collapse_fraction
        volume = abs(final.cell.volume) if periodic else None
        record.update(
            index=k,
            density_initial=float(densities[k]),
            density_final=(float(atomic_masses[final.numbers].sum()) * _AMU_PER_A3_IN_G_PER_CM3 / volume)
            if volume
            else None,
            close_contact_inserted=finite_or_none(contact) if contact is not None else None,
            min_distance_initial=finite_or_none(d0),
            min_distance=finite_or_none(d1),
            min_covalent_ratio=finite_or_none(ratio),
            closest_pair=pair,
            collapsed=bool(collapsed),
            energy=finite_or_none(energy) if energy is not None else None,
            energy_per_atom=finite_or_none(energy / len(final)) if energy is not None else None,
        )
        records.append(record)
        frame = _results_snapshot(final)
        # the energy travels with the calculator results; extxyz refuses a duplicate info key
        frame.info.update({k2: v for k2, v in record.items() if v is not None and k2 not in ("detail", "energy")})
        relaxed.append(frame)

    summary = _summarise(records)
    return {"composition": composition, "structures": records, "summary": summary}, relaxed


def _quantiles(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    q = np.quantile(values, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return dict(zip(["min", "q05", "q25", "median", "q75", "q95", "max"], map(float, q)))


def _summarise(records: list[dict]) -> dict:
    n = len(records)
    return {
        "n_structures": n,
        "n_collapsed": sum(r["collapsed"] for r in records),
        "collapse_fraction": sum(r["collapsed"] for r in records) / n,
        "converged_fraction": sum(r["converged"] for r in records) / n,
        "status": {s: sum(r["status"] == s for r in records) for s in sorted({r["status"] for r in records})},
        "min_distance": _quantiles([r["min_distance"] for r in records]),
        "energy_per_atom": _quantiles([r["energy_per_atom"] for r in records]),
    }


def reference_density(structure, settings: dict) -> tuple[float, str]:
    """g/cm^3 the RSS density factors multiply: the config's, or the MD start's when periodic."""
    from ase.data import atomic_masses

    if settings.get("reference_density"):
        return float(settings["reference_density"]), "config robustness.rss.reference_density"
    if structure.pbc.all():
        mass = float(atomic_masses[structure.numbers].sum())
        return mass * 1.66053906660 / structure.get_volume(), "the MD start structure's cell"
    return 1.0, "1 g/cm^3 (molecular benchmark without robustness.rss.reference_density)"


def probe(ctx) -> dict:
    """Probe `rss` (ftbench.probes.registry): random structures of the benchmark's composition, relaxed.

    Composition and periodicity default to the MD start's; densities are factors of its density.
    """
    from ase.io import write

    s, structure = ctx.settings["rss"], ctx.structure
    composition = s.get("composition") or structure.get_chemical_formula(mode="hill")
    rho, rho_source = reference_density(structure, s)
    lo, hi = s["density_range"]
    summary, relaxed = run_rss(
        ctx.calc,
        composition,
        n_structures=s["n_structures"],
        density_range=(lo * rho, hi * rho),
        periodic=s.get("periodic", bool(structure.pbc.all())),
        fmax=s["fmax"],
        max_steps=s["max_steps"],
        collapse_fraction=s["collapse_fraction"],
        seed=s.get("seed", 0),
    )
    summary["reference_density"] = {"g_per_cm3": rho, "source": rho_source}
    write(ctx.out_dir / "rss_relaxed.xyz", relaxed, format="extxyz")
    return {"rss": summary}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `ftbench rss` options to `parser`."""
    add_model_arguments(parser)
    parser.add_argument("--composition", required=True, help="cell content, e.g. H2O or Na1Cl1H16O8")
    parser.add_argument("--n-structures", type=int, default=20)
    parser.add_argument("--density-range", default="0.5,1.5", help="low,high in g/cm^3 (evenly spaced)")
    parser.add_argument(
        "--periodic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="periodic cubic cells with cell relaxation (default) or free clusters",
    )
    parser.add_argument("--fmax", type=float, default=0.05, help="FIRE force convergence (eV/A)")
    parser.add_argument("--max-steps", type=int, default=200, help="FIRE step limit per structure")
    parser.add_argument(
        "--collapse-fraction",
        type=float,
        default=0.5,
        help="a relaxed pair closer than this fraction of the sum of its covalent radii collapses",
    )
    parser.add_argument(
        "--close-contact-fraction",
        type=float,
        default=0.25,
        help="fraction of structures given one pair at 0.25-1 x the smallest collapse distance",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder: result.json, relaxed.xyz")


def run(args: argparse.Namespace) -> int:
    """Run `ftbench rss` with parsed `args`: write the relaxed structures and result.json; return the exit code."""
    from ase.io import write

    from ftbench.probes.calculators import calculator_for

    composition = parse_composition(args.composition)
    density_range = parse_range(args.density_range)
    calc = calculator_for(args, composition, f"--composition {args.composition}")
    result, relaxed = run_rss(
        calc,
        composition,
        n_structures=args.n_structures,
        density_range=density_range,
        periodic=args.periodic,
        fmax=args.fmax,
        max_steps=args.max_steps,
        collapse_fraction=args.collapse_fraction,
        close_contact_fraction=args.close_contact_fraction,
        seed=args.seed,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write(out / "relaxed.xyz", relaxed, format="extxyz")
    options = {k: v for k, v in vars(args).items() if k != "command"}
    write_json(out / "result.json", {"options": options, **result})
    s = result["summary"]
    print(f"collapse fraction {s['collapse_fraction']:.2f} ({s['n_collapsed']}/{s['n_structures']})")
    return 0
