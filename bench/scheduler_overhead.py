"""Benchmark: CPU time of Snakemake's own process (not its jobs) over a real slice of the default run.

Issue 23 measured Snakemake's scheduler at a third of a core throughout a default run. This runs
one slice of the default grid cold, once per setting, and samples the main process's own CPU
time (utime + stime in /proc/<pid>/stat: the process itself, without its children) every 0.5 s.
Settings: Snakemake's defaults (ILP scheduler) and `--scheduler greedy`.
Writes bench/out/scheduler_overhead.json.
Usage: python bench/scheduler_overhead.py [--config KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLICE = ["foundation_models=[demo_gen1]", "seeds=[1]", "train_sizes=[10]", "strategies=[naive,lora,scratch]"]
SETTINGS = {"ilp (default)": [], "greedy": ["--scheduler", "greedy"]}


def own_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of the process itself (fields 14, 15 of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(extra: list[str], config: list[str]) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sched_"))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work), "-c", "2"]
    cmd += ["--config", *config, *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cpu = 0.0
    while proc.poll() is None:
        cpu = own_cpu_s(proc.pid) or cpu
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    err = proc.stderr.read()
    shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return {"wall_s": round(wall, 1), "snakemake_cpu_s": round(cpu, 1), "cores_used_by_snakemake": round(cpu / wall, 3)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", nargs="*", default=SLICE)
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "scheduler_overhead.json"))
    args = p.parse_args()
    out = {"slice": args.config, "settings": {}}
    for name, extra in SETTINGS.items():
        out["settings"][name] = measure(extra, args.config)
        print(name, out["settings"][name], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
