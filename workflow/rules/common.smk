# Config loading, validation and the small helpers the rules use. Cheap on purpose: every
# cluster job re-parses this (no torch, no file globbing).
import json
import os
import shlex
import sys

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
# Jobs (local, cluster, conda) run the package from this checkout.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)

from ftbench import config as ftc
from ftbench.errors import FtbenchError
from ftbench.strategies import mace_flags


configfile: "config/config.yaml"


try:
    ftc.validate(config)
    RUNS = ftc.expand_grid(config)
except FtbenchError as err:
    raise WorkflowError(f"ftbench config: {err}")

UNTOUCHED = ftc.untouched_runs(config)
CATALOG = config["catalog"]
FTBENCH = "python -m ftbench"
THREADS = config["threads_per_job"]


wildcard_constraints:
    benchmark=r"[A-Za-z0-9_]+",
    model=r"[A-Za-z0-9_]+",
    strategy=r"[A-Za-z0-9_]+",
    e0=r"[a-z]+",
    size=r"\d+",
    seed=r"\d+",


RUN_DIR = "results/runs/{benchmark}/{model}/{strategy}/{e0}/n{size}/seed{seed}"


def run_files(runs, name):
    return [f"results/runs/{r.path}/{name}" for r in runs]


def foundation_model(model):
    entry = CATALOG["foundation_models"][model]
    if entry["source"] == "pretrain":
        return f"results/pretrain/{model}/run/model.model"
    return f"{config['data_dir']}/models/{model}.model"


def benchmark_files(benchmark):
    entry = CATALOG["benchmarks"][benchmark]
    if entry["source"] == "demo":
        return {"data": f"data/demo/benchmarks/{benchmark}.xyz"}
    return {k: f"{config['data_dir']}/benchmarks/{benchmark}/{k}.xyz"
            for k in ("data", "valid_data", "test_data") if entry.get(k)}


def replay_pool(model):
    entry = CATALOG["foundation_models"][model]
    if entry["source"] == "pretrain":
        return f"results/pretrain/{model}/data/train_pool.xyz"
    return f"{config['data_dir']}/replay/{entry['replay_pool']}.xyz"


def quoted_json(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))
