"""One grid cell: fine-tune (or train from scratch) with mace_run_train and record the outcome.

A failed or diverged run is a result: run.json says so and the job still succeeds, so one bad
cell never stops the grid. Bad input (missing files, unknown keys) is still an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import traceback
from pathlib import Path

from ftbench.errors import FtbenchError
from ftbench.mace_runner import (diverged, resolve_device, run_mace_train, set_threads,
                                 trainable_parameters, training_curve)
from ftbench.provenance import Provenance, write_json
from ftbench.strategies import to_argv

log = logging.getLogger("ftbench.finetune")
MODEL_NAME = "model"


def build_argv(flags: dict, *, train: Path, valid: Path, e0: Path, out_dir: Path, checkpoints: Path,
               seed: int, device: str, foundation: Path | None = None, pt_train: Path | None = None) -> list[str]:
    flags = dict(flags)
    flags.update(name=MODEL_NAME, seed=seed, device=device, train_file=train, valid_file=valid, E0s=e0,
                 work_dir=out_dir, model_dir=out_dir, log_dir=out_dir / "logs",
                 results_dir=out_dir / "mace_results", checkpoints_dir=checkpoints,
                 # resume from the newest checkpoint after preemption or a rerun
                 restart_latest=True)
    if foundation is not None:
        flags["foundation_model"] = foundation
    if pt_train is not None:
        flags["pt_train_file"] = pt_train
    if flags.get("multiheads_finetuning") and pt_train is None:
        raise FtbenchError("a multihead (replay) strategy needs --pt-train: without a local file "
                           "mace downloads replay data at run time")
    return to_argv(flags)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--flags", help="JSON object of mace_run_train flags (the strategy preset)")
    p.add_argument("--train", type=Path)
    p.add_argument("--valid", type=Path)
    p.add_argument("--e0", type=Path, help="e0.json from `ftbench e0`")
    p.add_argument("--foundation", type=Path, default=None)
    p.add_argument("--pt-train", type=Path, default=None, help="replay file for the pretraining head")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--checkpoints", type=Path, default=None,
                   help="checkpoint folder (kept outside declared outputs so reruns resume)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-force-rmse", type=float, default=50.0, help="eV/A; above it a run is diverged")
    p.add_argument("--e0-info", type=Path, default=None, help="e0 provenance (mismatch warnings)")
    p.add_argument("--untouched", type=Path, default=None, metavar="MODEL",
                   help="record an untouched foundation model as a run (no training)")
    p.add_argument("--require-ok", action="store_true",
                   help="exit non-zero unless the run finished ok (pretraining: nothing can follow it)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.untouched is not None:
        return record_untouched(args.untouched, args.out_dir)
    missing = [f"--{k}" for k in ("flags", "train", "valid", "e0") if getattr(args, k) is None]
    if missing:
        raise FtbenchError(f"ftbench finetune needs {', '.join(missing)}")
    for path in (args.train, args.valid, args.e0, args.foundation, args.pt_train):
        if path is not None and not path.is_file():
            raise FtbenchError(f"input file {path} does not exist")
    try:
        flags = json.loads(args.flags)
    except json.JSONDecodeError as err:
        raise FtbenchError(f"--flags is not a JSON object: {err}") from err
    device = resolve_device(args.device)
    set_threads(args.threads)
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = args.checkpoints or out_dir / "checkpoints"
    argv = build_argv(flags, train=args.train, valid=args.valid, e0=args.e0, out_dir=out_dir,
                      checkpoints=checkpoints, seed=args.seed, device=device,
                      foundation=args.foundation, pt_train=args.pt_train)
    prov = Provenance([args.train, args.valid, args.e0, args.foundation, args.pt_train],
                      argv=["mace_run_train", *argv], device=device)
    log.info("mace_run_train %s", " ".join(argv))
    status, reason = "ok", None
    try:
        run_mace_train(argv)
    except Exception as err:  # the run's failure is its result
        text = f"{type(err).__name__}: {err}"
        status = "diverged" if any(s in text.lower() for s in ("nan", "inf")) else "failed"
        reason = text
        log.error("mace_run_train %s: %s\n%s", status, text, traceback.format_exc())
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
    compiled = out_dir / f"{MODEL_NAME}_compiled.model"
    if compiled.exists():
        compiled.unlink()  # not used by ftbench; saves disk across a large grid
    shutil.rmtree(out_dir / "logs" / "__pycache__", ignore_errors=True)
    warnings = []
    if args.e0_info and args.e0_info.is_file():
        warnings = json.loads(args.e0_info.read_text()).get("warnings", [])
    epochs = [r.get("epoch") for r in curve if r.get("epoch") is not None]
    rec = prov.record([model_path] if status == "ok" else [], extra={
        "status": status, "reason": reason, "model": str(model_path) if status == "ok" else None,
        "epochs": (max(epochs) + 1) if epochs else 0,
        "trainable_parameters": trainable_parameters(_mace_log(out_dir)),
        "first_valid": curve[0] if curve else None, "last_valid": curve[-1] if curve else None,
        "warnings": warnings, "flags": flags,
    })
    rec["gpu_hours"] = rec["wall_time_s"] / 3600 if device.startswith("cuda") else 0.0
    write_json(out_dir / "run.json", rec)
    log.info("run %s: %s%s (%.1f s)", out_dir, status, f" ({reason})" if reason else "", rec["wall_time_s"])
    if args.require_ok and status != "ok":
        raise FtbenchError(f"training in {out_dir} {status}: {reason}; see {out_dir / 'logs'}")
    return 0


def _mace_log(out_dir: Path) -> Path:
    logs = sorted((out_dir / "logs").glob("*.log"))
    return logs[-1] if logs else out_dir / "logs" / "missing.log"


def record_untouched(model: Path, out_dir: Path) -> int:
    """A run.json for a foundation model as downloaded or pretrained: evaluated like any run."""
    if not model.is_file():
        raise FtbenchError(f"foundation model {model} does not exist")
    prov = Provenance([model])
    write_json(out_dir / "run.json", prov.record([model], extra={
        "status": "ok", "reason": None, "model": str(model), "epochs": 0, "gpu_hours": 0.0,
        "trainable_parameters": {}, "warnings": [], "flags": {}}))
    return 0
