# Config loading, validation and the small helpers the rules use. Cheap on purpose: every
# cluster job re-parses this (no torch, no file globbing).
import json
import os
import shlex
import sys

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)

from snakemake.settings.types import DeploymentMethod

from ftbench.core import config as ftc
from ftbench.core import grid as ftg
from ftbench.core import preflight as ftpre
from ftbench.runtime import forkserver
from ftbench.runtime import jobenv
from ftbench.core.errors import FtbenchError
from ftbench.report.figure_names import figure_names
from ftbench.core.strategies import (
    baseline_strategy,
    foundation_head,
    mace_flags,
    pretrain_flags,
    roles,
    step_budget,
)

# Snakemake reports a YAML error without file or line: read the files first for a message that
# has both (a broken --configfile fails inside Snakemake before this runs: `ftbench grid
# --configfile FILE` locates it).
try:
    for _path in [os.path.join(workflow.basedir, "config", "config.yaml")] + list(
        workflow.overwrite_configfiles
    ):
        ftc.read_yaml(_path)
except FtbenchError as err:
    raise WorkflowError(f"ftbench config: {err}")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


try:
    ftc.validate(config)
    RUNS = ftg.expand_grid(config)
except FtbenchError as err:
    raise WorkflowError(f"ftbench config: {err}")

UNTOUCHED = ftg.untouched_runs(config)
# Every problem findable without a job (data keys, geometry, E0 prerequisites, sizes, replay pools),
# before the first job; data facts are cached by file size and mtime, so a re-parse is cheap.
_preflight = ftpre.preflight(config)
if not os.environ.get("FTBENCH_QUIET_PREFLIGHT"):
    print(_preflight.text(), file=sys.stderr)
try:
    _preflight.raise_errors()
except FtbenchError as err:
    raise WorkflowError(f"ftbench config: {err}")
for _bench, _dropped in ftg.dropped_sizes(config).items():
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


RUNS_ROOT = "results/runs"
RUN_DIR = f"{RUNS_ROOT}/{ftg.RUN_PATTERN}"
# an untouched foundation model's run: benchmark and model stay wildcards
UNTOUCHED_DIR = os.path.join(
    RUNS_ROOT,
    ftg.RUN_PATTERN.format(
        benchmark="{benchmark}",
        model="{model}",
        strategy=ftg.UNTOUCHED,
        e0=ftg.UNTOUCHED_E0,
        size=0,
        seed=0,
    ),
)


def runtime(rule):
    """Cluster minutes; a retry after a time-limit kill gets `attempt` times as long."""
    minutes = config["runtime_minutes"].get(rule, config["runtime_minutes"]["default"])
    return lambda wildcards, attempt: minutes * attempt


def report_dir():
    """Where tables/ and figures/ go. A slice of the grid on the command line (`--config
    benchmarks=[sn2]`) gets its own folder unless it names report_dir: the main tables keep
    covering the whole config, and a slice never mixes into them."""
    given = dict(workflow.config_settings.config or {})
    sliced = [axis for axis in ftc.AXES if axis in given]
    if not sliced or "report_dir" in given:
        return config["report_dir"]
    parts = []
    for axis in sliced:
        value = config[axis]
        value = "-".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{axis}-{value}")
    folder = os.path.join(config["report_dir"], "slices", "_".join(parts))
    print(
        f"ftbench: a slice of the grid: tables and figures go to {folder}/ "
        "(add report_dir=... to choose the folder)",
        file=sys.stderr,
    )
    return folder


def tables_grid_args():
    """The grid the tables are expected to cover (they say which of its cells are missing)."""
    scratch = [s for s in config["strategies"] if not roles(config, s)["foundation"]]
    return " ".join(
        [
            "--benchmarks",
            *config["benchmarks"],
            "--models",
            *ftg.models_used(config),
            "--benchmark-models",
            *[
                f"{b}={','.join(ftg.models_for(config, b))}"
                for b in config["benchmarks"]
            ],
            "--strategies",
            *config["strategies"],
            "--no-foundation",
            *scratch,
            "--baseline",
            baseline_strategy(config) or "none",
        ]
    )


def run_files(runs, name):
    return [f"{RUNS_ROOT}/{r.path}/{name}" for r in runs]


def run_results(runs):
    """What finished runs leave behind: test errors, scratch's errors on every foundation
    model's pretraining slice (one file per model) and robustness results."""
    scratch = [r for r in runs if not r.has_foundation]
    return {
        "errors": run_files(runs, "errors.json"),
        "pt_eval": [
            f"{RUNS_ROOT}/{r.path}/pt_eval/{m}.json"
            for r in scratch
            for m in ftg.models_for(config, r.benchmark)
            if has_pt_slice(m, r.benchmark)
        ],
        "robustness": run_files(robustness_runs(runs), "robustness/robustness.json"),
    }


def robustness_runs(runs):
    return ftg.robustness_runs(config, runs)


DATA = config["data_dir"]


def foundation_source(model):
    """The foundation model as pretrained, downloaded or copied (multihead for MACE-MH-1)."""
    entry = CATALOG["foundation_models"][model]
    if entry["source"] == "pretrain":
        return f"results/pretrain/{model}/run/model.model"
    if entry["source"] == "local":
        return f"{DATA}/local/models/{model}.model"
    return f"{DATA}/models/{model}.model"


def foundation_model(model):
    """What every step uses: with a catalog `head:`, the single-head artefact of that head."""
    head = foundation_head(config, model)
    if head:
        return f"results/foundation/{model}/{head}.model"
    return foundation_source(model)


def budget_arg(strategy, benchmark):
    budget = step_budget(config, strategy, benchmark)
    return f"--budget {quoted_json(budget)}" if budget else ""


def head_arg(model):
    head = foundation_head(config, None if model == ftg.NO_MODEL else model)
    return f"--head {head}" if head else ""


def benchmark_files(benchmark):
    entry = CATALOG["benchmarks"][benchmark]
    if entry["source"] == "demo":
        return {"data": f"data/generated/benchmarks/{benchmark}.xyz"}
    if entry["source"] == "local":
        return {
            part: f"{DATA}/local/benchmarks/{benchmark}/{part}.xyz"
            for part, key in LOCAL_BENCHMARK_KEYS.items()
            if entry.get(key)
        }
    return {
        part: f"{DATA}/benchmarks/{benchmark}/{part}.xyz" for part in entry["files"]
    }


def replay_spec(model, benchmark):
    """The benchmark's own replay pool (the study's element-filtered SN2 pool) wins."""
    return CATALOG["benchmarks"][benchmark].get("replay_pool") or CATALOG[
        "foundation_models"
    ][model].get("replay_pool")


def replay_pool(model, benchmark):
    """The pool as fetched or copied (`{source, file}` or `{path}`)."""
    spec = replay_spec(model, benchmark)
    if spec is None:  # demo models replay their own pretraining corpus
        return f"results/pretrain/{model}/data/train_pool.xyz"
    return fetched_path(spec)


def replay_args(model, benchmark):
    """Label keys and group keys of the pool: the replay step reads the pool as downloaded."""
    spec = replay_spec(model, benchmark) or {}
    keys = spec.get("group_keys", config["replay"]["group_keys"])
    args = [label_keys(spec) if spec else ""]
    args.append("--group-key " + " ".join(keys) if keys else "--group-key")
    if spec.get("exclude_config_types"):
        args.append("--pool-exclude " + " ".join(spec["exclude_config_types"]))
    return " ".join(a for a in args if a)


def quoted_json(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def demo_args(gen):
    args = [
        f"--{k}={','.join(v) if isinstance(v, list) else v}" for k, v in gen.items()
    ]
    return " ".join(shlex.quote(a) for a in args)


def prepare_args(benchmark, input):
    entry = CATALOG["benchmarks"][benchmark]
    split = ftc.split_sizes(entry)
    args = [f"--data {input.data}"]
    for key in ("valid_data", "test_data"):
        if key in input.keys():
            args.append(f"--{key.replace('_', '-')} {input[key]}")
    args += [f"--n-valid {split['valid']}", f"--n-test {split['test']}"]
    args.append(f"--min-pair-distance {config['data_checks']['min_pair_distance']}")
    if split.get("group_key"):
        args.append(f"--group-key {split['group_key']}")
    return " ".join(args + [label_keys(entry)])


def e0_inputs(w):
    inputs = {
        "train": f"results/data/{w.benchmark}/train_n{w.size}.xyz",
        "isolated": f"results/data/{w.benchmark}/isolated.xyz",
    }
    if w.model != ftg.NO_MODEL:
        inputs["model"] = foundation_model(w.model)
        inputs["elements"] = ancient(
            f"results/data/{w.benchmark}/elements/{w.model}.json"
        )
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
    if w.model != ftg.NO_MODEL:
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


def evaluate_inputs(w):
    inputs = {
        "run": os.path.join(RUN_DIR.format(**w), "run.json"),
        "test": f"results/data/{w.benchmark}/test.xyz",
    }
    # Scratch has no pretraining slice of its own: rule evaluate_pt_eval scores it on each
    # model's, one file per model, so a slice of foundation_models never rewrites this file.
    if w.model != ftg.NO_MODEL and has_pt_slice(w.model, w.benchmark):
        inputs.update(pt_eval_inputs(w.benchmark, w.model))
    return inputs


def has_pt_slice(model, benchmark):
    """The pretraining slice is held out of the replay pool: no pool, no forgetting measurement."""
    return ftg.pt_slice_available(config, model, benchmark)


def pt_eval_inputs(benchmark, model):
    """A foundation model's held-out pretraining slice and, where the catalog has one, the same
    slice at the target level of theory (forgetting without the level-of-theory shift).
    """
    out = f"results/replay/{benchmark}/{model}"
    inputs = {f"pt_eval__{model}": f"{out}/pt_eval.xyz"}
    if CATALOG["foundation_models"][model].get("pt_eval", {}).get("relabelled"):
        inputs[f"pt_eval_relabelled__{model}"] = f"{out}/pt_eval_relabelled.xyz"
    return inputs


def fetched_path(spec):
    """A pool or slice file: fetched (`{source, file}`), or copied from the user's `{path}`
    (named by its path, so another path is another copy and re-runs what reads it)."""
    if spec.get("path"):
        return local_copy_path(spec["path"])
    return f"{DATA}/replay/{spec['source']}/{spec['file']}.xyz"


def pt_eval_files(model):
    """The catalog's held-out slice files of a model (fetched or copied like replay pools), if any."""
    spec = CATALOG["foundation_models"][model].get("pt_eval") or {}
    return {k: fetched_path(spec[k]) for k in ("file", "relabelled") if spec.get(k)}


def pt_eval_args(model, input):
    spec = CATALOG["foundation_models"][model].get("pt_eval")
    if not spec:
        return ""
    args = [f"--pt-eval {input.pt_eval_file}"]
    if spec.get("relabelled"):
        args.append(f"--pt-eval-relabelled {input.pt_eval_relabelled}")
    if spec.get("exclude_config_types"):
        args.append("--pt-eval-exclude " + " ".join(spec["exclude_config_types"]))
    return " ".join(args)


def e0_warnings():
    """Distinct E0-mismatch warnings of this grid's e0 steps (read at the end of a run: in warn
    mode the runs train anyway, and the warning would otherwise stay in a job log)."""
    paths = {
        f"results/e0/{r.benchmark}/{r.model}/{r.e0}/n{r.size}.provenance.json"
        for r in RUNS
        if r.has_foundation
    }
    found = []
    for path in sorted(p for p in paths if os.path.exists(p)):
        with open(path) as f:
            found += [w for w in json.load(f).get("warnings", []) if w not in found]
    return found


def print_e0_warnings():
    for warning in e0_warnings():
        print(f"ftbench warning: {warning}", file=sys.stderr)


def replay_summaries():
    """The replay steps' records (their own cost), where any strategy of the grid replays."""
    pairs = {
        (r.benchmark, r.model)
        for r in RUNS
        if CATALOG["strategies"][r.strategy].get("replay")
    }
    return [f"results/replay/{b}/{m}/summary.json" for b, m in sorted(pairs)]


def robustness_settings(benchmark):
    return ftc.robustness_settings(config, benchmark)


def md_start_inputs(w):
    """The common MD start is made from the test set, or from a shipped reference frame."""
    start = robustness_settings(w.benchmark)["start"]
    inputs = {"structures": f"results/data/{w.benchmark}/test.xyz"}
    if start.get("file"):
        inputs["frame"] = str(ftc.repo_path(start["file"]))
    return inputs


def md_start_args(w, input):
    settings = robustness_settings(w.benchmark)
    start, entry = settings["start"], CATALOG["benchmarks"][w.benchmark]
    if "frame" in input.keys():
        return f"--from-file {input.frame}"
    args = [f"--structures {input.structures} --index {settings['structure_index']}"]
    gen = entry.get("generator") or {}
    if entry["source"] == "demo" and gen.get("method") and start["relax_steps"] > 0:
        # a reference calculator exists (tblite): relax the start at the reference level
        args.append(
            f"--method {gen['method']} --charge {gen.get('charge', 0)} "
            f"--steps {start['relax_steps']} --fmax {start['fmax']}"
        )
    return " ".join(args)


def reference_rdf_input(w):
    traj = robustness_settings(w.benchmark)["rdf"].get("reference_trajectory")
    return str(ftc.repo_path(traj)) if traj else f"results/data/{w.benchmark}/test.xyz"


def reference_rdf_args(w):
    rdf = robustness_settings(w.benchmark)["rdf"]
    if rdf.get("reference_trajectory"):
        temperature = robustness_settings(w.benchmark)["production"]["temperature"]
        label = f"reference-level MD at {temperature:g} K"
        return f"--skip {rdf.get('reference_skip', 0)} --label {shlex.quote(label)}"
    label = shlex.quote("test set (not reference-level sampling)")
    return f"--label {label}"


def untouched_head(w):
    """An untouched multihead foundation (MACE-MH-1) is scored with the head the config adapts
    (its single-head artefact holds only that head; the rows carry its name)."""
    if w.strategy != ftg.UNTOUCHED:
        return ""
    return head_arg(w.model)


# ---- a user's own files (`source: local`, `{path: ...}`) and the fetch rules' source entries
# (used by workflow/rules/fetch.smk)

from ftbench.data import fetch as ftfetch

# benchmark part -> the catalog key of its path (`source: local`)
LOCAL_BENCHMARK_KEYS = {
    "data": "path",
    "valid_data": "valid_path",
    "test_data": "test_path",
}
_LOCAL = {}
_SOURCES = {}


def local_file(path):
    """A config path: relative to the working directory, else to the repository; ~ expanded."""
    return str(ftc.repo_path(os.path.expanduser(str(path))).absolute())


def local_copy_path(path):
    """Where a `{path}` pool or slice file is copied: its name plus a hash of its full path."""
    import hashlib

    full = local_file(path)
    stem = os.path.basename(full)
    stem = stem[: -len(".gz")] if stem.endswith(".gz") else stem
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem)
    digest = hashlib.sha1(full.encode()).hexdigest()[:8]
    return f"{DATA}/local/files/{digest}-{stem}"


def local_files():
    """{copy: (original, its catalog key)} of every local file the catalog names (parsed once)."""
    if _LOCAL:
        return _LOCAL
    for name, entry in CATALOG["benchmarks"].items():
        where = f"catalog.benchmarks.{name}"
        if entry["source"] == "local":
            for part, path in benchmark_files(name).items():
                key = LOCAL_BENCHMARK_KEYS[part]
                _LOCAL[path] = (local_file(entry[key]), f"{where}.{key}")
        if (entry.get("replay_pool") or {}).get("path"):
            _LOCAL[fetched_path(entry["replay_pool"])] = (
                local_file(entry["replay_pool"]["path"]),
                f"{where}.replay_pool.path",
            )
    for name, entry in CATALOG["foundation_models"].items():
        where = f"catalog.foundation_models.{name}"
        if entry["source"] == "local":
            _LOCAL[foundation_source(name)] = (
                local_file(entry["path"]),
                f"{where}.path",
            )
        pt_eval = entry.get("pt_eval") or {}
        for key, spec in [
            ("replay_pool", entry.get("replay_pool")),
            ("pt_eval.file", pt_eval.get("file")),
            ("pt_eval.relabelled", pt_eval.get("relabelled")),
        ]:
            if (spec or {}).get("path"):
                _LOCAL[fetched_path(spec)] = (
                    local_file(spec["path"]),
                    f"{where}.{key}.path",
                )
    return _LOCAL


def local_source(kind, name):
    """The original of a copy under {DATA}/local (rule copy_local's input)."""
    copy = f"{DATA}/local/{kind}/{name}"
    if copy not in local_files():
        raise WorkflowError(
            f"ftbench: {copy} is no copy of a `path:` in the config's catalog"
        )
    return local_files()[copy][0]


def check_local_files():
    """Refuse, at parse, a missing original of the grid's local files: where an old copy exists,
    Snakemake would otherwise keep using it silently (an input function's error is ignored for
    an existing output)."""
    used = [f"catalog.benchmarks.{b}." for b in config["benchmarks"]]
    used += [f"catalog.foundation_models.{m}." for m in ftg.models_used(config)]
    for original, where in local_files().values():
        if where.startswith(tuple(used)) and not os.path.isfile(original):
            raise WorkflowError(
                f"ftbench config: `{where}`: {original} does not exist; fix the path"
            )


check_local_files()


def fetch_entry(spec, where=""):
    """`ftbench fetch --sources-json`: the one source entry of `spec` (`{source, file}`), quoted."""
    if not _SOURCES:
        _SOURCES.update(ftfetch.config_sources(config))
    try:
        entry = ftfetch.source_entry(_SOURCES, spec["source"], spec["file"], where)
    except FtbenchError as err:
        # params are evaluated for outputs already there too: a file placed by hand needs no
        # source; `ftbench fetch` reports the error only if the fetch has to run
        entry = {"error": str(err)}
    return quoted_json(entry)


def print_recommendation():
    """The answer, with its uncertainty and caveats, where a run ends (tables writes it)."""
    path = os.path.join(TABLES, "recommendations.txt")  # TABLES: aggregate.smk
    if os.path.exists(path):
        with open(path) as f:
            print(f.read(), file=sys.stderr)
