"""What the fork server (ftbench.runtime.forkserver) saves: the micro grid (tests/data/micro.yaml) through
real Snakemake with and without it, and the per-job cost of single `python -m ftbench` jobs.

Reports wall time AND CPU time (user+sys of the whole process tree: getrusage(RUSAGE_CHILDREN)
after everything was reaped; a job forked by a server is charged through the server's cutime),
because wall time on a shared machine mostly measures the neighbours.
Writes bench/out/forkserver.json.

Usage: python bench/forkserver.py [--repeats 3] [--skip-grid] [--skip-jobs]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from ftbench.runtime.forkserver import SOCKET_ENV, SWITCH_ENV  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if k not in (SOCKET_ENV, SWITCH_ENV)}
ENV.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT / "src"))
TICK = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def reaped_cpu(pid: int) -> float:
    """CPU of the reaped children of `pid` (the jobs a server forked), from /proc/pid/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / TICK  # cutime, cstime


def timed(cmd, cwd, env, server_pid=None) -> dict:
    c0, s0, t0 = children_cpu(), reaped_cpu(server_pid) if server_pid else 0.0, time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = children_cpu() - c0 + ((reaped_cpu(server_pid) - s0) if server_pid else 0.0)
    return {"wall_s": wall, "cpu_s": cpu}


def grid(workdir: Path, server: bool) -> dict:
    env = dict(ENV) if server else {**ENV, SWITCH_ENV: "0"}
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "-c",
        "2",
        "--configfile",
        str(ROOT / "tests" / "data" / "micro.yaml"),
    ]
    out = timed(cmd, ROOT, env)
    log = workdir / "logs" / "forkserver.log"
    out["jobs_via_server"] = log.read_text().count(" started: ") if log.exists() else 0
    out["errors_csv"] = (workdir / "results" / "tables" / "errors.csv").read_text()
    return out


def start_server(folder: Path) -> subprocess.Popen:
    path = folder / "sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftbench.runtime.forkserver", "--socket", str(path)],
        env=ENV,
        stdout=open(folder / "server.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    (folder / "pid").write_text(str(proc.pid))
    while not path.exists():
        if proc.poll() is not None:
            raise SystemExit((folder / "server.log").read_text())
        time.sleep(0.2)
    return proc


def jobs(work: Path, repeats: int) -> dict:
    ft = [sys.executable, "-m", "ftbench"]
    for args in (
        ["demo", "--generator", "sn2", "--n", "24", "--seed", "5", "--charge=-1", "--out", "sn2.xyz"],
        ["prepare", "--data", "sn2.xyz", "--n-valid", "6", "--n-test", "2", "--out-dir", "data"],
    ):
        timed([*ft, *args], work, ENV)
    flags = {
        "model": "MACE",
        "num_channels": 8,
        "max_L": 0,
        "correlation": 2,
        "r_max": 4.0,
        "max_num_epochs": 1,
        "batch_size": 4,
        "lr": 1e-2,
        "energy_key": "REF_energy",
        "forces_key": "REF_forces",
        "default_dtype": "float64",
        "eval_interval": 1,
    }
    kinds = {
        "e0_isolated": lambda i: [
            "e0",
            "--mode",
            "isolated",
            "--data",
            "data/train_pool.xyz",
            "--isolated",
            "data/isolated.xyz",
            "--out",
            f"e0_{i}.json",
        ],
        "finetune_1_epoch": lambda i: [
            "finetune",
            "--flags",
            json.dumps(flags),
            "--train",
            "data/train_pool.xyz",
            "--valid",
            "data/valid.xyz",
            "--e0",
            "e0_0.json",
            "--out-dir",
            f"ft{i}",
            "--device",
            "cpu",
            "--threads",
            "1",
        ],
    }
    t0 = time.perf_counter()
    server = start_server(Path(tempfile.mkdtemp(prefix="ftbench-fs-")))
    result = {"server_start_wall_s": round(time.perf_counter() - t0, 2)}
    senv = {**ENV, SOCKET_ENV: str(Path(server.args[-1]))}
    try:
        for kind, args in kinds.items():
            plain, via = [], []
            for i in range(repeats):  # alternated, so drifting load hits both alike
                plain.append(timed([*ft, *args(i)], work, ENV))
                via.append(timed([*ft, *args(i)], work, senv, server.pid))
            result[kind] = {
                mode: {k: round(statistics.median(r[k] for r in runs), 3) for k in ("wall_s", "cpu_s")}
                for mode, runs in (("plain", plain), ("forkserver", via))
            }
            p, f = result[kind]["plain"], result[kind]["forkserver"]
            result[kind]["saved_cpu_s"] = round(p["cpu_s"] - f["cpu_s"], 3)
            result[kind]["saved_wall_s"] = round(p["wall_s"] - f["wall_s"], 3)
    finally:
        server.terminate()
        server.wait()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-jobs", action="store_true")
    args = ap.parse_args()
    out = {"load_avg_start": os.getloadavg(), "cores": os.cpu_count()}
    if not args.skip_jobs:
        out["per_job"] = jobs(Path(tempfile.mkdtemp(prefix="ftbench-fsjobs-")), args.repeats)
        print(json.dumps(out["per_job"], indent=1), flush=True)
    if not args.skip_grid:
        runs = {}
        for mode in ("forkserver", "plain"):
            runs[mode] = grid(Path(tempfile.mkdtemp(prefix=f"ftbench-fsgrid-{mode}-")), mode == "forkserver")
            print(mode, {k: v for k, v in runs[mode].items() if k != "errors_csv"}, flush=True)
        same = runs["forkserver"].pop("errors_csv") == runs["plain"].pop("errors_csv")
        out["micro_grid"] = {
            **{m: {k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()} for m, r in runs.items()},
            "identical_errors_csv": same,
        }
    out["load_avg_end"] = os.getloadavg()
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "forkserver.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
