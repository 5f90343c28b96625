"""float32 against float64 for one demo-world fine-tune, run back to back on an idle machine.

Takes a finished run's mace_run_train argv (its run.json), reruns it into a temp folder once per
dtype (alternating, `--repeats` times) and reports wall, CPU and mace's own optimiser-step time.
Usage: python bench/bench_dtype_step.py RUN_DIR [--repeats 2]   (RUN_DIR under a finished work dir)
Writes bench/out/dtype_step.json.
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
OUTPUT_FLAGS = ("--work_dir", "--model_dir", "--log_dir", "--results_dir", "--checkpoints_dir")


def argv_for(record: dict, dtype: str, out: Path) -> list[str]:
    argv = []
    for a in record["argv"][1:]:
        key = a.split("=", 1)[0]
        if key in OUTPUT_FLAGS:
            a = f"{key}={out / key.strip('-')}"
        elif key == "--default_dtype":
            a = f"--default_dtype={dtype}"
        elif key == "--restart_latest":
            continue
        argv.append(a)
    return [str(Path(sys.executable).parent / "mace_run_train"), *argv]


def one(record: dict, work: Path, dtype: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"dtype-{dtype}-"))
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        argv_for(record, dtype, out),
        cwd=work,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = [json.loads(line) for f in (out / "results_dir").glob("*_train.txt") for line in f.read_text().splitlines()]
    opt = [r["time"] for r in rows if r.get("mode") == "opt"]
    return {
        "wall_s": wall,
        "cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
        "opt_s": sum(opt),
        "steps": len(opt),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    record = json.loads((args.run_dir / "run.json").read_text())
    work = next(p for p in args.run_dir.parents if (p / "results").is_dir())
    runs = {"float64": [], "float32": []}
    for _ in range(args.repeats):
        for dtype in runs:
            runs[dtype].append(one(record, work, dtype))
            print(dtype, runs[dtype][-1], flush=True)
    out = {
        "run": str(args.run_dir),
        "load_avg": os.getloadavg(),
        **{d: {k: round(statistics.median(r[k] for r in rs), 2) for k in rs[0]} for d, rs in runs.items()},
    }
    out["opt_step_ratio_f64_over_f32"] = round(out["float64"]["opt_s"] / out["float32"]["opt_s"], 2)
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "dtype_step.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
