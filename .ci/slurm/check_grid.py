"""Checks on a Snakemake run through the SLURM executor, from its --verbose log:

* every non-local job of the DAG went through sbatch (alone, or inside a submitted group job),
  and the number of sbatch calls equals (ungrouped remote jobs + group jobs);
* GPU rules' sbatch calls carry --gpus=1 (group bundles too: never --gpus=N>1);
* scheduling overhead: submit->allocation latency and SLURM wall time vs the rule's own run time,
  from slurmctld's log and the per-job SLURM logs (kept with --slurm-keep-successful-logs).

usage: check_grid.py MAIN_LOG DRYRUN_LOG WORKDIR GRID_WALL_S [SLURMCTLD_LOG]
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

GPU_RULES = {"finetune", "pretrain", "evaluate", "evaluate_pt_eval", "robustness"}
GPU_GROUPS = {"evaluate", "robustness"}


def job_stats(text: str) -> Counter:
    block = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    out = Counter()
    for line in block.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) not in ("total", "job"):
            out[m.group(1)] = int(m.group(2))
    return out


def parse_main(text: str):
    """Top-level remote jobs, local jobs and group members from the main log."""
    remote, local, groups = Counter(), Counter(), []
    for line in text.splitlines():
        if m := re.match(r"^rule (\w+):$", line):
            remote[m.group(1)] += 1
        elif m := re.match(r"^localrule (\w+):$", line):
            local[m.group(1)] += 1
        elif m := re.search(r"\] Group job (\w+) \(jobs", line):
            groups.append((m.group(1), Counter()))
        elif (m := re.match(r"^    rule (\w+):$", line)) and groups:
            # Indented rule records only occur in group listings. The executor's own lines
            # ("sbatch call: ...", "General args: ...") can interleave with a listing, so a
            # member belongs to the latest group header rather than to an unbroken block.
            groups[-1][1][m.group(1)] += 1
    return remote, local, groups


def ts(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def main() -> int:
    main_log, dry_log, workdir, grid_wall = sys.argv[1:5]
    ctld_log = Path(sys.argv[5]) if len(sys.argv) > 5 else Path(main_log).parent / "slurmctld.log"
    text = Path(main_log).read_text()
    dag = job_stats(Path(dry_log).read_text())
    remote, local, groups = parse_main(text)
    submitted = re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", text)
    calls = re.findall(r"^sbatch call: (.*)$", text, re.M)
    grouped = Counter()
    for _, members in groups:
        grouped.update(members)
    ran_remote = remote + grouped
    problems = []
    for rule, n in dag.items():
        if rule == "all":
            continue
        if ran_remote[rule] + local[rule] != n:
            problems.append(f"{rule}: DAG {n} jobs, ran {ran_remote[rule]} via sbatch + {local[rule]} local")
    expected_submissions = sum(remote.values()) + len(groups)
    if len(submitted) != expected_submissions or len(calls) != expected_submissions:
        problems.append(
            f"{len(submitted)} submissions / {len(calls)} sbatch calls, expected "
            f"{expected_submissions} ({sum(remote.values())} single + {len(groups)} group jobs)"
        )
    if f"{sum(dag.values())} of {sum(dag.values())} steps (100%) done" not in text:
        problems.append("the run did not report all steps done")
    # GPU requests
    gpu_calls = Counter()
    for call in calls:
        comment = re.search(r"--comment (\S+)", call).group(1)
        name = comment.removeprefix("rule_").split("_wildcards_")[0]
        if "/group_" in re.search(r"--output (\S+)", call).group(1):
            kind = name.split("_")[0]  # group id (evaluate, robustness, prep)
            is_gpu = kind in GPU_GROUPS
        else:
            kind = name
            is_gpu = name in GPU_RULES
        gpus = re.findall(r"--gpus=(\d+)", call)
        if is_gpu:
            gpu_calls[kind] += 1
            if gpus != ["1"]:
                problems.append(f"GPU job {comment} submitted without --gpus=1: {call[:300]}")
        elif gpus:
            problems.append(f"CPU job {comment} asks for GPUs: {call[:300]}")
    print(f"DAG: {sum(dag.values())} jobs; local: {sum(local.values())} ({dict(local)})")
    print(
        f"sbatch: {len(submitted)} submissions = {sum(remote.values())} single jobs "
        f"({dict(remote)}) + {len(groups)} group jobs "
        f"({[(g, dict(m)) for g, m in groups]})"
    )
    print(f"sbatch calls with --gpus=1: {dict(gpu_calls)}")

    # timing: slurmctld log (ms resolution) and the inner snakemake's rule timestamps
    ctld = ctld_log.read_text() if ctld_log.exists() else ""
    sub, alloc, done = {}, {}, {}
    for stamp, jid in re.findall(r"\[(\S+)\] _slurm_rpc_submit_batch_job: JobId=(\d+)", ctld):
        sub[jid] = ts(stamp)
    for stamp, jid in re.findall(r"\[(\S+)\] sched: Allocate JobId=(\d+)", ctld):
        alloc[jid] = ts(stamp)
    for stamp, jid in re.findall(r"\[(\S+)\] _job_complete: JobId=(\d+) done", ctld):
        done[jid] = ts(stamp)
    lat, wall, rule_time = [], [], []
    for _, jid in submitted:
        if jid in sub and jid in alloc and jid in done:
            lat.append(alloc[jid] - sub[jid])
            wall.append(done[jid] - alloc[jid])
        logs = list(Path(workdir).glob(f"logs/slurm/**/{jid}.log"))
        if logs:
            inner = logs[0].read_text()
            starts = re.findall(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]\nlocalrule \w+:", inner)
            ends = re.findall(
                r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]\nFinished jobid: \d+ \(Rule: \w+\)\n1 of 1 steps", inner
            )
            fmt = "%a %b %d %H:%M:%S %Y"
            for s, e in zip(starts, ends):
                rule_time.append(datetime.strptime(e, fmt).timestamp() - datetime.strptime(s, fmt).timestamp())
    if lat:
        n = len(lat)
        print(
            f"SLURM: {n} jobs; submit->allocation mean {sum(lat) / n:.2f} s (max {max(lat):.2f}); "
            f"allocation wall mean {sum(wall) / n:.1f} s, sum {sum(wall):.0f} s"
        )
    if rule_time:
        print(
            f"rules inside those jobs: {len(rule_time)} rule runs, sum {sum(rule_time):.0f} s "
            f"(1 s resolution); per-job overhead (SLURM wall - rule time) "
            f"~{(sum(wall) - sum(rule_time)) / max(1, len(wall)):.1f} s"
        )
    print(f"grid wall time through SLURM: {grid_wall} s")
    if problems:
        print("PROBLEMS:\n  " + "\n  ".join(problems))
        return 1
    print(
        f"grid through SLURM: {sum(ran_remote.values())} jobs via sbatch "
        f"({len(submitted)} sbatch calls), {sum(local.values())} local jobs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
