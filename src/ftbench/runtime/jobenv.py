"""Environment that every Snakemake job inherits (set once, at Snakefile parse time)."""

from __future__ import annotations

import os
import sys


def prepare(src: str, use_conda: bool) -> None:
    """Set the environment every Snakemake job inherits.

    `src` first on PYTHONPATH, unbuffered output, and (without conda) this interpreter's folder first
    on PATH.
    """
    # Jobs (local, cluster, conda) run the package from this checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    # Progress (training epochs, labelling) reaches the rule logs as it happens.
    os.environ["PYTHONUNBUFFERED"] = "1"
    # Rules run `python -m ftbench`: the interpreter running Snakemake has ftbench's
    # dependencies, unless a conda env provides its own python.
    if not use_conda:
        os.environ["PATH"] = os.pathsep.join((os.path.dirname(sys.executable), os.environ.get("PATH", "")))
