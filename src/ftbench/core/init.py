"""`ftbench init`: a config overlay for your own system (a data file and a foundation model).

Reads the data file once, checks what the pipeline will need of it (label keys, groups, elements
the model knows, isolated atoms, enough configurations), chooses the split, the training-set sizes,
the strategies that can run and a robustness protocol, and writes a commented overlay that runs
as is: `snakemake -c 2 --configfile OUT`. Bad input is refused before anything is written, with
the file or key named and the fix.
"""

from __future__ import annotations

import argparse
import os
import re
import urllib.parse
from collections import Counter
from pathlib import Path

import numpy as np

from ftbench.core.errors import FtbenchError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The standard ladder; a step is kept while 1.5x it still fits below the whole pool (the last point).
LADDER = [10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000]
MIN_CONFIGURATIONS = 10
DEFAULT_TEMPERATURE = 300.0
# Label keys a pretraining pool is looked up under when none is given (mace's and ASE's defaults).
POOL_ENERGY_KEYS = ("REF_energy", "energy")
POOL_FORCES_KEYS = ("REF_forces", "forces")


# ---------------------------------------------------------------- reading the data


def _is_url(text: str) -> bool:
    return urllib.parse.urlsplit(text).scheme in ("http", "https")


def _has(atoms, key: str, kind: str) -> bool:
    """Whether `atoms` carries label `key` (info or arrays, or ASE's calculator results).

    kind: `scalar` (one number in info), `per_atom` (an N x 3 array) or `any` (info, e.g. a stress).
    """
    if kind == "per_atom" and key in atoms.arrays:
        return np.shape(atoms.arrays[key]) == (len(atoms), 3)
    if kind != "per_atom" and key in atoms.info:
        if kind == "any":
            return True
        try:
            return np.size(atoms.info[key]) == 1 and np.isfinite(float(np.asarray(atoms.info[key], dtype=float)))
        except (TypeError, ValueError):
            return False
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    return key in results


def _found_keys(atoms) -> str:
    """Return the frame's keys, and which of them look like an energy or forces (for a refusal)."""
    info = sorted(atoms.info)
    arrays = sorted(set(atoms.arrays) - {"numbers", "positions"})
    calc = sorted(getattr(atoms.calc, "results", {})) if atoms.calc is not None else []
    energies = [k for k in info if _has(atoms, k, "scalar")] + [k for k in calc if k in ("energy", "free_energy")]
    forces = [k for k in arrays if _has(atoms, k, "per_atom")] + [k for k in calc if k == "forces"]
    parts = [f"info keys: {', '.join(info) or 'none'}", f"per-atom arrays: {', '.join(arrays) or 'none'}"]
    if calc:
        parts.append(f"calculator results: {', '.join(calc)}")
    parts.append(f"energy-like (one number): {', '.join(energies) or 'none'}")
    parts.append(f"forces-like (N x 3): {', '.join(forces) or 'none'}")
    return "; ".join(parts)


def read_data(path: Path) -> list:
    """Return all frames of the data file (extxyz, optionally .gz), or a refusal naming the file."""
    from ase.io import read

    if not path.is_file():
        raise FtbenchError(f"--data {path}: no such file; give the path of your labelled configurations (extxyz)")
    if path.stat().st_size == 0:
        raise FtbenchError(f"--data {path}: the file is empty")
    try:
        frames = read(path, ":", format="extxyz")
    except Exception as err:  # ase raises many types for a malformed file
        raise FtbenchError(
            f"--data {path} is not a readable extended-XYZ file ({type(err).__name__}: {err}); the pipeline reads "
            "extxyz: write yours with ase (`ase.io.write('my.xyz', frames, format='extxyz')`)"
        ) from None
    if not frames:
        raise FtbenchError(f"--data {path} holds no configurations")
    return frames


def check_labels(frames, path: Path, energy_key: str, forces_key: str, stress_key: str | None, isolated) -> None:
    """Refuse a label key missing from any frame, listing the keys the first such frame has."""
    wanted = [
        ("energy", "--energy-key", energy_key, "scalar", True),
        ("forces", "--forces-key", forces_key, "per_atom", False),  # a free atom's forces are zero
    ]
    if stress_key:
        wanted.append(("stress", "--stress-key", stress_key, "any", False))
    for what, option, key, kind, on_isolated in wanted:
        bad = [i for i, a in enumerate(frames) if (on_isolated or not isolated[i]) and not _has(a, key, kind)]
        if bad:
            first = frames[bad[0]]
            raise FtbenchError(
                f"--data {path}: {len(bad)} of {len(frames)} frames have no {what} under {option} {key!r} (first: frame "
                f"{bad[0]}). Keys found in frame {bad[0]}: {_found_keys(first)}. Pass the file's {what} key with {option}"
            )


def _formula(counts: Counter) -> str:
    from ase.data import atomic_numbers

    return ", ".join(f"{el} {counts[el]}" for el in sorted(counts, key=lambda s: atomic_numbers[s]))


# ---------------------------------------------------------------- choices


def split_counts(n: int) -> tuple[int, int]:
    """Return the validation and test configurations held out of `n`: 10 % and 20 %, at least 2 and 3."""
    return max(2, round(0.1 * n)), max(3, round(0.2 * n))


def size_ladder(pool: int) -> list[int]:
    """Return the ladder steps below the whole pool, for a learning curve of >= 3 points where the pool allows.

    The standard ladder while 1.5 x a step fits in the pool (the pool itself is the last point, so
    no step crowds it), else a quarter and a half of the pool.
    """
    steps = [s for s in LADDER if 1.5 * s <= pool]
    if len(steps) >= 2:
        return steps
    if pool >= 8:
        return sorted({max(2, round(pool / 4)), round(pool / 2)})
    return []


def composition_rank(frames, zs: list[int]) -> int:
    """Return how many element directions the compositions of `frames` span (what an E0 fit can determine)."""
    counts = np.array([[int(np.sum(a.numbers == z)) for z in zs] for a in frames], dtype=float)
    return int(np.linalg.matrix_rank(counts)) if len(counts) else 0


def pool_keys(path: Path, option: str, energy_key: str | None, forces_key: str | None) -> dict:
    """Return the label keys of a pretraining file, from its first frame (the file may hold millions)."""
    from ase.io import read

    if not path.is_file():
        raise FtbenchError(f"{option} {path}: no such file")
    try:
        first = read(path, 0, format="extxyz")
    except Exception as err:  # ase raises many types for a malformed file
        raise FtbenchError(
            f"{option} {path} is not a readable extended-XYZ file ({type(err).__name__}: {err})"
        ) from None
    keys = {}
    for what, given, candidates, kind in (
        ("energy", energy_key, POOL_ENERGY_KEYS, "scalar"),
        ("forces", forces_key, POOL_FORCES_KEYS, "per_atom"),
    ):
        found = [k for k in ([given] if given else candidates) if _has(first, k, kind)]
        if not found:
            looked = repr(given) if given else " or ".join(map(repr, candidates))
            raise FtbenchError(
                f"{option} {path}: its first frame has no {what} under {looked}. Keys found there: "
                f"{_found_keys(first)}. Pass the key with --pool-{what}-key"
            )
        keys[f"{what}_key"] = found[0]
    return keys


def _config_path(path: str) -> str:
    """Return a path for the overlay: relative when under the working directory, else absolute."""
    full = Path(path).expanduser().resolve()
    try:
        return str(full.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(full)


def _y(value) -> str:
    """Return one YAML value on one line (flow style)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.replace("\n...\n", "").strip()


# ---------------------------------------------------------------- the overlay


def plan(args: argparse.Namespace) -> dict:
    """Check every input and make every choice; return what the overlay needs (nothing written)."""
    from ase.data import chemical_symbols

    from ftbench.core.config import DEFAULT_CONFIG, read_yaml
    from ftbench.data.geometry import is_isolated_atom
    from ftbench.data.prepare import check_split_elements, split

    # the default's catalog and settings as written: validating it would ask for the demo world's
    # files, which an installed ftbench outside the checkout does not have (the overlay is validated)
    defaults = read_yaml(DEFAULT_CONFIG)
    data = Path(args.data).expanduser()
    name = args.name or re.sub(r"\W", "_", data.name.split(".")[0]) or "own_system"
    if name[0].isdigit():
        name = f"sys_{name}"
    if not NAME_RE.match(name):
        raise FtbenchError(f"--name {name!r}: use letters, digits and underscores (a catalog key)")
    model_name = f"{name}_model"
    for axis, key in (("benchmarks", name), ("foundation_models", model_name)):
        if key in defaults["catalog"][axis]:
            raise FtbenchError(
                f"--name {name!r}: `catalog.{axis}.{key}` already exists in config/config.yaml, and the overlay "
                "would merge into it; choose another --name"
            )
    out = Path(args.out)
    if out.exists() and not args.force:
        raise FtbenchError(f"--out {out} exists; choose another file or pass --force to overwrite it")

    # the model first: a URL needs its sha256 before any reading
    model_is_url = _is_url(args.model)
    if model_is_url:
        if not args.model_sha256 or not re.fullmatch(r"[0-9a-fA-F]{64}", args.model_sha256):
            raise FtbenchError(
                f"--model {args.model} is a URL: pin the file with --model-sha256 (64 hex digits; "
                "`sha256sum FILE` of a copy you trust), so a changed download is refused"
            )
        url = urllib.parse.urlsplit(args.model)
        if url.query or url.fragment or not url.path.strip("/"):
            raise FtbenchError(
                f"--model {args.model}: give the file's plain URL (no ?query or #fragment), or download it and "
                "pass the local path"
            )
    elif not Path(args.model).expanduser().is_file():
        raise FtbenchError(f"--model {args.model}: no such file; give a MACE model file or its https:// URL")
    if args.pt_eval and not args.replay_pool:
        raise FtbenchError(
            "--pt-eval needs --replay-pool: the replay step holds the pretraining slice out, and without a pool no "
            "replay step runs. Give the model's pretraining data with --replay-pool FILE, or drop --pt-eval"
        )
    pool_spec = pt_spec = None
    if args.replay_pool:
        keys = pool_keys(
            Path(args.replay_pool).expanduser(), "--replay-pool", args.pool_energy_key, args.pool_forces_key
        )
        pool_spec = {"path": _config_path(args.replay_pool), **keys}
    if args.pt_eval:
        # the replay step reads the slice under the pool's keys: it must have them
        pool_keys(Path(args.pt_eval).expanduser(), "--pt-eval", pool_spec["energy_key"], pool_spec["forces_key"])
        pt_spec = {"path": _config_path(args.pt_eval)}

    # the data, read once
    frames = read_data(data)
    isolated = [is_isolated_atom(a) for a in frames]
    # a free atom (not a one-atom crystal cell) must say so, or prepare trains on it
    lone = [i for i, a in enumerate(frames) if len(a) == 1 and not a.pbc.any() and not isolated[i]]
    if lone:
        raise FtbenchError(
            f"--data {data}: {len(lone)} single-atom frames (first: frame {lone[0]}) lack config_type=IsolatedAtom, so "
            "they would be trained on as configurations. Mark each free atom with config_type=IsolatedAtom (its energy "
            "is that element's E0 at your level of theory), or remove them"
        )
    check_labels(frames, data, args.energy_key, args.forces_key, args.stress_key, isolated)
    configs = [a for a, iso in zip(frames, isolated) if not iso]
    if len(configs) < MIN_CONFIGURATIONS:
        raise FtbenchError(
            f"--data {data}: {len(configs)} configurations (isolated atoms aside); at least {MIN_CONFIGURATIONS} are "
            "needed for a validation set, a test set and something left to train on"
        )
    elements = Counter(chemical_symbols[int(z)] for a in configs for z in a.numbers)
    in_frames = Counter(el for a in configs for el in {chemical_symbols[int(z)] for z in a.numbers})
    zs = sorted({int(z) for a in configs for z in a.numbers})
    isolated_elements = {chemical_symbols[int(a.numbers[0])] for a, iso in zip(frames, isolated) if iso}
    n_groups = None
    if args.group_key:
        missing = [i for i, a in enumerate(frames) if not isolated[i] and args.group_key not in a.info]
        if missing:
            raise FtbenchError(
                f"--data {data}: {len(missing)} of {len(configs)} configurations (first: frame {missing[0]}) have no "
                f"info key {args.group_key!r} (--group-key); info keys of frame {missing[0]}: "
                f"{', '.join(sorted(frames[missing[0]].info)) or 'none'}. Label every frame's trajectory, or drop --group-key"
            )
        n_groups = len({str(a.info[args.group_key]) for a in configs})
        if n_groups < 3:
            raise FtbenchError(
                f"--data {data}: {n_groups} distinct values of {args.group_key!r}; a split by --group-key needs at "
                "least 3 (test, validation and training each take whole groups). Drop --group-key or add trajectories"
            )
    periodic = sorted({bool(a.pbc.all()) for a in configs})
    if args.stress_key and periodic != [True]:
        raise FtbenchError(f"--data {data}: --stress-key {args.stress_key!r} given, but not every frame is periodic")

    # the split the pipeline will make (prepare.split, the same seed): its real training pool
    n_valid, n_test = split_counts(len(configs))
    try:
        train, valid, test, _ = split(frames, n_valid, n_test, defaults["split_seed"], args.group_key, str(data))
        check_split_elements(train, {"validation": (valid, data), "test": (test, data)})
    except FtbenchError as err:
        raise FtbenchError(
            f"--data {data}: the split init chose (validation {n_valid}, test {n_test}): {err}"
        ) from None
    pool = len(train)
    ladder = size_ladder(pool)
    sizes = [s for s in ladder if s <= pool] + [pool]

    # the model's elements and heads (a local file; a URL is checked by the pipeline's check_elements)
    model_elements = heads = None
    if not model_is_url:
        from ftbench.probes.inference import elements_of, heads_of, read_model

        model = read_model(Path(args.model).expanduser())
        model_elements = sorted(elements_of(model))
        heads = heads_of(model)
        unknown = [chemical_symbols[z] for z in zs if z not in model_elements]
        if unknown:
            raise FtbenchError(
                f"--data {data} contains {', '.join(unknown)}, which --model {args.model} does not know (it covers "
                f"{', '.join(chemical_symbols[z] for z in model_elements)}); choose a foundation model that covers "
                "every element of your data"
            )
        if args.head and args.head not in heads:
            raise FtbenchError(f"--head {args.head!r}: --model {args.model} has heads {', '.join(heads)}; pick one")
        if not args.head and len(heads) > 1:
            raise FtbenchError(
                f"--model {args.model} has {len(heads)} heads ({', '.join(heads)}): pass --head with the one to adapt"
            )

    # strategies: every preset of the catalog that can run on what was given
    catalog = defaults["catalog"]["strategies"]
    replay = [s for s, p in catalog.items() if p.get("replay")]
    scratch = [s for s, p in catalog.items() if not p.get("foundation", True)]
    skipped = {}
    if not pool_spec:
        skipped[
            "no --replay-pool (replay fine-tunes mix the model's pretraining data in; give it with --replay-pool FILE)"
        ] = replay
    strategies = [s for s in catalog if not any(s in v for v in skipped.values())]
    lacking = [chemical_symbols[z] for z in zs if chemical_symbols[z] not in isolated_elements]
    e0_scratch = "isolated" if not lacking else "average"
    rank = composition_rank(configs, zs)

    temperature = args.temperature
    temperature_from = "--temperature"
    if temperature is None:
        temps = [a.info.get("temperature") for a in configs]
        if all(isinstance(t, (int, float)) and t > 0 for t in temps):
            temperature, temperature_from = float(np.median(temps)), "the median `temperature` of the frames"
        else:
            temperature, temperature_from = DEFAULT_TEMPERATURE, "the default; the frames carry no `temperature`"
    return {
        "name": name,
        "model_name": model_name,
        "data": data,
        "data_path": _config_path(str(data)),
        "frames": len(frames),
        "configs": len(configs),
        "elements": elements,
        "in_frames": in_frames,
        "isolated_elements": sorted(isolated_elements),
        "lacking": lacking,
        "rank": rank,
        "n_elements": len(zs),
        "n_groups": n_groups,
        "periodic": periodic == [True],
        "n_valid": n_valid,
        "n_test": n_test,
        "split": (len(train), len(valid), len(test)),
        "pool": pool,
        "ladder": ladder,
        "sizes": sizes,
        "model_is_url": model_is_url,
        "model_path": args.model if model_is_url else _config_path(args.model),
        "model_elements": model_elements,
        "heads": heads,
        "pool_spec": pool_spec,
        "pt_spec": pt_spec,
        "strategies": strategies,
        "skipped": skipped,
        "scratch": scratch,
        "e0_scratch": e0_scratch,
        "temperature": temperature,
        "temperature_from": temperature_from,
        "split_seed": defaults["split_seed"],
        "md": defaults["robustness"]["md"],
        "steps": defaults["training"].get("steps"),
    }


def render(p: dict, args: argparse.Namespace) -> str:
    """Return the overlay's text: every choice with a comment saying why."""
    from ase.data import chemical_symbols

    name, model = p["name"], p["model_name"]
    n_train, n_valid, n_test = p["split"]
    groups = f", whole `{args.group_key}` groups ({p['n_groups']})" if args.group_key else ""
    lines = [
        f"# Your own system, written by `ftbench init` ({p['data'].name}; edit freely, then check with",
        f"# `ftbench grid --configfile {args.out}`). Merged on top of config/config.yaml: every key not",
        "# here (training budget, replay, robustness protocol, findings thresholds) comes from there.",
        "# Paths are relative to the directory you run snakemake in (this one), else absolute.",
        f"#   snakemake -c 2 --configfile {args.out}",
        "",
        f"benchmarks: [{name}]",
        f"foundation_models: [{model}]",
    ]
    reasons = "; ".join(f"{', '.join(v)} skipped: {k}" for k, v in p["skipped"].items())
    lines.append(
        "# every strategy of config/config.yaml's catalog that can run on what you gave" + (":" if reasons else "")
    )
    if reasons:
        lines.append(f"# {reasons}")
    scratch_used = [s for s in p["scratch"] if s in p["strategies"]]
    lines.append(f"strategies: {_y(p['strategies'])}")
    lines += [
        f"# learning curve: the ladder steps that fit, then the whole training pool ({p['pool']} configurations",
        "# after the validation/test split below); `ftbench grid` prints the sizes",
        "train_sizes: auto",
        f"size_ladder: {_y(p['ladder'] or [p['pool']])}",
        "seeds: [1, 2]               # two seeds: the tables compare strategies against the seed spread",
        "e0: [estimated]             # fine-tunes: E0s re-estimated from the foundation model on each training set",
    ]
    if scratch_used and p["e0_scratch"] == "average":
        lacking = ", ".join(p["lacking"])
        rank_note = (
            f"# Your compositions span {p['rank']} of {p['n_elements']} element directions, so the fit fixes only\n"
            "# that many E0 combinations (the pre-flight warns): E0s shift each composition's energy by a\n"
            "# constant, so test errors, forces, MD and RDFs are unaffected; energies of compositions outside\n"
            "# your data (dimer curves) are not meaningful for scratch."
            if p["rank"] < p["n_elements"]
            else "# Your compositions determine every element's E0."
        )
        lines += [
            f"# {', '.join(scratch_used)} (no foundation model) needs an E0 per element to train: mace takes them",
            f"# from IsolatedAtom frames or fits them to the data. Your file has no IsolatedAtom frame for {lacking},",
            "# so the E0s are a least-squares fit of the energies on composition (mace's `--E0s average`).",
            rank_note,
            "# Better: add one IsolatedAtom frame per element at your level of theory, and delete this line.",
            "e0_without_foundation: average",
        ]
    elif scratch_used:
        lines.append("# scratch takes its E0s from your IsolatedAtom frames (e0_without_foundation: isolated)")
    lines += [
        "",
        "catalog:",
        "  benchmarks:",
        f"    {name}:",
        "      source: local",
        f"      path: {_y(p['data_path'])}",
    ]
    lines.append(f"      energy_key: {_y(args.energy_key)}")
    lines.append(f"      forces_key: {_y(args.forces_key)}")
    if args.stress_key:
        lines.append(f"      stress_key: {_y(args.stress_key)}")
    split = {"valid": p["n_valid"], "test": p["n_test"]}
    if args.group_key:
        split["group_key"] = args.group_key
        lines.append(
            f"      # frames of one `{args.group_key}` group are correlated: each group stays in one split, the"
        )
        lines.append("      # counts are minimums")
    lines += [
        f"      # {p['configs']} configurations: 10 % validation, 20 % test{groups}; with split_seed",
        f"      # {p['split_seed']} that leaves {n_train} to train on ({n_valid} validation, {n_test} test)",
        f"      split: {_y(split)}",
        f"      max_train: {p['pool']}   # caps train_sizes: auto",
    ]
    md = p["md"]
    lines += [
        "      robustness:",
        "        # MD starts from test structure 0 as it is (there is no reference calculator here to relax it):",
        f"        # {md['replicas']} replicas ramped {md['t_start']:g} -> {md['t_end']:g} K, then an NVT production for the RDF.",
        "        structure_index: 0",
        "        start: {file: null, relax_steps: 0}",
        f"        # production temperature {p['temperature']:g} K: {p['temperature_from']}",
        f"        production: {{temperature: {p['temperature']:g}}}",
        "        # no reference-level MD of yours: the reference RDF is the test set's, labelled",
        "        # 'test set (not reference-level sampling)' in the tables and figures",
        "        rdf: {reference_trajectory: null}",
        "",
        "  foundation_models:",
        f"    {model}:",
    ]
    if p["model_is_url"]:
        lines += [
            "      source: url   # fetched once into data/, checked against the sha256 pinned under `sources:`",
            f"      fetch: {{source: {model}, file: model}}",
        ]
    else:
        known = ", ".join(chemical_symbols[z] for z in p["model_elements"])
        lines += [
            f"      # a copy goes to data/local/models/ ({known}; heads: {', '.join(p['heads'])})",
            "      source: local",
            f"      path: {_y(p['model_path'])}",
        ]
    if args.head:
        lines.append(f"      head: {_y(args.head)}   # the head adapted and evaluated")
    if p["pool_spec"]:
        lines.append(
            "      # the model's pretraining data: replay draws from it, and a slice held out of it measures forgetting"
        )
        lines.append(f"      replay_pool: {_y(p['pool_spec'])}")
    else:
        lines.append("      # no replay_pool: replay strategies are skipped and forgetting is not measured; add")
        lines.append("      # `replay_pool: {path: FILE}` (the model's pretraining data, extxyz) to run them")
    if p["pt_spec"]:
        lines.append(
            "      # the held-out pretraining slice scored for forgetting (instead of one held out of the pool)"
        )
        lines.append(f"      pt_eval: {{file: {_y(p['pt_spec'])}}}")
    if p["model_is_url"]:
        url = urllib.parse.urlsplit(args.model)
        folder, _, base = url.path.rpartition("/")
        lines += [
            "",
            "# where the model comes from (`ftbench fetch` checks the sha256 before anything uses the file)",
            "sources:",
            f"  {model}:",
            "    kind: url",
            f"    url: {_y(f'{url.scheme}://{url.netloc}{folder}')}",
            "    files:",
            f"      model: {{path: {_y(urllib.parse.unquote(base))}, sha256: {args.model_sha256.lower()}}}",
        ]
    return "\n".join(wrapped for line in "\n".join(lines).split("\n") for wrapped in _wrap(line)) + "\n"


def _wrap(line: str, width: int = 110) -> list[str]:
    """Return a long comment line as several (same indent); other lines as they are."""
    import textwrap

    body = line.lstrip()
    if not body.startswith("#") or len(line) <= width:
        return [line]
    indent = line[: len(line) - len(body)]
    return [f"{indent}# {part}" for part in textwrap.wrap(body[1:].strip(), width - len(indent) - 2)]


def summary(p: dict, args: argparse.Namespace, cfg: dict) -> list[str]:
    """Return what will run and what is skipped, as lines for the terminal."""
    from ftbench.core.grid import expand_grid, robustness_runs, untouched_runs

    runs = expand_grid(cfg)
    by = Counter(r.strategy for r in runs)
    n_train, n_valid, n_test = p["split"]
    iso = f", IsolatedAtom frames for {', '.join(p['isolated_elements'])}" if p["isolated_elements"] else ""
    groups = f" in {p['n_groups']} `{args.group_key}` groups" if args.group_key else ""
    lines = [
        f"data: {args.data}: {p['frames']} frames, {p['configs']} configurations{groups}{iso}",
        f"  atoms by element: {_formula(p['elements'])}; configurations holding each: {_formula(p['in_frames'])}",
        f"  split (split_seed {p['split_seed']}): {n_train} train, {n_valid} validation, {n_test} test",
        f"  training sizes: {', '.join(map(str, p['sizes']))}; seeds 1, 2",
    ]
    if len(p["sizes"]) < 3:
        lines.append(f"  note: {len(p['sizes'])} size(s) only: {n_train} training configurations are too few for 3")
    if p["model_is_url"]:
        lines.append(
            f"model: {args.model} (sha256 {args.model_sha256.lower()}); its elements are checked by the first job"
        )
    else:
        lines.append(f"model: {args.model}: heads {', '.join(p['heads'])}; knows every element of the data")
    lines.append(
        f"will run: {', '.join(f'{s} ({by[s]})' for s in p['strategies'] if by.get(s))}: {len(runs)} fine-tune jobs, "
        f"{len(untouched_runs(cfg))} untouched-model evaluation, "
        f"{len(robustness_runs(cfg, runs + untouched_runs(cfg)))} robustness jobs"
    )
    for reason, names in p["skipped"].items():
        lines.append(f"skipped: {', '.join(names)}: {reason}")
    if not p["pool_spec"]:
        lines.append("not measured: forgetting (no pretraining data to hold a slice out of: --replay-pool)")
    if any(s in p["strategies"] for s in p["scratch"]):
        how = (
            "your IsolatedAtom frames"
            if p["e0_scratch"] == "isolated"
            else "a fit on composition (no IsolatedAtom frames)"
        )
        lines.append(f"scratch E0s: {how}")
    lines.append(
        f"robustness: MD from test structure 0, production at {p['temperature']:g} K ({p['temperature_from']}); "
        "reference RDF = the test set, labelled so"
    )
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench init` options to `p`."""
    p.add_argument("--data", required=True, help="your labelled configurations (extxyz, .gz allowed)")
    p.add_argument("--energy-key", required=True, help="the file's energy key (info), e.g. dft_energy")
    p.add_argument("--forces-key", required=True, help="the file's forces key (per-atom array), e.g. dft_forces")
    p.add_argument("--stress-key", default=None, help="the file's stress key (periodic data)")
    p.add_argument("--model", required=True, help="the foundation model: a MACE model file or an https:// URL")
    p.add_argument("--model-sha256", default=None, help="sha256 of the model file (required for a URL)")
    p.add_argument("--head", default=None, help="the head of a multihead model to adapt")
    p.add_argument(
        "--replay-pool", default=None, help="the model's pretraining data (extxyz): enables replay strategies"
    )
    p.add_argument(
        "--pt-eval", default=None, help="a held-out pretraining slice the model never saw (with --replay-pool)"
    )
    p.add_argument(
        "--pool-energy-key", default=None, help="energy key of the pool files (default: REF_energy or energy)"
    )
    p.add_argument(
        "--pool-forces-key", default=None, help="forces key of the pool files (default: REF_forces or forces)"
    )
    p.add_argument("--group-key", default=None, help="info key of correlated frames (a trajectory): kept in one split")
    p.add_argument("--temperature", type=float, default=None, help="production MD temperature, K (default 300)")
    p.add_argument("--name", default=None, help="the benchmark's name (default: the data file's name)")
    p.add_argument("--out", required=True, help="the overlay to write, e.g. config/own_system.yaml")
    p.add_argument("--force", action="store_true", help="overwrite --out")


def run(args: argparse.Namespace) -> int:
    """Run `ftbench init` with parsed `args`: check, write the overlay, print the plan; return the exit code."""
    from ftbench.core.config import load_config

    p = plan(args)
    text = render(p, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    try:
        cfg = load_config([tmp])  # the overlay must validate as written
        lines = summary(p, args, cfg)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    print(f"ftbench init: wrote {out}")
    for line in lines:
        print(f"  {line}")
    print("next:")
    print(f"  ftbench grid --configfile {out}        # the jobs, the pre-flight checks")
    print(f"  snakemake -c 2 --configfile {out}      # the run; the recommendation: results/tables/recommendations.md")
    from ftbench.core.config import IN_CHECKOUT

    if not IN_CHECKOUT:  # an installed ftbench carries no workflow
        print("  (from a clone of ftbench: the workflow, its Snakefile and rules live in the repository)")
    return 0
