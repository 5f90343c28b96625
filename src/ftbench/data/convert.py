"""Convert source files to one normalised extxyz that mace_run_train reads as is.

Output keys: `REF_energy` (eV, info), `REF_forces` (eV/Angstrom, arrays),
`REF_stress` (eV/Angstrom^3, 6-component Voigt xx yy zz yz xz xy, info) when
present, `config_type` on every config, `total_charge` when known. Isolated
atoms carry `config_type=IsolatedAtom` (what mace reads as E0s). Per-config
weights and other info keys of an extxyz input (e.g. `config_energy_weight`)
are kept; the original label keys are dropped so there is one copy of each label.

Formats:

* `extxyz`: labels under any keys (`--energy-key mp2_energy --forces-key
  mp2_forces`). A one-atom, non-periodic config without a config_type is an
  isolated atom; isolated atoms without forces get zero forces (exact by symmetry).
* `spice-hdf5` (SPICE 2.x): one group per molecule with `atomic_numbers`,
  `conformations` (bohr), `dft_total_energy` (hartree), `dft_total_gradient`
  (hartree/bohr; forces = -gradient), `subset`, `smiles`. Total charge is the
  rounded sum of `formal_charges` when the group has them, else unknown (a
  `--charge` filter then drops the group). Units via ase.units (Hartree, Bohr).
* `sn2-npz` (Unke & Meuwly SN2 reactions): `N`, zero-padded `Z`, `R`
  (Angstrom), `F` (eV/Angstrom), `E` (eV relative to free atoms), `Q`.
  Energy convention: by default energies are written as given and one
  `IsolatedAtom` config per element is written with energy 0.0, so the file
  says explicitly that E0 = 0 for every element. With `--free-atom-energies
  JSON` ({symbol: eV}) the free-atom energies are added back to every config
  and the isolated atoms carry those energies. The two are never mixed.

Bad input (missing key, NaN label, mismatched shapes, padding that disagrees
with `N`, an element outside `--allowed-elements`) raises FtbenchError naming
the file and the record (index, or group and conformation).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ftbench.core.errors import FtbenchError
from ftbench.data.geometry import ISOLATED

FORMATS = ("extxyz", "spice-hdf5", "sn2-npz")
# ASE puts these extxyz keys into a SinglePointCalculator instead of info/arrays.
_CALC_KEYS = {"energy", "free_energy", "forces", "stress"}
_SPICE_REQUIRED = ("atomic_numbers", "conformations", "dft_total_energy", "dft_total_gradient")
_SN2_REQUIRED = ("N", "Z", "R", "E", "F")


# ---------------------------------------------------------------- helpers


def _record(atoms, index: int) -> str:
    group = atoms.info.get("mol_id")
    if group is not None:
        return f"record {index} (group {group!r}, conformation {atoms.info.get('conformation')})"
    return f"record {index}"


def _label(atoms, key: str):
    """Value of `key` from info, arrays or (for ASE's reserved names) the calculator; None if absent."""
    if key in atoms.info:
        return atoms.info[key]
    if key in atoms.arrays:
        return atoms.arrays[key]
    if key in _CALC_KEYS and atoms.calc is not None:
        return atoms.calc.results.get(key)
    return None


def _voigt(stress, where: str) -> np.ndarray:
    arr = np.asarray(stress, dtype=float)
    if arr.size == 6:
        return arr.reshape(6)
    if arr.size == 9:
        m = arr.reshape(3, 3)
        if not np.allclose(m, m.T, rtol=1e-6, atol=1e-10):
            raise FtbenchError(f"{where}: stress tensor is not symmetric")
        return np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])
    raise FtbenchError(f"{where}: stress has {arr.size} components, expected 6 or 9")


def parse_elements(text: str | None) -> set[str] | None:
    """'H,C,N,O' -> {'H','C','N','O'}; checks the symbols."""
    if text is None:
        return None
    from ase.data import atomic_numbers

    symbols = {s.strip() for s in text.split(",") if s.strip()}
    bad = sorted(s for s in symbols if s not in atomic_numbers or s == "X")
    if bad or not symbols:
        raise FtbenchError(f"element list {text!r}: unknown symbols {bad}")
    return symbols


def read_frames(path: Path, what: str, fix: str) -> list:
    """Return every frame of an extxyz file, or an error naming it as `what` with `fix` (missing, unreadable, empty)."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise FtbenchError(f"{what} {path} does not exist; {fix}")
    if path.stat().st_size == 0:
        raise FtbenchError(f"{what} {path} is empty; {fix}")
    try:
        frames = read(path, ":")
    except Exception as err:  # ase raises many types for a malformed file
        raise FtbenchError(
            f"{what} {path} is not a readable extxyz file ({type(err).__name__}: {err}); {fix}"
        ) from None
    if not frames:
        raise FtbenchError(f"{what} {path} holds no configurations; {fix}")
    return frames


# ---------------------------------------------------------------- normalising


def normalise_atoms(
    atoms_list,
    energy_key: str,
    forces_key: str,
    stress_key: str | None = None,
    *,
    path: str | Path = "<memory>",
    default_config_type: str = "Default",
) -> list:
    """Return copies of `atoms_list` with labels under REF_energy / REF_forces / REF_stress."""
    out = []
    for i, src in enumerate(atoms_list):
        where = f"{path}: {_record(src, i)}"
        atoms = src.copy()  # copy() drops the calculator; read labels from src
        energy = _label(src, energy_key)
        forces = _label(src, forces_key)
        stress = _label(src, stress_key) if stress_key else None
        for key in {energy_key, forces_key, stress_key} - {None}:
            atoms.info.pop(key, None)
            if key in atoms.arrays and key not in ("numbers", "positions"):
                del atoms.arrays[key]
        config_type = atoms.info.get("config_type")
        if config_type is None:
            lone = len(atoms) == 1 and not atoms.pbc.any()
            config_type = ISOLATED if lone else default_config_type
        atoms.info["config_type"] = str(config_type)
        isolated = atoms.info["config_type"] == ISOLATED
        if isolated and len(atoms) != 1:
            raise FtbenchError(f"{where}: config_type={ISOLATED} but it has {len(atoms)} atoms")
        if energy is None:
            raise FtbenchError(
                f"{where}: no energy under key {energy_key!r} (set --energy-key, or "
                "`energy_key` in the benchmark's catalog entry)"
            )
        try:
            atoms.info["REF_energy"] = float(np.asarray(energy, dtype=float).reshape(()))
        except (TypeError, ValueError):
            raise FtbenchError(f"{where}: energy {energy_key!r} is not a single number") from None
        if forces is None:
            if not isolated:
                raise FtbenchError(
                    f"{where}: no forces under key {forces_key!r} (set --forces-key, or "
                    "`forces_key` in the benchmark's catalog entry)"
                )
            forces = np.zeros((1, 3))
        atoms.arrays["REF_forces"] = np.array(forces, dtype=float)
        if stress is not None:
            atoms.info["REF_stress"] = _voigt(stress, where)
        elif stress_key and atoms.pbc.all() and not isolated:
            raise FtbenchError(f"{where}: periodic config without stress under key {stress_key!r}")
        out.append(atoms)
    return out


def check_labels(atoms_list, path: str | Path, allowed_elements=None) -> None:
    """Raise FtbenchError (file and record) for missing, malformed or non-finite labels."""
    allowed = set(allowed_elements) if allowed_elements is not None else None
    if not atoms_list:
        raise FtbenchError(f"{path}: no configurations")
    for i, atoms in enumerate(atoms_list):
        where = f"{path}: {_record(atoms, i)}"
        n = len(atoms)
        if n == 0:
            raise FtbenchError(f"{where}: has no atoms")
        if not isinstance(atoms.info.get("config_type"), str):
            raise FtbenchError(f"{where}: missing config_type")
        energy = atoms.info.get("REF_energy")
        if energy is None:
            raise FtbenchError(f"{where}: missing REF_energy")
        if not np.isfinite(energy):
            raise FtbenchError(f"{where}: REF_energy is {energy}")
        forces = atoms.arrays.get("REF_forces")
        if forces is None:
            raise FtbenchError(f"{where}: missing REF_forces")
        if forces.shape != (n, 3):
            raise FtbenchError(f"{where}: REF_forces has shape {forces.shape}, expected ({n}, 3)")
        if not np.isfinite(forces).all():
            raise FtbenchError(f"{where}: REF_forces contains NaN or inf")
        if not np.isfinite(atoms.positions).all():
            raise FtbenchError(f"{where}: positions contain NaN or inf")
        if "REF_stress" in atoms.info:
            stress = np.asarray(atoms.info["REF_stress"], dtype=float)
            if stress.size not in (6, 9) or not np.isfinite(stress).all():
                raise FtbenchError(f"{where}: REF_stress must be 6 or 9 finite numbers")
        if "total_charge" in atoms.info:
            q = atoms.info["total_charge"]
            if not np.isfinite(q) or float(q) != round(float(q)):
                raise FtbenchError(f"{where}: total_charge {q} is not an integer")
        if atoms.info["config_type"] == ISOLATED and n != 1:
            raise FtbenchError(f"{where}: {ISOLATED} with {n} atoms")
        if allowed is not None:
            extra = sorted(set(atoms.get_chemical_symbols()) - allowed)
            if extra:
                raise FtbenchError(
                    f"{where}: elements {extra} are not allowed (allowed: "
                    f"{','.join(sorted(allowed))}); the foundation model lacks them"
                )


# ---------------------------------------------------------------- readers


def read_extxyz(
    path: str | Path,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    stress_key: str | None = None,
    default_config_type: str = "Default",
) -> list:
    """Read an extxyz file with labels under the given keys, normalised to REF_* keys."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FtbenchError(f"input {path} does not exist")
    try:
        atoms_list = ase.io.read(path, index=":", format="extxyz")
    except Exception as err:  # ase raises many types for malformed text
        raise FtbenchError(f"{path}: not readable as extxyz: {err}") from None
    return normalise_atoms(
        atoms_list, energy_key, forces_key, stress_key, path=path, default_config_type=default_config_type
    )


def _text(value) -> str:
    arr = np.asarray(value)
    item = arr.reshape(-1)[0] if arr.size else ""
    return item.decode() if isinstance(item, bytes) else str(item)


def read_spice_hdf5(
    path: str | Path,
    subsets=None,
    elements=None,
    charge: int | None = None,
    config_type: str = "Default",
    stats: dict | None = None,
) -> list:
    """Return the configurations of a SPICE HDF5 file passing the filters, in eV and Angstrom."""
    import h5py
    from ase import Atoms
    from ase.data import chemical_symbols
    from ase.units import Bohr, Hartree

    path = Path(path)
    if not path.is_file():
        raise FtbenchError(f"input {path} does not exist")
    subsets = set(subsets) if subsets else None
    elements = set(elements) if elements else None
    stats = stats if stats is not None else {}
    stats.update(groups=0, kept_groups=0, unknown_charge_dropped=0)
    out = []
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise FtbenchError(f"{path}: not readable as HDF5: {err}") from None
    with h5:
        for name in h5:
            group = h5[name]
            where = f"{path}: group {name!r}"
            if not isinstance(group, h5py.Group):
                raise FtbenchError(f"{where}: expected one HDF5 group per molecule")
            stats["groups"] += 1
            missing = [k for k in _SPICE_REQUIRED if k not in group]
            if subsets is not None and "subset" not in group:
                missing.append("subset")
            if missing:
                raise FtbenchError(f"{where}: missing dataset(s) {missing}")
            subset = _text(group["subset"][()]) if "subset" in group else None
            if subsets is not None and subset not in subsets:
                continue
            numbers = np.asarray(group["atomic_numbers"][()]).astype(int).reshape(-1)
            if (numbers <= 0).any() or (numbers >= len(chemical_symbols)).any():
                raise FtbenchError(f"{where}: atomic_numbers out of range: {sorted(set(numbers.tolist()))}")
            symbols = {chemical_symbols[z] for z in numbers}
            if elements is not None and not symbols <= elements:
                continue
            total_charge = None
            if "formal_charges" in group:
                fc = np.asarray(group["formal_charges"][()], dtype=float).reshape(-1)
                if fc.shape != numbers.shape:
                    raise FtbenchError(f"{where}: formal_charges has {fc.size} entries for {numbers.size} atoms")
                total_charge = int(round(float(fc.sum())))
            if charge is not None and total_charge != charge:
                if total_charge is None:
                    stats["unknown_charge_dropped"] += 1
                continue
            conf = np.asarray(group["conformations"][()], dtype=float)
            energy = np.asarray(group["dft_total_energy"][()], dtype=float).reshape(-1)
            grad = np.asarray(group["dft_total_gradient"][()], dtype=float)
            n_atoms, n_conf = numbers.size, conf.shape[0] if conf.ndim == 3 else -1
            if conf.shape != (n_conf, n_atoms, 3):
                raise FtbenchError(f"{where}: conformations has shape {conf.shape}, expected (n_conf, {n_atoms}, 3)")
            if energy.shape != (n_conf,):
                raise FtbenchError(f"{where}: dft_total_energy has shape {energy.shape}, expected ({n_conf},)")
            if grad.shape != conf.shape:
                raise FtbenchError(f"{where}: dft_total_gradient has shape {grad.shape}, expected {conf.shape}")
            smiles = _text(group["smiles"][()]) if "smiles" in group else None
            stats["kept_groups"] += 1
            for j in range(n_conf):
                if not (np.isfinite(energy[j]) and np.isfinite(grad[j]).all() and np.isfinite(conf[j]).all()):
                    raise FtbenchError(f"{where}: conformation {j}: NaN or inf in energy, gradient or positions")
                atoms = Atoms(numbers=numbers, positions=conf[j] * Bohr, pbc=False)
                atoms.info["config_type"] = config_type
                atoms.info["REF_energy"] = float(energy[j] * Hartree)
                atoms.arrays["REF_forces"] = -grad[j] * (Hartree / Bohr)
                if total_charge is not None:
                    atoms.info["total_charge"] = total_charge
                atoms.info["mol_id"] = str(name)
                atoms.info["conformation"] = j
                if subset is not None:
                    atoms.info["subset"] = subset
                if smiles is not None:
                    atoms.info["smiles"] = smiles
                out.append(atoms)
    return out


def isolated_atom(symbol: str, energy: float):
    """Return an isolated-atom configuration of `symbol` with `energy` (eV) as its E0 label."""
    from ase import Atoms

    atoms = Atoms(symbol, positions=[[0.0, 0.0, 0.0]], pbc=False)
    atoms.info.update(config_type=ISOLATED, REF_energy=float(energy), total_charge=0)
    atoms.arrays["REF_forces"] = np.zeros((1, 3))
    return atoms


def read_free_atom_energies(path: str | Path) -> dict[str, float]:
    """Read a JSON file {symbol: eV} of free-atom energies, refusing unknown symbols and non-numbers."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FtbenchError(f"free-atom energies file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise FtbenchError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise FtbenchError(f"{path}: expected a JSON object {{symbol: energy in eV}}")
    parse_elements(",".join(data))
    try:
        out = {str(k): float(v) for k, v in data.items()}
    except (TypeError, ValueError):
        raise FtbenchError(f"{path}: every value must be a number (eV)") from None
    if not all(np.isfinite(v) for v in out.values()):
        raise FtbenchError(f"{path}: energies must be finite")
    return out


def read_sn2_npz(
    path: str | Path, free_atom_energies: dict[str, float] | None = None, config_type: str = "Default"
) -> list:
    """SN2-reaction npz configurations plus one IsolatedAtom per element (see module docstring)."""
    from ase import Atoms
    from ase.data import chemical_symbols

    path = Path(path)
    if not path.is_file():
        raise FtbenchError(f"input {path} does not exist")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise FtbenchError(f"{path}: not readable as npz: {err}") from None
    with npz:
        missing = [k for k in _SN2_REQUIRED if k not in npz.files]
        if missing:
            raise FtbenchError(f"{path}: missing key(s) {missing} (has {sorted(npz.files)})")
        N = np.asarray(npz["N"]).reshape(-1)
        Z, R, E, F = (np.asarray(npz[k]) for k in ("Z", "R", "E", "F"))
        Q = np.asarray(npz["Q"]).reshape(-1) if "Q" in npz.files else None
    m = N.shape[0]
    if Z.ndim != 2 or Z.shape[0] != m:
        raise FtbenchError(f"{path}: Z has shape {Z.shape}, expected ({m}, max_atoms)")
    width = Z.shape[1]
    for key, arr, shape in (("R", R, (m, width, 3)), ("F", F, (m, width, 3))):
        if arr.shape != shape:
            raise FtbenchError(f"{path}: {key} has shape {arr.shape}, expected {shape}")
    E = E.reshape(-1) if E.ndim == 2 and E.shape[1] == 1 else E
    if E.shape != (m,):
        raise FtbenchError(f"{path}: E has shape {E.shape}, expected ({m},)")
    if Q is not None and Q.shape != (m,):
        raise FtbenchError(f"{path}: Q has {Q.shape[0]} entries, expected {m}")

    configs, present = [], set()
    for i in range(m):
        where = f"{path}: record {i}"
        n = int(N[i])
        if not 0 < n <= width:
            raise FtbenchError(f"{where}: N={n} outside 1..{width}")
        z = Z[i, :n].astype(int)
        if (z <= 0).any() or (z >= len(chemical_symbols)).any():
            raise FtbenchError(f"{where}: atomic numbers {z.tolist()} include padding or invalid values within N={n}")
        if Z[i, n:].any() or R[i, n:].any() or F[i, n:].any():
            raise FtbenchError(f"{where}: nonzero entries after the first N={n} atoms: padding disagrees with N")
        if not (np.isfinite(E[i]) and np.isfinite(R[i, :n]).all() and np.isfinite(F[i, :n]).all()):
            raise FtbenchError(f"{where}: NaN or inf in E, R or F")
        atoms = Atoms(numbers=z, positions=R[i, :n].astype(float), pbc=False)
        energy = float(E[i])
        if free_atom_energies is not None:
            lacking = sorted(set(atoms.get_chemical_symbols()) - set(free_atom_energies))
            if lacking:
                raise FtbenchError(f"{where}: --free-atom-energies has no energy for {lacking}")
            energy += sum(free_atom_energies[s] for s in atoms.get_chemical_symbols())
        atoms.info["config_type"] = config_type
        atoms.info["REF_energy"] = energy
        atoms.arrays["REF_forces"] = F[i, :n].astype(float)
        if Q is not None:
            if not np.isfinite(Q[i]) or float(Q[i]) != round(float(Q[i])):
                raise FtbenchError(f"{where}: total charge Q={Q[i]} is not an integer")
            atoms.info["total_charge"] = int(round(float(Q[i])))
        present.update(atoms.get_chemical_symbols())
        configs.append(atoms)
    order = sorted(present, key=lambda s: chemical_symbols.index(s))
    e0 = free_atom_energies or {}
    return [isolated_atom(s, e0.get(s, 0.0)) for s in order] + configs


# ---------------------------------------------------------------- writing / CLI


def write_extxyz(atoms_list, out: str | Path) -> Path:
    """Write atomically (a killed job leaves no half file for the pipeline to trust)."""
    import ase.io

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        ase.io.write(tmp, atoms_list, format="extxyz")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def convert(
    fmt: str,
    inp: str | Path,
    out: str | Path,
    *,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    stress_key: str | None = None,
    subsets=None,
    elements=None,
    charge: int | None = None,
    free_atom_energies: dict | None = None,
    allowed_elements=None,
    config_type: str = "Default",
) -> list:
    """Read `inp` in format `fmt`, validate, write `out`; returns the configurations written."""
    if fmt == "extxyz":
        atoms_list = read_extxyz(inp, energy_key, forces_key, stress_key, config_type)
    elif fmt == "spice-hdf5":
        stats: dict = {}
        atoms_list = read_spice_hdf5(inp, subsets, elements, charge, config_type, stats)
        if not atoms_list:
            raise FtbenchError(
                f"{inp}: no configurations pass the filters (subset={sorted(subsets or [])}, "
                f"elements={sorted(elements or [])}, charge={charge}; {stats['groups']} groups, "
                f"{stats['unknown_charge_dropped']} dropped for unknown charge)"
            )
    elif fmt == "sn2-npz":
        atoms_list = read_sn2_npz(inp, free_atom_energies, config_type)
    else:
        raise FtbenchError(f"unknown format {fmt!r}; choose from {list(FORMATS)}")
    check_labels(atoms_list, inp, allowed_elements)
    write_extxyz(atoms_list, out)
    return atoms_list


def add_arguments(parser) -> None:
    """Add the `ftbench convert` options to `parser`."""
    parser.add_argument("--format", required=True, choices=FORMATS, help="input format")
    parser.add_argument("input", help="source file")
    parser.add_argument("output", help="normalised extxyz to write")
    parser.add_argument("--energy-key", default="REF_energy", help="extxyz: energy key (e.g. mp2_energy)")
    parser.add_argument("--forces-key", default="REF_forces", help="extxyz: forces key (e.g. mp2_forces)")
    parser.add_argument("--stress-key", default=None, help="extxyz: stress key (optional)")
    parser.add_argument(
        "--config-type", default="Default", help="config_type for configs without one (default Default)"
    )
    parser.add_argument("--subset", action="append", default=[], help="spice-hdf5: keep only this subset (repeatable)")
    parser.add_argument(
        "--elements", default=None, help="spice-hdf5: keep only molecules made of these elements, e.g. H,C,N,O"
    )
    parser.add_argument(
        "--charge",
        type=int,
        default=None,
        help="spice-hdf5: keep only molecules with this total charge (needs formal_charges)",
    )
    parser.add_argument(
        "--free-atom-energies",
        default=None,
        help="sn2-npz: JSON file {symbol: eV} to add back to the relative energies",
    )
    parser.add_argument(
        "--allowed-elements",
        default=None,
        help="fail if any config has another element (e.g. the foundation model's elements)",
    )


def run(args) -> int:
    """Run `ftbench convert` with parsed `args`; return the exit code."""
    if args.free_atom_energies and args.format != "sn2-npz":
        raise FtbenchError("--free-atom-energies applies to --format sn2-npz only")
    if (args.subset or args.elements or args.charge is not None) and args.format != "spice-hdf5":
        raise FtbenchError("--subset, --elements and --charge apply to --format spice-hdf5 only")
    free = read_free_atom_energies(args.free_atom_energies) if args.free_atom_energies else None
    atoms_list = convert(
        args.format,
        args.input,
        args.output,
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        stress_key=args.stress_key,
        subsets=args.subset or None,
        elements=parse_elements(args.elements),
        charge=args.charge,
        free_atom_energies=free,
        allowed_elements=parse_elements(args.allowed_elements),
        config_type=args.config_type,
    )
    n_iso = sum(a.info["config_type"] == ISOLATED for a in atoms_list)
    symbols = sorted({s for a in atoms_list for s in a.get_chemical_symbols()})
    print(
        f"wrote {len(atoms_list)} configurations ({n_iso} isolated atoms; elements "
        f"{','.join(symbols)}) to {args.output}"
    )
    return 0
