"""Loading, validating and cross-checking the ftbench config (the grid it spans: ftbench.core.grid).

Cheap on purpose (yaml + jsonschema, no torch): the Snakefile imports it at parse time and every
cluster job re-parses the Snakefile.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from ftbench.core.errors import FtbenchError

# In a checkout (editable install) the workflow's own files; installed (`pip install .`) the copies
# shipped as package data, and paths relative to the working directory.
_CHECKOUT = Path(__file__).resolve().parents[3]
_RESOURCES = Path(__file__).resolve().parents[1] / "resources"
IN_CHECKOUT = (_CHECKOUT / "Snakefile").is_file() and (_CHECKOUT / "workflow" / "schemas").is_dir()
ROOT = _CHECKOUT if IN_CHECKOUT else Path.cwd()
SCHEMA = _CHECKOUT / "workflow" / "schemas" / "config.schema.yaml" if IN_CHECKOUT else _RESOURCES / "config.schema.yaml"
DEFAULT_CONFIG = _CHECKOUT / "config" / "config.yaml" if IN_CHECKOUT else _RESOURCES / "config.yaml"
AXES = ("strategies", "foundation_models", "benchmarks", "train_sizes", "seeds", "e0")
# Validation and test configurations a benchmark without `split:` (or without one of its keys)
# holds out: the pool size (train_sizes: auto) and `ftbench prepare` both read them here.
SPLIT_DEFAULTS = {"valid": 20, "test": 30}
SINGULAR = {"strategies": "strategy", "foundation_models": "foundation model", "benchmarks": "benchmark"}


def shown(path: Path) -> str:
    """Return `path` relative to the checkout (or working directory) where it lies below it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def deep_update(base: dict, new: dict) -> dict:
    """Merge `new` into `base` recursively, in place (nested dicts merge, other values replace); return `base`."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def read_yaml(path: str | Path) -> dict:
    """Read a config file as a dict.

    A YAML error names the file, line and column (Snakemake's own message names neither).
    """
    path = Path(path)
    if not path.is_file():
        raise FtbenchError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(err, "problem", None) or str(err)
        raise FtbenchError(f"config file {path}{where} is not valid YAML: {what}") from None
    if data is not None and not isinstance(data, dict):
        raise FtbenchError(f"config file {path} must be a mapping of keys (got {type(data).__name__})")
    return data or {}


def load_config(configfiles: list[str | Path] | None = None, overrides: dict | None = None) -> dict:
    """Merge config files as Snakemake does, then validate.

    The Snakefile's config/config.yaml first, then each --configfile on top (later files update
    earlier ones), then --config overrides.
    """
    cfg: dict = {}
    for path in [DEFAULT_CONFIG, *(configfiles or [])]:
        deep_update(cfg, read_yaml(path))
    deep_update(cfg, overrides or {})
    return validate(cfg)


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def schema_defaults(key: str) -> dict:
    """Return the schema's defaults of the top-level block `key` (the one place they are written)."""
    return {k: v["default"] for k, v in _schema()["properties"][key]["properties"].items() if "default" in v}


def _deref(node, root: dict):
    """Return the schema node a `$ref: "#/definitions/x"` points at (one level is all the schema uses)."""
    if isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return target
    return node


def _known_keys(node: dict) -> set[str] | None:
    """Return the keys an object node allows, or None when it is open.

    Open: no `properties`, or an `additionalProperties` schema. Keys a conditional (`then`/`else`)
    requires count as known.
    """
    if not isinstance(node, dict) or "properties" not in node:
        return None
    if node.get("additionalProperties", False) is not False:
        return None
    keys = set(node["properties"])
    for branch in ("then", "else"):
        sub = node.get(branch) or {}
        keys |= set(sub.get("properties", {})) | set(sub.get("required", []))
    return keys


def nearest(key: str, known) -> list[str]:
    """Return the closest known key, also matching the first word (`treshold` -> `threshold_ev_per_atom`)."""
    near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    if not near:
        heads = {k.split("_")[0]: k for k in sorted(known)}
        near = [heads[h] for h in difflib.get_close_matches(key.split("_")[0], list(heads), n=1, cutoff=0.75)]
    return near


def check_unknown_keys(cfg, node, root: dict, where: str = "") -> None:
    """Refuse keys the schema does not know, naming the nearest known key.

    A typo such as `strategy:` or `max_num_epoch:` must not be silently ignored.
    """
    node = _deref(node, root)
    if not isinstance(cfg, dict) or not isinstance(node, dict):
        return
    known = _known_keys(node)
    if known is not None:
        for key in cfg:
            if key not in known:
                name = f"{where}.{key}" if where else str(key)
                near = nearest(str(key), known)
                hint = (
                    f"did you mean `{f'{where}.' if where else ''}{near[0]}`?"
                    if near
                    else f"known keys{f' under `{where}`' if where else ''}: {', '.join(sorted(known))}"
                )
                raise FtbenchError(f"unknown config key `{name}`; {hint} (schema: {shown(SCHEMA)})")
    props = node.get("properties", {})
    extra = node.get("additionalProperties")
    for key, value in cfg.items():
        sub = props.get(key, extra if isinstance(extra, dict) else None)
        if sub is not None:
            check_unknown_keys(value, sub, root, f"{where}.{key}" if where else str(key))


_BOOLS = {"true": True, "True": True, "false": False, "False": False}


def _types(node: dict) -> set[str]:
    t = node.get("type", [])
    return set([t] if isinstance(t, str) else t)


def _scalar(value: str, node: dict, root: dict):
    """Return a command-line string as the number/boolean the schema node asks for, or unchanged."""
    node = _deref(node, root)
    branches = [node] + [_deref(b, root) for b in node.get("oneOf", []) + node.get("anyOf", [])]
    types = set().union(*(_types(b) for b in branches))
    if "string" in types or not types:
        return value
    if "integer" in types:
        try:
            return int(value)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            pass
    if "boolean" in types and value in _BOOLS:
        return _BOOLS[value]
    if "null" in types and value in ("null", "~", "None"):
        return None
    return value


def coerce_strings(cfg, node, root: dict):
    """Turn `--config` strings into the numbers and booleans the schema asks for, in place.

    Snakemake passes `--config seeds=[1]` values as strings (YAML BaseLoader); this runs before validation.
    """
    node = _deref(node, root)
    if not isinstance(node, dict):
        return cfg
    if isinstance(cfg, str):
        return _scalar(cfg, node, root)
    branches = [node] + [_deref(b, root) for b in node.get("oneOf", []) + node.get("anyOf", [])]
    if isinstance(cfg, list):
        for b in branches:
            if "items" in b:
                cfg[:] = [coerce_strings(v, b["items"], root) for v in cfg]
                break
        return cfg
    if isinstance(cfg, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key, value in cfg.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                cfg[key] = coerce_strings(value, sub, root)
    return cfg


def add_config_arguments(p, what: str = "") -> None:
    """--configfile / --config, read as `snakemake` reads them (load_config)."""
    p.add_argument(
        "--configfile",
        nargs="+",
        default=None,
        help="config file(s) merged on top of config/config.yaml, as snakemake --configfile" + what,
    )
    p.add_argument(
        "--config",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides, as snakemake --config, e.g. benchmarks=[sn2] strategies=[naive,replay]",
    )


def parse_overrides(items: list[str]) -> dict:
    """Snakemake-style `key=value` overrides; values are YAML (`benchmarks=[sn2]`)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise FtbenchError(f"--config expects key=value, got {item!r} (e.g. --config benchmarks=[sn2])")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at character {mark.column + 1}" if mark is not None else ""
            raise FtbenchError(
                f"--config {item!r}: the value of {key!r} is not valid YAML{where} ({getattr(err, 'problem', err)}); "
                "write lists as [a,b] and quote the whole KEY=VALUE for the shell"
            ) from None
    return out


def config_from_args(args) -> dict:
    """Return the validated config of `--configfile` and `--config` in `args`."""
    return load_config(args.configfile, parse_overrides(args.config))


def report_dir(args) -> Path:
    """Return the config's report_dir (results, or results/ablations/<name> for an ablation)."""
    return Path(config_from_args(args)["report_dir"])


def validate(cfg: dict) -> dict:
    """Validate `cfg` against the schema (filling defaults) and cross-check the axes against the catalog."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as schema_validate

    schema = _schema()
    coerce_strings(cfg, schema, schema)
    check_unknown_keys(cfg, schema, schema)
    try:
        schema_validate(cfg, str(SCHEMA))
    except WorkflowError as err:
        raise FtbenchError(f"config does not match {shown(SCHEMA)}: {err}") from err
    catalog = cfg["catalog"]
    for axis in ("strategies", "foundation_models", "benchmarks"):
        known = catalog[axis]
        unknown = [name for name in cfg[axis] if name not in known]
        if unknown:
            raise FtbenchError(
                f"unknown {SINGULAR[axis]} {', '.join(map(repr, unknown))} in config key "
                f"`{axis}`; defined in `catalog.{axis}`: {', '.join(sorted(known))}. "
                f"Fix the name or add an entry under `catalog.{axis}`."
            )
    for bench, axes in (cfg.get("benchmark_grid") or {}).items():
        if bench not in catalog["benchmarks"]:
            raise FtbenchError(
                f"`benchmark_grid.{bench}`: no benchmark {bench!r} in `catalog.benchmarks` "
                f"({', '.join(sorted(catalog['benchmarks']))}); fix the name or remove the entry"
            )
        unknown = [m for m in axes.get("foundation_models", []) if m not in catalog["foundation_models"]]
        if unknown:
            raise FtbenchError(
                f"`benchmark_grid.{bench}.foundation_models`: unknown foundation model(s) {unknown}; defined in "
                f"`catalog.foundation_models`: {', '.join(sorted(catalog['foundation_models']))}"
            )
    from ftbench.report.figure_names import figure_names  # pure python: the probe registry and a list

    unknown = [name for name in cfg["figures"] if name not in figure_names()]
    if unknown:
        raise FtbenchError(
            f"unknown figure(s) {', '.join(map(repr, unknown))} in config key `figures`; known: "
            f"{', '.join(figure_names())} (ftbench.report.figure_names, and each probe's `figures` in "
            "ftbench.probes.registry)"
        )
    scope = cfg["robustness"].get("benchmarks", "all")
    if scope != "all":
        unknown = [b for b in scope if b not in catalog["benchmarks"]]
        if unknown:
            raise FtbenchError(
                f"`robustness.benchmarks`: unknown benchmark(s) {unknown}; use `all` or names from "
                f"`catalog.benchmarks`: {', '.join(sorted(catalog['benchmarks']))}"
            )
    for name in cfg["strategies"]:
        check_strategy(cfg, name)
    from ftbench.core.strategies import baseline_strategies

    baselines = baseline_strategies(cfg)
    if len(baselines) > 1:
        raise FtbenchError(
            f"`strategies`: {', '.join(baselines)} all have `baseline: true` in `catalog.strategies`; cost ratios "
            "and finding 2 compare against one reference: keep `baseline: true` on one of them"
        )
    for bench in cfg["benchmarks"]:
        check_robustness(robustness_settings(cfg, bench), bench)
    check_eval_cadence(cfg)
    weight = cfg["replay"].get("weight_pt_head", 1.0)
    if weight != 1.0:
        raise FtbenchError(
            f"replay.weight_pt_head is {weight}, but no replay weight other than 1.0 can act in mace-torch "
            "0.3.16: it ignores --weight_pt_head for a local --pt_train_file, and multihead fine-tuning "
            "forces the universal loss, which ignores per-configuration config_weight (where mace's own "
            "weight_pt_head path puts it). Set replay.weight_pt_head: 1.0; to weight the replay head's "
            "energies, put config_energy_weight in the pool file (as the study's SN2 pool does)."
        )
    from ftbench.core.grid import models_used  # grid imports this module

    for name in models_used(cfg):  # a model no benchmark of the grid runs needs no source
        entry = catalog["foundation_models"][name]
        if entry["source"] != "url":
            continue
        wanted = entry["fetch"]["source"]
        if wanted not in known_sources(cfg):
            raise FtbenchError(
                f"foundation model {name!r} is fetched from source {wanted!r}, which neither the config's "
                f"`sources:` nor `sources_file` ({cfg.get('sources_file')}) defines; add it there "
                "(config/paper.yaml has the study's, data/demo/sources.yaml the shipped demo world's)"
            )
    return cfg


# mace flags that are counts or rates: a value outside the range fails in mace, after the queue.
FLAG_RANGES = {  # key: (lowest allowed, highest allowed); None: unbounded
    "batch_size": (1, None),
    "valid_batch_size": (1, None),
    "max_num_epochs": (1, None),
    "patience": (1, None),
    "eval_interval": (1, None),
    "lora_rank": (1, None),
    "num_samples_pt": (1, None),
    "lr": (1e-300, None),
    "clip_grad": (1e-300, None),
    "ema_decay": (0.0, 1.0),
}
# mace's --freeze is a threshold on module groups: >= 1 embedding, >= 5 interactions, >= 6 products,
# >= 7 readouts; at 7 and above nothing a fine-tune learns from is left.
FREEZE_MAX = 6


def check_eval_cadence(cfg: dict) -> None:
    """Refuse an `eval_interval` mace flag where `training.evals` sets the interval (it would be overridden)."""
    from ftbench.core.strategies import step_budget

    layers = [("training.mace_flags", cfg["training"]["mace_flags"])]
    layers += [(f"catalog.strategies.{s}.mace_flags", strategy(cfg, s)["mace_flags"]) for s in cfg["strategies"]]
    for bench in cfg["benchmarks"]:
        flags = (cfg["catalog"]["benchmarks"][bench].get("training") or {}).get("mace_flags") or {}
        layers.append((f"catalog.benchmarks.{bench}.training.mace_flags", flags))
    where = [name for name, flags in layers if "eval_interval" in flags]
    evals = [
        (s, b) for s in cfg["strategies"] for b in cfg["benchmarks"] if (step_budget(cfg, s, b) or {}).get("evals")
    ]
    if where and evals:
        raise FtbenchError(
            f"`eval_interval` in {', '.join(where)} and `training.evals` both set how often mace validates "
            f"(e.g. {evals[0][0]} on {evals[0][1]}); keep one: `training.evals: null` for a fixed interval"
        )


def check_strategy(cfg: dict, name: str) -> None:
    """Refuse a strategy whose settings contradict each other or cannot act (before any job).

    Checks the preset merged with the shared `training.mace_flags` and every benchmark's
    `training.mace_flags` override.
    """
    preset = strategy(cfg, name)
    where = f"`catalog.strategies.{name}`"
    foundation = preset.get("foundation", True)
    replay = preset.get("replay")
    layers = [
        ("training.mace_flags", cfg["training"].get("mace_flags", {})),
        (f"{where}.mace_flags", preset["mace_flags"]),
    ]
    for bench in cfg["benchmarks"]:
        override = cfg["catalog"]["benchmarks"][bench].get("training", {}).get("mace_flags", {})
        if override:
            layers.append((f"`catalog.benchmarks.{bench}.training.mace_flags`", override))
    flags, origin = {}, {}
    for source, layer in layers:
        for key, value in layer.items():
            flags[key], origin[key] = value, source
    if replay and not foundation:
        raise FtbenchError(
            f"{where} has `foundation: false` and `replay: {replay}`: replay needs a foundation model's pretraining "
            "data; remove `replay` (scratch) or `foundation: false` (a replay fine-tune)"
        )
    multihead = flags.get("multiheads_finetuning")
    if foundation and preset.get("train", True):
        if replay and multihead is not True:
            raise FtbenchError(
                f"{where} has `replay: {replay}` but multiheads_finetuning is {multihead} ({origin.get('multiheads_finetuning', 'unset')}): "
                "mace would train without the replay data while the run is recorded as replay; set "
                "`multiheads_finetuning: true` and `force_mh_ft_lr: true` in its mace_flags"
            )
        if not replay and multihead is not False:
            raise FtbenchError(
                f"{where} has no `replay:` but multiheads_finetuning is {multihead}: mace would download its own "
                "replay data at run time (or default to multihead mode); set `multiheads_finetuning: false` for a "
                "single-head fine-tune, or `replay: original|pseudo` for a replay one"
            )
    freeze = flags.get("freeze")
    if freeze is not None and not (isinstance(freeze, int) and 0 <= freeze <= FREEZE_MAX):
        raise FtbenchError(
            f"{where}: freeze {freeze!r} ({origin['freeze']}) is not a mace module-group threshold a fine-tune can use: "
            "1 freezes the embedding, 5 also the interactions (products and readouts train), 6 also the products "
            f"(only readouts train); {FREEZE_MAX + 1} and above freeze the readouts too and nothing is left to learn. "
            "Use 0, 5 or 6"
        )
    for key, (lo, hi) in FLAG_RANGES.items():
        if flags.get(key) is None:
            continue
        try:
            value = float(flags[key])
        except (TypeError, ValueError):
            value = float("nan")
        if not (lo <= value and (hi is None or value <= hi)):
            bound = f"between {lo:g} and {hi:g}" if hi is not None else ("at least 1" if lo == 1 else "positive")
            raise FtbenchError(
                f"{where}: {key} = {flags[key]!r} ({origin[key]}) must be a number {bound}; fix it in the config"
            )


def repo_path(path: str | Path) -> Path:
    """Resolve a config file path: relative to the working directory, else to the repository (shipped files)."""
    path = Path(path)
    return path if path.is_absolute() or path.exists() or not (ROOT / path).exists() else ROOT / path


def sources_path(cfg: dict) -> Path:
    """Return the config's `sources_file` (see repo_path)."""
    return repo_path(cfg.get("sources_file") or "config/paper.yaml")


def known_sources(cfg: dict) -> set[str]:
    """Names of the download sources the config can fetch from: its `sources:` and `sources_file`'s."""
    names = set(cfg.get("sources") or {})
    path = sources_path(cfg)
    if path.is_file():
        names |= set((read_yaml(path) or {}).get("sources") or {})
    return names


def robustness_settings(cfg: dict, benchmark: str) -> dict:
    """Return the top-level `robustness` settings with the benchmark's own overrides on top."""
    import copy

    override = cfg["catalog"]["benchmarks"][benchmark].get("robustness", {})
    return deep_update(copy.deepcopy(cfg["robustness"]), copy.deepcopy(override))


# Keys of a demo generation's `pretrain` block that shape its stages, data split or seed, not mace flags.
PRETRAIN_STAGE_KEYS = frozenset({"valid_fraction", "epochs_per_stage", "stages", "seed"})


def pretrain_flags(training_flags: dict, generation: dict) -> dict:
    """Return the mace flags of a demo generation's pretraining (config/demo_build.yaml).

    The run's training flags, then the generation's architecture, then its `pretrain` flags.
    """
    flags = {**training_flags, **generation["architecture"]}
    flags.update({k: v for k, v in generation["pretrain"].items() if k not in PRETRAIN_STAGE_KEYS})
    return flags


def check_robustness(settings: dict, benchmark: str) -> None:
    """Langevin coupling time (1/friction) shorter than the ramp and than the production."""
    md = settings["md"]
    coupling = 1.0 / md["friction"]
    for what, steps in (("md.steps", md["steps"]), ("production.steps", settings["production"]["steps"])):
        length = steps * md["timestep_fs"]
        if coupling >= length:
            raise FtbenchError(
                f"robustness (benchmark {benchmark!r}): the Langevin coupling time 1/md.friction = {coupling:g} fs "
                f"is not shorter than {what} x md.timestep_fs = {length:g} fs; raise `robustness.{what}` or "
                "`robustness.md.friction`"
            )


def split_sizes(bench: dict) -> dict[str, int]:
    """Return the validation and test configurations a benchmark's catalog entry holds out."""
    return {**SPLIT_DEFAULTS, **bench.get("split", {})}


def strategy(cfg: dict, name: str) -> dict:
    """Return the catalog entry of strategy `name`."""
    return cfg["catalog"]["strategies"][name]
