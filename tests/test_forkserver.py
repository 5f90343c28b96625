"""The fork server (ftbench.runtime.forkserver) runs `python -m ftbench` jobs as a fresh process would:
same outputs, exit codes and streams; cancelled clients take their job with them; without a
usable server the client runs the job itself."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftbench.runtime import forkclient, forkserver

ROOT = Path(__file__).resolve().parents[1]
PLAIN_ENV = {k: v for k, v in os.environ.items() if k != forkserver.SOCKET_ENV}
PLAIN_ENV.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))


def ftbench(*args, env, cwd, timeout=900, **kw):
    return subprocess.run(
        [sys.executable, "-m", "ftbench", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def server_jobs(log: Path) -> list[int]:
    return [int(p) for p in re.findall(r"job (\d+) started", log.read_text())]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fs")
    path = folder / "sock"
    log = folder / "server.log"
    with open(log, "wb") as out:
        # as the workflow starts it: without thread-count variables (OpenBLAS would start threads)
        env = {k: v for k, v in PLAIN_ENV.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftbench.runtime.forkserver", "--socket", str(path)],
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    (folder / "pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 600
    while not path.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "server did not come up"
        time.sleep(0.2)
    yield {"proc": proc, "path": path, "log": log, "env": {**PLAIN_ENV, forkserver.SOCKET_ENV: str(path)}}
    proc.terminate()
    proc.wait(30)
    assert not path.exists()


def same_run(server, tmp_path, *args, **kw):
    """The job through the server and plainly, each in its own folder; both results."""
    (tmp_path / "fs").mkdir()
    (tmp_path / "plain").mkdir()
    before = len(server_jobs(server["log"]))
    via = ftbench(*args, env=server["env"], cwd=tmp_path / "fs", **kw)
    assert len(server_jobs(server["log"])) == before + 1, "the job did not go through the server"
    plain = ftbench(*args, env=PLAIN_ENV, cwd=tmp_path / "plain", **kw)
    return via, plain


def test_client_and_server_modules_import_only_the_standard_library():
    code = (
        "import sys, ftbench.runtime.forkclient, ftbench.runtime.forkserver, ftbench.__init__; "
        "print(sorted(m for m in ('torch', 'numpy', 'ase', 'mace', 'snakemake') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=PLAIN_ENV, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_client_compat_mirrors_server():
    env = {"PYTHONPATH": "x", "PYTHONUNBUFFERED": "1", "HOME": "/h"}
    assert forkclient._compat(env) == forkserver.compat_key(env)
    assert forkclient.SOCKET_ENV == forkserver.SOCKET_ENV and forkclient.PROTOCOL == forkserver.PROTOCOL


@pytest.mark.slow
def test_server_holds_one_thread(server):
    # No OpenMP/MKL pool (or any thread) may exist in the process every job is forked from.
    assert len(os.listdir(f"/proc/{server['proc'].pid}/task")) == 1


@pytest.mark.slow
def test_grid_same_stdout_stderr_and_exit_code(server, tmp_path):
    via, plain = same_run(server, tmp_path, "grid", "--configfile", str(ROOT / "config" / "config.yaml"))
    assert via.returncode == plain.returncode == 0
    assert via.stdout == plain.stdout and via.stdout.strip()
    assert via.stderr == plain.stderr


def test_ftbench_error_exit_2_and_message(server, tmp_path):
    # an unknown strategy fails validation (FtbenchError -> exit 2, message on stderr)
    via, plain = same_run(server, tmp_path, "grid", "--config", "strategies=[no_such_strategy]")
    assert via.returncode == plain.returncode == 2
    assert via.stderr == plain.stderr and "ftbench grid: error:" in via.stderr
    assert via.stdout == plain.stdout


def test_usage_error_and_stdin_reach_the_job(server, tmp_path):
    via, plain = same_run(server, tmp_path, "e0", "--mode", "nonsense", "--data", "x", "--out", "y", input="ignored\n")
    assert via.returncode == plain.returncode == 2
    assert via.stderr == plain.stderr and "invalid choice" in via.stderr


def _tiny_world(work: Path, env) -> None:
    for args in (
        ["demo", "--generator", "sn2", "--n", "16", "--seed", "5", "--charge=-1", "--out", "sn2.xyz"],
        ["prepare", "--data", "sn2.xyz", "--n-valid", "4", "--n-test", "2", "--out-dir", "data"],
        [
            "e0",
            "--mode",
            "isolated",
            "--data",
            "data/train_pool.xyz",
            "--isolated",
            "data/isolated.xyz",
            "--out",
            "e0.json",
        ],
    ):
        proc = ftbench(*args, env=env, cwd=work)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.ci
def test_real_jobs_write_the_same_files_and_train_with_two_threads(server, tmp_path):
    """Labelling, splitting, E0s and a 2-thread fine-tune (OpenMP after fork) through the server
    give the files a plain run gives."""
    for name in ("fs", "plain"):
        (tmp_path / name).mkdir()
    before = len(server_jobs(server["log"]))
    _tiny_world(tmp_path / "fs", server["env"])
    assert len(server_jobs(server["log"])) == before + 3
    _tiny_world(tmp_path / "plain", PLAIN_ENV)
    for rel in ("sn2.xyz", "data/train_pool.xyz", "data/valid.xyz", "data/test.xyz"):
        assert (tmp_path / "fs" / rel).read_text() == (tmp_path / "plain" / rel).read_text(), rel
    e0s = [json.loads((tmp_path / n / "e0.json").read_text()) for n in ("fs", "plain")]
    assert e0s[0] == e0s[1]

    flags = {
        "model": "MACE",
        "num_channels": 8,
        "max_L": 0,
        "correlation": 2,
        "r_max": 4.0,
        "num_interactions": 2,
        "max_num_epochs": 2,
        "batch_size": 4,
        "lr": 1e-2,
        "energy_key": "REF_energy",
        "forces_key": "REF_forces",
        "default_dtype": "float64",
        "eval_interval": 1,
    }
    args = [
        "finetune",
        "--flags",
        json.dumps(flags),
        "--train",
        "data/train_pool.xyz",
        "--valid",
        "data/valid.xyz",
        "--e0",
        "e0.json",
        "--out-dir",
        "run",
        "--device",
        "cpu",
        "--threads",
        "2",
    ]
    env2 = {**server["env"], "OMP_NUM_THREADS": "2"}
    via = ftbench(*args, env=env2, cwd=tmp_path / "fs", timeout=1200)
    assert via.returncode == 0, via.stderr[-3000:]
    plain = ftbench(*args, env={**PLAIN_ENV, "OMP_NUM_THREADS": "2"}, cwd=tmp_path / "plain", timeout=1200)
    assert plain.returncode == 0, plain.stderr[-3000:]
    for name in ("fs", "plain"):
        assert json.loads((tmp_path / name / "run" / "run.json").read_text())["status"] == "ok"
    rows = [
        [
            json.loads(line)
            for line in next((tmp_path / n / "run").rglob("*_train.txt")).read_text().splitlines()
            if '"eval"' in line
        ]
        for n in ("fs", "plain")
    ]
    assert len(rows[0]) == len(rows[1]) > 0
    for a, b in zip(*rows):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["rmse_f"] == pytest.approx(b["rmse_f"], rel=1e-6)
    assert len(os.listdir(f"/proc/{server['proc'].pid}/task")) == 1


def _start_long_job(server, tmp_path):
    """A job that runs for minutes (labelling many structures), through the server; its pid."""
    before = len(server_jobs(server["log"]))
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ftbench",
            "demo",
            "--generator",
            "sn2",
            "--n",
            "5000",
            "--charge=-1",
            "--out",
            "big.xyz",
        ],
        env=server["env"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(server_jobs(server["log"])) == before:
        assert client.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    return client, server_jobs(server["log"])[-1]


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)  # the server reaps its children at once: no zombie lingers
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killing_the_client_kills_the_job(server, tmp_path, sig):
    client, job = _start_long_job(server, tmp_path)
    os.kill(job, 0)
    client.send_signal(sig)
    assert client.wait(60) == -sig  # SIGTERM, SIGINT: forwarded, the job died of it, the client too
    assert _gone(job), f"job {job} survived its client's {sig!r}"


@pytest.mark.slow
def test_no_server_stale_socket_or_other_interpreter_falls_back(server, tmp_path):
    args = ["grid", "--configfile", str(ROOT / "config" / "config.yaml")]
    plain = ftbench(*args, env=PLAIN_ENV, cwd=tmp_path)
    stale = tmp_path / "old" / "sock"
    stale.parent.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))  # a socket file nobody listens on (a killed run's)
    s.close()
    before = len(server_jobs(server["log"]))
    for env in (
        {**PLAIN_ENV, forkserver.SOCKET_ENV: str(tmp_path / "missing" / "sock")},
        {**PLAIN_ENV, forkserver.SOCKET_ENV: str(stale)},
        {**server["env"], "PYTHONNOUSERSITE": "1"},
    ):  # interpreter set-up differs: refused
        t0 = time.monotonic()
        proc = ftbench(*args, env=env, cwd=tmp_path)
        assert (proc.returncode, proc.stdout, proc.stderr) == (plain.returncode, plain.stdout, plain.stderr)
        assert time.monotonic() - t0 < 120
    assert len(server_jobs(server["log"])) == before


def _snakemake(workdir: Path, *args, env) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(ROOT / "tests" / "data" / "micro.yaml"),
        *args,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("case", ["slurm", "config", "env"])
@pytest.mark.ci
def test_cluster_executor_and_switches_keep_the_server_off(tmp_path, case):
    # onstart runs before any job is scheduled; --touch keeps the local runs cheap.
    args, env = ["-c", "1", "--touch"], dict(PLAIN_ENV)
    if case == "slurm":  # submission then fails here (no SLURM), after onstart ran
        args = ["--executor", "slurm", "-j", "1", "--default-resources", "slurm_account=a", "slurm_partition=p"]
    elif case == "config":
        args += ["--config", "fork_server=False"]
    else:
        env[forkserver.SWITCH_ENV] = "0"
    proc = _snakemake(tmp_path, *args, env=env)
    reason = {
        "slurm": "cluster executor",
        "config": "config fork_server is false",
        "env": f"{forkserver.SWITCH_ENV}=0",
    }[case]
    assert f"ftbench: fork server off ({reason}" in proc.stderr, proc.stderr[-3000:]
    assert "fork server starting" not in proc.stderr


@pytest.mark.slow
def test_workflow_starts_and_stops_the_server_and_clears_stale_ones(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp / "ftbench-fs-stale"  # a killed run's folder: its server is gone
    stale.mkdir()
    (stale / "pid").write_text(str(dead.pid))
    socket.socket(socket.AF_UNIX).bind(str(stale / "sock"))
    proc = _snakemake(tmp_path / "work", "-c", "1", "--touch", env={**PLAIN_ENV, "TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ftbench: fork server starting" in proc.stderr
    assert list(tmp.iterdir()) == []  # stale folder removed, this run's removed at the end
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert str(tmp) not in cmdline.read_text(), f"server {cmdline.parent.name} still runs"
        except OSError:
            pass


def test_micro_pipeline_jobs_ran_through_the_server(micro_run):
    log = (micro_run / "logs" / "forkserver.log").read_text()
    started = re.findall(r"job (\d+) started: (\S+)", log)
    statuses = re.findall(r"job \d+: status (\d+)", log)
    assert sum(cmd == "finetune" for _, cmd in started) >= 8, log[-3000:]
    assert {"e0", "evaluate", "robustness"} <= {cmd for _, cmd in started}
    assert len(statuses) == len(started) and set(statuses) == {"0"}
    assert "stopped (0 jobs killed)" in log
