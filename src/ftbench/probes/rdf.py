"""Partial radial distribution functions g_ab(r) of a trajectory, from vesin neighbour lists.

Periodic frames: g_ab(r) = V n_ab(r) / (N_a N_b 4 pi r^2 dr), with n_ab counting ordered (a, b)
pairs (the LAMMPS / ASE >= 3.27 convention), averaged over frames; the mean number of b
neighbours of an a atom within R is then the integral of 4 pi r^2 (N_b / V) g_ab(r) up to R.
Non-periodic frames (clusters): a pair-distance density p_ab(r), normalised by the number of
a-b pairs, so its integral up to r_max is the fraction of pairs closer than r_max.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import element_pairs, minimum_image_radius, pair_list, pair_name
from ftbench.runtime.provenance import write_json


@dataclass
class RDF:
    """Binned partial RDFs: bin centres `r` and one array per pair label ('H-O', ...)."""

    r: np.ndarray
    g: dict[str, np.ndarray]
    kind: str  # "rdf" (periodic g(r)) or "pdf" (non-periodic pair-distance density)
    r_max: float
    bin_width: float
    n_frames: int
    frames_per_pair: dict[str, int] = field(default_factory=dict)


def parse_pairs(spec: str | None, symbols: Iterable[str]) -> list[tuple[str, str]]:
    """'O-H,O-O' -> [('H', 'O'), ('O', 'O')]; None or '' -> all pairs of the elements present."""
    present = set(symbols)
    if not spec:
        return element_pairs(present)
    pairs: list[tuple[str, str]] = []
    for item in spec.split(","):
        parts = [p.strip() for p in item.strip().split("-")]
        if len(parts) != 2 or not all(parts):
            raise FtbenchError(f"--pairs: cannot read {item!r}; write pairs as A-B separated by commas, e.g. O-H,O-O")
        missing = [p for p in parts if p not in present]
        if missing:
            raise FtbenchError(
                f"--pairs: element(s) {', '.join(missing)} of {item!r} are not in the trajectory "
                f"(it has {', '.join(sorted(present))})"
            )
        pair = tuple(sorted(parts))
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def _bins(r_max: float, bin_width: float) -> tuple[int, float]:
    if not (r_max > 0 and bin_width > 0):
        raise FtbenchError(f"--r-max ({r_max}) and --bin-width ({bin_width}) must be positive")
    n_bins = max(1, int(round(r_max / bin_width)))
    return n_bins, r_max / n_bins


def _periodicity(frames: Sequence[Atoms]) -> bool:
    kinds = {tuple(bool(x) for x in f.pbc) for f in frames}
    if kinds == {(True, True, True)}:
        return True
    if kinds == {(False, False, False)}:
        return False
    raise FtbenchError(
        "rdf: frames must be all fully periodic (g(r)) or all non-periodic (pair-distance density); "
        f"found pbc {sorted(kinds)}"
    )


def check_r_max(frames: Sequence[Atoms], r_max: float) -> None:
    """Refuse r_max beyond the minimum-image radius of any periodic frame."""
    radius = min(minimum_image_radius(f) for f in frames)
    if r_max > radius * (1 + 1e-9):
        raise FtbenchError(
            f"--r-max {r_max:g} A exceeds the minimum-image radius {radius:.4f} A of the cell "
            "(half its smallest perpendicular width); use --r-max <= that or a larger cell"
        )


def partial_rdf(
    frames: Atoms | Sequence[Atoms],
    r_max: float,
    bin_width: float,
    pairs: Sequence[tuple[str, str]] | str | None = None,
) -> RDF:
    """Partial RDFs (periodic) or pair-distance densities (clusters) averaged over `frames`.

    Bins are [k dr, (k+1) dr); `r` holds bin centres. dr = r_max / round(r_max / bin_width).
    Frames lacking an element of a pair do not enter that pair's average.
    """
    if isinstance(frames, Atoms):
        frames = [frames]
    frames = list(frames)
    if not frames:
        raise FtbenchError("rdf: no frames to analyse (check --skip against the trajectory length)")
    periodic = _periodicity(frames)
    if periodic:
        check_r_max(frames, r_max)
    symbols = sorted({s for f in frames for s in set(f.get_chemical_symbols())})
    if pairs is None or isinstance(pairs, str):
        pairs = parse_pairs(pairs, symbols)
    pairs = [tuple(sorted(p)) for p in pairs]
    n_bins, dr = _bins(r_max, bin_width)
    edges = np.arange(n_bins + 1) * dr
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)

    index = {s: k for k, s in enumerate(symbols)}
    n_el = len(symbols)
    # pair id for every (type_i, type_j); -1 where the pair was not asked for
    pair_id = -np.ones((n_el, n_el), dtype=np.int64)
    for p, (a, b) in enumerate(pairs):
        if a not in index or b not in index:
            raise FtbenchError(f"--pairs: {a}-{b} has an element missing from the trajectory")
        pair_id[index[a], index[b]] = pair_id[index[b], index[a]] = p
    same = np.array([a == b for a, b in pairs])

    acc = np.zeros((len(pairs), n_bins))
    used = np.zeros(len(pairs), dtype=np.int64)
    lookup = np.array([index.get(s, -1) for s in chemical_symbols], dtype=np.int64)  # Z -> type
    for atoms in frames:
        types = lookup[atoms.numbers]
        counts = np.bincount(types, minlength=n_el).astype(float)
        i, j, d = pair_list(atoms, r_max, "ijd")
        pid = pair_id[types[i], types[j]]
        keep = (pid >= 0) & (d < r_max)
        bins = np.minimum((d[keep] / dr).astype(np.int64), n_bins - 1)
        hist = np.bincount(pid[keep] * n_bins + bins, minlength=len(pairs) * n_bins)
        hist = hist.reshape(len(pairs), n_bins).astype(float)
        na = np.array([counts[index[a]] for a, _ in pairs])
        nb = np.array([counts[index[b]] for _, b in pairs])
        if periodic:
            # the half list counts a-a pairs once; ordered counting doubles them
            norm = np.where(same, 2.0, 1.0) * abs(atoms.cell.volume) / np.maximum(na * nb, 1.0)
            present = na * nb > 0
        else:
            n_pairs = np.where(same, na * (na - 1) / 2.0, na * nb)
            norm = 1.0 / (np.maximum(n_pairs, 1.0) * dr)
            present = n_pairs > 0
        acc += hist * (norm * present)[:, None]
        used += present
    g = acc / np.maximum(used, 1)[:, None]
    if periodic:
        g = g / shell[None, :]
    labels = [pair_name(a, b) for a, b in pairs]
    return RDF(
        r=0.5 * (edges[:-1] + edges[1:]),
        g={label: g[k] for k, label in enumerate(labels)},
        kind="rdf" if periodic else "pdf",
        r_max=float(r_max),
        bin_width=float(dr),
        n_frames=len(frames),
        frames_per_pair={label: int(used[k]) for k, label in enumerate(labels)},
    )


def coordination_number(r: np.ndarray, g: np.ndarray, density: float, r_cut: float) -> float:
    """Mean neighbour count within r_cut: sum of 4 pi r^2 rho g(r) dr over bins with centre < r_cut."""
    dr = float(r[1] - r[0]) if len(r) > 1 else float(2 * r[0])
    edges_lo = r - dr / 2
    shell = 4.0 / 3.0 * np.pi * ((edges_lo + dr) ** 3 - edges_lo**3)
    mask = r < r_cut
    return float(density * np.sum(g[mask] * shell[mask]))


def write_curves(
    path: str | Path, r, curves: Mapping[str, np.ndarray], fmt: str = "%.10g", r_fmt: str | None = None
) -> None:
    """Write a per-pair curve table (RDFs, dimer curves).

    CSV with column r, then one per pair ('H-O', 'O-O', ...), sorted by label.
    """
    labels = sorted(curves)
    data = np.column_stack([r] + [curves[k] for k in labels])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(
        path,
        data,
        delimiter=",",
        header=",".join(["r"] + labels),
        comments="",
        fmt=[r_fmt or fmt] + [fmt] * len(labels),
    )


def metadata_path(csv_path: str | Path) -> Path:
    """Sidecar JSON next to an RDF CSV: rdf.csv -> rdf.meta.json."""
    return Path(csv_path).with_suffix(".meta.json")


def read_csv(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read an RDF CSV back: (r, {pair: values})."""
    path = Path(path)
    if not path.is_file():
        raise FtbenchError(f"RDF table {path} does not exist; make it with `ftbench rdf`")
    with path.open() as fh:
        header = fh.readline().strip().split(",")
    if not header or header[0] != "r" or len(header) < 2:
        raise FtbenchError(f"{path}: expected a CSV header 'r,A-B,...' as written by `ftbench rdf`")
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if data.shape[1] != len(header):
        raise FtbenchError(f"{path}: {data.shape[1]} columns but header names {len(header)}")
    return data[:, 0], {name: data[:, k] for k, name in enumerate(header) if k > 0}


def read_frames(path: str | Path, skip: int = 0, every: int = 1) -> list[Atoms]:
    """Read every `every`-th frame of a trajectory after the first `skip`."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise FtbenchError(f"trajectory {path} does not exist")
    if skip < 0 or every < 1:
        raise FtbenchError("--skip must be >= 0 and --every >= 1")
    return read(path, index=f"{skip}::{every}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `ftbench rdf` options to `parser`."""
    parser.add_argument("trajectory", help="trajectory file readable by ase.io (extxyz)")
    parser.add_argument("--pairs", default=None, help="comma-separated pairs, e.g. O-H,O-O (default: all)")
    parser.add_argument(
        "--r-max",
        type=float,
        default=None,
        help="largest r in A (default: min(6, minimum-image radius); refused above that radius)",
    )
    parser.add_argument("--bin-width", type=float, default=0.02, help="bin width in A (default 0.02)")
    parser.add_argument("--skip", type=int, default=0, help="frames to drop from the start (equilibration)")
    parser.add_argument("--every", type=int, default=1, help="use every k-th frame after --skip")
    parser.add_argument(
        "--label", default=None, help="what the frames are, for figures (e.g. 'reference-level NVT, 300 K')"
    )
    parser.add_argument(
        "--sources",
        type=Path,
        default=None,
        help="the config's sources_file: a shipped trajectory is checked against its sha256 pin there",
    )
    parser.add_argument("--out", required=True, help="output CSV (a .meta.json sidecar is written next to it)")


def run(args: argparse.Namespace) -> int:
    """Run `ftbench rdf` with parsed `args`: write the RDF table and its .meta.json; return the exit code."""
    from ftbench.probes.mdstart import verify_pinned

    pinned = None
    if args.sources is not None and Path(args.trajectory).is_file():
        pinned = verify_pinned(Path(args.trajectory), args.sources, "reference trajectory")
    frames = read_frames(args.trajectory, args.skip, args.every)
    if not frames:
        raise FtbenchError(f"{args.trajectory}: no frames left after --skip {args.skip}")
    r_max = args.r_max
    if r_max is None:
        r_max = min(6.0, min(minimum_image_radius(f) for f in frames))
    result = partial_rdf(frames, r_max, args.bin_width, args.pairs)
    write_curves(args.out, result.r, result.g)
    meta = {
        "kind": result.kind,
        "trajectory": str(args.trajectory),
        "n_frames": result.n_frames,
        "frames_per_pair": result.frames_per_pair,
        "r_max": result.r_max,
        "bin_width": result.bin_width,
        "skip": args.skip,
        "every": args.every,
        "pairs": sorted(result.g),
        "label": args.label,
        "sha256_pinned": pinned,
    }
    write_json(metadata_path(args.out), meta)
    print(f"wrote {args.out} ({result.kind}, {result.n_frames} frames, pairs {', '.join(sorted(result.g))})")
    return 0
