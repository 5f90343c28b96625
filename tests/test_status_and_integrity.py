"""Issue 24: bad data gets a clear error, and nothing is reported ok that is not.

Real CLI calls on files written here with ASE: the shipped demo_gen1 model scores them, so the
NaN of two atoms on top of each other is the one the model really produces.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ase.build import molecule
from ase.io import read, write

from conftest import ROOT, ftbench
from model_fixtures import ch3cl_frames

MODEL = ROOT / "data" / "demo" / "foundation" / "demo_gen1.model"
SOURCES = ROOT / "data" / "demo" / "sources.yaml"
SHIPPED_START = ROOT / "data" / "demo" / "reference" / "sn2_start.xyz"
RUN = "sn2/demo_gen1/naive/estimated/n10/seed{seed}"
UNTOUCHED = "sn2/demo_gen1/untouched/foundation/n0/seed0"


def _frames(n: int, seed: int) -> list:
    """Rattled CH3Cl frames with small labels near the model's own scale."""
    return ch3cl_frames(n, seed, rattle=0.05)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_dir(root: Path, run: str, **record) -> Path:
    """A run folder with the run.json `ftbench finetune` writes (a finished run of the shipped model)."""
    d = root / "results" / "runs" / run
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps({"status": "ok", "reason": None, "model": str(MODEL), **record}))
    return d


# ---- 1. command-line input ------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["-3", "0"])
def test_subset_refuses_a_size_below_one(tmp_path, size):
    pool = tmp_path / "pool.xyz"
    write(pool, _frames(4, 0), format="extxyz")
    proc = ftbench("subset", "--pool", str(pool), "--size", size, "--out", str(tmp_path / "out.xyz"))
    assert proc.returncode == 2, proc.stderr
    assert f"--size {size}: a training set needs at least 1 configuration" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.xyz").exists()


def test_subset_names_a_missing_pool(tmp_path):
    proc = ftbench("subset", "--pool", str(tmp_path / "MISSING.xyz"), "--size", "3", "--out", str(tmp_path / "o.xyz"))
    assert proc.returncode == 2, proc.stderr
    assert f"training pool {tmp_path / 'MISSING.xyz'} does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def _bad_input(tmp_path: Path, case: str) -> tuple[list[str], str]:
    good = tmp_path / "good.xyz"
    write(good, _frames(2, 0), format="extxyz")
    if case == "missing run.json":
        return ["--run", str(tmp_path / "run.json"), "--data", f"test={good}"], (
            f"run record {tmp_path / 'run.json'} does not exist"
        )
    if case == "corrupt run.json":
        (tmp_path / "run.json").write_text("{not json")
        return ["--run", str(tmp_path / "run.json"), "--data", f"test={good}"], (
            f"run record {tmp_path / 'run.json'} is not a run.json written by `ftbench finetune`"
        )
    if case == "unreadable data":
        (tmp_path / "bad.xyz").write_text("hello world\nnot an xyz file\n")
        return ["--model", str(MODEL), "--data", f"test={tmp_path / 'bad.xyz'}"], (
            f"dataset {tmp_path / 'bad.xyz'} is not a readable extxyz file"
        )
    unlabelled = _frames(3, 1)
    del unlabelled[1].info["REF_energy"]
    write(tmp_path / "unlabelled.xyz", unlabelled, format="extxyz")
    return ["--model", str(MODEL), "--data", f"test={tmp_path / 'unlabelled.xyz'}"], (
        f"dataset {tmp_path / 'unlabelled.xyz'}: frame 1 has no REF_energy"
    )


@pytest.mark.parametrize("case", ["missing run.json", "corrupt run.json", "unreadable data", "unlabelled data"])
@pytest.mark.slow
def test_evaluate_names_the_bad_input_file(tmp_path, case):
    args, message = _bad_input(tmp_path, case)
    proc = ftbench("evaluate", *args, "--out", str(tmp_path / "errors.json"))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "errors.json").exists()


# ---- 2. status: a non-finite or absurd error is never ok -------------------------------------------


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """A results tree scored with the real `ftbench evaluate`: a test set whose frame 1 holds two atoms
    on top of each other (NaN) and whose frame 3 has an energy label in the wrong unit (absurd error),
    and a clean held-out pretraining slice, scoring one naive fine-tune (the shipped model)."""
    root = tmp_path_factory.mktemp("evaluated")
    test = _frames(5, 1)
    test[1].positions[2] = test[1].positions[0]
    test[3].info["REF_energy"] = -20.0e6  # meV labelled as eV: 4e6 eV/atom off
    write(root / "test.xyz", test, format="extxyz")
    write(root / "pt_eval.xyz", _frames(4, 2), format="extxyz")
    d = _run_dir(root, RUN.format(seed=1))
    data = [f"test={root / 'test.xyz'}", f"pt_eval__demo_gen1={root / 'pt_eval.xyz'}"]
    proc = ftbench("evaluate", "--run", str(d / "run.json"), "--data", *data, "--out", str(d / "errors.json"))
    assert proc.returncode == 0, proc.stderr
    (d / "evaluate.stderr").write_text(proc.stderr)
    return root


@pytest.mark.slow
def test_overlapping_atoms_make_the_evaluation_invalid_not_ok(evaluated):
    d = evaluated / "results" / "runs" / RUN.format(seed=1)
    text = (d / "errors.json").read_text()
    rec = json.loads(text)
    assert rec["status"] == "invalid"
    reason = rec["reason"]
    # names the run, the dataset and its file, the head and both bad frames with what is wrong
    assert f"evaluation of {d} is invalid" in reason
    assert f"dataset test ({evaluated / 'test.xyz'}), head Default: 2 of 5 frames give no usable error" in reason
    assert "frame 1: predicted energy is NaN; predicted forces are NaN; two atoms are 0 A apart" in reason
    assert "frame 3: energy error 4e+06 eV/atom (above 1000 eV/atom)" in reason
    assert "These errors are left out of every table and figure" in reason
    assert reason in (d / "evaluate.stderr").read_text()  # the job's log says so too
    assert [(p["frame"], p["dataset"]) for p in rec["problems"]] == [(1, "test"), (3, "test")]
    test_rows = [r for r in rec["rows"] if r["dataset"] == "test"]
    assert test_rows and {r["status"] for r in test_rows} == {"invalid"}
    pt_rows = [r for r in rec["rows"] if r["dataset"] == "pt_eval__demo_gen1"]
    assert pt_rows and {r["status"] for r in pt_rows} == {"ok"}
    assert all(np.isfinite(r["value"]) for r in pt_rows)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"errors.json holds {c}"))  # strict JSON: no NaN


@pytest.fixture(scope="module")
def aggregated(evaluated) -> tuple[Path, subprocess.CompletedProcess]:
    runs = evaluated / "results" / "runs"
    errors = str(runs / RUN.format(seed=1) / "errors.json")
    proc = ftbench("aggregate", "--errors", errors, "--runs-root", str(runs), "--tables", str(evaluated / "tables"))
    assert proc.returncode == 0, proc.stderr
    return evaluated / "tables", proc


def test_aggregate_carries_the_invalid_status_into_runs_and_errors(aggregated):
    tables, proc = aggregated
    runs = pd.read_csv(tables / "runs.csv")
    assert list(runs.status) == ["invalid"]
    naive = runs.iloc[0]
    assert "frame 1: predicted energy is NaN" in naive.reason
    assert "evaluation of sn2/demo_gen1/naive/estimated/n10/seed1 is invalid on test" in naive.e0_warnings
    errors = pd.read_csv(tables / "errors.csv")
    test = errors[errors.dataset == "test"]
    assert set(test.status) == {"invalid"} and test.value.isna().all()
    assert set(errors[errors.dataset == "pt_eval"].status) == {"ok"}
    assert "aggregated 1 runs (invalid: 1)" in proc.stdout
    assert "invalid: sn2/demo_gen1/naive/estimated/n10/seed1: evaluation of" in proc.stdout
    assert "1 run(s) invalid: their errors are left out of every table and figure" in proc.stdout


def test_tables_leave_the_invalid_errors_out_and_say_so(aggregated):
    tables, _ = aggregated
    findings = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["findings"]
    proc = ftbench(
        "tables",
        "--tables",
        str(tables),
        "--benchmarks",
        "sn2",
        "--models",
        "demo_gen1",
        "--strategies",
        "naive",
        "--findings",
        json.dumps(findings),
    )
    assert proc.returncode == 0, proc.stderr
    said = "evaluation of sn2/demo_gen1/naive/estimated/n10/seed1 is invalid on test: those errors are left out"
    assert f"warning: sn2: {said}" in proc.stdout
    assert f"Warning: {said}" in (tables / "summary_sn2.md").read_text()
    summary = pd.read_csv(tables / "summary_sn2.csv")
    assert summary.target_force_rmse.isna().all()  # no number from the invalid test rows
    # the clean pretraining slice still counts
    pt = json.loads((tables.parent / "results" / "runs" / RUN.format(seed=1) / "errors.json").read_text())["rows"]
    want = next(
        r["value"]
        for r in pt
        if r["dataset"] == "pt_eval__demo_gen1"
        and (r["quantity"], r["statistic"], r["config_type"]) == ("forces", "rmse", "all")
    )
    assert summary.pt_force_rmse.tolist() == pytest.approx([want])


@pytest.mark.parametrize("name", ["learning_curves", "forgetting"])
def test_figures_draw_a_panel_without_finite_errors(aggregated, tmp_path, name):
    tables, _ = aggregated
    proc = ftbench("figures", "--tables", str(tables), "--out", str(tmp_path), "--only", name)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{name}: sn2 / demo_gen1: no finite results for this panel (invalid or diverged runs" in proc.stderr
    assert (tmp_path / f"{name}.png").stat().st_size > 5_000


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.slow
def test_figures_skip_non_finite_values_marked_ok(tmp_path, value):
    """Tables from before invalid evaluations existed: NaN or inf errors with status ok."""
    from results_tables import write_tables

    tables = write_tables(tmp_path / "tables")
    errors = pd.read_csv(tables / "errors.csv")
    bad = errors.model.isin(["gen_a", "none"]) & (errors.quantity == "forces")  # gen_a's panel, scratch included
    errors.loc[bad, "value"] = value
    errors.to_csv(tables / "errors.csv", index=False)
    for name in ("learning_curves", "forgetting"):
        proc = ftbench("figures", "--tables", str(tables), "--out", str(tmp_path / "figs"), "--only", name)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"{name}: skipped " in proc.stderr and "(invalid or diverged runs; runs.csv says why)" in proc.stderr
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 5_000


# ---- 3a. shipped files a rule reads directly are checked against their pin --------------------------


def _pinned_copy(tmp_path: Path, source: Path, name: str) -> tuple[Path, Path, str]:
    """A local source of its own: one shipped file and a sources file that pins its sha256."""
    shipped = tmp_path / "shipped" / name
    shipped.parent.mkdir(parents=True, exist_ok=True)
    shipped.write_bytes(source.read_bytes())
    pin = _sha(shipped)
    sources = tmp_path / "sources.yaml"
    entry = {"path": name, "sha256": pin, "confirmed": True}
    doc = {"sources": {"mine": {"kind": "local", "path": str(shipped.parent), "files": {"ref": entry}}}}
    sources.write_text(yaml.safe_dump(doc))
    return shipped, sources, pin


def _tamper(path: Path) -> None:
    frames = read(path, ":")
    frames[-1].positions[0] += 0.1
    write(path, frames, format="extxyz")


def test_md_start_verifies_the_shipped_frame_against_its_pin(tmp_path):
    out = tmp_path / "md_start.xyz"
    proc = ftbench("md-start", "--from-file", str(SHIPPED_START), "--sources", str(SOURCES), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    pin = yaml.safe_load(SOURCES.read_text())["sources"]["demo_world"]["files"]["sn2_start"]["sha256"]
    assert json.loads(out.with_suffix(".json").read_text())["sha256_pinned"] == pin


def test_md_start_refuses_a_changed_shipped_frame(tmp_path):
    shipped, sources, pin = _pinned_copy(tmp_path, SHIPPED_START, "start.xyz")
    _tamper(shipped)
    out = tmp_path / "md_start.xyz"
    proc = ftbench("md-start", "--from-file", str(shipped), "--sources", str(sources), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert (
        f"--from-file {shipped} has sha256 {_sha(shipped)}, but {sources}: sources.mine.files.ref pins {pin}"
    ) in proc.stderr
    assert f"Restore it (`git checkout -- {shipped}`), or, if you changed it on purpose" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_reference_rdf_refuses_a_changed_shipped_trajectory(tmp_path):
    traj = tmp_path / "traj.xyz"
    frames = [molecule("CH3Cl") for _ in range(3)]
    for k, a in enumerate(frames):
        a.positions += 0.02 * k
    write(traj, frames, format="extxyz")
    shipped, sources, pin = _pinned_copy(tmp_path, traj, "md_300K.xyz")
    out = tmp_path / "reference_rdf.csv"
    ok = ftbench("rdf", str(shipped), "--sources", str(sources), "--out", str(out))
    assert ok.returncode == 0, ok.stderr  # the pinned file as shipped is used
    assert json.loads(out.with_suffix(".meta.json").read_text())["sha256_pinned"] == pin
    out.unlink()
    _tamper(shipped)
    proc = ftbench("rdf", str(shipped), "--sources", str(sources), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert (
        f"reference trajectory {shipped} has sha256 {_sha(shipped)}, but {sources}: sources.mine.files.ref pins {pin}"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def _dry_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    return subprocess.run([*cmd, "-n", "-c1", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_md_start_and_reference_rdf_rules_check_the_pins(tmp_path):
    proc = _dry_run(tmp_path, "-p", "results/data/sn2/md_start.xyz", "results/data/sn2/reference_rdf.csv")
    assert proc.returncode == 0, proc.stderr
    assert f"md-start --from-file {SHIPPED_START} --sources {SOURCES} " in proc.stdout
    assert f"--sources {SOURCES} --out results/data/sn2/reference_rdf.csv" in proc.stdout


# ---- 3b. aggregate declares and names what it reads -------------------------------------------------


@pytest.mark.slow
def test_aggregate_rule_declares_every_run_json(tmp_path):
    grid = ["benchmarks=[sn2]", "foundation_models=[demo_gen1]", "strategies=[naive]", "train_sizes=[10]", "seeds=[1]"]
    proc = _dry_run(
        tmp_path,
        "--allowed-rules",
        "aggregate",
        "--config",
        *grid,
        "report_dir=results",
        "--",
        "results/tables/runs.csv",
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Missing input files for rule aggregate" in out
    for run in (RUN.format(seed=1), UNTOUCHED):
        assert f"results/runs/{run}/run.json" in out


def test_aggregate_names_a_missing_run_json_and_keeps_the_tables(tmp_path):
    d = _run_dir(tmp_path, RUN.format(seed=1))
    (d / "errors.json").write_text(json.dumps({"status": "ok", "reason": None, "rows": []}))
    (d / "run.json").unlink()
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "runs.csv").write_text("earlier tables\n")
    runs = tmp_path / "results" / "runs"
    proc = ftbench("aggregate", "--errors", str(d / "errors.json"), "--runs-root", str(runs), "--tables", str(tables))
    assert proc.returncode == 2, proc.stderr
    assert (
        f"1 result file(s) aggregate reads are missing: {d / 'run.json'} (written by the run's fine-tune"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tables / "runs.csv").read_text() == "earlier tables\n"


def test_aggregate_names_a_missing_training_log(tmp_path):
    d = _run_dir(tmp_path, RUN.format(seed=1), optimiser_steps=600)
    (d / "errors.json").write_text(json.dumps({"status": "ok", "reason": None, "rows": []}))
    runs = tmp_path / "results" / "runs"
    proc = ftbench("aggregate", "--errors", str(d / "errors.json"), "--runs-root", str(runs), "--tables", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert f"{d / 'mace_results'}/*_train.txt is missing: {d / 'run.json'} records 600 optimiser steps" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- 3c. a killed replay step leaves nothing a rerun trusts ----------------------------------------

REPLAY_OUTPUTS = ("replay.xyz", "replay_pseudo.xyz", "pt_eval.xyz", "pt_eval_relabelled.xyz", "summary.json")


@pytest.mark.ci
def test_a_killed_replay_step_leaves_no_partial_outputs(tmp_path):
    pool = _frames(300, 3)
    for i, a in enumerate(pool):
        a.info["group"] = f"traj{i // 5}"
    write(tmp_path / "pool.xyz", pool, format="extxyz")
    write(tmp_path / "bench.xyz", _frames(3, 4), format="extxyz")
    out = tmp_path / "replay"
    cmd = [sys.executable, "-m", "ftbench", "replay", "--pool", str(tmp_path / "pool.xyz"), "--model", str(MODEL)]
    cmd += ["--benchmark-data", str(tmp_path / "bench.xyz"), "--n-samples", "100", "--n-eval", "150"]
    cmd += ["--group-key", "group", "--out-dir", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        # kill as soon as the step starts writing: old code wrote in place, one output after another
        while time.time() < deadline and proc.poll() is None and not (out.is_dir() and any(out.iterdir())):
            time.sleep(0.002)
        assert proc.poll() is None, "the replay step finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    present = [n for n in REPLAY_OUTPUTS if (out / n).exists()]
    # nothing under its final name, or everything (the kill landed after the last rename)
    assert present in ([], list(REPLAY_OUTPUTS)), f"a killed replay step left {present}"
    # and a rerun of the step finishes over whatever the kill left behind
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(REPLAY_OUTPUTS)
    assert len(read(out / "replay_pseudo.xyz", ":")) == len(read(out / "replay.xyz", ":")) > 0


def test_run_record_is_one_type_for_every_writer_and_reader(tmp_path):
    import dataclasses

    from ftbench.core.errors import FtbenchError
    from ftbench.runtime.provenance import Provenance
    from ftbench.training.runrecord import RunRecord

    path = tmp_path / "run.json"
    written = RunRecord(status="diverged", reason="loss nan", model=None, roles={"lora": True}, epochs=3)
    written.write(path, Provenance([]), [])
    back = RunRecord.read(path)
    # the provenance measured what the writer left open
    assert back == dataclasses.replace(written, wall_time_s=back.wall_time_s, device=back.device)
    assert back.model_path is None and back.device == "cpu"
    assert back.wall_time_s is not None and "versions" in back.provenance and "argv" in back.provenance
    # a record of an older ftbench (the untouched writer's fields only) reads with the defaults
    old = {"status": "ok", "reason": None, "model": "m.model", "epochs": 0, "gpu_hours": 0.0, "roles": None}
    path.write_text(json.dumps(old))
    assert RunRecord.read(path).model_path == Path("m.model") and RunRecord.read(path).attempts == 1
    # what no reader could use is refused with the file named
    for bad, needle in (({**old, "status": "done"}, "status 'done'"), ({"model": "m.model"}, "status")):
        path.write_text(json.dumps(bad))
        with pytest.raises(FtbenchError, match=f"run record {path}.*{needle}"):
            RunRecord.read(path)
