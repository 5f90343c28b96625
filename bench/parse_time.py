"""Snakefile parse time and the paper-grid dry run (targets: parse <= 1 s, dry run <= 10 s).

Parse time = `snakemake --list-rules` (parses the Snakefile, builds no DAG) minus the same
command on an empty Snakefile (interpreter + Snakemake start-up), median of N runs.
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
    paper = timed([*SNAKEMAKE, "-n", "--nolock", "--configfile", "config/paper.yaml", "--quiet", "all"], ROOT, 3)
    out = {"snakemake_startup_s": round(baseline, 3), "list_rules_s": round(full, 3),
           "snakefile_parse_s": round(full - baseline, 3), "paper_dry_run_s": round(paper, 2),
           "targets": {"snakefile_parse_s": 1.0, "paper_dry_run_s": 10.0}}
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "parse_time.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
