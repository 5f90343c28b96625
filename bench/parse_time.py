"""Snakefile parse time and the paper-grid dry run (targets: parse <= 1 s, dry run <= 10 s).

Parse time: `snakemake --list-rules` (parses the Snakefile, builds no DAG) next to the same
command on a one-rule Snakefile (interpreter + Snakemake start-up), medians of N runs; and the
config work the Snakefile does at parse time (load, validate, expand the paper grid) in-process.
Writes bench/out/parse_time.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def timed(cmd: list[str], cwd: Path, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(n: int = 5) -> None:
    with tempfile.TemporaryDirectory() as empty:
        Path(empty, "Snakefile").write_text("rule all:\n    shell: 'true'\n")
        baseline = timed([*SNAKEMAKE, "--list-rules"], Path(empty), n)
    full = timed([*SNAKEMAKE, "--list-rules", "--nolock"], ROOT, n)
    sys.path.insert(0, str(ROOT / "src"))
    from ftbench.core.config import load_config
    from ftbench.core.grid import expand_grid, untouched_runs

    t0 = time.perf_counter()
    for _ in range(n):
        cfg = load_config([ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml"])
        expand_grid(cfg), untouched_runs(cfg)
    config_work = (time.perf_counter() - t0) / n
    paper = timed([*SNAKEMAKE, "-n", "--nolock", "--configfile", "config/paper.yaml", "--quiet", "all"], ROOT, 3)
    out = {
        "snakemake_startup_s": round(baseline, 3),
        "list_rules_s": round(full, 3),
        "snakefile_parse_over_startup_s": round(full - baseline, 3),
        "parse_time_config_work_s": round(config_work, 3),
        "paper_dry_run_s": round(paper, 2),
        "targets": {"snakefile_parse_s": 1.0, "paper_dry_run_s": 10.0},
    }
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "parse_time.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
