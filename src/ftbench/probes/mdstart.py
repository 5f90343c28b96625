"""The common MD start of a benchmark: one structure every model's robustness MD starts from.

Written once per benchmark (rule `md_start`), so starts are comparable across models and the
strain a model must cope with is not relaxed away by the model itself. The rule, in order:
1. `--from-file`: a shipped reference-level frame (relaxed or equilibrated) used as is;
2. else the test structure at `--index`, relaxed with FIRE at the reference level of theory
   when a reference calculator exists (`--method`, a tblite method: the demo benchmarks);
3. else that test structure as is (the study's benchmarks have no reference calculator here).
The record says which rule applied.

A shipped file read here directly (not through `ftbench fetch`) is checked against its sha256 pin
in the config's `sources_file` first (`--sources`; `verify_pinned`, also used by `ftbench rdf`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ftbench.core.errors import FtbenchError
from ftbench.runtime.provenance import Provenance

log = logging.getLogger("ftbench.probes.mdstart")


def pinned_sha256(path: Path, sources_file: Path, lock: Path | None = None) -> tuple[str | None, str | None]:
    """Return the sha256 a sources file pins for a shipped file, and where it is pinned.

    Parameters
    ----------
    path
        A file of a `kind: local` source (e.g. data/demo/reference/water_start.xyz).
    sources_file
        The config's `sources_file` (data/demo/sources.yaml).
    lock
        Lock file with the hashes of entries whose sha256 is null (default: fetch's).

    Returns
    -------
    tuple
        (sha256, "FILE: sources.NAME.files.LOGICAL"); (None, None) when no local source holds the
        file, (None, where) when its entry pins nothing.
    """
    from ftbench.data.fetch import DEFAULT_LOCK, REPO_ROOT, load_sources, local_file, read_lock

    target = Path(path).resolve()
    for name, src in load_sources(sources_file).items():
        if src["kind"] != "local":
            continue
        for logical, entry in src["files"].items():
            if local_file(src, entry["path"]).resolve() == target:
                where = f"{sources_file}: sources.{name}.files.{logical}"
                pinned = entry.get("sha256")
                if not pinned:
                    lock_path = Path(lock) if lock else REPO_ROOT / DEFAULT_LOCK
                    pinned = read_lock(lock_path if lock_path.is_file() else None).get(f"{name}/{entry['path']}")
                return (pinned.lower() if pinned else None), where
    return None, None


def verify_pinned(path: Path, sources_file: Path | None, option: str) -> str | None:
    """Refuse a shipped file whose bytes no longer match its pinned sha256; return the pin checked.

    Files fetched with `ftbench fetch` are checked there; shipped files a rule reads directly
    (the MD start frame, the RDF reference trajectory) are checked here, before use. A file no
    local source holds is used with a warning (a user's own file has no pin).
    """
    if sources_file is None:
        return None
    from ftbench.runtime.provenance import sha256

    if not Path(sources_file).is_file():
        raise FtbenchError(f"sources file {sources_file} (config `sources_file`) does not exist; fix `sources_file`")
    expected, where = pinned_sha256(path, sources_file)
    if expected is None:
        log.warning(
            "%s %s is %s: its sha256 is not verified",
            option,
            path,
            f"not pinned ({where} has no sha256)" if where else f"not a file of any local source in {sources_file}",
        )
        return None
    got = sha256(path)
    if got != expected:
        raise FtbenchError(
            f"{option} {path} has sha256 {got}, but {where} pins {expected}: the shipped file was changed or "
            f"damaged. Restore it (`git checkout -- {path}`), or, if you changed it on purpose, put its new "
            f"sha256 in {sources_file}"
        )
    return expected


def reference_relax(atoms, method: str, charge: int, fmax: float, steps: int):
    """FIRE at the reference level (tblite; positions only: the cell is the benchmark's)."""
    from ase.optimize import FIRE
    from tblite.ase import TBLite

    work = atoms.copy()
    work.calc = TBLite(method=method, charge=charge, verbosity=0)
    opt = FIRE(work, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    fmax_reached = float(np.linalg.norm(work.get_forces(), axis=1).max())
    work.calc = None
    return work, {"converged": converged, "steps": int(opt.nsteps), "fmax_eV_per_A": fmax_reached}


def clean(atoms):
    """Positions, numbers, cell, pbc and charge only: no labels or velocities travel into MD."""
    from ase import Atoms

    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if "total_charge" in atoms.info:
        out.info["total_charge"] = atoms.info["total_charge"]
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench md-start` options to `p`."""
    p.add_argument("--structures", type=Path, help="the benchmark's test set (extxyz)")
    p.add_argument("--index", type=int, default=0, help="frame of --structures")
    p.add_argument(
        "--from-file",
        type=Path,
        default=None,
        help="a reference-level frame to use as is (config robustness.start.file)",
    )
    p.add_argument("--method", default=None, help="tblite method of the reference level (demo benchmarks)")
    p.add_argument("--charge", type=int, default=0)
    p.add_argument("--fmax", type=float, default=0.05, help="reference relaxation force limit (eV/A)")
    p.add_argument("--steps", type=int, default=200, help="reference relaxation step limit (0: no relaxation)")
    p.add_argument(
        "--sources",
        type=Path,
        default=None,
        help="the config's sources_file: a shipped --from-file is checked against its sha256 pin there",
    )
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run `ftbench md-start` with parsed `args`: write the MD start structure; return the exit code."""
    from ase.io import read, write

    source = args.from_file or args.structures
    if source is None:
        raise FtbenchError("ftbench md-start needs --structures or --from-file")
    if not source.is_file():
        raise FtbenchError(f"{'--from-file' if args.from_file else '--structures'} {source} does not exist")
    pinned = verify_pinned(args.from_file, args.sources, "--from-file") if args.from_file is not None else None
    prov = Provenance([source])
    if args.from_file is not None:
        atoms, rule, extra = read(source, index=-1), "reference frame from file", {}
        if pinned:
            extra["sha256_pinned"] = pinned
    else:
        frames = read(source, ":")
        if not -len(frames) <= args.index < len(frames):
            raise FtbenchError(
                f"--index {args.index} out of range: {source} holds {len(frames)} structures "
                "(config robustness.structure_index)"
            )
        atoms = frames[args.index]
        if args.method and args.steps > 0:
            atoms, extra = reference_relax(atoms, args.method, args.charge, args.fmax, args.steps)
            rule = f"test structure {args.index}, relaxed at the reference level ({args.method})"
        else:
            rule, extra = f"test structure {args.index} as is (no reference calculator)", {}
    atoms = clean(atoms)
    atoms.info["md_start"] = rule
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    write(tmp, atoms, format="extxyz")
    tmp.replace(args.out)  # a killed step never leaves a half-written start behind
    prov.write(args.out.with_suffix(".json"), [args.out], extra={"rule": rule, **extra})
    log.info("MD start of %s: %s", args.out, rule)
    return 0
