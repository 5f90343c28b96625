"""Shared fixtures: the micro pipeline, run once per test session through real Snakemake,
real tblite labelling and real mace_run_train."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "tests" / "data" / "micro.yaml"


def pytest_addoption(parser):
    parser.addoption(
        "--full", action="store_true", help="also run the CI tier (marker `ci`: the longest end-to-end runs)"
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` selects: the markers below take part in it
def pytest_collection_modifyitems(config, items):
    """Three tiers. Fast (`-m "not slow"`): no workflow run, no training. Default (`pytest -q`):
    all but the CI tier. Full (`--full`, what .ci/run runs): everything.

    Anything on the session's micro pipeline is slow; the CI tier is slow and skipped (not
    deselected, so the summary counts it) without --full.
    """
    full = config.getoption("--full")
    skip = pytest.mark.skip(reason="CI tier: run with `pytest --full` (.ci/run does)")
    for item in items:
        if "micro_run" in getattr(item, "fixturenames", ()) or item.get_closest_marker("pipeline"):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("ci"):
            item.add_marker(pytest.mark.slow)
            if not full:
                item.add_marker(skip)


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1500) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def ftbench(*args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "ftbench", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"ftbench {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory) -> Path:
    """Work directory after the whole micro grid ran (all eight strategies, one foundation model)."""
    workdir = tmp_path_factory.mktemp("micro")
    snakemake(workdir, "-c", "2", "--configfile", str(MICRO))
    return workdir
