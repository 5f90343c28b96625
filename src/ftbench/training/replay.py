"""Replay preparation, once per (foundation model, benchmark).

From the foundation model's pretraining pool: keep configurations whose elements the benchmark
has, hold out a pretraining-distribution slice that no run trains on, select the replay set
(mace ignores --num_samples_pt for local files, so we select here) and pseudolabel it once with
the foundation model's adapted head (what mace's --pseudolabel_replay would redo inside every run).

The pool (MPtrj: 1.6M configurations) is streamed, never held: each frame's text is scanned for
its species and group id, and only the frames a seeded bottom-k draw keeps are parsed by ASE.
Memory grows with --n-samples + --n-eval, not with the pool (bench/bench_replay.py).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import io
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers
from ase.io import read, write

from ftbench.core.errors import FtbenchError
from ftbench.data.convert import _label, normalise_atoms
from ftbench.data.geometry import ISOLATED
from ftbench.runtime.provenance import Provenance

log = logging.getLogger("ftbench.training.replay")
# Info keys that name a material or trajectory: its frames are near-duplicates, so a group is
# either wholly held out or wholly available for replay. The first key a frame has is used.
GROUP_KEYS = ("mp_id", "material_id", "trajectory_id", "traj_id")


@dataclass
class Frame:
    """One extxyz frame of the pool: its text and what selection needs."""

    index: int
    n_atoms: int
    text: str
    numbers: set[int]
    group: str
    info: dict = field(repr=False, default_factory=dict)


def _species_column(properties: str) -> tuple[int, bool]:
    """Column of the species (or Z) in an extxyz Properties string; True when it holds Z."""
    parts = properties.split(":")
    col = 0
    for name, _kind, width in zip(parts[0::3], parts[1::3], parts[2::3]):
        if name in ("species", "Z"):
            return col, name == "Z"
        col += int(width)
    raise FtbenchError(f"extxyz Properties {properties!r} has neither species nor Z")


# key=value of an extxyz comment line; values quoted, in braces or bare. Only the few keys
# selection needs are read here (ASE's key_val_str_to_dict takes ~2 ms a line, 1 h for MPtrj);
# ASE parses the selected frames in full.
_KEY_VALUE = re.compile(r"""([A-Za-z_][\w.-]*)\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|\{[^}]*\}|\S+)""")


def comment_keys(comment: str, wanted) -> dict[str, str]:
    """Return the `wanted` keys of an extxyz comment line as strings, quotes and braces stripped."""
    out = {}
    for key, value in _KEY_VALUE.findall(comment):
        if key in wanted:
            out[key] = value[1:-1] if value[:1] in "\"'{" else value
    return out


def scan_frames(path: Path, group_keys=GROUP_KEYS):
    """Yield each frame of an extxyz file as a Frame, one at a time.

    A Frame holds the text plus what selection needs (elements, group id, config_type).
    """
    wanted = {"Properties", "config_type", *group_keys}
    columns: dict[str, tuple[int, bool]] = {}
    with open(path) as f:
        index = 0
        while True:
            line = f.readline()
            if not line:
                return
            if not line.strip():
                continue
            try:
                n = int(line.split()[0])
            except ValueError:
                raise FtbenchError(f"{path}: frame {index} does not start with an atom count: {line[:60]!r}") from None
            comment = f.readline()
            body = [f.readline() for _ in range(n)]
            if not body or not body[-1]:
                raise FtbenchError(f"{path}: frame {index} is truncated (expected {n} atom lines)")
            info = comment_keys(comment, wanted)
            props = info.get("Properties", "species:S:1:pos:R:3")
            if props not in columns:
                columns[props] = _species_column(props)
            col, is_z = columns[props]
            tokens = [b.split()[col] for b in body]
            numbers = {int(t) for t in tokens} if is_z else {atomic_numbers[t] for t in tokens}
            group = next((str(info[k]) for k in group_keys if k in info), f"#frame{index}")
            yield Frame(index, n, line + comment + "".join(body), numbers, group, info)
            index += 1


def _u(seed: int, tag: str, key: str) -> float:
    """Return a seeded uniform number in [0, 1) for `key`: the same id always draws the same number."""
    digest = hashlib.blake2b(f"{seed}:{tag}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _usable(
    n_atoms: int, numbers: set[int], config_type, elements: set[int], mode: str, exclude: tuple[str, ...]
) -> bool:
    """Whether a pool configuration may be replayed or scored.

    Not an isolated atom, not of an excluded config_type, and made of the benchmark's elements
    (`mode` subset) or sharing one with them (overlap).
    """
    if (n_atoms == 1 and config_type == ISOLATED) or config_type in exclude:
        return False
    return numbers <= elements if mode == "subset" else bool(numbers & elements)


def _usable_frame(frame: Frame, elements: set[int], mode: str, exclude: tuple[str, ...]) -> bool:
    return _usable(frame.n_atoms, frame.numbers, frame.info.get("config_type"), elements, mode, exclude)


class _BottomK:
    """The k smallest-keyed items seen (a max-heap of size k)."""

    def __init__(self, k: int):
        self.k, self.heap = k, []

    def push(self, key: tuple, item) -> None:
        entry = (tuple(-x for x in key), item.index, item)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, entry)

    def items(self) -> list[tuple[tuple, object]]:
        return sorted(((tuple(-x for x in e[0]), e[2]) for e in self.heap), key=lambda t: (t[0], t[1].index))


def select_stream(
    path: Path,
    elements: set[int],
    n_samples: int,
    n_eval: int,
    seed: int,
    mode: str = "subset",
    group_keys=GROUP_KEYS,
    exclude: tuple[str, ...] = (),
) -> tuple[list[Frame], list[Frame], dict]:
    """Return disjoint (replay, held-out) frames of the pool, and counts.

    Frames whose config_type is in `exclude` are never used.

    One streaming pass (two when groups are large enough that the first pass kept too few replay
    candidates).

    Held out: the n_eval frames with the smallest (group key, frame key), so groups are taken
    whole, lowest group key first; the last group may be cut, and its other frames are not
    replayed either. Replay: a uniform draw (smallest replay key) of n_samples frames among the
    frames of the other groups. Both shrink proportionally when the pool is small.
    """
    held = _BottomK(n_eval) if n_eval else None  # n_eval 0: the held-out slice comes from elsewhere
    replay = _BottomK(n_samples + n_eval)  # n_eval spare: held-out frames among them drop out
    stats = {"pool": 0, "usable": 0, "groups_from": None}
    for frame in scan_frames(path, group_keys):
        stats["pool"] += 1
        if not _usable_frame(frame, elements, mode, exclude):
            continue
        stats["usable"] += 1
        if stats["groups_from"] is None and not frame.group.startswith("#frame"):
            stats["groups_from"] = next(k for k in group_keys if k in frame.info)
        frame.info = {}  # only the text is kept
        hg = _u(seed, "group", frame.group)
        if held is not None:
            held.push((hg, _u(seed, "frame", str(frame.index))), frame)
        replay.push((_u(seed, "replay", str(frame.index)),), _Keyed(frame, hg))
    n = stats["usable"]
    if n < 2:
        raise FtbenchError(
            f"replay pool {path} has {n} configurations made of the benchmark's elements "
            f"({mode} filter); need at least 2. Use another pool or `replay.filter: overlap`"
        )
    if n < n_samples + n_eval:
        n_eval_new = max(1, round(n * n_eval / (n_samples + n_eval))) if n_eval else 0
        log.warning(
            "replay pool holds %d usable configurations, fewer than %d + %d asked: using %d + %d",
            n,
            n_samples,
            n_eval,
            n - n_eval_new,
            n_eval_new,
        )
        n_samples, n_eval = n - n_eval_new, n_eval_new
    held_items = held.items()[:n_eval] if held is not None else []
    threshold = held_items[-1][0][0] if held_items else -1.0
    held_groups = {f.group for _, f in held_items}
    candidates = [k.frame for _, k in replay.items() if k.hg > threshold]
    stats["passes"] = 1
    if len(candidates) < n_samples and len(replay.heap) == replay.k:
        # the held-out groups took more than the spare: draw again, knowing the threshold
        second = _BottomK(n_samples)
        for frame in scan_frames(path, group_keys):
            if _usable_frame(frame, elements, mode, exclude):
                hg = _u(seed, "group", frame.group)
                if hg > threshold:
                    frame.info = {}
                    second.push((_u(seed, "replay", str(frame.index)),), frame)
        candidates = [f for _, f in second.items()]
        stats["passes"] = 2
    chosen = sorted(candidates[:n_samples], key=lambda f: f.index)
    if len(chosen) < n_samples:
        log.warning(
            "only %d configurations are outside the held-out groups: replaying %d, not %d",
            len(chosen),
            len(chosen),
            n_samples,
        )
    stats.update(held_out_groups=len(held_groups))
    return chosen, sorted((f for _, f in held_items), key=lambda f: f.index), stats


def _same_structure(a, b) -> bool:
    return len(a) == len(b) and (a.numbers == b.numbers).all() and np.allclose(a.positions, b.positions, atol=1e-6)


def _pair_relabelled(frames: list, twins: list, path: Path, relabelled: Path) -> tuple[list, list]:
    """Pair each relabelled frame with its original: `twins` must be `frames` in order, less some."""
    kept, j = [], 0
    for twin in twins:
        while j < len(frames) and not _same_structure(frames[j], twin):
            j += 1
        if j == len(frames):
            raise FtbenchError(
                f"{relabelled} is not a relabelled copy of {path}: structures differ "
                "(it must hold the same configurations in the same order, some may be missing)"
            )
        kept.append(frames[j])
        j += 1
    if len(kept) < len(frames):
        log.warning(
            "%s lacks %d of the %d frames of %s (the target method did not label them): left out of both",
            relabelled,
            len(frames) - len(kept),
            len(frames),
            path,
        )
    return kept, twins


def held_out_slice(
    path: Path,
    relabelled: Path | None,
    elements: set[int],
    mode: str,
    n_eval: int,
    seed: int,
    exclude: tuple[str, ...] = (),
) -> tuple[list, list | None]:
    """Return the pretraining-distribution slice no foundation model saw, and its relabelled copy.

    The slice is a file of its own, filtered like the replay pool and cut to n_eval frames by a
    seeded draw. Its copy at the target level of theory (or None) lists the same structures in the
    same order, less any the target method could not label: those are left out of both.
    """
    frames = read(path, ":")
    twins = None
    if relabelled is not None:
        frames, twins = _pair_relabelled(frames, read(relabelled, ":"), path, relabelled)
    keep = [
        i
        for i, a in enumerate(frames)
        if _usable(len(a), set(a.numbers.tolist()), a.info.get("config_type"), elements, mode, exclude)
    ]
    if not keep:
        raise FtbenchError(
            f"held-out pretraining slice {path} has no configuration made of the benchmark's elements ({mode} filter)"
        )
    keep = sorted(keep, key=lambda i: _u(seed, "pt_eval", str(i)))[:n_eval]
    keep.sort()
    return [frames[i] for i in keep], ([twins[i] for i in keep] if twins is not None else None)


@dataclass
class _Keyed:
    frame: Frame
    hg: float

    @property
    def index(self) -> int:
        return self.frame.index


def parse_frames(frames: list[Frame], energy_key: str, forces_key: str, stress_key: str | None, path: Path) -> list:
    """Return ASE atoms of the selected frames with labels under REF_*.

    Stress only where the frame has one. Per-property weights of the pool (config_energy_weight:
    0.1 in the study's SN2 pool) stay: mace's universal loss reads them.
    """
    if not frames:
        return []
    raw = read(io.StringIO("".join(f.text for f in frames)), ":", format="extxyz")
    out = []
    for atoms, frame in zip(raw, frames):
        has_stress = stress_key is not None and _label(atoms, stress_key) is not None
        (a,) = normalise_atoms(
            [atoms], energy_key, forces_key, stress_key if has_stress else None, path=f"{path} frame {frame.index}"
        )
        a.info["pool_index"] = frame.index
        out.append(a)
    return out


def pseudolabel(model, atoms_list, batch_size: int = 32, device: str = "cpu"):
    """Foundation-model labels; a stress label only where the source configuration has one."""
    from ftbench.probes.inference import predict

    out = []
    for a, p in zip(atoms_list, predict(model, atoms_list, batch_size=batch_size, device=device)):
        b = a.copy()
        b.info["REF_energy"] = p["energy"]
        b.arrays["REF_forces"] = p["forces"]
        if "stress" in p and "REF_stress" in a.info:
            b.info["REF_stress"] = np.asarray(p["stress"]).reshape(9)
        else:
            b.info.pop("REF_stress", None)
        b.info["pseudolabelled"] = True
        out.append(b)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench replay` options to `p`."""
    p.add_argument("--pool", required=True, type=Path, help="pretraining/replay pool (extxyz, streamed)")
    p.add_argument("--model", required=True, type=Path, help="foundation model (for pseudolabels)")
    p.add_argument("--head", default=None, help="head of a multihead foundation model to pseudolabel with")
    p.add_argument(
        "--benchmark-data", required=True, type=Path, nargs="+", help="files whose elements define the filter"
    )
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--n-eval", type=int, default=200)
    p.add_argument("--filter", choices=("subset", "overlap"), default="subset")
    p.add_argument(
        "--group-key",
        nargs="*",
        default=list(GROUP_KEYS),
        help="info keys naming a frame's material/trajectory (first present wins); "
        "held-out and replay frames never share one",
    )
    p.add_argument("--energy-key", default="REF_energy", help="the pool's energy key (MPtrj: energy)")
    p.add_argument("--forces-key", default="REF_forces", help="the pool's forces key (MPtrj: forces)")
    p.add_argument("--stress-key", default="REF_stress", help="the pool's stress key (MPtrj: stress)")
    p.add_argument(
        "--pt-eval",
        type=Path,
        default=None,
        help="held-out pretraining slice (its own file); default: held out from the pool",
    )
    p.add_argument(
        "--pt-eval-relabelled",
        type=Path,
        default=None,
        help="the --pt-eval structures at the target level of theory (same order)",
    )
    p.add_argument(
        "--pool-exclude",
        nargs="*",
        default=[],
        help="config_types of the pool never replayed (e.g. low-weight short-range pairs: multihead "
        "replay uses the universal loss, which ignores config_weight)",
    )
    p.add_argument(
        "--pt-eval-exclude",
        nargs="*",
        default=[],
        help="config_types of --pt-eval not scored (e.g. low-weight short-range pairs)",
    )
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out-dir", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run `ftbench replay` with parsed `args`; return the exit code.

    Writes the replay pool, its pseudolabelled copy and the held-out pretraining slice.
    """
    from ftbench.probes.inference import foundation_for, heads_of

    if not args.pool.is_file():
        raise FtbenchError(f"replay pool {args.pool} does not exist")
    prov = Provenance([args.pool, args.model, *args.benchmark_data], device=args.device)
    model = foundation_for(args.model, args.head, args.device)  # bad head: fail before the pool pass
    elements = {int(z) for path in args.benchmark_data for a in read(path, ":") for z in a.numbers}
    chosen, held, stats = select_stream(
        args.pool,
        elements,
        args.n_samples,
        0 if args.pt_eval else args.n_eval,
        args.seed,
        args.filter,
        tuple(args.group_key),
        tuple(args.pool_exclude),
    )
    log.info(
        "%d of %d pool configurations pass the %s filter; replay %d, held out %d (%s)",
        stats["usable"],
        stats["pool"],
        args.filter,
        len(chosen),
        len(held),
        f"groups by {stats['groups_from']}" if stats["groups_from"] else "no group ids: by frame",
    )
    keys = (args.energy_key, args.forces_key, args.stress_key or None)
    replay = parse_frames(chosen, *keys, args.pool)
    relabelled = []
    if args.pt_eval:
        held_out, twins = held_out_slice(
            args.pt_eval,
            args.pt_eval_relabelled,
            elements,
            args.filter,
            args.n_eval,
            args.seed,
            tuple(args.pt_eval_exclude),
        )
        relabelled = twins or []
    else:
        held_out = parse_frames(held, *keys, args.pool)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    # summary.json marks a finished step: drop a stale one first, write every output under a
    # temporary name, rename them only once all are written and write summary.json last, so a
    # step killed mid-way (or a forced rerun of it) never leaves a set of outputs a rerun trusts.
    for stale in [out / "summary.json", *out.glob(".*.tmp*")]:  # tmp*: left by a killed step
        stale.unlink(missing_ok=True)
    outputs = {
        # empty unless --pt-eval-relabelled: evaluated only where the catalog names one
        "pt_eval_relabelled.xyz": relabelled,
        "replay.xyz": replay,
        "replay_pseudo.xyz": pseudolabel(model, replay, device=args.device),
        "pt_eval.xyz": held_out,
    }
    tmp = {name: out / f".{name}.tmp{os.getpid()}" for name in outputs}
    try:
        for name, frames in outputs.items():
            write(tmp[name], frames, format="extxyz")
        for name in outputs:
            os.replace(tmp[name], out / name)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    prov.write(
        out / "summary.json",
        [out / "replay.xyz", out / "replay_pseudo.xyz", out / "pt_eval.xyz"],
        extra={
            **stats,
            "replay": len(replay),
            "pt_eval": len(held_out),
            "filter": args.filter,
            "pt_eval_source": str(args.pt_eval or args.pool),
            # held out of the replay pool, i.e. of the data the foundation model was pretrained on
            "pt_eval_seen_in_training": args.pt_eval is None,
            "pt_eval_relabelled": len(relabelled),
            "elements": sorted(elements),
            "head": heads_of(model)[0],
            "group_keys": list(args.group_key),
        },
    )
    return 0
