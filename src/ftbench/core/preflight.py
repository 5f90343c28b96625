"""Pre-flight: what a config will run, what it skips, and every problem findable before a job starts.

`ftbench grid` prints the report; the Snakefile's parse prints it and stops on an error. Data
files that can be read without a download (local paths, `kind: local` sources, fetched copies) are
read once and their facts cached by path, size and mtime (cluster jobs re-parse the Snakefile).
No torch: the elements a foundation model knows are checked by the `check_elements` rule, the
first job of every model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ftbench.core.config import repo_path, sources_path, split_sizes, strategy
from ftbench.core.errors import FtbenchError
from ftbench.core.grid import (
    NO_MODEL,
    benchmark_axes,
    expand_grid,
    models_for,
    models_used,
    pt_slice_available,
    robustness_runs,
    sizes_for,
    skipped_runs,
    untouched_runs,
)

CACHE_DIR = Path(".snakemake") / "ftbench-preflight"
CACHE_VERSION = 3


@dataclass
class Report:
    """Errors stop the run; warnings and the plan are printed before the first job."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Return the report as lines prefixed for the terminal."""
        lines = [f"ftbench plan: {p}" for p in self.plan]
        lines += [f"ftbench note: {n}" for n in self.notes]
        lines += [f"ftbench warning: {w}" for w in self.warnings]
        lines += [f"ftbench error: {e}" for e in self.errors]
        return "\n".join(lines)

    def raise_errors(self) -> None:
        """Raise one FtbenchError holding every error found."""
        if self.errors:
            raise FtbenchError("\n  ".join(["the config cannot run as it is:", *self.errors]))


def raw_files(cfg: dict, benchmark: str) -> dict[str, tuple[Path, bool]]:
    """Return the benchmark's data files readable now, as part -> (path, normalised).

    `normalised`: the file is ftbench's converted copy (REF_* keys), not the user's raw file.
    """
    entry = cfg["catalog"]["benchmarks"][benchmark]
    out = {}
    if entry["source"] == "local":
        for part, key in (("data", "path"), ("valid_data", "valid_path"), ("test_data", "test_path")):
            if entry.get(key):
                out[part] = (repo_path(os.path.expanduser(entry[key])), False)
        return out
    if entry["source"] != "files":
        return out
    sources = {}
    path = sources_path(cfg)
    if path.is_file():
        from ftbench.core.config import read_yaml

        sources = (read_yaml(path) or {}).get("sources") or {}
    sources.update(cfg.get("sources") or {})
    src = sources.get(entry.get("fetch_source"), {})
    for part, name in entry["files"].items():
        fetched = Path(cfg["data_dir"]) / "benchmarks" / benchmark / f"{part}.xyz"
        if fetched.is_file():
            out[part] = (fetched, True)
        elif src.get("kind") == "local" and name in (src.get("files") or {}):
            from ftbench.data.fetch import local_file

            out[part] = (local_file(src, src["files"][name]["path"]), False)
    return out


def _label_present(atoms, key: str) -> bool:
    if key in atoms.info or key in atoms.arrays:
        return True
    return atoms.calc is not None and key in getattr(atoms.calc, "results", {})


def data_facts(path: Path, keys: dict[str, str | None], group_key: str | None, min_distance: float) -> dict:
    """Read a data file once: counts, elements, isolated atoms, compositions, missing keys, data errors."""
    from ase.io import read

    from ftbench.data.datacheck import check_duplicates, check_geometry
    from ftbench.data.geometry import ISOLATED

    try:
        frames = read(path, ":")
    except Exception as err:  # ase raises many types for a malformed file
        return {"read_error": f"{path} is not a readable extxyz file: {type(err).__name__}: {err}"}
    lone = [a for a in frames if len(a) == 1 and (a.info.get("config_type", ISOLATED) == ISOLATED) and not a.pbc.any()]
    rest = [a for a in frames if not any(a is b for b in lone)]
    missing = {}
    for what, key in keys.items():
        if not key:
            continue
        # isolated atoms may omit forces; only periodic frames have a stress
        needs = {"energy": frames, "forces": rest, "stress": [a for a in rest if a.pbc.any()]}[what]
        bad = [i for i, a in enumerate(frames) if any(a is b for b in needs) and not _label_present(a, key)]
        if bad:
            found = sorted(set(frames[bad[0]].info) | set(frames[bad[0]].arrays) - {"numbers", "positions"})
            missing[what] = {"key": key, "frames": len(bad), "first": bad[0], "found": found}
    zs = sorted({int(z) for a in rest for z in a.numbers})
    facts = {
        "frames": len(frames),
        "configurations": len(rest),
        "elements": zs,
        "isolated_elements": sorted({int(a.numbers[0]) for a in lone}),
        "compositions": sorted({tuple(int(np.sum(a.numbers == z)) for z in zs) for a in rest}),
        "missing_keys": missing,
        "group_missing": sum(group_key not in a.info for a in rest) if group_key else 0,
        "groups": len({str(a.info.get(group_key)) for a in rest}) if group_key else None,
        "data_error": None,
    }
    try:
        check_geometry(frames, path, min_distance)
        check_duplicates(frames, path)
    except FtbenchError as err:
        facts["data_error"] = str(err)
    return facts


def cached_facts(path: Path, keys: dict, group_key: str | None, min_distance: float) -> dict:
    """data_facts, cached on disk by the file's path, size and mtime and the arguments."""
    stat = path.stat()
    key = json.dumps(
        [CACHE_VERSION, str(path.resolve()), stat.st_size, stat.st_mtime_ns, keys, group_key, min_distance]
    )
    cache = CACHE_DIR / (hashlib.sha1(key.encode()).hexdigest() + ".json")
    if cache.is_file():
        try:
            return json.loads(cache.read_text())
        except ValueError:
            pass
    facts = data_facts(path, keys, group_key, min_distance)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(facts))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only work dir only costs the next parse a re-read
    return facts


def _symbols(zs) -> str:
    from ase.data import chemical_symbols

    return ", ".join(chemical_symbols[z] for z in zs)


def check_benchmark_data(cfg: dict, benchmark: str, report: Report) -> int | None:
    """Check a benchmark's readable data against what the grid asks of it; return its training-pool size."""
    entry = cfg["catalog"]["benchmarks"][benchmark]
    split = split_sizes(entry)
    files = raw_files(cfg, benchmark)
    if "data" not in files:
        return None
    path, normalised = files["data"]
    if not path.is_file():
        report.errors.append(
            f"benchmark {benchmark!r}: data file {path} does not exist; fix `catalog.benchmarks.{benchmark}.path`"
        )
        return None
    keys = {
        "energy": "REF_energy" if normalised else entry.get("energy_key", "REF_energy"),
        "forces": "REF_forces" if normalised else entry.get("forces_key", "REF_forces"),
        "stress": ("REF_stress" if normalised else entry.get("stress_key")) if entry.get("stress_key") else None,
    }
    facts = cached_facts(path, keys, split.get("group_key"), cfg["data_checks"]["min_pair_distance"])
    if facts.get("read_error"):
        report.errors.append(f"benchmark {benchmark!r}: {facts['read_error']}")
        return None
    where = f"benchmark {benchmark!r} ({path})"
    for what, miss in facts["missing_keys"].items():
        report.errors.append(
            f"{where}: {miss['frames']} frames (first: frame {miss['first']}) have no {what} under key {miss['key']!r}; "
            f"keys found there: {', '.join(miss['found']) or 'none'}. Set `{what}_key` in "
            f"`catalog.benchmarks.{benchmark}` to the file's key"
        )
    if facts["data_error"]:
        report.errors.append(facts["data_error"])
    if facts["group_missing"]:
        report.errors.append(
            f"{where}: {facts['group_missing']} configurations have no info key {split['group_key']!r} "
            f"(`catalog.benchmarks.{benchmark}.split.group_key`); label every frame's group or remove `group_key`"
        )
    own = {part for part in files if part != "data"}
    held = (0 if "valid_data" in own else split["valid"]) + (0 if "test_data" in own else split["test"])
    pool = facts["configurations"] - held
    if pool <= 0:
        report.errors.append(
            f"{where}: {facts['configurations']} configurations leave none for training after {held} validation + "
            "test; lower `split.valid`/`split.test` or add data"
        )
    check_e0_prerequisites(cfg, benchmark, facts, where, report)
    return pool


def check_e0_prerequisites(cfg: dict, benchmark: str, facts: dict, where: str, report: Report) -> None:
    """IsolatedAtom frames where an E0 mode needs them; E0 fits the compositions cannot determine."""
    zs, iso = facts["elements"], set(facts["isolated_elements"])
    lacking = [z for z in zs if z not in iso]
    scratch = [s for s in cfg["strategies"] if not strategy(cfg, s).get("foundation", True)]
    modes = set(cfg["e0"])
    if scratch and cfg["e0_without_foundation"] == "isolated" and lacking:
        report.errors.append(
            f"{where}: {', '.join(scratch)} (no foundation model) takes its E0s from IsolatedAtom frames "
            f"(`e0_without_foundation: isolated`), and the file has none for {_symbols(lacking)}. Add one single-atom "
            "frame per element (config_type=IsolatedAtom, energy at the data's level of theory), or set "
            "`e0_without_foundation: average` (least-squares fit on composition), or drop "
            f"{', '.join(scratch)} from `strategies`"
        )
    if "isolated" in modes and lacking:
        report.errors.append(
            f"{where}: `e0: [isolated]` needs IsolatedAtom frames, and the file has none for {_symbols(lacking)}; add "
            "them at the data's level of theory or use `e0: [estimated]`"
        )
    fitted = modes & {"estimated", "average"} or (
        {"average"} if scratch and cfg["e0_without_foundation"] == "average" else set()
    )
    if len(zs) < 2 or not fitted or not facts["compositions"]:
        return
    rank = int(np.linalg.matrix_rank(np.array(facts["compositions"], dtype=float)))
    if rank >= len(zs):
        return
    n_comp = len(facts["compositions"])
    what = (
        "one composition" if n_comp == 1 else f"{n_comp} compositions spanning {rank} of {len(zs)} element directions"
    )
    msg = (
        f"{where}: the E0 fit ({', '.join(sorted(fitted))}) is under-determined: the data has {what} "
        f"({_symbols(zs)}), so energies fix only {rank} combination(s) of the E0s. "
    )
    if "estimated" in fitted:
        msg += (
            "Estimated E0s keep the foundation model's split along the rest, which leaves target errors unaffected; "
            "energies of other compositions (the pretraining slice, dimer curves) carry that split. "
        )
    if "average" in fitted:
        msg += "Average E0s split it arbitrarily (least norm): energies of other compositions are meaningless. "
    fix = (
        "use `e0: [isolated]`"
        if not [z for z in zs if z not in facts["isolated_elements"]]
        else (f"add IsolatedAtom frames for {_symbols(zs)} at the data's level of theory and use `e0: [isolated]`")
    )
    # estimated: mace's least-norm correction keeps the foundation's split, a sound default (a note)
    (report.warnings if "average" in fitted else report.notes).append(
        msg + f"To fix the split, {fix}, or add training configurations of other stoichiometry "
        "(isolated atoms alone do not enter an estimated or average fit)"
    )


def preflight(cfg: dict) -> Report:
    """Return the pre-flight report of a validated config: the plan, warnings and errors."""
    report = Report()
    try:
        runs = expand_grid(cfg)
    except FtbenchError as err:
        report.errors.append(str(err))
        return report
    for reason, cells in skipped_runs(cfg).items():
        report.plan.append(f"skipped: {', '.join(cells)}: {reason}")
    for model in models_used(cfg):
        blind = [b for b in cfg["benchmarks"] if model in models_for(cfg, b) and not pt_slice_available(cfg, model, b)]
        if blind:
            report.plan.append(
                f"forgetting is not measured for {model!r} on {', '.join(blind)}: no pretraining data "
                "(`replay_pool`) to hold a slice out of"
            )
    for bench in cfg["benchmarks"]:
        pool = check_benchmark_data(cfg, bench, report)
        sizes = sizes_for(cfg, bench)
        too_big = [s for s in sizes if pool is not None and s > pool > 0]
        if too_big:
            report.errors.append(
                f"benchmark {bench!r}: train_sizes {too_big} exceed its {pool} training configurations (after "
                "the validation and test split); lower `train_sizes`, or set "
                f"`catalog.benchmarks.{bench}.max_train: {pool}` with `train_sizes: auto`"
            )
        if len(sizes) < 3:
            note = f"benchmark {bench!r}: {len(sizes)} training-set size(s): a learning curve needs 3"
            # chosen per benchmark (benchmark_grid, e.g. water for robustness only): a plan line
            deliberate = "train_sizes" in benchmark_axes(cfg, bench)
            (report.plan if deliberate else report.warnings).append(note)
    if len(cfg["seeds"]) < 2:
        report.warnings.append(
            f"one seed ({cfg['seeds'][0]}): no seed spread, so every strategy comparison reads 'undecided'; "
            "use `seeds: [1, 2]` or more"
        )
    untouched = untouched_runs(cfg)
    robust = robustness_runs(cfg, runs + untouched)
    by_strategy: dict[str, int] = {}
    for r in runs:
        by_strategy[r.strategy] = by_strategy.get(r.strategy, 0) + 1
    report.plan.append(
        f"{len(runs)} fine-tune jobs ("
        + ", ".join(f"{s} {n}" for s, n in by_strategy.items())
        + f"), {len(untouched)} untouched-model evaluations, "
        f"{len(robust)} robustness jobs"
    )
    for bench in cfg["benchmarks"]:
        report.plan.append(
            f"{bench}: sizes {sizes_for(cfg, bench)}, seeds {cfg['seeds']}, models {models_for(cfg, bench)}"
            + ("" if any(r.benchmark == bench for r in robust) else ", no robustness tests (robustness.benchmarks)")
        )
    absent = [s for s in cfg["catalog"]["strategies"] if s not in cfg["strategies"]]
    if absent:
        report.plan.append(f"not in this grid: {', '.join(absent)} (add them to `strategies` to run them)")
    if NO_MODEL in {r.model for r in runs}:
        report.plan.append(f"scratch runs use `e0_without_foundation: {cfg['e0_without_foundation']}` E0s")
    return report
