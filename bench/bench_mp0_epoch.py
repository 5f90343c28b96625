"""Per-epoch time and peak memory of a MACE-MP-0-medium-shaped fine-tune on this machine.

A random-weight model with MP-0 medium's architecture (tests/model_fixtures.py: ScaleShiftMACE,
89 elements, 128x0e+128x1o, correlation 3, r_max 6; 4.69M parameters) is fine-tuned with
`ftbench finetune` (real mace_run_train) on SN2-sized molecules (6 atoms): naive (batch 2) and
replay (batch 8, an MPtrj-format periodic pool as the pretraining head). Each run is its own
process; peak RSS from wait4, epoch time from the timestamps of mace's per-epoch log lines.

    python bench/bench_mp0_epoch.py --epochs 3 --n-train 20 --device cpu [--cueq]

2026-11-28, 2 shared CPUs (load ~10 from other jobs, so times are upper bounds), float64, no GPU:

| run | status | epochs | median epoch (s) | peak RSS (MB) | wall (s) |
|---|---|---:|---:|---:|---:|
| naive (batch 2, 10 steps an epoch) | ok | 3 | 71.9 | 1077 | 404 |
| replay (batch 8, 20 + 36 pool configurations) | ok | 3 | 163.7 | 1806 | 720 |
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def molecules(path: Path, n: int, seed: int) -> None:
    from ase import Atoms
    from ase.io import write

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        # CH3 + F + Cl around a carbon, bond lengths near 1.1-1.8 A
        pos = np.array([[0, 0, 0], [1.09, 0, 0], [-0.36, 1.03, 0], [-0.36, -0.51, 0.89], [0, 0, -1.9], [0, 0, 2.1]])
        a = Atoms("CH3FCl", positions=pos + rng.normal(0, 0.05, pos.shape))
        a.info.update(REF_energy=float(-16000 + rng.normal()), config_type="Default")
        a.arrays["REF_forces"] = rng.normal(0, 0.5, (6, 3))
        out.append(a)
    write(path, out)


def epoch_times(log_text: str) -> list[float]:
    """Seconds between consecutive per-epoch evaluation lines of the target head."""
    stamps = [
        datetime.strptime(m, "%Y-%m-%d %H:%M:%S.%f")
        for m in re.findall(r"^(\S+ \S+) INFO: (?:Initial|Epoch \d+): head: Default", log_text, re.M)
    ]
    return [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]


def run(work: Path, name: str, flags: dict, extra: list[str], device: str, cueq: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    out = work / name
    cmd = [
        sys.executable,
        "-m",
        "ftbench",
        "finetune",
        "--flags",
        json.dumps(flags),
        "--train",
        str(work / "train.xyz"),
        "--valid",
        str(work / "valid.xyz"),
        "--e0",
        str(work / "e0.json"),
        "--foundation",
        str(work / "mp0.model"),
        "--device",
        device,
        "--out-dir",
        str(out),
        *extra,
        *(["--enable-cueq"] if cueq else []),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(proc.stderr.read().decode()[-3000:])
    rec = json.loads((out / "run.json").read_text())
    log = "\n".join(p.read_text() for p in (out / "logs").glob("*.log"))
    times = epoch_times(log)
    return {
        "run": name,
        "status": rec["status"],
        "epochs": rec["epochs"],
        "wall_s": wall,
        "epoch_s": float(np.median(times)) if times else None,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=20)
    p.add_argument("--n-pool", type=int, default=40)
    p.add_argument("--device", default="cpu")
    p.add_argument("--cueq", action="store_true", help="--enable-cueq (cuda only)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench_mp0"))
    args = p.parse_args()
    import model_fixtures as mf

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    model = mf.mp0_medium()
    mf.save(model, work / "mp0.model")
    zs = [int(z) for z in model.atomic_numbers]
    e0 = model.atomic_energies_fn.atomic_energies.detach().numpy().reshape(-1)
    (work / "e0.json").write_text(json.dumps({str(z): float(e) for z, e in zip(zs, e0) if z in (1, 6, 9, 17)}))
    molecules(work / "train.xyz", args.n_train, 1)
    molecules(work / "valid.xyz", 6, 2)
    pool = mf.write_mptrj_pool(work / "pool_raw.xyz", args.n_pool, elements=("H", "C", "F", "Cl"), atoms_per_frame=6)
    from ase.io import read, write

    frames = read(pool, ":")
    for a in frames:
        a.info["REF_energy"], a.arrays["REF_forces"] = a.get_potential_energy(), a.get_forces()
        a.calc = None
    write(work / "pool.xyz", frames)
    shared = {
        "loss": "universal",
        "energy_weight": 10,
        "forces_weight": 10,
        "optimizer": "adamw",
        "amsgrad": True,
        "scaling": "rms_forces_scaling",
        "ema": True,
        "default_dtype": "float64",
        "error_table": "PerAtomRMSE",
        "eval_interval": 1,
        "max_num_epochs": args.epochs,
        "valid_batch_size": 8,
        "energy_key": "REF_energy",
        "forces_key": "REF_forces",
    }
    rows = [
        run(
            work,
            "naive",
            {
                **shared,
                "multiheads_finetuning": False,
                "lr": 1e-3,
                "ema_decay": 0.999,
                "clip_grad": 1.0,
                "batch_size": 2,
            },
            [],
            args.device,
            args.cueq,
        ),
        run(
            work,
            "replay",
            {
                **shared,
                "multiheads_finetuning": True,
                "force_mh_ft_lr": True,
                "lr": 1e-4,
                "ema_decay": 0.9999,
                "clip_grad": 1.0,
                "batch_size": 8,
            },
            ["--pt-train", str(work / "pool.xyz")],
            args.device,
            args.cueq,
        ),
    ]
    print(
        f"\nMP-0-medium shape (4.69M parameters), {args.n_train} training configurations of 6 atoms, "
        f"replay pool {args.n_pool} periodic 6-atom frames, device {args.device}, cueq {args.cueq}, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS=1"
    )
    print("| run | status | epochs | median epoch (s) | peak RSS (MB) | wall (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['run']} | {r['status']} | {r['epochs']} | {r['epoch_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
