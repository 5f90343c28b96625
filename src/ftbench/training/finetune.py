"""One grid cell: fine-tune (or train from scratch) with mace_run_train and record the outcome.

A failed or diverged run is a result: run.json says so and the job still succeeds, so one bad
cell never stops the grid. Bad input (missing files, unknown keys) is still an error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import resource
import shutil
import time
import traceback
from pathlib import Path

from ftbench.core.errors import FtbenchError
from ftbench.core.strategies import epochs_for_budget, to_argv
from ftbench.data.geometry import is_isolated_atom
from ftbench.probes.inference import model_e0s, read_model, resolve_device
from ftbench.runtime.provenance import Provenance, sha256, write_json
from ftbench.training.mace_runner import (
    diverged,
    failure_status,
    optimiser_steps,
    run_mace_train,
    set_threads,
    trainable_parameters,
    training_curve,
)
from ftbench.training.runrecord import RunRecord

log = logging.getLogger("ftbench.training.finetune")
MODEL_NAME = "model"
ATTEMPTS = "attempts.json"  # in the checkpoint folder: what the checkpoints belong to
# argv options that do not change what is trained: a retry on another node still resumes
NOT_FINGERPRINTED = ("--device=", "--enable_cueq=")


def fingerprint(argv: list[str], inputs: list[Path | None]) -> str:
    """Return what a checkpoint belongs to: a hash of mace's argv and the sha256 of every input file."""
    h = hashlib.sha256()
    for a in argv:
        if not a.startswith(NOT_FINGERPRINTED):
            h.update(a.encode() + b"\0")
    for path in inputs:
        if path is not None:
            h.update(sha256(path).encode())
    return h.hexdigest()


def _last_activity(*folders: Path) -> float | None:
    """When a killed attempt last wrote anything (checkpoint, mace log, results rows)."""
    times = [p.stat().st_mtime for d in folders if d.is_dir() for p in d.rglob("*") if p.is_file()]
    return max(times) if times else None


def drop_cut_checkpoints(checkpoints: Path) -> list[Path]:
    """Delete checkpoints that do not load; return them.

    A kill while mace writes a checkpoint leaves a cut file (mace already deleted the previous one,
    keep_checkpoints false), and --restart_latest would then silently train from epoch 0 while the
    run is recorded as resumed.
    """
    import torch

    dropped = []
    for path in sorted(checkpoints.glob("*.pt")):
        try:
            torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # a cut zip raises several types
            log.warning(
                "checkpoint %s does not load (%s: %s): dropped, the run restarts", path, type(err).__name__, err
            )
            path.unlink(missing_ok=True)
            dropped.append(path)
    return dropped


def start_attempt(checkpoints: Path, out_dir: Path, key: str) -> dict:
    """Resume only an interrupted run of the same argv and inputs.

    A finished run (rerun with --forcerun), a changed run or a first run starts clean: old checkpoints
    would make mace's --restart_latest load a finished model and train 0 epochs, old result rows
    would repeat.
    """
    path = checkpoints / ATTEMPTS
    state = json.loads(path.read_text()) if path.is_file() else {}
    interrupted = state.get("fingerprint") == key and not state.get("finished")
    if interrupted:
        drop_cut_checkpoints(checkpoints)
    resume = interrupted and any(checkpoints.glob("*.pt"))
    if interrupted:
        killed = state["attempts"][-1]
        if killed.get("wall_time_s") is None:  # it died without a word: it ran until its last write
            last = _last_activity(checkpoints, out_dir / "mace_results", out_dir / "logs")
            killed["wall_time_s"] = max(0.0, (last or killed["started"]) - killed["started"])
            killed["killed"] = True
    if not resume:
        shutil.rmtree(checkpoints, ignore_errors=True)
        for stale in ("mace_results", "logs"):
            shutil.rmtree(out_dir / stale, ignore_errors=True)
        # killed before its first checkpoint: a clean start, but its time still counts
        state = {"fingerprint": key, "finished": False, "attempts": state["attempts"] if interrupted else []}
    state["attempts"].append({"started": time.time(), "wall_time_s": None})
    state["resumed"] = resume
    write_json(path, state)
    return state


def cpu_seconds() -> float:
    """Return the CPU time (user + system) of this process, all its threads, and its waited-for children."""
    return sum(
        r.ru_utime + r.ru_stime
        for r in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def finish_attempt(checkpoints: Path, state: dict, cpu_time_s: float | None = None) -> dict:
    """Mark the checkpoints as belonging to a finished run (a later run starts clean).

    `cpu_time_s` is this attempt's CPU time over mace's training call.
    """
    this = state["attempts"][-1]
    this["wall_time_s"] = time.time() - this["started"]
    this["cpu_time_s"] = cpu_time_s
    state["finished"] = True
    write_json(checkpoints / ATTEMPTS, state)
    return state


def build_argv(
    flags: dict,
    *,
    train: Path,
    valid: Path,
    e0: Path,
    out_dir: Path,
    checkpoints: Path,
    seed: int,
    device: str,
    foundation: Path | None = None,
    pt_train: Path | None = None,
    enable_cueq: bool = False,
) -> list[str]:
    """Return the mace_run_train argv of a run: the strategy's `flags` plus its files, seed, device and folders."""
    flags = dict(flags)
    if enable_cueq and device.startswith("cuda"):  # cuEquivariance kernels exist for CUDA only
        flags["enable_cueq"] = True
    flags.update(
        name=MODEL_NAME,
        seed=seed,
        device=device,
        train_file=train,
        valid_file=valid,
        E0s=e0,
        work_dir=out_dir,
        model_dir=out_dir,
        log_dir=out_dir / "logs",
        results_dir=out_dir / "mace_results",
        checkpoints_dir=checkpoints,
        # resume from the newest checkpoint after preemption or a rerun
        restart_latest=True,
    )
    if foundation is not None:
        flags["foundation_model"] = foundation
    if pt_train is not None:
        flags["pt_train_file"] = pt_train
    if flags.get("multiheads_finetuning") and pt_train is None:
        raise FtbenchError(
            "a multihead (replay) strategy needs --pt-train: without a local file "
            "mace downloads replay data at run time"
        )
    return to_argv(flags)


def budget_epochs(budget: dict, flags: dict, train: Path, pt_train: Path | None) -> dict:
    """epochs_for_budget on the configurations mace will train on (isolated atoms are E0s)."""
    from ase.io import iread

    def count(path: Path) -> int:
        return sum(1 for a in iread(path, index=":") if not is_isolated_atom(a))

    n_replay = count(pt_train) if pt_train is not None and flags.get("multiheads_finetuning") else 0
    return epochs_for_budget(
        budget,
        count(train),
        int(flags["batch_size"]),
        n_replay,
        float(flags.get("valid_fraction", 0.1)),
        float(flags.get("real_pt_data_ratio_threshold", 0.1)),
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench finetune` options to `p` (also used by `ftbench pretrain`)."""
    p.add_argument("--flags", help="JSON object of mace_run_train flags (the strategy preset)")
    p.add_argument(
        "--roles", default=None, help="JSON of the strategy's roles (strategies.roles), recorded in run.json"
    )
    p.add_argument("--train", type=Path)
    p.add_argument("--valid", type=Path)
    p.add_argument("--e0", type=Path, help="e0.json from `ftbench e0`")
    p.add_argument("--foundation", type=Path, default=None)
    p.add_argument("--pt-train", type=Path, default=None, help="replay file for the pretraining head")
    p.add_argument("--head", default=None, help="head of the foundation model this run adapts (recorded in run.json)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="checkpoint folder (kept outside declared outputs so reruns resume)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--enable-cueq",
        action="store_true",
        help="train with cuEquivariance kernels when the device is cuda (ignored on cpu)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-force-rmse", type=float, default=50.0, help="eV/A; above it a run is diverged")
    p.add_argument("--e0-info", type=Path, default=None, help="e0 provenance (mismatch warnings)")
    p.add_argument(
        "--budget",
        default=None,
        help="JSON {steps, patience_fraction}: derive max_num_epochs and patience from an "
        "optimiser-step budget (strategies.step_budget)",
    )
    p.add_argument(
        "--e0-only",
        action="store_true",
        help="train nothing: the foundation model with the --e0 E0s (strategy `train: false`)",
    )


def run(args: argparse.Namespace) -> int:
    """Run `ftbench finetune` (or `pretrain`) with parsed `args`: train and write run.json; return the exit code."""
    missing = [f"--{k}" for k in ("flags", "train", "valid", "e0") if getattr(args, k) is None]
    if missing:
        raise FtbenchError(f"ftbench {getattr(args, 'command', 'finetune')} needs {', '.join(missing)}")
    # pretraining: nothing can follow a failed run, so it is an error rather than a result
    require_ok = getattr(args, "command", None) == "pretrain"
    for path in (args.train, args.valid, args.e0, args.foundation, args.pt_train):
        if path is not None and not path.is_file():
            raise FtbenchError(f"input file {path} does not exist")
    try:
        flags = json.loads(args.flags)
    except json.JSONDecodeError as err:
        raise FtbenchError(f"--flags is not a JSON object: {err}") from err
    if args.e0_only:
        return record_e0_only(args)
    budget = None
    if args.budget:
        budget = budget_epochs(json.loads(args.budget), flags, args.train, args.pt_train)
        flags = {**flags, "max_num_epochs": budget["max_num_epochs"], "patience": budget["patience"]}
        if "eval_interval" in budget:
            flags["eval_interval"] = budget["eval_interval"]
    device = resolve_device(args.device)
    set_threads(args.threads)
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = args.checkpoints or out_dir / "checkpoints"
    argv = build_argv(
        flags,
        train=args.train,
        valid=args.valid,
        e0=args.e0,
        out_dir=out_dir,
        checkpoints=checkpoints,
        seed=args.seed,
        device=device,
        foundation=args.foundation,
        pt_train=args.pt_train,
        enable_cueq=args.enable_cueq,
    )
    prov = Provenance(
        [args.train, args.valid, args.e0, args.foundation, args.pt_train], argv=["mace_run_train", *argv], device=device
    )
    patched = None
    if args.foundation is not None and not flags.get("multiheads_finetuning"):
        patched = foundation_with_e0s(args.foundation, args.e0, out_dir / "foundation_with_e0s.model")
        argv = [f"--foundation_model={patched}" if a.startswith("--foundation_model=") else a for a in argv]
    attempt = start_attempt(
        checkpoints, out_dir, fingerprint(argv, [args.train, args.valid, args.e0, args.foundation, args.pt_train])
    )
    log.info(
        "%s; mace_run_train %s",
        "resuming an interrupted run" if attempt["resumed"] else "starting clean",
        " ".join(argv),
    )
    status, reason = "ok", None
    # CPU time, unlike wall time, does not grow when other jobs share the cores (cost under load)
    cpu_start = cpu_seconds()
    try:
        run_mace_train(argv)
    except Exception as err:  # the run's failure is its result
        text = f"{type(err).__name__}: {err}"
        status = failure_status(text)
        reason = text
        log.error("mace_run_train %s: %s\n%s", status, text, traceback.format_exc())
    attempt = finish_attempt(checkpoints, attempt, round(cpu_seconds() - cpu_start, 3))
    curve = training_curve(out_dir / "mace_results")
    model_path = out_dir / f"{MODEL_NAME}.model"
    if status == "ok":
        reason = diverged(curve, args.max_force_rmse)
        if reason:
            status = "diverged"
        elif not model_path.is_file():
            status, reason = "failed", f"mace finished without writing {model_path}"
    if status != "ok" and model_path.exists():
        model_path.unlink()  # evaluations must not pick up a diverged model
    if patched is not None:
        patched.unlink(missing_ok=True)
    compiled = out_dir / f"{MODEL_NAME}_compiled.model"
    if compiled.exists():
        compiled.unlink()  # not used by ftbench; saves disk across a large grid
    shutil.rmtree(out_dir / "logs" / "__pycache__", ignore_errors=True)
    warnings = []
    if args.e0_info and args.e0_info.is_file():
        warnings = json.loads(args.e0_info.read_text()).get("warnings", [])
    saved = _load(model_path) if status == "ok" else None
    used = e0s_in_model(saved) if saved is not None else None
    if used is not None:
        expected = {int(z): e for z, e in json.loads(args.e0.read_text()).items()}
        if e0s_differ(used, expected, next(saved.parameters()).dtype):
            warnings.append(f"E0s in the saved model {used} differ from {args.e0} {expected}")
    epochs = [r.get("epoch") for r in curve if r.get("epoch") is not None]
    steps, step_seconds = optimiser_steps(out_dir / "mace_results")
    # cost counts every attempt, killed ones included (their checkpoints are part of this model)
    this_attempt = round(time.time() - prov.t0, 3)
    wall = round(sum(a["wall_time_s"] or 0.0 for a in attempt["attempts"][:-1]) + this_attempt, 3)
    # an attempt killed without a word has no CPU time: then the run's total is unknown, not too low
    cpu = [a.get("cpu_time_s") for a in attempt["attempts"]]
    record = RunRecord(
        status=status,
        reason=reason,
        model=str(model_path) if status == "ok" else None,
        roles=json.loads(args.roles) if args.roles else None,
        epochs=(max(epochs) + 1) if epochs else 0,
        optimiser_steps=steps,
        optimiser_time_s=step_seconds,
        training_curve=curve,
        trainable_parameters=parameter_counts(saved, _mace_log(out_dir)) if saved is not None else {},
        e0s_in_model=used,
        first_valid=curve[0] if curve else None,
        last_valid=curve[-1] if curve else None,
        warnings=warnings,
        flags=flags,
        budget=budget,
        resumed=attempt["resumed"],
        attempts=len(attempt["attempts"]),
        foundation_head=(args.head or flags.get("foundation_head")) if args.foundation else None,
        wall_time_s=wall,
        attempt_wall_time_s=this_attempt,
        cpu_time_s=round(sum(cpu), 3) if all(c is not None for c in cpu) else None,
        gpu_hours=wall / 3600 if device.startswith("cuda") else 0.0,
    )
    record.write(out_dir / "run.json", prov, [model_path] if status == "ok" else [])
    log.info("run %s: %s%s (%.1f s)", out_dir, status, f" ({reason})" if reason else "", wall)
    if require_ok and status != "ok":
        raise FtbenchError(f"training in {out_dir} {status}: {reason}; see {out_dir / 'logs'}")
    return 0


def foundation_with_e0s(foundation: Path, e0_json: Path, out: Path) -> Path:
    """Write a copy of the foundation model carrying the run's E0s; return its path.

    mace 0.3.16 ends its transfer of foundation weights (load_foundations_elements) by copying
    every same-shaped tensor of the foundation's state, E0 buffer included: when the fine-tuning
    elements are as many as the foundation's (e.g. --foundation_model_elements), a single-head
    fine-tune silently trains with the foundation's E0s instead of --E0s. With the E0s already
    in the foundation, both paths give the run's E0s.
    """
    import torch

    model = read_model(foundation)
    e0s = {int(z): e for z, e in json.loads(e0_json.read_text()).items()}
    zs = [int(z) for z in model.atomic_numbers]
    buf = model.atomic_energies_fn.atomic_energies
    rows = buf.view(-1, len(zs))
    for i, z in enumerate(zs):
        if z in e0s:
            rows[:, i] = e0s[z]
    torch.save(model, out)
    return out


def _load(model_path: Path):
    # not inference.load_model: that clears requires_grad, which parameter_counts reads
    return read_model(model_path)


def e0s_differ(used: dict[int, float], expected: dict[int, float], dtype) -> bool:
    """Whether a model's E0s are not the requested ones, beyond the rounding of its dtype.

    A float32 model stores -125.98291412941660 as -125.98291778564453: that is the same E0.
    """
    import torch

    rel = 4 * torch.finfo(dtype).eps
    return any(not math.isclose(used.get(z, math.nan), e, rel_tol=rel, abs_tol=1e-8) for z, e in expected.items())


def e0s_in_model(model) -> dict[int, float]:
    """E0s of the target head of a saved model: what the run really used."""
    return model_e0s(model, "Default")


def parameter_counts(model, mace_log: Path) -> dict[str, int]:
    """Return the total and trained parameters of a run.

    LoRA adapters are merged into the saved model, so their count comes from mace's log (parameters
    after injection minus before).
    """
    logged = trainable_parameters(mace_log)
    total = sum(p.numel() for p in model.parameters())
    if "lora" in logged:
        return {"total": total, "trained": logged["lora"] - logged["original"]}
    return {"total": total, "trained": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def _mace_log(out_dir: Path) -> Path:
    logs = sorted((out_dir / "logs").glob("*.log"))
    return logs[-1] if logs else out_dir / "logs" / "missing.log"


def read_run(path: Path) -> tuple[Path | None, str, str | None]:
    """(model, status, reason) of a run.json; model is None unless the run finished ok."""
    record = RunRecord.read(path)
    return record.model_path, record.status, record.reason


def record_e0_only(args: argparse.Namespace) -> int:
    """Record a run that trains nothing: the foundation model carrying the run's E0s.

    The E0s are fitted on its training set, so its energies are on the target's reference and its
    forces the foundation's.
    """
    if args.foundation is None:
        raise FtbenchError("--e0-only needs --foundation (a `train: false` strategy needs a foundation model)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    model_path = args.out_dir / f"{MODEL_NAME}.model"
    prov = Provenance([args.train, args.valid, args.e0, args.foundation], argv=[], device="cpu")
    foundation_with_e0s(args.foundation, args.e0, model_path)
    saved = _load(model_path)
    warnings = (
        json.loads(args.e0_info.read_text()).get("warnings", []) if args.e0_info and args.e0_info.is_file() else []
    )
    RunRecord(
        status="ok",
        reason=None,
        model=str(model_path),
        roles=json.loads(args.roles) if args.roles else None,
        trainable_parameters={"total": sum(p.numel() for p in saved.parameters()), "trained": 0},
        e0s_in_model=e0s_in_model(saved),
        warnings=warnings,
        foundation_head=args.head,
        cpu_time_s=0.0,
    ).write(args.out_dir / "run.json", prov, [model_path])
    log.info("run %s: the foundation model with E0s from %s (nothing trained)", args.out_dir, args.e0)
    return 0
