"""Benchmark: CPU time of one training step (energy + forces loss, backward, AdamW) per MACE architecture.

Why: a demo fine-tune's cost is its optimiser steps, and on the demo's small systems (6-atom SN2
complexes, batch 2) a step is dominated by the number of tensor ops, which the architecture sets
(max_L, correlation), not by atoms. Untrained ScaleShiftMACE models, sn2 benchmark frames, one thread.
Writes bench/out/bench_arch_step.json. Usage: python bench/bench_arch_step.py [--data FILE] [--batch 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import model_fixtures as mf  # noqa: E402

ARCHS = [  # (channels, max_L, correlation)
    (16, 0, 2),
    (32, 0, 3),
    (16, 1, 2),
    (32, 1, 2),
    (16, 1, 3),
    (32, 1, 3),
]


def build(channels: int, max_l: int, correlation: int, zs: list[int], dtype):
    """The tests' random-weight ScaleShiftMACE (model_fixtures.build_model) in `dtype`."""
    import torch

    model = mf.build_model(
        zs, channels=channels, max_L=max_l, correlation=correlation, r_max=5.0, avg_num_neighbors=5.0
    )
    torch.set_default_dtype(dtype)
    return model.to(dtype)


def step_time(model, frames, zs, batch: int, repeats: int) -> float:
    import torch
    from mace import data, tools
    from mace.tools import torch_geometric

    table = tools.AtomicNumberTable(zs)
    keyspec = data.KeySpecification(info_keys={"energy": "REF_energy"}, arrays_keys={"forces": "REF_forces"})
    configs = [data.config_from_atoms(a, key_specification=keyspec) for a in frames]
    dataset = [data.AtomicData.from_config(c, z_table=table, cutoff=5.0) for c in configs]
    loader = torch_geometric.dataloader.DataLoader(dataset, batch_size=batch, shuffle=False, drop_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [b.to_dict() for b in loader]
    times = []
    for i in range(repeats + 2):
        b = batches[i % len(batches)]
        t = time.perf_counter()
        opt.zero_grad()
        out = model(b, training=True, compute_force=True)
        loss = ((out["energy"] - b["energy"]) ** 2).mean() + ((out["forces"] - b["forces"]) ** 2).mean()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    import torch
    from ase.io import read

    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(ROOT / "data" / "demo_build" / "benchmarks" / "sn2.xyz.gz"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "bench_arch_step.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    frames = [a for a in read(args.data, ":") if len(a) > 1][:64]
    zs = sorted({int(z) for a in frames for z in a.numbers})
    rows = []
    for channels, max_l, corr in ARCHS:
        for dtype in (torch.float64, torch.float32):
            model = build(channels, max_l, corr, zs, dtype)
            t = step_time(model, frames, zs, args.batch, args.repeats)
            rows.append(
                {
                    "channels": channels,
                    "max_L": max_l,
                    "correlation": corr,
                    "dtype": str(dtype)[6:],
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "step_s": round(t, 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"data": args.data, "batch": args.batch, "threads": 1, "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
