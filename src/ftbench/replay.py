"""Replay preparation, once per (foundation model, benchmark).

From the foundation model's pretraining pool: keep configurations whose elements the benchmark
has, hold out a pretraining-distribution slice that no run trains on, select the replay set
(mace ignores --num_samples_pt for local files, so we select here) and pseudolabel it once with
the foundation model (what mace's --pseudolabel_replay would redo inside every run).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from ase.io import read, write

from ftbench.convert import is_isolated_atom
from ftbench.errors import FtbenchError
from ftbench.provenance import Provenance

log = logging.getLogger("ftbench.replay")


def element_filter(pool, elements: set[int], mode: str):
    if mode == "subset":
        return [a for a in pool if set(a.numbers.tolist()) <= elements]
    return [a for a in pool if set(a.numbers.tolist()) & elements]


def select(pool, n_samples: int, n_eval: int, seed: int):
    """Disjoint (replay, eval) draws; shrinks both proportionally when the pool is small."""
    n = len(pool)
    if n < 2:
        raise FtbenchError(f"replay pool has {n} usable configurations; need at least 2")
    if n < n_samples + n_eval:
        n_eval_new = max(1, round(n * n_eval / (n_samples + n_eval)))
        log.warning("replay pool holds %d configurations, fewer than %d + %d asked: using %d + %d",
                    n, n_samples, n_eval, n - n_eval_new, n_eval_new)
        n_samples, n_eval = n - n_eval_new, n_eval_new
    order = np.random.default_rng(seed).permutation(n)
    return [pool[i] for i in order[n_eval:n_eval + n_samples]], [pool[i] for i in order[:n_eval]]


def pseudolabel(model, atoms_list, batch_size: int = 32, device: str = "cpu"):
    from ftbench.inference import predict

    out = []
    for a, p in zip(atoms_list, predict(model, atoms_list, batch_size=batch_size, device=device)):
        b = a.copy()
        b.info["REF_energy"] = p["energy"]
        b.arrays["REF_forces"] = p["forces"]
        if "stress" in p:
            b.info["REF_stress"] = np.asarray(p["stress"]).reshape(9)
        else:
            b.info.pop("REF_stress", None)
        b.info["pseudolabelled"] = True
        out.append(b)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", required=True, type=Path, help="pretraining/replay pool (extxyz, REF_* keys)")
    p.add_argument("--model", required=True, type=Path, help="foundation model (for pseudolabels)")
    p.add_argument("--benchmark-data", required=True, type=Path, nargs="+", help="files whose elements define the filter")
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--n-eval", type=int, default=200)
    p.add_argument("--filter", choices=("subset", "overlap"), default="subset")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out-dir", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    from ftbench.inference import load_model

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    prov = Provenance([args.pool, args.model, *args.benchmark_data], device=args.device)
    elements = {int(z) for path in args.benchmark_data for a in read(path, ":") for z in a.numbers}
    pool = [a for a in read(args.pool, ":") if not is_isolated_atom(a)]
    usable = element_filter(pool, elements, args.filter)
    log.info("%d of %d pool configurations pass the %s filter", len(usable), len(pool), args.filter)
    replay, held_out = select(usable, args.n_samples, args.n_eval, args.seed)
    model = load_model(args.model, args.device)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write(out / "replay.xyz", replay, format="extxyz")
    write(out / "replay_pseudo.xyz", pseudolabel(model, replay, device=args.device), format="extxyz")
    write(out / "pt_eval.xyz", held_out, format="extxyz")
    prov.write(out / "summary.json", [out / "replay.xyz", out / "replay_pseudo.xyz", out / "pt_eval.xyz"],
               extra={"pool": len(pool), "usable": len(usable), "replay": len(replay),
                      "pt_eval": len(held_out), "filter": args.filter, "elements": sorted(elements)})
    return 0
