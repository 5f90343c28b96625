"""Ctrl-C of a local run whose jobs run through the fork server (ftbench.runtime.forkserver).

Real Snakemake, real fine-tunes (mace_run_train) forked by the real server, a real SIGINT: to
Snakemake's process group as a terminal sends it, or to the Snakemake process alone; once, or twice
in quick succession. One Ctrl-C must stop the run: every job and the server end, Snakemake exits
with its interrupted status (1, "Terminating processes on user request") and no traceback; a second
Ctrl-C must not crash it. A plain rerun then reruns only the interrupted fine-tunes, which resume
from their checkpoints.
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
import warnings
from pathlib import Path

import pytest
import yaml

from conftest import MICRO, ROOT

# the fine-tunes' cells (naive on the micro foundation model, scratch without one)
CELLS = ("sn2/micro/naive/estimated/n8/seed1", "sn2/none/scratch/isolated/n8/seed1")
TARGETS = [f"results/runs/{cell}/run.json" for cell in CELLS]
EPOCHS = 1000  # far more than the test waits for: a fine-tune a Ctrl-C misses outlives the test
EXIT_S = 60  # how long Snakemake may take to stop after the Ctrl-C


def _config(tmp: Path) -> Path:
    config = yaml.safe_load(MICRO.read_text())
    config["strategies"] = ["naive", "scratch"]
    config["training"] = {**config.get("training", {}), "max_num_epochs": EPOCHS, "patience": EPOCHS}
    path = tmp / "interrupt.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _cmd(work: Path, cfg: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(cfg),
        "-c",
        "2",
        *args,
        *TARGETS,
    ]


def _env(tmp: Path) -> dict:
    # TMPDIR: the server's socket folder, hence its command line and its forked jobs', name it
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTBENCH_FORKSERVER")}
    return {**env, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> tuple[Path, Path]:
    """A work directory where everything the two fine-tunes need has run (demo world, pretrained
    model, splits, E0s), and its config."""
    base = tmp_path_factory.mktemp("interrupt")
    cfg = _config(base)
    work, tmp = base / "work", base / "tmp"
    tmp.mkdir()
    proc = subprocess.run(
        _cmd(work, cfg, "--omit-from", "finetune"), env=_env(tmp), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work, cfg


def _run_processes(session: int, tmp: Path, work: Path) -> dict[int, str]:
    """Live processes of this run, from /proc: Snakemake's session (its job shells and clients),
    anything whose command line names the run's TMPDIR (the server and the jobs it forked) or
    whose working folder is the work directory."""
    found = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] in ("Z", "X"):  # dead, not yet reaped
            continue
        try:
            cwd = os.readlink(d / "cwd")
        except OSError:
            cwd = ""
        if int(fields[3]) == session or str(tmp) in cmdline or cwd == str(work) or cwd.startswith(f"{work}/"):
            found[int(d.name)] = f"{d.name} {fields[0]} {cmdline[:160]}"
    return found


def _left_over(session: int, tmp: Path, work: Path, grace: float = 10.0) -> dict[int, str]:
    deadline = time.monotonic() + grace
    while (found := _run_processes(session, tmp, work)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def _job_stats(text: str) -> dict[str, int]:
    block = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", block, re.M) if rule != "job"}


def _epoch(path: Path) -> int:
    return int(re.search(r"epoch-(\d+)", path.name).group(1))


def _newest(checkpoints: Path) -> Path | None:
    return max(checkpoints.glob("*epoch-*.pt"), key=_epoch, default=None)


def _last_epoch(checkpoints: Path) -> int:
    """The epoch of the newest checkpoint mace wrote (-1: none yet)."""
    newest = _newest(checkpoints)
    return -1 if newest is None else _epoch(newest)


def _intact(path: Path) -> bool:
    """Whether torch loads the checkpoint (an interrupted torch.save still closes a well-formed zip,
    short of the tensors it had not written)."""
    code = "import sys, torch; torch.load(sys.argv[1], map_location='cpu', weights_only=False)"
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=300).returncode == 0


def _epochs(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"INFO: Epoch (\d+):", text)]


class Run:
    """Snakemake in a session of its own (so its process group is what a terminal would signal)."""

    def __init__(self, work: Path, cfg: Path, tmp: Path, out: Path):
        self.work, self.tmp, self.out = work, tmp, out
        self.stderr = out / "stderr.txt"
        with open(out / "stdout.txt", "wb") as so, open(self.stderr, "wb") as se:
            self.proc = subprocess.Popen(
                _cmd(work, cfg), env=_env(tmp), stdout=so, stderr=se, start_new_session=True, cwd=out
            )

    def wait_for(self, what: str, ready, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"snakemake ended before {what}:\n{self.stderr.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"no {what} after {timeout} s"
            time.sleep(0.2)

    def ctrl_c(self, to: str, presses: int = 1) -> None:
        for i in range(presses):
            if i:
                time.sleep(0.2)  # a second press while Snakemake still waits for its jobs
            try:
                if to == "group":
                    os.killpg(self.proc.pid, signal.SIGINT)
                else:
                    os.kill(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:  # it had already stopped
                pass

    def stopped(self) -> tuple[int | None, str]:
        try:
            rc = self.proc.wait(EXIT_S)
        except subprocess.TimeoutExpired:
            rc = None
        return rc, self.stderr.read_text()

    def clean_up(self) -> None:
        """Whatever this run left (a failing test): its session, then its processes, by pid."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        for pid in _run_processes(self.proc.pid, self.tmp, self.work):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _assert_stopped_cleanly(run: Run, rc: int | None, stderr: str) -> None:
    assert rc is not None, f"snakemake still runs {EXIT_S} s after the Ctrl-C:\n{stderr[-3000:]}"
    assert rc == 1, stderr[-3000:]
    assert "Terminating processes on user request" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-6000:]
    left = _left_over(run.proc.pid, run.tmp, run.work)
    assert not left, "processes of the run outlived snakemake:\n" + "\n".join(left.values())
    assert not list(run.tmp.glob("ftbench-fs-*")), "the server's socket folder was not removed (stop() skipped)"


@pytest.mark.ci
@pytest.mark.parametrize("to", ["group", "snakemake"])
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_the_run_and_a_rerun_resumes(upstream, tmp_path, to, presses):
    template, cfg = upstream
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    shutil.copytree(template, work, symlinks=True)
    tmp.mkdir()
    checkpoints = [work / "results" / "checkpoints" / cell for cell in CELLS]
    server_log = work / "logs" / "forkserver.log"

    run = Run(work, cfg, tmp, tmp_path)
    try:
        # both fine-tunes train (a checkpoint after epoch 0 each): the Ctrl-C lands mid-training, and a
        # resumed run is told from a fresh start by its first epoch
        run.wait_for(
            "a checkpoint past epoch 0 of each fine-tune", lambda: all(_last_epoch(c) > 0 for c in checkpoints)
        )
        time.sleep(0.5)  # a checkpoint file appears as its write starts: do not aim the Ctrl-C at the write
        jobs = [int(p) for p in re.findall(r"job (\d+) started: finetune", server_log.read_text())]
        assert len(jobs) == 2, server_log.read_text()[-3000:]
        run.ctrl_c(to, presses)
        rc, stderr = run.stopped()
        _assert_stopped_cleanly(run, rc, stderr)
    finally:
        run.clean_up()
    log = server_log.read_text()
    for pid in jobs:
        # status 2: killed by SIGINT (a second press may SIGKILL one still unwinding: 9)
        status = re.search(rf"job {pid}: status (\d+)", log)
        assert status and int(status.group(1)) in ({2} if presses == 1 else {2, 9}), log[-3000:]
    if presses == 2:
        assert "ftbench: already stopping" in stderr, stderr[-3000:]
    for cell, ckpt in zip(CELLS, checkpoints):
        assert not (work / "results" / "runs" / cell / "run.json").exists()
        assert list(ckpt.glob("*.pt")), f"{cell}: the checkpoints went with the interrupted job"

    # a plain rerun: only the two interrupted fine-tunes run again (nothing upstream)
    dry = subprocess.run(_cmd(work, cfg, "-n"), env=_env(tmp), capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert _job_stats(dry.stdout + dry.stderr) == {"finetune": 2}, dry.stdout[-3000:]
    if presses == 2:
        return

    # ... and each resumes from its checkpoint; this run is stopped by a Ctrl-C too
    left = {cell: _newest(c) for cell, c in zip(CELLS, checkpoints)}
    intact = {cell: _intact(path) for cell, path in left.items()}  # before the rerun writes that file again
    logs = [work / "logs" / "finetune" / f"{cell}.log" for cell in CELLS]
    before = server_log.read_text().count(" started: finetune")
    (tmp_path / "rerun").mkdir()
    rerun = Run(work, cfg, tmp, tmp_path / "rerun")
    try:

        def resumed() -> bool:
            if server_log.read_text().count(" started: finetune") < before + 2:
                return False  # the logs are still the interrupted run's
            texts = [p.read_text() if p.exists() else "" for p in logs]
            return all("Loading checkpoint" in t and _epochs(t.split("Loading checkpoint", 1)[1]) for t in texts)

        rerun.wait_for("a resumed epoch of each fine-tune", resumed)
        rerun.ctrl_c("group")
        rc, stderr = rerun.stopped()
        _assert_stopped_cleanly(rerun, rc, stderr)
    finally:
        rerun.clean_up()
    for cell, path in zip(CELLS, logs):
        text = path.read_text()
        assert "resuming an interrupted run" in text, text[-3000:]
        loaded = re.search(r"Loading checkpoint: (\S+)", text).group(1)
        assert (work / loaded).resolve() == left[cell].resolve(), (loaded, left[cell])
        if intact[cell]:
            assert min(_epochs(text)) >= _epoch(left[cell]) > 0, (cell, left[cell].name, _epochs(text)[:5])
        else:
            # Not this fix's: mace (keep_checkpoints=False) deletes the previous checkpoint before it
            # writes the next, so a Ctrl-C (or a kill) during the write leaves only a truncated file;
            # --restart_latest then swallows the load error and trains from epoch 0.
            warnings.warn(
                f"{cell}: the Ctrl-C cut mace's write of {left[cell].name}; the rerun could not resume", stacklevel=1
            )
    state = json.loads((checkpoints[0] / "attempts.json").read_text())
    assert state["resumed"] is True and len(state["attempts"]) == 2, state


def _server(folder: Path) -> tuple[subprocess.Popen, Path, dict]:
    """A fork server as start() runs it, and the environment of a job that uses it."""
    path, log = folder / "sock", folder / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTBENCH_FORKSERVER")}
    env["PYTHONPATH"] = str(ROOT / "src")
    server_env = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftbench.runtime.forkserver", "--socket", str(path)],
            env=server_env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    (folder / "pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 300
    while not path.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "server did not come up"
        time.sleep(0.2)
    return proc, log, {**env, "OMP_NUM_THREADS": "1", "FTBENCH_FORKSERVER_SOCKET": str(path)}


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_one_ctrl_c_interrupts_a_job_once_and_no_later_job_starts(tmp_path):
    """A terminal's Ctrl-C reaches the client (which forwards it) and Snakemake (whose handler sends
    the server SIGUSR1) at once: the job gets one SIGINT and dies of it; a job asked for afterwards
    is neither forked nor run by its client."""
    server, log, env = _server(tmp_path)
    try:
        job_err = tmp_path / "job.err"
        with open(job_err, "wb") as err:
            client = subprocess.Popen(
                [sys.executable, "-m", "ftbench", "demo", "--generator", "sn2", "--n", "5000", "--charge=-1"]
                + ["--out", "big.xyz"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 120
        while not (started := re.findall(r"job (\d+) started: demo", log.read_text())):
            assert client.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        job = int(started[0])
        time.sleep(1.0)  # into the labelling loop
        client.send_signal(signal.SIGINT)
        os.kill(server.pid, signal.SIGUSR1)  # forkserver.INTERRUPT_SIGNAL, as the workflow's handler sends it
        assert client.wait(60) == -signal.SIGINT, job_err.read_text()[-3000:]
        assert _gone(job), f"job {job} survived the Ctrl-C"
        deadline = time.monotonic() + 30  # the server logs the status just after it sent it
        while not (status := re.search(rf"job {job}: status (\d+) ", text := log.read_text())):
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.1)
        assert status.group(1) == "2", text[-3000:]  # died of SIGINT
        assert "interrupted: SIGINT to" in text, text[-3000:]
        err = job_err.read_text()
        assert err.count("KeyboardInterrupt") == 1 and "During handling" not in err, err[-3000:]

        later = subprocess.run(
            [sys.executable, "-m", "ftbench", "grid", "--configfile", str(ROOT / "config" / "config.yaml")],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert later.returncode == -signal.SIGINT, later.stderr[-3000:]
        assert later.stdout == "" and "not started: the run is being interrupted" in later.stderr
        assert log.read_text().count(" started: ") == 1
        assert server.poll() is None  # interrupted, not stopped: the workflow's stop() ends it
    finally:
        server.terminate()
        server.wait(30)
