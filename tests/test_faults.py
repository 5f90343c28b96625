"""Faults and bad inputs a new user meets (issue 13): every one either goes through or stops with
a message naming the file/key and the fix, and nothing finished is lost. Real Snakemake runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.io import write

from conftest import ROOT, ftbench, snakemake


def _molecules(n: int, energy_key: str, forces_key: str, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]] + rng.normal(0, 0.05, (3, 3)))
        a.info[energy_key] = float(-470.0 + rng.normal())
        a.arrays[forces_key] = rng.normal(0, 0.5, (3, 3))
        out.append(a)
    return out


def _files_benchmark(workdir, name: str, keys: dict, atoms) -> str:
    """A `source: files` benchmark whose data file was placed by hand under data/benchmarks/."""
    (workdir / "data" / "benchmarks" / name).mkdir(parents=True)
    write(workdir / "data" / "benchmarks" / name / "data.xyz", atoms, format="extxyz")
    cfg = {
        "catalog": {
            "benchmarks": {
                name: {
                    "source": "files",
                    "fetch_source": "local",
                    "files": {"data": "data.xyz"},
                    "split": {"valid": 2, "test": 2},
                    **keys,
                }
            }
        }
    }
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.slow
@pytest.mark.ci  # pytest -q stays under 10 min; CI runs it
def test_files_benchmark_with_its_own_label_keys_is_prepared(tmp_path):
    keys = {"energy_key": "mp2_energy", "forces_key": "mp2_forces"}
    cfg = _files_benchmark(tmp_path, "mp2", keys, _molecules(10, **keys))
    snakemake(tmp_path, "-c", "1", "results/data/mp2/summary.json", "--configfile", cfg)
    summary = json.loads((tmp_path / "results" / "data" / "mp2" / "summary.json").read_text())
    assert summary["counts"] == {"train_pool": 6, "valid": 2, "test": 2, "isolated": 0}
    assert summary["elements"] == [1, 8]


def test_empty_benchmark_file_is_named_without_a_traceback(tmp_path):
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    proc = ftbench("prepare", "--data", str(empty), "--out-dir", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert f"benchmark file {empty} is empty" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.ci
def test_failed_job_prints_its_log_through_the_profile(tmp_path):
    keys = {"energy_key": "mp2_energy", "forces_key": "mp2_forces"}
    cfg = _files_benchmark(tmp_path, "mp2", keys, _molecules(10, **keys))
    (tmp_path / "data" / "benchmarks" / "mp2" / "data.xyz").write_text("")
    proc = snakemake(
        tmp_path,
        "--profile",
        str(ROOT / "profiles" / "local"),
        "-c",
        "1",
        "results/data/mp2/summary.json",
        "--configfile",
        cfg,
        check=False,
    )
    assert proc.returncode != 0
    # the log's error line reaches the console, not only "check log file(s)"
    assert "benchmark file data/benchmarks/mp2/data.xyz is empty" in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["tables", "figures"])
def test_bare_tables_and_figures_need_the_folder(tmp_path, command):
    proc = ftbench(command, cwd=tmp_path)
    assert proc.returncode == 2 and "--tables" in proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("content", ["junk", "dict"])
@pytest.mark.ci
def test_corrupt_or_foreign_model_is_named(tmp_path, content):
    import torch

    model = tmp_path / "model.model"
    if content == "junk":
        model.write_bytes(b"\x00\x01 not a model" * 100)
    else:
        torch.save({"state": 1}, model)
    data = tmp_path / "test.xyz"
    write(data, _molecules(2, "REF_energy", "REF_forces"), format="extxyz")
    for args in (
        ["evaluate", "--model", str(model), "--data", f"test={data}", "--out", str(tmp_path / "e.json")],
        ["e0", "--mode", "estimated", "--data", str(data), "--model", str(model), "--out", str(tmp_path / "e0.json")],
        ["dimers", "--model", str(model), "--elements", "H", "--out", str(tmp_path / "d.csv")],
        # the untouched rule: a corrupt foundation model is not recorded as an ok run
        ["untouched", "--model", str(model), "--out-dir", str(tmp_path / "run")],
    ):
        proc = ftbench(*args)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert f"model file {model} is corrupt or not a MACE model" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "run.json").exists()


def _halomethanes(halogen: str, n: int, seed: int) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    base = [[0, 0, 0], [1.09, 0, 0], [-0.36, 1.03, 0], [-0.36, -0.51, 0.89], [-0.6, -0.5, -1.6]]
    out = []
    for _ in range(n):
        a = Atoms(f"CH3{halogen}", positions=np.array(base) + rng.normal(0, 0.05, (5, 3)))
        a.info["REF_energy"] = float(-300.0 + rng.normal())
        a.arrays["REF_forces"] = rng.normal(0, 0.5, (5, 3))
        out.append(a)
    return out


@pytest.mark.slow
def test_test_only_element_stops_at_prepare(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    write(bench / "data.xyz", _halomethanes("Cl", 10, 1), format="extxyz")
    write(bench / "valid.xyz", _halomethanes("Cl", 2, 2), format="extxyz")
    write(bench / "test.xyz", _halomethanes("Cl", 2, 3) + _halomethanes("Br", 1, 4), format="extxyz")
    proc = ftbench(
        "prepare",
        "--data",
        str(bench / "data.xyz"),
        "--valid-data",
        str(bench / "valid.xyz"),
        "--test-data",
        str(bench / "test.xyz"),
        "--out-dir",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"the test split of {bench / 'test.xyz'} contains Br, which no training configuration has" in proc.stderr
    assert not (tmp_path / "out" / "test.xyz").exists()


@pytest.mark.pipeline
def test_element_unknown_to_a_foundation_model_stops_every_model_job(micro_run, tmp_path):
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    for part in ("data", "results", ".snakemake"):
        shutil.copytree(micro_run / part, work / part, symlinks=True)
    shutil.rmtree(work / ".snakemake" / "locks", ignore_errors=True)
    keys = {"energy_key": "REF_energy", "forces_key": "REF_forces"}
    path = _files_benchmark(work, "brbench", keys, _halomethanes("Br", 12, 5) + _halomethanes("Cl", 12, 6))
    cfg = yaml.safe_load(open(path).read())
    cfg.update(benchmarks=["brbench"], strategies=["naive", "replay"])
    (work / "bench.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(
        work,
        "-c",
        "1",
        "results/benchmarks/brbench.done",
        "--configfile",
        str(ROOT / "tests" / "data" / "micro.yaml"),
        str(work / "bench.yaml"),
        "--rerun-triggers",
        "mtime",
        check=False,
    )
    assert proc.returncode != 0
    log = (work / "logs" / "check_elements" / "brbench" / "micro.log").read_text()
    assert "the training split results/data/brbench/train_pool.xyz contains Br" in log, log[-2000:]
    assert "foundation model 'micro' does not know" in log and "Traceback" not in log
    # nothing that needs the model ran: no E0s, replay files, untouched or fine-tuned runs
    for part in ("e0", "replay", "runs"):
        assert not (work / "results" / part / "brbench").exists(), part


@pytest.mark.slow
@pytest.mark.ci  # pytest -q stays under 10 min; CI runs it
def test_command_line_slice_writes_its_own_tables(tmp_path):
    proc = snakemake(tmp_path, "-n", "--config", "benchmarks=[sn2]")
    out = proc.stdout + proc.stderr
    assert "tables and figures go to results/slices/benchmarks-sn2/" in out
    outputs = re.findall(r"output: (\S+?),? ", out)
    assert "results/slices/benchmarks-sn2/tables/errors.csv" in outputs
    assert not [o for o in re.findall(r"output: (.*)", out) if "results/tables/" in o]
    # naming the folder keeps it
    named = snakemake(tmp_path, "-n", "--config", "benchmarks=[sn2]", "report_dir=results")
    assert "results/tables/errors.csv" in named.stdout


@pytest.mark.pipeline
def test_another_foundation_model_does_not_reevaluate_finished_scratch(micro_run, tmp_path):
    # the micro grid plus a second foundation model (not trained here: a dry run)
    micro = yaml.safe_load((ROOT / "tests" / "data" / "micro.yaml").read_text())
    extra = {
        "foundation_models": ["micro", "micro2"],
        "catalog": {"foundation_models": {"micro2": micro["catalog"]["foundation_models"]["micro"]}},
    }
    cfg = tmp_path / "two_models.yaml"
    cfg.write_text(yaml.safe_dump(extra))
    proc = snakemake(micro_run, "-n", "--configfile", str(ROOT / "tests" / "data" / "micro.yaml"), str(cfg))
    outputs = re.findall(r"output: (.*)", proc.stdout)
    scratch = [o for o in outputs if "/none/scratch/" in o]
    # the finished scratch run keeps its errors.json; only micro2's slice is new
    assert scratch and all("pt_eval/micro2.json" in o for o in scratch), scratch
    assert not [o for o in outputs if "/micro/" in o and "results/runs/" in o], outputs


@pytest.mark.slow  # Snakemake parses the workflow and builds the DAG: ~10 s
def test_yaml_error_in_the_config_names_file_and_line(tmp_path):
    import shutil

    repo = tmp_path / "repo"
    for part in ("workflow", "config", "profiles"):
        shutil.copytree(ROOT / part, repo / part)
    shutil.copy(ROOT / "Snakefile", repo / "Snakefile")
    text = (repo / "config" / "config.yaml").read_text().replace("benchmarks: [sn2]", "benchmarks: [sn2", 1)
    (repo / "config" / "config.yaml").write_text(text)
    # the parser stops on the next line
    line = next(i for i, t in enumerate(text.splitlines()) if t.startswith("benchmarks: [sn2 ")) + 2
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-n", "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode != 0
    assert f"config file {repo / 'config' / 'config.yaml'}, line {line}" in proc.stdout + proc.stderr
    # a broken --configfile fails inside Snakemake first; ftbench grid locates it
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategies: [naive\nseeds: [1]\n")
    grid = ftbench("grid", "--configfile", str(bad))
    assert grid.returncode == 2 and f"config file {bad}, line 2, column 6 is not valid YAML" in grid.stderr


FIGURES_ONLY = ["figures", "--allowed-rules", "aggregate", "tables", "figure", "figures"]


def _copy_run(src, dst):
    import shutil

    dst.mkdir()
    for part in ("data", "results", ".snakemake", "logs"):
        shutil.copytree(src / part, dst / part, symlinks=True)
    shutil.rmtree(dst / ".snakemake" / "locks", ignore_errors=True)
    return dst


@pytest.mark.pipeline
@pytest.mark.ci  # pytest -q stays under 10 min; CI runs it
def test_figures_only_on_partial_results_keeps_every_table(micro_run, tmp_path):
    work = _copy_run(micro_run, tmp_path / "work")
    tables = work / "results" / "tables"
    before = {p.name: p.read_bytes() for p in tables.iterdir()}
    micro = str(ROOT / "tests" / "data" / "micro.yaml")
    # a grid whose water cells never ran, drawn into the finished tables folder
    proc = snakemake(
        work,
        "-c",
        "1",
        *FIGURES_ONLY,
        "--configfile",
        micro,
        "--config",
        "benchmarks=[sn2,water]",
        "report_dir=results",
    )
    out = proc.stdout + proc.stderr
    assert "missing: water: " in (work / "logs" / "tables" / "results.log").read_text()
    assert set(before) <= {p.name for p in tables.iterdir()}  # nothing deleted
    assert before["summary_sn2.csv"] == (tables / "summary_sn2.csv").read_bytes()
    assert "no finished runs" in (tables / "summary_water.md").read_text()
    # the same slice without report_dir: its own folder, stopped before any job for lack of inputs
    sliced = snakemake(
        work, "-c", "1", *FIGURES_ONLY, "--configfile", micro, "--config", "benchmarks=[sn2,water]", check=False
    )
    out = sliced.stdout + sliced.stderr
    assert sliced.returncode != 0 and "Missing input files for rule aggregate" in out
    assert "results/runs/water/micro/naive/estimated/n8/seed1/errors.json" in out
    assert not (work / "results" / "slices" / "benchmarks-sn2-water" / "tables").exists()
    assert set(before) <= {p.name for p in tables.iterdir()}


@pytest.mark.pipeline
@pytest.mark.ci  # pytest -q stays under 10 min; CI runs it
def test_e0_mismatch_warning_is_printed_at_the_end_of_the_run(micro_run, tmp_path):
    work = _copy_run(micro_run, tmp_path / "work")
    # foundation E0s (GFN1 isolated atoms) on GFN2 data: the classic mismatch, in warn mode
    proc = snakemake(
        work,
        "-c",
        "1",
        "results/e0/sn2/micro/foundation/n8.json",
        "--configfile",
        str(ROOT / "tests" / "data" / "micro.yaml"),
        "--config",
        "e0=[foundation]",
    )
    out = proc.stdout + proc.stderr
    assert "ftbench warning: E0 mismatch: with e0 mode 'foundation'" in out, out[-3000:]
    assert "use `e0: [estimated]`" in out and "so the runs train anyway" in out
