"""Overhead of the fine-tune rule's wrapper (`ftbench finetune`) over bare `mace_run_train`
with the same argv (target <= 2 %). Both run as fresh processes, alternated, single-threaded.
Writes bench/out/wrapper_overhead.json.

Usage: python bench/wrapper_overhead.py [--repeats 3] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def sh(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ftbench-overhead-"))
    ft = [sys.executable, "-m", "ftbench"]
    sh([*ft, "demo", "--generator", "sn2", "--n", "60", "--seed", "5", "--charge=-1", "--out", "sn2.xyz"], work)
    sh([*ft, "prepare", "--data", "sn2.xyz", "--n-valid", "10", "--n-test", "10", "--out-dir", "data"], work)
    sh(
        [
            *ft,
            "e0",
            "--mode",
            "isolated",
            "--data",
            "data/train_pool.xyz",
            "--isolated",
            "data/isolated.xyz",
            "--out",
            "e0.json",
        ],
        work,
    )
    flags = {
        "model": "MACE",
        "num_channels": 8,
        "max_L": 0,
        "correlation": 2,
        "r_max": 4.0,
        "max_num_epochs": args.epochs,
        "batch_size": 4,
        "lr": 1e-2,
        "energy_key": "REF_energy",
        "forces_key": "REF_forces",
        "default_dtype": "float64",
        "eval_interval": 1,
    }
    wrapped, bare = [], []
    for i in range(args.repeats):
        out = work / f"wrapped{i}"
        wrapped.append(
            sh(
                [
                    *ft,
                    "finetune",
                    "--flags",
                    json.dumps(flags),
                    "--train",
                    "data/train_pool.xyz",
                    "--valid",
                    "data/valid.xyz",
                    "--e0",
                    "e0.json",
                    "--out-dir",
                    str(out),
                    "--checkpoints",
                    str(out / "ck"),
                    "--device",
                    "cpu",
                    "--threads",
                    "1",
                ],
                work,
            )
        )
        argv = json.loads((out / "run.json").read_text())["argv"][1:]
        argv = [a.replace(str(out), str(work / f"bare{i}")) for a in argv]
        bare.append(sh([str(BIN / "mace_run_train"), *argv], work))
    w, b = statistics.median(wrapped), statistics.median(bare)
    result = {
        "wrapped_s": [round(x, 2) for x in wrapped],
        "bare_s": [round(x, 2) for x in bare],
        "median_wrapped_s": round(w, 2),
        "median_bare_s": round(b, 2),
        "overhead_percent": round(100 * (w - b) / b, 2),
        "target_percent": 2.0,
        "epochs": args.epochs,
    }
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "wrapper_overhead.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
