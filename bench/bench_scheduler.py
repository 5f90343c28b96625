"""Snakemake's own CPU under its scheduler settings.

Snakemake's main process (not its jobs) is polled through /proc until it exits; its user+sys
CPU is what the scheduler, the DAG and the job bookkeeping cost. The jobs are the same in every
variant, so the difference is the settings'. Two modes:

- the micro grid (tests/data/micro.yaml) cold in a scratch folder, per variant;
- `--directory DIR --forcerun evaluate evaluate_pt_eval`: a finished run's evaluations again
  (the default run: 116 jobs ready at once on 2 cores, where Snakemake's re-evaluation of its
  ready jobs, every second by default, costs most).

Variants: `ilp` (Snakemake's defaults), `greedy` (--scheduler greedy), `local` (greedy and
--max-jobs-per-timespan 1000/10s, as profiles/local sets). Snakemake 9.27's rate limiter starts a
threading.Timer of one timespan after every scheduling pass whose release runs another pass, so
the default 100/1s re-runs the scheduler every second per chain, and chains add up; a long
timespan (1h) stops that but Snakemake then waits for the last timer before it exits (measured:
the run hung after its last job). Writes bench/out/scheduler.json.

Usage: python bench/bench_scheduler.py [--variants ilp,local] [--configfile tests/data/micro.yaml]
       python bench/bench_scheduler.py --directory /tmp/clone --forcerun evaluate evaluate_pt_eval
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


VARIANTS = {
    "ilp": [],
    "greedy": ["--scheduler", "greedy"],
    "local": ["--scheduler", "greedy", "--max-jobs-per-timespan", "1000/10s"],
}


def run(variant: str, configfile: Path | None, cores: int, directory: Path | None, forcerun: list[str]) -> dict:
    if directory is None:
        work = Path(tempfile.mkdtemp(prefix=f"ftbench-sched-{variant}-"))
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work)]
        cmd += ["--configfile", str(configfile)]
        cwd, env = ROOT, {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    else:
        cwd, env = directory, dict(os.environ)
        cmd = [sys.executable, "-m", "snakemake", "--forcerun", *forcerun]
    cmd += ["-c", str(cores), *VARIANTS[variant]]
    env["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    log = Path(tempfile.mkstemp(prefix=f"ftbench-sched-{variant}-", suffix=".log")[1])
    t0 = time.perf_counter()
    with log.open("w") as err:  # a file, not a pipe: Snakemake's log would fill a pipe and block it
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    cpu = 0.0
    while proc.poll() is None:
        cpu = own_cpu(proc.pid) or cpu
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{variant}: snakemake failed (log {log}):\n{log.read_text()[-3000:]}")
    return {
        "args": VARIANTS[variant],
        "wall_s": round(wall, 1),
        "snakemake_cpu_s": round(cpu, 1),
        "share_of_a_core": round(cpu / wall, 3),
        "jobs_done": log.read_text().count("Finished jobid"),
        "log": str(log),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="ilp,local")
    ap.add_argument("--configfile", type=Path, default=ROOT / "tests" / "data" / "micro.yaml")
    ap.add_argument("--directory", type=Path, help="a finished run's checkout (with --forcerun)")
    ap.add_argument("--forcerun", nargs="*", default=["evaluate", "evaluate_pt_eval"])
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    what = str(args.directory) + " --forcerun " + " ".join(args.forcerun) if args.directory else str(args.configfile)
    out = {"target": what, "load_avg_start": os.getloadavg()}
    for v in args.variants.split(","):
        out[v] = run(v, args.configfile, args.cores, args.directory, args.forcerun)
        print(v, out[v], flush=True)
    out["load_avg_end"] = os.getloadavg()
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "scheduler.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
