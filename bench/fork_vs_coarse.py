"""Fork server or coarser jobs: which removes more of the default run's per-job start-up cost?

Measured: the CPU a fresh interpreter spends importing what each kind of job imports before its
own work (ftbench imports lazily, so `--help` would miss it: the import sets below are what the
commands load when they run), and the CPU of a job's start through the fork server (a trivial
command via the client); the default run's jobs per rule (`snakemake -n`). Derived: the
start-up CPU of the whole default run (1) one process per job, as without the server; (2) with
the coarsest sensible jobs: each run's fine-tune, evaluations and robustness in one process, each
(benchmark, model) preparation in one, the report in one; (3) with the fork server (one import,
then a client per job). Writes bench/out/fork_vs_coarse.json.

Usage: python bench/fork_vs_coarse.py [--repeats 3] [-- snakemake config args]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from forkserver import ENV, ROOT, SOCKET_ENV, start_server, timed  # noqa: E402

# What a job of each rule imports while it runs (local rules and `all` start nothing).
TORCH = "import torch, e3nn, mace.modules, mace.tools, mace.data; from mace.calculators import MACECalculator; import ase.io"
IMPORTS = {
    "torch_mace": TORCH,
    "mace_train": TORCH + "; import mace.cli.run_train",
    "report": "import pandas, matplotlib.pyplot, ase.io",
    "ase": "import numpy, scipy.spatial, ase.io",
    "tblite": "import ase.io, ase.optimize; from tblite.ase import TBLite",
}
RULE_IMPORTS = {
    "prepare_benchmark": "ase",
    "check_elements": "torch_mace",
    "subset": "ase",
    "e0": "torch_mace",
    "replay": "torch_mace",
    "untouched": "torch_mace",
    "finetune": "mace_train",
    "evaluate": "torch_mace",
    "evaluate_pt_eval": "torch_mace",
    "robustness": "torch_mace",
    "md_start": "tblite",
    "reference_rdf": "ase",
    "aggregate": "report",
    "figure": "report",
    "tables": "report",
}


def dag_counts(extra: list[str]) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="ftbench-dag-") as work:
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", work, "-n"]
        cmd += ["--quiet", "rules", "-c", "2", *extra]
        out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", out, re.M) if k not in ("total", "all")}


def startup_cpu(repeats: int) -> dict[str, float]:
    """Median CPU s of each import set in a fresh interpreter, and of one job start via the fork server."""
    work = Path(tempfile.mkdtemp(prefix="ftbench-startup-"))
    out = {}
    for name, code in IMPORTS.items():
        out[name] = statistics.median(timed([sys.executable, "-c", code], work, ENV)["cpu_s"] for _ in range(repeats))
        print(name, round(out[name], 2), flush=True)
    server = start_server(work)
    senv = {**ENV, SOCKET_ENV: str(Path(server.args[-1]))}
    try:  # the client, the fork and a command that does no work: what every job pays on top of its work
        ft = [sys.executable, "-m", "ftbench", "tables", "--help"]
        out["via_fork_server"] = statistics.median(timed(ft, work, senv, server.pid)["cpu_s"] for _ in range(repeats))
        t_server = timed([sys.executable, "-c", "import ftbench.runtime.forkserver as f"], work, ENV)
        out["fork_server_start"] = out["mace_train"] + out["report"] - out["ase"] + t_server["cpu_s"]
    finally:
        server.terminate()
        server.wait()
    print("via fork server", round(out["via_fork_server"], 3), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("snakemake_args", nargs="*", help="after --: e.g. --configfile config/demo_full.yaml")
    args = ap.parse_args()
    counts = dag_counts(args.snakemake_args)
    cost = startup_cpu(args.repeats)
    jobs = {rule: n for rule, n in counts.items() if rule in RULE_IMPORTS}
    plain = sum(n * cost[RULE_IMPORTS[r]] for r, n in jobs.items())
    fork = sum(jobs.values()) * cost["via_fork_server"] + cost["fork_server_start"]
    # coarse: a run's fine-tune (or untouched), evaluations and robustness share one start-up (the
    # training one); each (benchmark, model) preparation one (replay jobs count them); the report one
    runs = jobs.get("finetune", 0) + jobs.get("untouched", 0)
    preps = max(1, jobs.get("replay", 0))
    coarse_jobs = runs + preps + 1
    coarse = runs * cost["mace_train"] + preps * (cost["torch_mace"] + cost["tblite"]) + cost["report"]
    out = {
        "load_avg": os.getloadavg(),
        "jobs_per_rule": jobs,
        "startup_cpu_s": {k: round(v, 3) for k, v in cost.items()},
        "default_run_startup_cpu_s": {
            "one_process_per_job": {"processes": sum(jobs.values()), "cpu_s": round(plain, 1)},
            "coarse_jobs": {"processes": coarse_jobs, "cpu_s": round(coarse, 1)},
            "fork_server": {"processes": sum(jobs.values()), "cpu_s": round(fork, 1)},
        },
    }
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "fork_vs_coarse.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["default_run_startup_cpu_s"], indent=2))


if __name__ == "__main__":
    main()
