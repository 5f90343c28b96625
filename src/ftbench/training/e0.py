"""E0 re-estimation as its own step: the E0s a run uses are a visible artefact (e0.json).

Modes (study.md, "E0s"): `estimated` (foundation predictions on the training set, least-squares
per-element corrections, via mace's estimate_e0s_from_foundation), `isolated` (isolated-atom
energies at the target level of theory), `average` (least-squares fit of reference energies on
composition, mace's compute_average_E0s) and `foundation` (the foundation model's own E0s).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols
from ase.io import read

from ftbench.core.errors import FtbenchError
from ftbench.data.datacheck import DEFAULTS as DATA_CHECKS
from ftbench.data.datacheck import unit_verdict
from ftbench.runtime.provenance import Provenance, write_json

log = logging.getLogger("ftbench.training.e0")
MODES = ("estimated", "isolated", "average", "foundation")


def _configs(atoms_list):
    from mace import data

    return [data.config_from_atoms(a, key_specification=_keyspec()) for a in atoms_list]


def _keyspec():
    from mace.data.utils import KeySpecification

    return KeySpecification(info_keys={"energy": "REF_energy"}, arrays_keys={"forces": "REF_forces"})


def isolated_e0s(isolated_atoms, zs: list[int], path: str, scratch: bool = False) -> dict[int, float]:
    """Return the E0s of `zs` from IsolatedAtom configurations; refuse an element without one."""
    found = {int(a.numbers[0]): float(a.info["REF_energy"]) for a in isolated_atoms}
    missing = [chemical_symbols[z] for z in zs if z not in found]
    if missing:
        raise FtbenchError(
            f"{path} has no IsolatedAtom configuration for {', '.join(missing)}; {isolated_advice(scratch)}"
        )
    return {z: found[z] for z in zs}


def isolated_advice(scratch: bool) -> str:
    """Return what to do without isolated-atom energies (scratch has no foundation model to estimate from)."""
    add = (
        "add one single-atom frame per element (config_type=IsolatedAtom, energy at the data's level of theory) "
        "to the benchmark file"
    )
    if scratch:
        return (
            f"{add}, or set `e0_without_foundation: average` (a least-squares fit on composition), or drop "
            "scratch from `strategies`"
        )
    return f"{add}, or use `e0: [estimated]` (fitted from the foundation model's predictions)"


def compute_e0s(
    mode: str, train, zs: list[int], model=None, isolated=None, isolated_path: str = "", device: str = "cpu"
) -> dict[int, float]:
    """Return the E0 (eV) of each atomic number in `zs` under e0 `mode`.

    isolated: from IsolatedAtom configurations; average: mace's least-squares fit on `train`;
    foundation: the foundation model's own; estimated: mace's estimate from the foundation model's
    predictions on `train`. The last two need `model`.
    """
    from mace import data
    from mace.tools.utils import AtomicNumberTable

    z_table = AtomicNumberTable(zs)
    if mode == "isolated":
        return isolated_e0s(isolated or [], zs, isolated_path, scratch=model is None)
    if mode == "average":
        return {int(z): float(e) for z, e in data.compute_average_E0s(_configs(train), z_table).items()}
    if model is None:
        raise FtbenchError(f"e0 mode {mode!r} needs a foundation model (--model)")
    from ftbench.probes.inference import model_e0s

    fm_e0s = model_e0s(model)
    if mode == "foundation":
        return {z: fm_e0s[z] for z in zs}
    estimated = data.estimate_e0s_from_foundation(
        foundation_model=model, foundation_e0s=fm_e0s, collections_train=_configs(train), z_table=z_table, device=device
    )
    return {int(z): float(e) for z, e in estimated.items()}


def composition_rank_warning(train, zs: list[int], mode: str, data) -> str | None:
    """Return a warning when the training compositions cannot separate the elements' E0s, else None.

    A fit of energies on element counts determines only the combinations of E0s that the counts
    span: in pure water every configuration is H2O-stoichiometric, so only 2 E0(H) + E0(O) is fixed.
    """
    if mode not in ("estimated", "average") or len(zs) < 2:
        return None
    counts = np.array([[int(np.sum(a.numbers == z)) for z in zs] for a in train], dtype=float)
    rank = int(np.linalg.matrix_rank(counts)) if len(counts) else 0
    if rank >= len(zs):
        return None
    keeps = (
        "the foundation model's E0s are kept along the rest (least-norm correction)"
        if mode == "estimated"
        else "the split along the rest is arbitrary (least-norm E0s)"
    )
    return (
        f"E0 fit under-determined: the compositions of {data} span {rank} of {len(zs)} element directions "
        f"({', '.join(chemical_symbols[z] for z in zs)}), so energies fix only those combinations of E0s; "
        f"{keeps}. Errors on compositions like the training set's are unaffected; energies of other "
        "compositions (the pretraining slice) carry the split. To fix the split, add training configurations "
        "of other stoichiometry, or put IsolatedAtom frames at the data's level of theory in the benchmark file "
        "and use `e0: [isolated]` (isolated atoms alone do not enter an estimated or average fit)"
    )


def mismatch_rmse(model, train, e0s: dict[int, float], preds: list[dict]) -> float:
    """Return the energy RMSE per atom (eV) of the foundation model with these E0s on the training set.

    That is what a fine-tune sees at its first epoch, before any training (`preds`: the model's
    predictions on `train`).
    """
    from ftbench.probes.inference import model_e0s

    fm = model_e0s(model)
    err = []
    for atoms, p in zip(train, preds):
        shift = sum(e0s[z] - fm[z] for z in atoms.numbers)
        err.append((atoms.info["REF_energy"] - (p["energy"] + shift)) / len(atoms))
    return float(np.sqrt(np.mean(np.square(err))))


# Above this an error is not an E0 offset but labels in another unit (Hartree, kcal/mol) or of
# another quantity (e.g. a total energy per molecule read as per atom).
UNIT_SUSPECT_EV_PER_ATOM = 5.0
ADVICE = {
    "estimated": "the estimated E0s are already the best per-element fit, so the labels themselves "
    "disagree with the foundation model",
    "foundation": "use `e0: [estimated]` (per-element fit to the training set) or isolated-atom energies "
    "at the target level of theory (`e0: [isolated]`)",
    "isolated": "check that the IsolatedAtom energies are at the benchmark's level of theory, or use `e0: [estimated]`",
    "average": "use `e0: [estimated]`, which starts from the foundation model's own predictions",
}


def mismatch_message(mode: str, rmse: float, threshold: float, data, action: str) -> str:
    """Return the E0-mismatch warning, with advice that fits the E0 mode and the `e0_mismatch.action`."""
    msg = (
        f"E0 mismatch: with e0 mode {mode!r} the foundation model's energy RMSE on {data} is "
        f"{rmse:.3f} eV/atom before training (threshold {threshold}); {ADVICE[mode]}"
    )
    if rmse > UNIT_SUSPECT_EV_PER_ATOM:
        msg += (
            "; an error this large usually means the energies are not in eV (Hartree? kcal/mol?) or "
            "not total energies: check the benchmark's `energy_key` and units"
        )
    if action == "error":
        return msg + " (or set e0_mismatch.action: warn to train anyway)"
    return msg + (" (e0_mismatch.action: warn, so the runs train anyway; set it to error to stop before training)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench e0` options to `p`."""
    p.add_argument("--data", required=True, type=Path, help="training set (extxyz, REF_energy)")
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--model", type=Path, default=None, help="foundation model (needed by estimated/foundation)")
    p.add_argument("--model-name", default=None, help="foundation model name, for messages")
    p.add_argument(
        "--head", default=None, help="head of a multihead foundation model (E0s and predictions of that head)"
    )
    p.add_argument("--isolated", type=Path, default=None, help="IsolatedAtom configurations (isolated mode)")
    p.add_argument("--threshold", type=float, default=0.4, help="E0-mismatch threshold, eV/atom")
    p.add_argument("--on-mismatch", choices=("warn", "error"), default="warn")
    p.add_argument(
        "--unit-slope-range",
        type=float,
        nargs=2,
        default=DATA_CHECKS["unit_slope_range"],
        help="labels vs foundation predictions: slopes outside refuse the units (config data_checks)",
    )
    p.add_argument("--unit-min-correlation", type=float, default=DATA_CHECKS["unit_min_correlation"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run `ftbench e0` with parsed `args`: write the E0s and check the mismatch; return the exit code."""
    for option, path in (("--data", args.data), ("--model", args.model), ("--isolated", args.isolated)):
        if path is not None and not path.is_file():
            raise FtbenchError(f"e0 {option} {path}: no such file")
    prov = Provenance([args.data, args.model, args.isolated], device=args.device)
    train = read(args.data, ":")
    zs = sorted({int(z) for a in train for z in a.numbers})
    model = None
    if args.model is not None:
        from ftbench.probes.inference import check_elements, elements_of, foundation_for

        model = foundation_for(args.model, args.head, args.device, args.model_name)
        check_elements(
            elements_of(model),
            zs,
            f"training set {args.data}",
            f"foundation model {args.model_name or str(args.model)!r}",
            "choose a foundation model that covers these elements or remove the benchmark from `benchmarks`",
        )
    isolated = read(args.isolated, ":") if args.isolated and args.isolated.stat().st_size else []
    e0s = compute_e0s(args.mode, train, zs, model, isolated, str(args.isolated), args.device)
    result = {
        "mode": args.mode,
        "e0s": {str(z): e for z, e in e0s.items()},
        "symbols": {str(z): chemical_symbols[z] for z in zs},
        "warnings": [],
        "head": model.heads[0] if model is not None and hasattr(model, "heads") else None,
    }
    rank_warning = composition_rank_warning(train, zs, args.mode, args.data)
    if rank_warning:
        # a warning in both modes: it reaches runs.csv and the recommendation's caveats, since the
        # pretraining-slice energies carry the undetermined split (estimated: the foundation's)
        result["warnings"].append(rank_warning)
        log.warning(rank_warning)
    if model is not None:
        from ftbench.probes.inference import predict

        preds = predict(model, train, device=args.device)
        # a scale no E0 can absorb: labels in another unit (before any training, named)
        checks = {"unit_slope_range": args.unit_slope_range, "unit_min_correlation": args.unit_min_correlation}
        result["unit_check"] = unit_verdict(train, preds, f"training set {args.data}", checks)
        rmse = mismatch_rmse(model, train, e0s, preds)
        result["initial_energy_rmse_ev_per_atom"] = rmse
        if rmse > args.threshold:
            msg = mismatch_message(args.mode, rmse, args.threshold, args.data, args.on_mismatch)
            result["warnings"].append(msg)
            if args.on_mismatch == "error":
                raise FtbenchError(msg)
            log.warning(msg)
    log.info("E0s (%s): %s", args.mode, {chemical_symbols[z]: round(e, 4) for z, e in e0s.items()})
    # mace's --E0s reads a JSON file of {Z: energy}; the full record sits beside it.
    write_json(args.out, {str(z): e for z, e in e0s.items()})
    prov.write(args.out.with_suffix(".provenance.json"), [args.out], extra=result)
    return 0
