"""Replay preparation on large pools: peak memory must not grow with the pool.

Writes synthetic MPtrj-format pools (12-atom periodic frames, `energy`/`forces`/`stress`, an
`mp_id` shared by 4 frames, half the materials with an element the benchmark lacks), then runs
`ftbench replay` on each as its own process and reports its peak RSS (wait4), wall time and
pool configurations per second.

    python bench/bench_replay.py --sizes 100000 1000000 --workdir /tmp/bench_replay

The issue's baseline (whole-pool read): 795 MB and 19 s at 100k, 1324 MB and 70 s at 300k.
Streaming (2 shared CPUs, load ~8, 2026-11-28; most of the RSS is torch + mace + the model):

| pool configurations | pool file (MB) | peak RSS (MB) | time (s) | configurations/s |
|---:|---:|---:|---:|---:|
| 100000 | 90 | 613 | 35.1 | 2847 |
| 1000000 | 902 | 636 | 241.3 | 4144 |
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
BENCH_ELEMENTS = ["H", "C", "O", "Cl"]


def write_pool(path: Path, n: int, atoms: int = 12, seed: int = 0, templates: int = 1000) -> None:
    """Text written directly from `templates` random atom blocks per kind (ASE's writer would take
    longer than the benchmark itself); headers (mp_id, energy, stress) differ per frame."""
    rng = np.random.default_rng(seed)
    cell = 2.2 * atoms ** (1 / 3) + 1.0
    lattice = f'Lattice="{cell} 0.0 0.0 0.0 {cell} 0.0 0.0 0.0 {cell}"'
    bodies = {}
    for kind, pool in (("bench", BENCH_ELEMENTS), ("other", BENCH_ELEMENTS + ["Fe"])):
        blocks = []
        for _ in range(templates):
            species = rng.choice(pool, atoms)
            if kind == "other":
                species[0] = "Fe"
            pos, frc = rng.random((atoms, 3)) * cell, rng.normal(0, 0.3, (atoms, 3))
            blocks.append(
                "".join(
                    f"{s} {p[0]:.6f} {p[1]:.6f} {p[2]:.6f} {q[0]:.6f} {q[1]:.6f} {q[2]:.6f}\n"
                    for s, p, q in zip(species, pos, frc)
                )
            )
        bodies[kind] = blocks
    energy = rng.normal(-3 * atoms, 1.0, n)
    with open(path, "w") as f:
        for k in range(n):
            material = k // 4  # half the materials hold Fe, which the benchmark lacks
            body = bodies["other" if material % 2 else "bench"][(material * 7 + k % 4) % templates]
            f.write(
                f"{atoms}\n{lattice} Properties=species:S:1:pos:R:3:forces:R:3 mp_id=mp-{material} "
                f"calc_id=0 ionic_step={k % 4} energy={energy[k]:.8f} "
                f'stress="0.01 0.0 0.0 0.0 0.01 0.0 0.0 0.0 0.01" pbc="T T T"\n{body}'
            )


def run_replay(pool: Path, model: Path, bench: Path, out: Path, n_samples: int, n_eval: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `ftbench replay` process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ftbench",
            "replay",
            "--pool",
            str(pool),
            "--model",
            str(model),
            "--benchmark-data",
            str(bench),
            "--n-samples",
            str(n_samples),
            "--n-eval",
            str(n_eval),
            "--energy-key",
            "energy",
            "--forces-key",
            "forces",
            "--stress-key",
            "stress",
            "--out-dir",
            str(out),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"ftbench replay failed on {pool}: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--atoms", type=int, default=12)
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--n-eval", type=int, default=200)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench_replay"))
    p.add_argument("--keep", action="store_true", help="keep the pool files")
    args = p.parse_args()
    from ase import Atoms
    from ase.io import write

    import model_fixtures as mf

    args.workdir.mkdir(parents=True, exist_ok=True)
    model = mf.save(
        mf.build_model([1, 6, 8, 17, 26], channels=8, max_L=0, correlation=2, num_interactions=1, radial_mlp=(16,)),
        args.workdir / "tiny.model",
    )
    bench = args.workdir / "bench.xyz"
    write(bench, Atoms("CH3Cl" + "O", positions=np.random.default_rng(1).random((6, 3)) * 3))
    rows = []
    for n in args.sizes:
        pool = args.workdir / f"pool_{n}.xyz"
        t0 = time.perf_counter()
        write_pool(pool, n, args.atoms)
        size_mb = pool.stat().st_size / 2**20
        print(f"wrote {pool} ({n} configurations, {size_mb:.0f} MB) in {time.perf_counter() - t0:.0f} s", flush=True)
        wall, rss = run_replay(pool, model, bench, args.workdir / f"out_{n}", args.n_samples, args.n_eval)
        rows.append((n, size_mb, rss, wall, n / wall))
        print(f"  replay: {wall:.1f} s, peak RSS {rss:.0f} MB", flush=True)
        if not args.keep:
            pool.unlink()
    print("\n| pool configurations | pool file (MB) | peak RSS (MB) | time (s) | configurations/s |")
    print("|---:|---:|---:|---:|---:|")
    for n, size_mb, rss, wall, rate in rows:
        print(f"| {n} | {size_mb:.0f} | {rss:.0f} | {wall:.1f} | {rate:.0f} |")
    print(
        f"(--n-samples {args.n_samples} --n-eval {args.n_eval}, {args.atoms} atoms a frame, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS=1)"
    )


if __name__ == "__main__":
    main()
