"""Make a system that is not in the repository: methanol-water clusters from GFN2-xTB MD (tblite).

Stands in for "your own data" in docs/own_system.md: whole Langevin trajectories of small
CH3OH/H2O clusters (three compositions), labelled by the same tblite calculations that drive the
MD, under the key names a user's DFT file might have (`dft_energy`, `dft_forces`, trajectory id
`traj`), plus one IsolatedAtom frame per element (what scratch training takes its E0s from).

    python bench/own_system_example.py --out data/own/methanol_water.xyz

Default: 8 trajectories of 20 frames 10 fs apart (160 frames of 12-15 atoms) at 300-400 K, under a
minute on one core.
The sampling and labelling code is the shipped demo world's (ftbench.demo.demo_world.trajectory).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.build import molecule  # noqa: E402
from ase.io import write  # noqa: E402

from ftbench.demo import demo_world  # noqa: E402

# (methanol, water) per trajectory, cycled: three compositions, so no single stoichiometry
COMPOSITIONS = [(1, 2), (2, 1), (1, 3)]
FAMILY = "methanol_water"


def methanol_water(rng, p, index):
    """Build a neutral cluster of methanol and water molecules packed in a sphere (demo_world family)."""
    n_meoh, n_water = COMPOSITIONS[index % len(COMPOSITIONS)]
    units = [molecule("CH3OH") for _ in range(n_meoh)] + [molecule("H2O") for _ in range(n_water)]
    radius = 1.2 * (len(units) * 40.0 * 3 / (4 * np.pi)) ** (1 / 3)  # ~40 A^3 per molecule
    return demo_world._pack(units, rng, radius=radius, min_dist=3.0), 0


def user_shaped(frame, keys: tuple[str, str], group_key: str):
    """Return a copy under the user's key names (what `ftbench init --energy-key/--forces-key` reads)."""
    out = frame.copy()
    energy, forces = keys
    out.info = {energy: frame.info["REF_energy"]}
    if frame.info.get("config_type") == "IsolatedAtom":
        out.info["config_type"] = "IsolatedAtom"
    else:  # an MD frame: its trajectory and thermostat temperature
        out.info[group_key] = frame.info["group"]
        out.info["temperature"] = frame.info["temperature"]
    out.arrays[forces] = frame.arrays["REF_forces"]
    del out.arrays["REF_forces"]
    out.arrays.pop("momenta", None)
    return out


def main(argv: list[str] | None = None) -> int:
    """Sample, label and write the example system; return the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data/own/methanol_water.xyz"))
    ap.add_argument("--trajectories", type=int, default=8)
    ap.add_argument("--frames", type=int, default=20, help="frames kept per trajectory")
    ap.add_argument("--every", type=int, default=20, help="MD steps between frames (0.5 fs each)")
    ap.add_argument("--equilibrate", type=int, default=100, help="MD steps dropped at the start (strong friction)")
    ap.add_argument("--seed", type=int, default=2027)
    ap.add_argument("--no-isolated", action="store_true", help="leave the IsolatedAtom frames out")
    args = ap.parse_args(argv)

    demo_world.FAMILIES[FAMILY] = methanol_water
    settings = {
        "steps": args.equilibrate + args.frames * args.every - args.every,
        "every": args.every,
        "equilibrate": args.equilibrate,
        "timestep_fs": 0.5,
        "temperatures": [300, 350, 400],
        "friction": 0.01,
    }
    t0 = time.time()
    frames = []
    for index in range(args.trajectories):
        traj = demo_world.trajectory(FAMILY, index, "GFN2-xTB", settings, args.seed, name=FAMILY)
        frames += traj
        print(
            f"trajectory {index}: {len(traj)} frames of {len(traj[0]) if traj else 0} atoms ({time.time() - t0:.0f} s)"
        )
    elements = sorted({s for f in frames for s in f.get_chemical_symbols()})
    isolated = [] if args.no_isolated else demo_world.isolated_atoms(elements, "GFN2-xTB")
    data = [user_shaped(f, ("dft_energy", "dft_forces"), "traj") for f in isolated + frames]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(args.out, data, format="extxyz")
    print(
        f"wrote {args.out}: {len(frames)} frames in {args.trajectories} trajectories (`traj`), "
        f"{len(isolated)} isolated atoms; keys dft_energy, dft_forces; {time.time() - t0:.0f} s"
    )
    print(
        f"next: ftbench init --data {args.out} --energy-key dft_energy --forces-key dft_forces "
        "--group-key traj --model YOUR.model --out config/own_system.yaml"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
