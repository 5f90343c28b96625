"""The robustness evaluations of one model, as the pipeline runs them.

MD stability (a ramp from the benchmark's common start, replicas batched), RDF of a separate
fixed-temperature NVT production segment and its EMD to the benchmark's reference, random
structure search and dimer curves. A result built on calculator errors (an element the model
does not know, a model that cannot evaluate the start) is a failed evaluation, never ok.

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

from ftbench.core.config import check_robustness
from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import minimum_image_radius
from ftbench.probes import dimers, emd, md, rdf, rss
from ftbench.probes.calculators import load_calculator, supported_elements
from ftbench.probes.inference import resolve_device
from ftbench.runtime.provenance import Provenance, write_json
from ftbench.training.finetune import read_run

log = logging.getLogger("ftbench.probes.robustness")


def production_frames(replicas: list[dict], out_dir: Path, skip: int) -> list:
    """Return the frames of the NVT production segment after `skip` frames.

    A failed replica's frames before its failing frame, a stable replica's frames including its last one.
    """
    frames = []
    for r in replicas:
        path = out_dir / Path(r["trajectory"]).name
        if not path.is_file():
            continue
        traj = read(path, ":")
        usable = traj[skip:] if r["reason"] == "stable" else traj[skip:-1]
        frames += usable
    return frames


def unknown_elements(calc, structure) -> list[str]:
    """Return the elements of `structure` the calculator was not trained on (none when it does not say)."""
    known = supported_elements(calc)
    return sorted(set(structure.get_chemical_symbols()) - known) if known is not None else []


def reference_density(structure, settings: dict) -> tuple[float, str]:
    """g/cm^3 the RSS density factors multiply: the config's, or the MD start's when periodic."""
    from ase.data import atomic_masses

    if settings.get("reference_density"):
        return float(settings["reference_density"]), "config robustness.rss.reference_density"
    if structure.pbc.all():
        mass = float(atomic_masses[structure.numbers].sum())
        return mass * 1.66053906660 / structure.get_volume(), "the MD start structure's cell"
    return 1.0, "1 g/cm^3 (molecular benchmark without robustness.rss.reference_density)"


def robustness_of(
    model: Path,
    head: str | None,
    structure,
    settings: dict,
    out_dir: Path,
    reference_rdf: Path | None,
    device: str = "cpu",
) -> tuple[str, str | None, dict]:
    """(status, reason, results) of every robustness probe of one model from the common start."""
    # head None: mace picks the single head, or the fine-tuned 'Default' head of a multihead model
    # float32 halves the MD cost of a condensed-phase box on CPU; the demo models were pretrained in it
    calc = load_calculator(model, head=head, device=device, default_dtype=settings.get("dtype", "float64"))
    missing = unknown_elements(calc, structure)
    if missing:
        return "failed", f"the model does not know element(s) {', '.join(missing)} of the MD start structure", {}
    result: dict = {}

    s = settings["md"]
    md_dir = out_dir / "md"
    md_dir.mkdir(parents=True, exist_ok=True)
    criteria = md.Criteria(s["min_distance"], s["max_force"], s["max_temperature_factor"])
    evaluator = md.evaluator_for(calc)
    result["md"] = md.run_replicas(
        structure,
        evaluator,
        replicas=s["replicas"],
        seed=s.get("seed", 0),
        out_dir=md_dir,
        steps=s["steps"],
        timestep_fs=s["timestep_fs"],
        t_start=s["t_start"],
        t_end=s["t_end"],
        friction=s["friction"],
        thermalise_steps=s.get("thermalise_steps", 0),
        save_every=s["save_every"],
        criteria=criteria,
    )
    log.info("MD: %s", result["md"]["summary"])
    errors = [r for r in result["md"]["replicas"] if r["reason"] == "calculator_error"]
    at_start = [r for r in errors if r["integrated_steps"] == 0]  # the model cannot evaluate the start
    if at_start or (errors and len(errors) == len(result["md"]["replicas"])):
        # a result built on calculator errors is a failure of the evaluation, not an MD failure
        return "failed", f"calculator error during MD: {errors[0]['detail']}", result

    p = settings["production"]
    survival = result["md"]["summary"]["survival_fraction"]
    result["production"] = {"run": survival >= p["min_survival"], "temperature_K": p["temperature"]}
    frames = []
    if result["production"]["run"]:
        prod = md.run_replicas(
            structure,
            evaluator,
            replicas=p["replicas"],
            seed=s.get("seed", 0) + 1000,
            out_dir=md_dir,
            prefix="production",
            steps=p["steps"],
            timestep_fs=s["timestep_fs"],
            t_start=p["temperature"],
            t_end=p["temperature"],
            friction=s["friction"],
            thermalise_steps=p["thermalise_steps"],
            save_every=p["save_every"],
            criteria=criteria,
        )
        result["production"].update(prod)
        frames = production_frames(prod["replicas"], md_dir, settings["rdf"]["skip_frames"])
        log.info("NVT production at %s K: %s", p["temperature"], prod["summary"])
    else:
        result["production"]["reason"] = (
            f"ramp survival {survival:.2f} below robustness.production.min_survival {p['min_survival']}: no RDF"
        )
    result["rdf"] = {"n_frames": len(frames), "source": f"NVT production at {p['temperature']} K"}
    if frames and reference_rdf is not None:
        # same r range as the reference, so the EMD compares like with like
        ref_meta = json.loads(rdf.metadata_path(reference_rdf).read_text())
        r_max = ref_meta["r_max"]
        if structure.pbc.all():
            r_max = min(r_max, min(minimum_image_radius(f) for f in frames))
        table = rdf.partial_rdf(frames, r_max=r_max, bin_width=ref_meta["bin_width"])
        rdf.write_curves(out_dir / "rdf.csv", table.r, table.g)
        write_json(
            rdf.metadata_path(out_dir / "rdf.csv"),
            {
                "kind": table.kind,
                "n_frames": table.n_frames,
                "r_max": table.r_max,
                "bin_width": table.bin_width,
                "pairs": sorted(table.g),
            },
        )
        result["emd"] = emd.emd_tables(out_dir / "rdf.csv", reference_rdf)
        result["emd"]["reference"] = ref_meta.get("label")
        log.info("EMD to %s: %s", reference_rdf, result["emd"]["emd"])

    s = settings["rss"]
    # default: the benchmark's own composition and periodicity, from the MD start structure
    composition = s.get("composition") or structure.get_chemical_formula(mode="hill")
    periodic = s.get("periodic", bool(structure.pbc.all()))
    rho, rho_source = reference_density(structure, s)
    lo, hi = s["density_range"]
    summary, relaxed = rss.run_rss(
        calc,
        composition,
        n_structures=s["n_structures"],
        density_range=(lo * rho, hi * rho),
        periodic=periodic,
        fmax=s["fmax"],
        max_steps=s["max_steps"],
        collapse_fraction=s["collapse_fraction"],
        seed=s.get("seed", 0),
    )
    summary["reference_density"] = {"g_per_cm3": rho, "source": rho_source}
    write(out_dir / "rss_relaxed.xyz", relaxed, format="extxyz")
    result["rss"] = summary
    log.info("RSS: collapse fraction %s", summary["summary"]["collapse_fraction"])

    s = settings["dimers"]
    r = np.linspace(s["r_min"], s["r_max"], s["n_points"])
    elements = s.get("elements") or sorted(set(structure.get_chemical_symbols()))
    curves, metrics = dimers.dimer_curves(calc, elements, r, core_fraction=s["core_fraction"])
    rdf.write_curves(out_dir / "dimers.csv", r, curves, fmt="%.8g", r_fmt="%.6f")
    result["dimers"] = metrics
    return "ok", None, result


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench robustness` options to `p`."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path)
    src.add_argument("--run", type=Path, help="run.json of `ftbench finetune` (failed runs give a status record)")
    p.add_argument("--head", default=None, help="head to evaluate (default: the only head, or 'Default')")
    p.add_argument(
        "--structure",
        required=True,
        type=Path,
        help="the benchmark's common MD start (ftbench md-start), or structures to pick --index from",
    )
    p.add_argument("--index", type=int, default=-1)
    p.add_argument("--reference-rdf", type=Path, default=None, help="reference RDF table for the EMD")
    p.add_argument("--settings", required=True, help="JSON: md, rdf, rss, dimers settings (the config's)")
    p.add_argument("--device", default="auto", help="auto: cuda when a GPU is visible, else cpu")
    p.add_argument("--out-dir", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run `ftbench robustness` with parsed `args`: write robustness.json; return the exit code."""
    settings = json.loads(args.settings)
    model, status, reason = args.model, "ok", None
    if args.run is not None:
        model, status, reason = read_run(args.run)
    structures = read(args.structure, ":")
    if not -len(structures) <= args.index < len(structures):
        raise FtbenchError(f"--index {args.index} out of range: {args.structure} holds {len(structures)} structures")
    check_robustness(settings, args.structure.parent.name)
    args.device = resolve_device(args.device)
    prov = Provenance([model, args.structure, args.reference_rdf], device=args.device)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    if status == "ok":
        status, reason, result = robustness_of(
            model, args.head, structures[args.index], settings, args.out_dir, args.reference_rdf, args.device
        )
        if status != "ok":
            log.error("robustness of %s: %s", model, reason)
    prov.write(
        args.out_dir / "robustness.json", extra={"status": status, "reason": reason, "settings": settings, **result}
    )
    return 0
