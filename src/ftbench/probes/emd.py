"""Earth mover's distance (1-Wasserstein) between two RDF tables, pair by pair.

g(r) is a ratio to the ideal gas, not a density, so periodic RDFs are compared through the
normalised densities proportional to r^2 g(r); cluster pair-distance densities ("pdf") are
compared as they are.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ftbench.core.errors import FtbenchError
from ftbench.probes.rdf import metadata_path, read_csv
from ftbench.runtime.provenance import write_json


def emd(r_a: np.ndarray, g_a: np.ndarray, r_b: np.ndarray, g_b: np.ndarray, kind: str = "rdf") -> float | None:
    """1-Wasserstein distance (A) between two binned curves; None if either carries no weight."""
    from scipy.stats import wasserstein_distance

    if kind not in ("rdf", "pdf"):
        raise ValueError(f"kind must be 'rdf' or 'pdf', not {kind!r}")
    r_a, g_a, r_b, g_b = (np.asarray(x, dtype=float) for x in (r_a, g_a, r_b, g_b))
    w_a = r_a**2 * g_a if kind == "rdf" else g_a.copy()
    w_b = r_b**2 * g_b if kind == "rdf" else g_b.copy()
    for w in (w_a, w_b):
        if not np.isfinite(w).all():
            raise FtbenchError("emd: RDF values must be finite")
        if (w < 0).any():
            raise FtbenchError("emd: RDF values must be non-negative")
    if w_a.sum() <= 0 or w_b.sum() <= 0:
        return None
    return float(wasserstein_distance(u_values=r_a, v_values=r_b, u_weights=w_a, v_weights=w_b))


def _kind_of(path: Path, requested: str) -> str:
    if requested != "auto":
        return requested
    meta = metadata_path(path)
    if meta.is_file():
        return json.loads(meta.read_text()).get("kind", "rdf")
    return "rdf"


def emd_tables(path_a: str | Path, path_b: str | Path, kind: str = "auto") -> dict:
    """EMD per pair common to both tables, plus the pairs found in only one of them."""
    path_a, path_b = Path(path_a), Path(path_b)
    r_a, t_a = read_csv(path_a)
    r_b, t_b = read_csv(path_b)
    kind_a, kind_b = _kind_of(path_a, kind), _kind_of(path_b, kind)
    if kind_a != kind_b:
        raise FtbenchError(
            f"emd: {path_a} is a {kind_a} table but {path_b} is a {kind_b} table; compare like with like "
            "(or force one with --kind)"
        )
    common = sorted(set(t_a) & set(t_b))
    if not common:
        raise FtbenchError(f"emd: {path_a} and {path_b} share no pair columns ({sorted(t_a)} vs {sorted(t_b)})")
    distances = {p: emd(r_a, t_a[p], r_b, t_b[p], kind_a) for p in common}
    values = [v for v in distances.values() if v is not None]
    return {
        "a": str(path_a),
        "b": str(path_b),
        "kind": kind_a,
        "weights": "r^2 g(r)" if kind_a == "rdf" else "p(r)",
        "emd": distances,
        "mean": float(np.mean(values)) if values else None,
        "only_in_a": sorted(set(t_a) - set(t_b)),
        "only_in_b": sorted(set(t_b) - set(t_a)),
    }


def rdf_probe(ctx) -> dict:
    """Probe `rdf` (ftbench.probes.registry): the RDF of the production frames and its EMD to the reference.

    On the reference's r range and bins (capped at the frames' minimum-image radius), so the EMD
    compares like with like. No frames (production not run) or no reference: the RDF section only.
    """
    from ftbench.data.geometry import minimum_image_radius
    from ftbench.probes import rdf
    from ftbench.probes.md import production_frames

    prod = ctx.results["production"]
    frames = []
    if prod["run"]:
        frames = production_frames(prod["replicas"], ctx.out_dir / "md", ctx.settings["rdf"]["skip_frames"])
    out = {"rdf": {"n_frames": len(frames), "source": f"NVT production at {prod['temperature_K']} K"}}
    if not frames or ctx.reference_rdf is None:
        return out
    ref_meta = json.loads(metadata_path(ctx.reference_rdf).read_text())
    r_max = ref_meta["r_max"]
    if ctx.structure.pbc.all():
        r_max = min(r_max, min(minimum_image_radius(f) for f in frames))
    table = rdf.partial_rdf(frames, r_max=r_max, bin_width=ref_meta["bin_width"])
    curves = ctx.out_dir / "rdf.csv"
    rdf.write_curves(curves, table.r, table.g)
    write_json(
        metadata_path(curves),
        {
            "kind": table.kind,
            "n_frames": table.n_frames,
            "r_max": table.r_max,
            "bin_width": table.bin_width,
            "pairs": sorted(table.g),
        },
    )
    out["emd"] = emd_tables(curves, ctx.reference_rdf)
    out["emd"]["reference"] = ref_meta.get("label")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `ftbench emd` options to `parser`."""
    parser.add_argument("a", help="first RDF CSV (from `ftbench rdf`)")
    parser.add_argument("b", help="second RDF CSV")
    parser.add_argument("--out", default=None, help="write the distances as JSON here")
    parser.add_argument(
        "--kind",
        choices=["auto", "rdf", "pdf"],
        default="auto",
        help="rdf: weigh by r^2 g(r); pdf: use the values as densities; auto: read the .meta.json sidecar",
    )


def run(args: argparse.Namespace) -> int:
    """Run `ftbench emd` with parsed `args`: print (and optionally write) the distances; return the exit code."""
    result = emd_tables(args.a, args.b, args.kind)
    for pair, value in result["emd"].items():
        print(f"{pair}\t{'nan' if value is None else f'{value:.6g}'}")
    if args.out:
        write_json(args.out, result)
    return 0
