"""The robustness evaluations of one model, as the pipeline runs them: MD stability, RDF of the
MD frames and its EMD to the benchmark's reference, random structure search and dimer curves.

One process per model (the science lives in md, rdf, emd, rss and dimers): loading torch and
the model once instead of four times keeps a grid of hundreds of models affordable.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from ase.io import read, write

from ftbench.errors import FtbenchError
from ftbench.provenance import Provenance, write_json

log = logging.getLogger("ftbench.robustness")


def md_frames_for_rdf(out_dir: Path, replicas: int, max_temperature: float, skip: int) -> list:
    """Frames of the low-temperature part of the ramp, after `skip` frames, before any failure."""
    frames = []
    for i in range(replicas):
        path = out_dir / f"replica_{i}.xyz"
        if not path.is_file():
            continue
        traj = read(path, ":")
        # the last frame of a failed run is the failing one: it is not a production frame
        usable = traj[skip:-1] if len(traj) > skip + 1 else []
        frames += [f for f in usable if f.info.get("target_temperature", 0.0) <= max_temperature]
    return frames


def prerelax(structure, calc, steps: int, fmax: float):
    """A short FIRE relaxation with the model itself: MD then starts near the model's own minimum
    instead of turning a rattled geometry's strain into heat. A model with a hole in its wall
    may already collapse here; the MD detector reports that at its first frame."""
    atoms = structure.copy()
    if steps > 0:
        from ase.optimize import FIRE

        atoms.calc = calc
        try:
            FIRE(atoms, logfile=None).run(fmax=fmax, steps=steps)
        except Exception as err:  # a blow-up during relaxation is reported by the MD run
            log.warning("pre-relaxation stopped: %s", err)
        atoms.calc = None
    return atoms


def evaluate(model: Path, head: str | None, structure, settings: dict, out_dir: Path,
             reference_rdf: Path | None, device: str = "cpu") -> dict:
    from ftbench import dimers, emd, md, rdf, rss
    from ftbench.calculators import load_calculator

    # head None: mace picks the single head, or the fine-tuned 'Default' head of a multihead model
    calc = load_calculator(model, head=head, device=device)
    result: dict = {}

    s = settings["md"]
    structure = prerelax(structure, calc, s.get("prerelax_steps", 0), s.get("prerelax_fmax", 0.1))
    md_dir = out_dir / "md"
    md_dir.mkdir(parents=True, exist_ok=True)
    criteria = md.Criteria(s["min_distance"], s["max_force"], s["max_temperature_factor"])
    result["md"] = md.run_replicas(structure, calc, replicas=s["replicas"], seed=s.get("seed", 0), out_dir=md_dir,
                                   steps=s["steps"], timestep_fs=s["timestep_fs"], t_start=s["t_start"],
                                   t_end=s["t_end"], friction=s["friction"], save_every=s["save_every"],
                                   criteria=criteria)
    log.info("MD: %s", result["md"]["summary"])

    s = settings["rdf"]
    frames = md_frames_for_rdf(md_dir, settings["md"]["replicas"], s["max_temperature"], s["skip_frames"])
    result["rdf"] = {"n_frames": len(frames)}
    if frames and reference_rdf is not None:
        # same r range as the reference, so the EMD compares like with like
        ref_meta = json.loads(rdf.metadata_path(reference_rdf).read_text())
        r_max = ref_meta["r_max"]
        if structure.pbc.all():
            from ftbench.geometry import minimum_image_radius

            r_max = min(r_max, min(minimum_image_radius(f) for f in frames))
        table = rdf.partial_rdf(frames, r_max=r_max, bin_width=ref_meta["bin_width"])
        rdf.write_csv(table, out_dir / "rdf.csv")
        write_json(rdf.metadata_path(out_dir / "rdf.csv"),
                   {"kind": table.kind, "n_frames": table.n_frames, "r_max": table.r_max,
                    "bin_width": table.bin_width, "pairs": sorted(table.g)})
        result["emd"] = emd.emd_tables(out_dir / "rdf.csv", reference_rdf)
        log.info("EMD to %s: %s", reference_rdf, result["emd"]["emd"])

    s = settings["rss"]
    # default: the benchmark's own composition and periodicity, from the MD starting structure
    composition = s.get("composition") or structure.get_chemical_formula(mode="hill")
    periodic = s.get("periodic", bool(structure.pbc.all()))
    summary, relaxed = rss.run_rss(calc, composition, n_structures=s["n_structures"],
                                   density_range=tuple(s["density_range"]), periodic=periodic,
                                   fmax=s["fmax"], max_steps=s["max_steps"],
                                   collapse_distance=s["collapse_distance"], seed=s.get("seed", 0))
    write(out_dir / "rss_relaxed.xyz", relaxed, format="extxyz")
    result["rss"] = summary
    log.info("RSS: collapse fraction %s", summary["summary"]["collapse_fraction"])

    s = settings["dimers"]
    r = np.linspace(s["r_min"], s["r_max"], s["n_points"])
    elements = s.get("elements") or sorted(set(structure.get_chemical_symbols()))
    curves, metrics = dimers.dimer_curves(calc, elements, r)
    with open(out_dir / "dimers.csv", "w") as f:
        f.write(",".join(["r", *curves]) + "\n")
        for i, ri in enumerate(r):
            f.write(",".join([f"{ri:.6f}", *(f"{curves[p][i]:.8g}" for p in curves)]) + "\n")
    result["dimers"] = metrics
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path)
    src.add_argument("--run", type=Path, help="run.json of `ftbench finetune` (failed runs give a status record)")
    p.add_argument("--head", default=None, help="head to evaluate (default: the only head, or 'Default')")
    p.add_argument("--structure", required=True, type=Path, help="MD starting structures (extxyz)")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--reference-rdf", type=Path, default=None, help="reference RDF table for the EMD")
    p.add_argument("--settings", required=True, help="JSON: md, rdf, rss, dimers settings (the config's)")
    p.add_argument("--device", default="auto", help="auto: cuda when a GPU is visible, else cpu")
    p.add_argument("--out-dir", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = json.loads(args.settings)
    model, status, reason = args.model, "ok", None
    if args.run is not None:
        from ftbench.finetune import read_run

        model, status, reason = read_run(args.run)
    structures = read(args.structure, ":")
    if not -len(structures) <= args.index < len(structures):
        raise FtbenchError(f"--index {args.index} out of range: {args.structure} holds {len(structures)} structures")
    from ftbench.mace_runner import resolve_device

    args.device = resolve_device(args.device)
    prov = Provenance([model, args.structure, args.reference_rdf], device=args.device)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    if status == "ok":
        result = evaluate(model, args.head, structures[args.index], settings, args.out_dir,
                          args.reference_rdf, args.device)
    prov.write(args.out_dir / "robustness.json", extra={"status": status, "reason": reason,
                                                         "settings": settings, **result})
    return 0
