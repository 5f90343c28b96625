"""A non-editable install (`pip install .`) works outside the checkout: the default config and its
schema travel as package data, and `ftbench init` + `ftbench grid` run on a user's own files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ase.io import read, write

from conftest import ROOT

SKIP_TOP = {".venv", ".git", "data", "results", ".snakemake"}
GEN2 = ROOT / "data" / "demo" / "foundation" / "demo_gen2.model"
WATER = ROOT / "data" / "demo" / "benchmarks" / "water.xyz.gz"


@pytest.mark.ci
def test_installed_ftbench_runs_init_and_grid_outside_the_checkout(tmp_path):
    site = tmp_path / "site"
    build = tmp_path / "src"
    # build from a copy: pip must not write into the checkout, and the copy shows what a clone holds
    shutil.copytree(
        ROOT,
        build,
        symlinks=True,
        # top-level folders only: src/ftbench/data is a subpackage
        ignore=lambda folder, names: [n for n in names if Path(folder) == ROOT and n in SKIP_TOP],
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(site), str(build)],
        check=True,
        capture_output=True,
    )
    resources = site / "ftbench" / "resources"
    for name in ("config.yaml", "config.schema.yaml"):
        assert (resources / name).is_file() and not (resources / name).is_symlink()
    shutil.rmtree(build)

    user = tmp_path / "user"
    user.mkdir()
    frames = [a for a in read(WATER, ":") if len(a) > 1][:40]
    for a in frames:
        a.info["dft_energy"] = a.info.pop("REF_energy")
        a.arrays["dft_forces"] = a.arrays.pop("REF_forces")
    write(user / "mine.xyz", frames, format="extxyz")
    shutil.copy(GEN2, user / "fm.model")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}

    def ftbench(*args):
        return subprocess.run(
            [sys.executable, "-m", "ftbench", *args], cwd=user, env=env, capture_output=True, text=True, timeout=300
        )

    where = subprocess.run(
        [sys.executable, "-c", "import ftbench.core.config as c; print(c.__file__, c.IN_CHECKOUT)"],
        cwd=user,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.split() == [str(site / "ftbench" / "core" / "config.py"), "False"], where.stderr
    init = ftbench(
        "init", "--data", "mine.xyz", "--energy-key", "dft_energy", "--forces-key", "dft_forces",
        "--model", "fm.model", "--out", "own.yaml",
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    grid = ftbench("grid", "--counts-only", "--configfile", "own.yaml")
    assert grid.returncode == 0, grid.stdout + grid.stderr
    assert "fine-tune jobs" in grid.stdout + grid.stderr
    assert "Traceback" not in grid.stderr


def test_core_imports_no_torch():
    # the Snakefile parses with ftbench.core on every cluster job: torch there costs seconds a job
    code = (
        "import sys, pkgutil, importlib, ftbench.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('ftbench.core.' + m.name)\n"
        # and what the Snakefile and config validation read besides: the figure names, the probe registry
        "import ftbench.report.figure_names, ftbench.probes.registry\n"
        "heavy = sorted(n for n in ('torch', 'mace', 'e3nn', 'pandas', 'matplotlib') if n in sys.modules)\n"
        "print(heavy); sys.exit(1 if heavy else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
