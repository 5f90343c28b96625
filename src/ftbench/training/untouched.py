"""`ftbench untouched`: record a foundation model as a run without training it.

The untouched model is then evaluated (test errors, robustness) like every fine-tune.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ftbench.core.errors import FtbenchError
from ftbench.core.strategies import UNTOUCHED_ROLES
from ftbench.probes.inference import read_model
from ftbench.runtime.provenance import Provenance
from ftbench.training.runrecord import RunRecord


def record_untouched(model: Path, out_dir: Path, head: str | None = None) -> int:
    """Write a run.json for a foundation model as downloaded or pretrained; return the exit code.

    For a multihead model it is the single-head artefact of `head`. The run is evaluated like any run.
    """
    if not model.is_file():
        raise FtbenchError(f"foundation model {model} does not exist")
    read_model(model)  # a corrupt file fails here, not in every evaluation after it
    RunRecord(
        status="ok", reason=None, model=str(model), roles=UNTOUCHED_ROLES, optimiser_steps=None, foundation_head=head
    ).write(out_dir / "run.json", Provenance([model]), [model])
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench untouched` options to `p`."""
    p.add_argument("--model", required=True, type=Path, help="the foundation model file")
    p.add_argument("--head", default=None, help="head of the foundation model the config adapts (recorded in run.json)")
    p.add_argument("--out-dir", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run `ftbench untouched` with parsed `args`; return the exit code."""
    return record_untouched(args.model, args.out_dir, args.head)
