"""Fine-tuning strategies are config presets; this turns a preset into mace_run_train flags."""

from __future__ import annotations

import functools
import math

from ftbench.core.config import strategy
from ftbench.core.errors import FtbenchError

# Keys that only ftbench reads; everything in `mace_flags` goes to mace_run_train verbatim.
LABEL_KEYS = {"energy_key": "REF_energy", "forces_key": "REF_forces", "stress_key": "REF_stress"}


ROLES = ("foundation", "replay", "frozen", "lora")


def roles(cfg: dict, strategy_name: str) -> dict:
    """Return what a strategy does, read from its catalog entry.

    Starts from a foundation model, replays pretraining data (original or pseudo labels), freezes
    module groups (mace --freeze threshold), trains LoRA adapters, trains at all (`train: false`:
    the foundation model with the run's E0s, the zero-shot point of the learning curve). Findings,
    table order, styles and the schematic read these, not names.
    """
    preset = strategy(cfg, strategy_name)
    flags = preset["mace_flags"]
    return {
        "foundation": bool(preset.get("foundation", True)),
        "replay": preset.get("replay"),
        "frozen": int(flags.get("freeze") or 0),
        "lora": bool(flags.get("lora", False)),
        "trained": bool(preset.get("train", True)),
    }


def baseline_strategies(cfg: dict) -> list[str]:
    """Return the run's strategies marked `baseline: true` in the catalog (config.validate refuses more than one)."""
    return [s for s in cfg["strategies"] if strategy(cfg, s).get("baseline")]


def baseline_strategy(cfg: dict) -> str | None:
    """Return the run's reference strategy (`baseline: true`), None without one."""
    return next(iter(baseline_strategies(cfg)), None)


@functools.cache
def default_catalog_roles() -> dict[str, dict]:
    """Roles of the default config's catalog strategies, read from config/config.yaml itself.

    For results of an older ftbench whose runs.csv carries no role columns: their order, styles
    and roles then follow the shipped catalog, not a second hand-written copy of it.
    """
    from ftbench.core.config import DEFAULT_CONFIG, read_yaml

    cfg = read_yaml(DEFAULT_CONFIG)
    return {name: roles(cfg, name) for name in cfg["catalog"]["strategies"]}


UNTOUCHED_ROLES = {"foundation": True, "replay": None, "frozen": 0, "lora": False, "trained": False}


def mace_flags(
    cfg: dict, strategy_name: str, model_name: str | None, benchmark: str | None = None, size: int | None = None
) -> dict:
    """Return the mace flags of a run: shared flags < strategy preset < the benchmark's `training` overrides.

    Architecture flags are added for runs without a foundation model. No --weight_pt_head: mace
    0.3.16 ignores it for a local --pt_train_file (config.validate refuses values other than 1.0).
    """
    preset = strategy(cfg, strategy_name)
    training = cfg["training"]
    override = cfg["catalog"]["benchmarks"][benchmark].get("training", {}) if benchmark else {}
    flags = dict(LABEL_KEYS)
    flags.update(training["mace_flags"])
    epochs = override.get("max_num_epochs", preset.get("max_num_epochs", training.get("max_num_epochs")))
    if epochs:  # else `ftbench finetune --budget` derives epochs and patience from the step budget
        flags["max_num_epochs"] = epochs
        patience = override.get("patience", training.get("patience"))
        if patience:
            flags["patience"] = patience
    flags.update(preset["mace_flags"])
    if preset.get("foundation", True):
        head = foundation_head(cfg, model_name)
        if head:
            flags["foundation_head"] = head
    else:
        flags.update(preset.get("architecture", {}))
    flags.update(override.get("mace_flags", {}))
    if size and int(flags.get("batch_size", 0)) > size:
        # mace drops the last incomplete batch: a batch larger than the training set never trains
        flags["batch_size"] = size
    return flags


def step_budget(cfg: dict, strategy_name: str, benchmark: str | None = None) -> dict | None:
    """Return the optimiser-step budget of a run ({steps, patience_fraction}), or None.

    None when the config fixes `max_num_epochs` (globally, for the strategy or the benchmark),
    which then wins.
    """
    training = cfg["training"]
    override = cfg["catalog"]["benchmarks"][benchmark].get("training", {}) if benchmark else {}
    if any("max_num_epochs" in d for d in (override, strategy(cfg, strategy_name), training)):
        return None
    budget = {
        "steps": override.get("steps", training["steps"]),
        "patience_fraction": override.get("patience_fraction", training.get("patience_fraction", 1.0)),
    }
    evals = override.get("evals", training.get("evals"))
    if evals:
        budget["evals"] = evals
    return budget


def epochs_for_budget(
    budget: dict,
    n_train: int,
    batch_size: int,
    n_replay: int = 0,
    replay_valid_fraction: float = 0.1,
    ratio_threshold: float = 0.1,
) -> dict:
    """Epochs that give `budget["steps"]` optimiser steps (at least), as mace batches the data.

    mace drops the last incomplete batch, trains a multihead run on the fine-tuning and replay
    configurations together (less the replay validation split, `valid_fraction` of the pool),
    and repeats the fine-tuning set when it is below `real_pt_data_ratio_threshold` x the replay
    set. Patience is `patience_fraction` of the epochs (at least 1).

    With `budget["evals"]`, mace validates every `eval_interval` = epochs // evals epochs instead
    of every epoch (a small training set spends most of an epoch validating), the last epoch among
    them: the model mace keeps is the best evaluated one, so epochs after the last evaluation would
    be wasted, and the epochs round up to it (at most `eval_interval - 1` more, under 1/evals of
    the budget: `planned_steps` records the steps). With fewer epochs than `evals`, every epoch.
    mace counts patience in evaluations.
    """
    replay_train = n_replay - int(replay_valid_fraction * n_replay) if n_replay else 0
    ft = n_train
    if replay_train and n_train / replay_train < ratio_threshold:
        ft += n_train * int(ratio_threshold / (n_train / replay_train))
    per_epoch = max(1, (ft + replay_train) // batch_size)
    epochs = max(1, math.ceil(budget["steps"] / per_epoch))
    out = {"steps": budget["steps"], "train_configs": ft + replay_train, "steps_per_epoch": per_epoch}
    if not budget.get("evals"):
        return {**out, "max_num_epochs": epochs, "patience": max(1, math.ceil(budget["patience_fraction"] * epochs))}
    interval = max(1, epochs // budget["evals"])
    epochs = interval * math.ceil((epochs - 1) / interval) + 1  # epoch e is evaluated when e % interval == 0
    evaluations = (epochs - 1) // interval + 1
    return {
        **out,
        "max_num_epochs": epochs,
        "planned_steps": epochs * per_epoch,
        "eval_interval": interval,
        "evaluations": evaluations,
        "patience": max(1, math.ceil(budget["patience_fraction"] * evaluations)),
    }


def foundation_head(cfg: dict, model_name: str | None) -> str | None:
    """Return the head a multihead foundation model is adapted (and evaluated) with, or None."""
    if model_name is None:
        return None
    return cfg["catalog"]["foundation_models"][model_name].get("head")


def pretrain_flags(cfg: dict, model_name: str) -> dict:
    """Return the flags that pretrain a demo foundation model: shared flags < architecture < pretrain."""
    entry = cfg["catalog"]["foundation_models"][model_name]
    flags = dict(LABEL_KEYS)
    flags.update(cfg["training"]["mace_flags"])
    flags.update(entry["architecture"])
    flags.update({k: v for k, v in entry["pretrain"].items() if k != "seed"})
    return flags


def to_argv(flags: dict) -> list[str]:
    """mace_run_train argv; unknown options are refused here rather than deep inside mace."""
    import argparse

    from mace import tools

    # by dest and by every option string: mace spells some options twice (--swa / --stage_two)
    actions = {}
    for a in tools.build_default_arg_parser()._actions:
        actions.update({a.dest: a, **{o.lstrip("-"): a for o in a.option_strings}})
    argv = []
    for key, value in flags.items():
        action = actions.get(key)
        if action is None:
            raise FtbenchError(
                f"mace_run_train has no option --{key} (from `mace_flags` in the config); "
                "fix the name, see `mace_run_train --help`"
            )
        if value is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                argv.append(f"--{key}")
            continue
        if isinstance(value, bool):
            value = "True" if value else "False"
        argv.append(f"--{key}={value}")
    return argv
