"""Preemption and resume of a fine-tune, locally (no SLURM): real Snakemake, real mace_run_train.

A fine-tune is SIGKILLed (its whole Snakemake process group, as a node failure or a scheduler
kill would) once mace has written a checkpoint to results/checkpoints/...; the rerun must load
that checkpoint (--restart_latest), continue from its epoch instead of epoch 0, and record the
full epoch count in run.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import MICRO, ROOT, snakemake

CELL = "sn2/micro/naive/estimated/n8/seed1"
EPOCHS = 60


@pytest.fixture()
def resume_dir(micro_run, tmp_path) -> tuple[Path, Path]:
    """A work directory holding the micro run's upstream files (demo world, pretrained model,
    splits, E0s, replay files) and Snakemake's metadata, without any fine-tune: only the
    fine-tune below is left to run."""
    work = tmp_path / "work"
    work.mkdir()
    for part in ("data", "results", ".snakemake"):
        shutil.copytree(micro_run / part, work / part, symlinks=True)
    for part in (
        "results/runs",
        "results/checkpoints",
        "results/tables",
        "results/figures",
        ".snakemake/incomplete",
        ".snakemake/locks",
    ):
        shutil.rmtree(work / part, ignore_errors=True)
    config = yaml.safe_load(MICRO.read_text())
    config["strategies"] = ["naive"]
    # patience above the epoch count: early stopping never ends the run before max_num_epochs
    config["training"] = {**config.get("training", {}), "max_num_epochs": EPOCHS, "patience": 1000}
    cfg = tmp_path / "resume.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return work, cfg


def _epochs_logged(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"INFO: Epoch (\d+):", text)]


@pytest.mark.ci
def test_killed_finetune_resumes_from_checkpoint(resume_dir):
    work, cfg = resume_dir
    run_dir = work / "results" / "runs" / CELL
    ckpt_dir = work / "results" / "checkpoints" / CELL
    rule_log = work / "logs" / "finetune" / f"{CELL}.log"
    target = f"results/runs/{CELL}/run.json"
    # mtime only: the copied upstream files must count as up to date whatever the metadata says
    args = [target, "-c", "1", "--configfile", str(cfg), "--rerun-triggers", "mtime"]

    dry = snakemake(work, "-n", *args)
    out = dry.stdout + dry.stderr
    assert re.search(r"^finetune\s+1$", out, re.M), out
    assert re.search(r"^total\s+1$", out, re.M), out  # nothing upstream reruns

    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work), *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 240
        while not list(ckpt_dir.glob("*.pt")):
            assert proc.poll() is None, "snakemake ended before mace wrote a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 240 s"
            time.sleep(0.2)
        time.sleep(1.0)  # let a couple more epochs pass: the kill lands mid-training
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the job's shell and python
        proc.wait(timeout=30)
    killed_at = max(int(re.search(r"epoch-(\d+)", p.name).group(1)) for p in ckpt_dir.glob("*.pt"))
    assert killed_at < EPOCHS - 1, f"training had finished (checkpoint epoch {killed_at}); raise EPOCHS"
    assert not (run_dir / "run.json").exists()
    first_epochs = _epochs_logged(rule_log.read_text())
    assert first_epochs and min(first_epochs) == 0

    # after a hard kill the work directory is still locked: a user runs --unlock, then reruns
    snakemake(work, "--unlock", *args)
    rerun = snakemake(work, *args)
    assert "rule finetune" in rerun.stdout + rerun.stderr

    text = rule_log.read_text()  # the rule log is rewritten by the rerun
    assert "Loading checkpoint" in text, text[-3000:]
    loaded = re.search(r"Loading checkpoint: (\S+)", text).group(1)
    assert (work / loaded).parent.resolve() == ckpt_dir.resolve()
    resumed = _epochs_logged(text)
    assert resumed and min(resumed) >= killed_at > 0, (killed_at, resumed[:5])
    assert max(resumed) == EPOCHS - 1

    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "ok", info
    assert info["epochs"] == EPOCHS
    # the checkpoint folder is not a declared output: it outlives both runs
    assert list(ckpt_dir.glob("*.pt"))
    # run.json says it resumed, and its cost counts the killed attempt too
    assert info["resumed"] is True and info["attempts"] == 2, info
    assert info["wall_time_s"] > info["attempt_wall_time_s"] > 0
    # mace appends the resumed epochs to the same results file: every epoch appears once
    from ftbench.report.aggregate import training_rows
    from ftbench.training.runrecord import RunRecord

    epochs = [r["epoch"] for r in training_rows(RunRecord.read(run_dir / "run.json").training(run_dir)[2], {})]
    assert sorted(epochs) == list(range(EPOCHS)), epochs


@pytest.mark.ci
def test_forcerun_retrains_from_scratch(resume_dir):
    work, cfg = resume_dir
    config = yaml.safe_load(cfg.read_text())
    config["training"]["max_num_epochs"] = 3
    cfg.write_text(yaml.safe_dump(config))
    run_dir = work / "results" / "runs" / CELL
    rule_log = work / "logs" / "finetune" / f"{CELL}.log"
    args = [f"results/runs/{CELL}/run.json", "-c", "1", "--configfile", str(cfg), "--rerun-triggers", "mtime"]
    snakemake(work, *args)
    first = json.loads((run_dir / "run.json").read_text())
    assert first["status"] == "ok" and first["epochs"] == 3

    snakemake(work, *args, "--forcerun", "finetune")  # the README's "retrain from scratch"
    text = rule_log.read_text()
    # no checkpoint loaded before training (mace loads the final one after its last epoch)
    assert "Loading checkpoint" not in text.split("INFO: Epoch 0:")[0], text[-3000:]
    assert sorted(_epochs_logged(text)) == [0, 1, 2]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "ok" and info["epochs"] == 3 and info["started"] != first["started"]
    assert first["resumed"] is False and info["resumed"] is False and info["attempts"] == 1
    from ftbench.report.aggregate import training_rows
    from ftbench.training.runrecord import RunRecord

    curve = RunRecord.read(run_dir / "run.json").training(run_dir)[2]
    assert sorted(r["epoch"] for r in training_rows(curve, {})) == [0, 1, 2]


def test_a_checkpoint_cut_by_a_kill_is_dropped_not_resumed_from(tmp_path):
    # a kill during torch.save leaves a file that does not load; mace's --restart_latest would
    # swallow the error and train from epoch 0 while the run says "resumed"
    import torch

    from ftbench.training.finetune import fingerprint, start_attempt

    checkpoints, out = tmp_path / "ckpt", tmp_path / "run"
    checkpoints.mkdir()
    good = checkpoints / "run_epoch-1.pt"
    torch.save({"model": {"w": torch.ones(1000)}, "epoch": 1}, good)
    cut = checkpoints / "run_epoch-2.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    key = fingerprint(["mace_run_train", "--name=run"], [])
    (checkpoints / "attempts.json").write_text(
        json.dumps({"fingerprint": key, "finished": False, "attempts": [{"started": time.time(), "wall_time_s": 5}]})
    )
    state = start_attempt(checkpoints, out, key)
    assert not cut.exists() and good.exists()
    assert state["resumed"] is True  # from the checkpoint that loads
    good.write_bytes(good.read_bytes()[:100])  # now the only one is cut too
    (checkpoints / "attempts.json").write_text(json.dumps({**state, "finished": False}))
    state = start_attempt(checkpoints, out, key)
    assert state["resumed"] is False and not list(checkpoints.glob("*.pt"))
