"""Running mace_run_train in-process and reading what it wrote (training curve, parameters)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path

log = logging.getLogger("ftbench.mace")
_NON_FINITE = re.compile(r"\b(nan|inf|infinity|infinite|non-finite)\b", re.IGNORECASE)


def set_threads(threads: int) -> None:
    """Set torch's and OpenMP's thread count to `threads`."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def run_mace_train(argv: list[str]) -> None:
    """mace_run_train with this argv, in this process (no second interpreter start-up)."""
    from mace import tools
    from mace.cli.run_train import run

    args = tools.build_default_arg_parser().parse_args(argv)
    run(args)


def _result_rows(results_dir: Path):
    """Yield the JSON rows of mace's {results_dir}/*_train.txt files (eval and per-step opt rows)."""
    for path in sorted(Path(results_dir).glob("*_train.txt")):
        for line in path.read_text().splitlines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def training_curve(results_dir: Path) -> list[dict]:
    """Mace's per-epoch evaluation rows ({results_dir}/*_train.txt, one JSON object a line).

    A resumed run appends to the same file and repeats the checkpoint's epoch: the last row of an
    (epoch, head) wins, so every epoch appears once.
    """
    rows: dict = {}
    for row in _result_rows(results_dir):
        if row.get("mode") != "eval":
            continue
        key = (row.get("epoch"), row.get("head"))
        if row.get("epoch") is None:  # the evaluation before training: the first one counts
            rows.setdefault(key, row)
        else:
            rows.pop(key, None)
            rows[key] = row
    return sorted(rows.values(), key=lambda r: -1 if r.get("epoch") is None else r["epoch"])


def optimiser_steps(results_dir: Path) -> tuple[int | None, float | None]:
    """Return (optimiser steps, their summed time in s) from mace's per-step "opt" rows.

    That is the training compute itself, without start-up, data loading before the first epoch or
    evaluation.
    """
    steps, seconds = 0, 0.0
    for row in _result_rows(results_dir):
        if row.get("mode") == "opt" and row.get("time") is not None:
            steps += 1
            seconds += float(row["time"])
    return (steps, seconds) if steps else (None, None)


def trainable_parameters(log_path: Path) -> dict[str, int]:
    """Parameter counts mace logs (LoRA logs before/after injection)."""
    text = Path(log_path).read_text() if Path(log_path).is_file() else ""
    out = {}
    for key, pattern in (
        ("original", r"Original model has (\d+) trainable"),
        ("lora", r"Model with LoRA has (\d+) trainable"),
    ):
        m = re.findall(pattern, text)
        if m:
            out[key] = int(m[-1])
    return out


def diverged(curve: list[dict], max_force_rmse: float) -> str | None:
    """Reason a run counts as diverged, or None. Forces in mace's rows are eV/A."""
    if not curve:
        return "no validation epochs recorded"
    for row in curve:
        if not math.isfinite(float(row.get("loss", float("nan")))):
            return f"non-finite validation loss at epoch {row.get('epoch')}"
    last_epoch = max(r.get("epoch") or 0 for r in curve)
    for row in curve:
        if (row.get("epoch") or 0) == last_epoch and row.get("rmse_f") is not None:
            if float(row["rmse_f"]) > max_force_rmse:
                return (
                    f"validation force RMSE {float(row['rmse_f']):.3g} eV/A at epoch {last_epoch} "
                    f"(head {row.get('head')}) above {max_force_rmse}"
                )
    return None


def failure_status(error_text: str) -> str:
    """Return the status of a run whose mace_run_train raised.

    "diverged" when the error is about a number that blew up, otherwise "failed".
    """
    # whole words only: "info", "input" or a file name holding "nan" are ordinary failures
    return "diverged" if _NON_FINITE.search(error_text) else "failed"
