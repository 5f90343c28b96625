# Config loading, validation and the small helpers the rules use. Cheap on purpose: every
# cluster job re-parses this (no torch, no file globbing).
import copy
import json
import os
import shlex
import sys

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)

from snakemake.settings.types import DeploymentMethod

from ftbench import config as ftc
from ftbench import forkserver
from ftbench import jobenv
from ftbench.errors import FtbenchError
from ftbench.strategies import mace_flags, pretrain_flags


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


try:
    ftc.validate(config)
    RUNS = ftc.expand_grid(config)
except FtbenchError as err:
    raise WorkflowError(f"ftbench config: {err}")

UNTOUCHED = ftc.untouched_runs(config)
for _bench, _dropped in ftc.dropped_sizes(config).items():
    print(
        f"ftbench: {_bench}: sizes {_dropped} dropped, the benchmark holds less data",
        file=sys.stderr,
    )
CATALOG = config["catalog"]
jobenv.prepare(
    SRC, DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
)
THREADS = config["threads_per_job"]


wildcard_constraints:
    benchmark=r"[A-Za-z0-9_]+",
    model=r"[A-Za-z0-9_]+",
    strategy=r"[A-Za-z0-9_]+",
    e0=r"[a-z]+",
    size=r"\d+",
    seed=r"\d+",


RUN_DIR = "results/runs/{benchmark}/{model}/{strategy}/{e0}/n{size}/seed{seed}"


def runtime(rule):
    """Cluster minutes; a retry after a time-limit kill gets `attempt` times as long."""
    minutes = config["runtime_minutes"].get(rule, config["runtime_minutes"]["default"])
    return lambda wildcards, attempt: minutes * attempt


def run_files(runs, name):
    return [f"results/runs/{r.path}/{name}" for r in runs]


def run_results(runs):
    """What finished runs leave behind: test errors and robustness results."""
    return {
        "errors": run_files(runs, "errors.json"),
        "robustness": run_files(runs, "robustness/robustness.json"),
    }


DATA = config["data_dir"]


def foundation_model(model):
    entry = CATALOG["foundation_models"][model]
    if entry["source"] == "pretrain":
        return f"results/pretrain/{model}/run/model.model"
    return f"{DATA}/models/{model}.model"


def benchmark_files(benchmark):
    entry = CATALOG["benchmarks"][benchmark]
    if entry["source"] == "demo":
        return {"data": f"data/demo/benchmarks/{benchmark}.xyz"}
    return {
        part: f"{DATA}/benchmarks/{benchmark}/{part}.xyz" for part in entry["files"]
    }


def replay_spec(model, benchmark):
    """The benchmark's own replay pool (the study's element-filtered SN2 pool) wins."""
    return CATALOG["benchmarks"][benchmark].get("replay_pool") or CATALOG[
        "foundation_models"
    ][model].get("replay_pool")


def replay_pool(model, benchmark):
    spec = replay_spec(model, benchmark)
    if spec is None:  # demo models replay their own pretraining corpus
        return f"results/pretrain/{model}/data/train_pool.xyz"
    return f"{DATA}/replay/{spec['source']}/{spec['file']}.xyz"


def quoted_json(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def demo_args(gen):
    args = [
        f"--{k}={','.join(v) if isinstance(v, list) else v}" for k, v in gen.items()
    ]
    return " ".join(shlex.quote(a) for a in args)


def prepare_args(benchmark, input):
    entry = CATALOG["benchmarks"][benchmark]
    split = entry.get("split", {})
    args = [f"--data {input.data}"]
    for key in ("valid_data", "test_data"):
        if key in input.keys():
            args.append(f"--{key.replace('_', '-')} {input[key]}")
    args += [f"--n-valid {split.get('valid', 20)}", f"--n-test {split.get('test', 30)}"]
    return " ".join(args)


def e0_inputs(w):
    inputs = {
        "train": f"results/data/{w.benchmark}/train_n{w.size}.xyz",
        "isolated": f"results/data/{w.benchmark}/isolated.xyz",
    }
    if w.model != ftc.NO_MODEL:
        inputs["model"] = foundation_model(w.model)
    return inputs


def finetune_inputs(w):
    preset = CATALOG["strategies"][w.strategy]
    e0 = f"results/e0/{w.benchmark}/{w.model}/{w.e0}/n{w.size}"
    inputs = {
        "train": f"results/data/{w.benchmark}/train_n{w.size}.xyz",
        "valid": f"results/data/{w.benchmark}/valid.xyz",
        "e0": f"{e0}.json",
        "e0_info": f"{e0}.provenance.json",
    }
    if w.model != ftc.NO_MODEL:
        inputs["foundation"] = foundation_model(w.model)
    if preset.get("replay"):
        name = "replay_pseudo" if preset["replay"] == "pseudo" else "replay"
        inputs["pt_train"] = f"results/replay/{w.benchmark}/{w.model}/{name}.xyz"
    return inputs


def label_keys(entry):
    return " ".join(
        f"--{key.replace('_', '-')} {entry[key]}"
        for key in ("energy_key", "forces_key", "stress_key")
        if entry.get(key)
    )


def pool_spec(source, file):
    specs = [e.get("replay_pool") for e in CATALOG["benchmarks"].values()]
    specs += [e.get("replay_pool") for e in CATALOG["foundation_models"].values()]
    for spec in specs:
        if spec and spec["source"] == source and spec["file"] == file:
            return spec
    raise WorkflowError(f"no replay_pool in the catalog names {source}/{file}")


def evaluate_inputs(w):
    inputs = {
        "run": os.path.join(RUN_DIR.format(**w), "run.json"),
        "test": f"results/data/{w.benchmark}/test.xyz",
    }
    # Scratch has no pretraining distribution of its own: it is scored on every model's slice.
    models = config["foundation_models"] if w.model == ftc.NO_MODEL else [w.model]
    for m in models:
        inputs[f"pt_eval__{m}"] = f"results/replay/{w.benchmark}/{m}/pt_eval.xyz"
    return inputs


def robustness_settings(benchmark):
    settings = copy.deepcopy(config["robustness"])
    override = CATALOG["benchmarks"][benchmark].get("robustness", {})
    return ftc.deep_update(settings, copy.deepcopy(override))


def untouched_head(w):
    """An untouched multihead foundation (MACE-MH-1) is probed with the head the config adapts."""
    if w.strategy != ftc.UNTOUCHED:
        return ""
    head = CATALOG["foundation_models"][w.model].get("head")
    return f"--head {head}" if head else ""
