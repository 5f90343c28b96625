"""Estimate how long a grid takes, from the per-job times of a finished Snakemake run.

Reads Snakemake logs (e.g. bench/out/default_run.log) for each job's start and finish, takes the
mean job time per rule (start-up included), counts the jobs of a target grid with `snakemake -n`,
and divides the summed job time by the cores. The measured run's own cold time calibrates the
packing: its predicted time over its measured time is applied to the target.

Times are kept per rule and benchmark (the job's `benchmark` wildcard): a benchmark with larger
structures (water: 48 atoms against sn2's 6) costs more per job. A benchmark no log measured takes
`--job-time BENCHMARK:RULE=SECONDS` where given (e.g. from docs/demo_world.md's water run), else the
time of the cheapest benchmark measured or given for that rule; the output lists which cells were
borrowed, and the estimate is a floor where they are.

Usage:
  python bench/grid_time.py --log bench/out/default_run.log [--log rerun.log] --measured-s 3439.5 \
      [--measured-cores 2] --cores 8 [--job-time water:finetune=457] -- --configfile config/demo_full.yaml
Later logs override earlier ones for the cells they hold (a rerun of one rule with new settings).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def job_times(log: Path) -> dict[tuple[str, str], list[float]]:
    """Return {(rule, benchmark): [job seconds]} from one Snakemake log (start line to `Finished jobid`).

    Jobs without a `benchmark` wildcard (fetches, the report) have benchmark "".
    """
    starts, cells, out = {}, {}, {}
    stamp, rule, job = None, None, None
    for line in log.read_text().splitlines():
        m = STAMP.match(line)
        if m:
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            rule = m.group(1)
            continue
        m = re.match(r"^\s+jobid: (\d+)$", line)
        if m and rule is not None:
            job = m.group(1)
            starts[job], cells[job] = stamp, (rule, "")
            rule = None
            continue
        m = re.match(r"^\s+wildcards: (.*)$", line)
        if m and job is not None:
            cells[job] = (cells[job][0], _benchmark(m.group(1)))
            continue
        m = re.match(r"^Finished jobid: (\d+)", line)
        if m and m.group(1) in starts:
            done = m.group(1)
            out.setdefault(cells[done], []).append((stamp - starts[done]).total_seconds())
    return out


def _benchmark(wildcards: str) -> str:
    m = re.search(r"(?:^|, )benchmark=([^,]+)", wildcards)
    return m.group(1) if m else ""


def job_counts(snakemake_args: list[str]) -> dict[tuple[str, str], int]:
    """Return {(rule, benchmark): jobs} of a cold run of the target grid (`snakemake -n --forceall`)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "-c", "1", *snakemake_args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    counts, rule = {}, None
    for line in res.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            rule = m.group(1)
            counts[(rule, "")] = counts.get((rule, ""), 0) + 1
            continue
        m = re.match(r"^\s+wildcards: (.*)$", line)
        if m and rule is not None and _benchmark(m.group(1)):
            counts[(rule, "")] -= 1
            cell = (rule, _benchmark(m.group(1)))
            counts[cell] = counts.get(cell, 0) + 1
            rule = None
    return {k: v for k, v in counts.items() if v}


def main() -> None:
    """Print and write the estimate."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log", action="append", required=True, type=Path)
    p.add_argument("--measured-s", type=float, required=True, help="cold time of the run in the first log")
    p.add_argument("--measured-cores", type=int, default=2, help="cores of the run in the first log")
    p.add_argument("--cores", type=int, default=2, help="cores of the target run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "grid_time.json")
    p.add_argument(
        "--job-time",
        action="append",
        default=[],
        metavar="BENCHMARK:RULE=SECONDS",
        help="a measured job time for a cell no log holds (e.g. water:robustness=413)",
    )
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="after --: the target grid's snakemake args")
    args = p.parse_args()
    target_args = [a for a in args.snakemake_args if a != "--"]

    first = job_times(args.log[0])
    per_cell = dict(first)
    for log in args.log[1:]:
        per_cell.update(job_times(log))
    mean = {c: sum(t) / len(t) for c, t in per_cell.items()}
    given = {}
    for item in args.job_time:
        cell, seconds = item.split("=")
        bench, rule = cell.split(":")
        given[(rule, bench)] = float(seconds)
    # an unmeasured benchmark borrows the cheapest known benchmark's time of that rule: a floor
    rule_floor = {}
    for (rule, _bench), t in {**mean, **given}.items():
        rule_floor[rule] = min(t, rule_floor.get(rule, t))
    # calibration: the first run's summed job time over its cores against its measured cold time
    predicted_first = sum(sum(t) for t in first.values()) / args.measured_cores
    packing = args.measured_s / predicted_first

    counts = job_counts(target_args)
    source, job_s, per_rule_s = {}, 0.0, {}
    for (rule, bench), n in sorted(counts.items()):
        if (rule, bench) in given:
            t, how = given[(rule, bench)], "given"
        elif (rule, bench) in mean:
            t, how = mean[(rule, bench)], "measured"
        elif rule in rule_floor:
            t, how = rule_floor[rule], "borrowed from the cheapest known benchmark (a floor)"
        else:
            t, how = 0.0, "no time (counted as 0 s)"
        source[f"{bench or '-'}:{rule}"] = {"jobs": n, "job_s": round(t, 1), "time": how}
        job_s += n * t
        per_rule_s[rule] = per_rule_s.get(rule, 0.0) + n * t
    estimate = job_s / args.cores * packing
    out = {
        "target": target_args,
        "cores": args.cores,
        "cells": source,
        "job_hours_per_rule": {r: round(v / 3600, 2) for r, v in sorted(per_rule_s.items())},
        "packing_factor": round(packing, 3),
        "estimate_s": round(estimate),
        "estimate_h": round(estimate / 3600, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("target", "cores", "packing_factor", "estimate_h")}))
    for cell, v in source.items():
        if v["job_s"] * v["jobs"] > 600:
            print(f"{cell}: {v['jobs']} jobs x {v['job_s']:.0f} s ({v['time']})")


if __name__ == "__main__":
    main()
