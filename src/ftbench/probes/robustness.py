"""The robustness evaluations of one model, as the pipeline runs them: every probe of the registry.

The probes (ftbench.probes.registry.PROBES: MD ramp, NVT production, RDF and its EMD, random
structure search, dimer curves) run in registry order from the benchmark's common start, each
reading the results of the probes it needs. A result built on calculator errors (an element the
model does not know, a model that cannot evaluate the start) is a failed evaluation, never ok.

One process per model: loading torch and the model once instead of once per probe keeps a grid of
hundreds of models affordable.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ase.io import read

from ftbench.core.config import check_robustness
from ftbench.core.errors import FtbenchError
from ftbench.probes.calculators import load_calculator, supported_elements
from ftbench.probes.inference import resolve_device
from ftbench.probes.registry import PROBES, ProbeContext, ProbeFailure, check_registry, load
from ftbench.runtime.provenance import Provenance
from ftbench.training.finetune import read_run

log = logging.getLogger("ftbench.probes.robustness")


def unknown_elements(calc, structure) -> list[str]:
    """Return the elements of `structure` the calculator was not trained on (none when it does not say)."""
    known = supported_elements(calc)
    return sorted(set(structure.get_chemical_symbols()) - known) if known is not None else []


def robustness_of(
    model: Path,
    head: str | None,
    structure,
    settings: dict,
    out_dir: Path,
    reference_rdf: Path | None,
    device: str = "cpu",
    probes=PROBES,
) -> tuple[str, str | None, dict]:
    """(status, reason, results) of every registered probe of one model from the common start."""
    # head None: mace picks the single head, or the fine-tuned 'Default' head of a multihead model
    # float32 halves the MD cost of a condensed-phase box on CPU; the demo models were pretrained in it
    calc = load_calculator(model, head=head, device=device, default_dtype=settings.get("dtype", "float64"))
    missing = unknown_elements(calc, structure)
    if missing:
        return "failed", f"the model does not know element(s) {', '.join(missing)} of the MD start structure", {}
    check_registry(probes)
    ctx = ProbeContext(calc, structure, out_dir, settings, reference_rdf)
    for probe in probes:
        try:
            ctx.results.update(load(probe)(ctx))
        except ProbeFailure as exc:
            return "failed", str(exc), {**ctx.results, "failed_probe": probe.name}
        log.info("%s: %s", probe.name, _summary(ctx.results.get(probe.name)))
    return "ok", None, ctx.results


def _summary(section) -> str:
    if isinstance(section, dict) and "summary" in section:
        return json.dumps(section["summary"], default=str)[:300]
    return "done"


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
