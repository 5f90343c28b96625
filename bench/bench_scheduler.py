"""Snakemake's own CPU under its two schedulers: the micro grid (tests/data/micro.yaml) with each.

Snakemake's main process (not its jobs) is polled through /proc until it exits; its user+sys
CPU is what the scheduler, the DAG and the job bookkeeping cost. The jobs are the same in both
runs, so the difference is the scheduler's. Writes bench/out/scheduler.json.

Usage: python bench/bench_scheduler.py [--schedulers ilp,greedy] [--configfile tests/data/micro.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def own_cpu(pid: int) -> float | None:
    """user+sys CPU seconds of process `pid` itself (not its children), None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def run(scheduler: str, configfile: Path, cores: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"ftbench-sched-{scheduler}-"))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work)]
    cmd += ["-c", str(cores), "--configfile", str(configfile), "--scheduler", scheduler]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cpu = 0.0
    while proc.poll() is None:
        cpu = own_cpu(proc.pid) or cpu
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{scheduler}: snakemake failed:\n{proc.stderr.read()[-3000:]}")
    jobs = sum(1 for _ in (work / "logs").rglob("*.log"))
    return {
        "wall_s": round(wall, 1),
        "snakemake_cpu_s": round(cpu, 1),
        "share_of_a_core": round(cpu / wall, 3),
        "job_logs": jobs,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedulers", default="ilp,greedy")
    ap.add_argument("--configfile", type=Path, default=ROOT / "tests" / "data" / "micro.yaml")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    out = {"configfile": str(args.configfile), "load_avg_start": os.getloadavg()}
    for s in args.schedulers.split(","):
        out[s] = run(s, args.configfile, args.cores)
        print(s, out[s], flush=True)
    out["load_avg_end"] = os.getloadavg()
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "scheduler.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
