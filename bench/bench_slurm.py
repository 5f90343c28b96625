"""How many sbatch submissions the full study (config/paper.yaml) makes through profiles/slurm,
with and without the profile's grouping, from Snakemake dry runs (no cluster needed).

    .venv/bin/python bench/bench_slurm.py            # ~1 min: two dry runs of 5574 jobs

Counts: localrules run in the main snakemake process (no sbatch); every other top-level job is
one sbatch, and every "Group job" is one sbatch however many jobs it bundles. For each group the
bundle's time limit is printed as Snakemake computes it with the profile's `serial` constraint:
one job per layer, runtime summed (attempt 1; attempt k asks for k times as much).
Also prints the resources a CPU job gets through `--profile profiles/slurm` (partition, account,
memory from the profile: there is no profiles/default workflow profile to override them).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"


def localrules() -> set[str]:
    names = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.findall(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", smk.read_text(), re.M):
            names.update(re.findall(r"\w+", block))
    return names | {"all"}


def dry_run(*args: str) -> tuple[str, float]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr, time.perf_counter() - t


def count(text: str, local: set[str]) -> dict:
    singles = Counter(r for r in re.findall(r"^rule (\w+):$", text, re.M) if r not in local)
    groups: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"\] Group job (\w+) \(jobs", line)
        if not m:
            continue
        n = runtime = gpu = 0
        for nxt in lines[i + 1 :]:
            if nxt and not nxt.startswith(" "):
                break
            if re.match(r"^    rule \w+:$", nxt):
                n += 1
            if r := re.search(r"\bruntime=(\d+)", nxt):
                runtime += int(r.group(1))
            if g := re.search(r"\bgpu=(\d+)", nxt):
                gpu = max(gpu, int(g.group(1)))
        groups[m.group(1)].append((n, runtime, gpu))
    return {
        "singles": singles,
        "groups": groups,
        "sbatch": sum(singles.values()) + sum(len(v) for v in groups.values()),
    }


def report(name: str, res: dict, seconds: float) -> None:
    print(f"\n== {name}: {res['sbatch']} sbatch submissions (dry run {seconds:.1f} s)")
    print(f"   single jobs: {sum(res['singles'].values())} {dict(res['singles'])}")
    for gid, bundles in res["groups"].items():
        sizes = Counter(n for n, _, _ in bundles)
        print(
            f"   group {gid}: {len(bundles)} group jobs, {sum(n for n, _, _ in bundles)} jobs, "
            f"bundle sizes {dict(sizes)}, time limit max {max(r for _, r, _ in bundles)} min "
            f"(attempt 1), gpu per bundle {max(g for _, _, g in bundles)}"
        )


def main() -> None:
    local = localrules()
    print(f"localrules (no sbatch): {sorted(local)}")
    text, t = dry_run("--profile", str(PROFILE.parent))
    grouped = count(text, local)
    m = re.search(r"^rule prepare_benchmark:\n(?:    .*\n)*?    resources: (.*)$", text, re.M)
    print("--profile profiles/slurm, prepare_benchmark resources:\n   " + (m.group(1) if m else "?"))
    report("profiles/slurm (grouped)", grouped, t)

    prof = yaml.safe_load(PROFILE.read_text())
    for key in ("groups", "group-components"):
        prof.pop(key, None)
    prof["configfile"] = str(ROOT / "config" / "paper.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.yaml").write_text(yaml.safe_dump(prof))
        text, t = dry_run("--profile", tmp)
    ungrouped = count(text, local)
    report("profiles/slurm without groups", ungrouped, t)
    print(
        f"\ngrouping: {ungrouped['sbatch']} -> {grouped['sbatch']} sbatch submissions "
        f"({ungrouped['sbatch'] / grouped['sbatch']:.1f}x fewer)"
    )


if __name__ == "__main__":
    main()
