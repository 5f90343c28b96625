"""Benchmark: ftbench RDF + EMD on 1,000 frames of ~500 atoms vs a loop over ase.geometry.rdf.get_rdf.

The get_rdf baseline (one call per frame per pair) is timed on a subset of frames and extrapolated
linearly to all frames; the numbers of both are compared on that subset.
Writes bench/out/bench_rdf.json. Usage: python bench/bench_rdf.py [--frames 1000] [--baseline-frames 30]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.geometry.rdf import get_rdf

from ftbench.probes.emd import emd
from ftbench.probes.rdf import partial_rdf
from ftbench.runtime.provenance import write_json


def water_frames(n_frames: int, n_side: int = 5, seed: int = 0) -> list[Atoms]:
    """n_side^3 + extra water molecules (about 500 atoms) at 1 g/cm^3, random orientations, noisy."""
    rng = np.random.default_rng(seed)
    n_mol = 166  # 498 atoms
    length = (n_mol * 18.015 / 0.60221) ** (1 / 3)  # A, for 1 g/cm^3
    base = molecule("H2O")
    base.positions -= base.get_center_of_mass()
    grid = (np.stack(np.meshgrid(*[np.arange(6)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n_mol] + 0.5) / 6
    frames = []
    for _ in range(n_frames):
        positions, symbols = [], []
        for centre in grid @ (np.eye(3) * length):
            q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
            positions.append(base.positions @ q.T + centre + rng.normal(scale=0.35, size=3))
            symbols += base.get_chemical_symbols()
        frames.append(Atoms(symbols, positions=np.concatenate(positions), cell=[length] * 3, pbc=True))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--baseline-frames", type=int, default=30)
    parser.add_argument("--r-max", type=float, default=6.0)
    parser.add_argument("--bin-width", type=float, default=0.02)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_rdf.json"))
    args = parser.parse_args()

    t = time.perf_counter()
    frames = water_frames(args.frames)
    t_gen = time.perf_counter() - t
    reference = water_frames(args.frames, seed=1)  # a second "model" for the EMD
    n_atoms = len(frames[0])
    pairs = [("H", "H"), ("H", "O"), ("O", "O")]
    n_bins = int(round(args.r_max / args.bin_width))

    # ftbench: all pairs of all frames, then EMD against the reference
    t = time.perf_counter()
    ours = partial_rdf(frames, args.r_max, args.bin_width)
    t_rdf = time.perf_counter() - t
    ref = partial_rdf(reference, args.r_max, args.bin_width)
    import scipy.stats  # noqa: F401  (a one-off import, not part of the per-pair cost)

    t = time.perf_counter()
    distances = {p: emd(ours.r, ours.g[p], ref.r, ref.g[p]) for p in ours.g}
    t_emd = time.perf_counter() - t

    # baseline: get_rdf per frame per pair on a subset, extrapolated
    subset = frames[: args.baseline_frames]
    t = time.perf_counter()
    base = {
        f"{a}-{b}": np.mean([get_rdf(f, args.r_max, n_bins, elements=(a, b), no_dists=True) for f in subset], axis=0)
        for a, b in pairs
    }
    t_base_subset = time.perf_counter() - t
    t_base_all = t_base_subset * args.frames / len(subset)

    check = partial_rdf(subset, args.r_max, args.bin_width)
    max_abs_diff = max(float(np.abs(check.g[p] - base[p]).max()) for p in base)
    base_emd = {p: emd(check.r, base[p], check.r, check.g[p]) for p in base}

    ours_total = t_rdf + t_emd
    result = {
        "frames": args.frames,
        "atoms_per_frame": n_atoms,
        "pairs": [f"{a}-{b}" for a, b in pairs],
        "r_max": args.r_max,
        "bin_width": args.bin_width,
        "ftbench_rdf_s": t_rdf,
        "ftbench_emd_s": t_emd,
        "ftbench_total_s": ours_total,
        "ftbench_ms_per_frame": 1e3 * t_rdf / args.frames,
        "baseline": "ase.geometry.rdf.get_rdf, one call per frame per pair",
        "baseline_frames_timed": len(subset),
        "baseline_subset_s": t_base_subset,
        "baseline_extrapolated_s": t_base_all,
        "baseline_extrapolated": len(subset) < args.frames,
        "speedup": t_base_all / ours_total,
        "max_abs_diff_vs_get_rdf": max_abs_diff,
        "emd_between_ftbench_and_get_rdf": base_emd,
        "emd_vs_reference_frames": distances,
        "frame_generation_s": t_gen,
    }
    print(
        f"{args.frames} frames x {n_atoms} atoms, pairs {', '.join(result['pairs'])}, r_max {args.r_max} A, "
        f"dr {args.bin_width} A"
    )
    print(f"ftbench rdf: {t_rdf:.2f} s ({result['ftbench_ms_per_frame']:.2f} ms/frame), emd: {t_emd * 1e3:.2f} ms")
    extrap = (
        f"timed on {len(subset)} frames ({t_base_subset:.2f} s), extrapolated" if len(subset) < args.frames else "timed"
    )
    print(f"get_rdf loop: {t_base_all:.1f} s for {args.frames} frames ({extrap})")
    print(f"speedup: {result['speedup']:.1f}x (target >= 20x)")
    print(f"max |g_ftbench - g_get_rdf| on the subset: {max_abs_diff:.2e}")
    print("emd between the two models' RDFs: " + ", ".join(f"{p} {v:.4g} A" for p, v in distances.items()))
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
