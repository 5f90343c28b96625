"""The workflow itself: dry runs offline, lint, formatting, conda envs agree with the pins."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from conftest import ROOT, snakemake

ENVS = sorted((ROOT / "workflow" / "envs").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.ci  # pytest -q stays under 10 min; CI runs it
def test_paper_dry_run_lists_the_full_grid_offline(tmp_path):
    proc = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config" / "paper.yaml"))
    out = proc.stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    assert int(counts["finetune"]) == 1782  # 27 sizes x 3 seeds x (3 models x 7 + scratch)
    assert int(counts["fetch_model"]) == 3
    assert int(counts["untouched"]) == 15
    assert int(counts["foundation_head"]) == 1  # MACE-MH-1 reduced once to its configured head


@pytest.mark.slow
def test_one_benchmark_target_schedules_only_that_benchmark(tmp_path):
    proc = snakemake(tmp_path, "results/benchmarks/sn2.done", "-n", "--configfile", str(ROOT / "config" / "paper.yaml"))
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert int(counts["finetune"]) == 3 * 3 * (3 * 7 + 1)  # sn2: sizes 10, 30, 60 x 3 seeds
    assert int(counts["untouched"]) == 3
    assert "aggregate" not in counts and "figure" not in counts
    outputs = re.findall(r"output: (results/runs/\S+)", proc.stdout)
    assert outputs and all(o.startswith("results/runs/sn2/") for o in outputs)


@pytest.mark.slow  # Snakemake parses the workflow and builds the DAG: ~10 s
def test_bad_axis_on_command_line_stops_the_dry_run(tmp_path):
    proc = snakemake(tmp_path, "-n", "--config", "strategies=[naive,frozen]", check=False)
    assert proc.returncode != 0
    assert "unknown strategy 'frozen'" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_lint_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "-s", str(ROOT / "Snakefile"), "--directory", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_snakefmt_clean():
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    proc = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *map(str, files)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[=<>]", d)[0].lower(): d for d in deps}


def test_conda_envs_parse_and_agree_with_pyproject():
    assert ENVS
    pins = _pins()
    for env in ENVS:
        spec = yaml.safe_load(env.read_text())
        assert spec["channels"] and spec["dependencies"]
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        listed = {re.split(r"[=<>]", d)[0].lower(): d for d in pip}
        assert listed.pop("torch") == "torch==2.13.0"
        assert listed == pins, f"{env.name} disagrees with pyproject.toml"


def test_every_rule_has_a_log_and_conda_env():
    text = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    rules = re.findall(r"^rule (\w+):", text, re.M)
    for block in re.split(r"^rule ", text, flags=re.M)[1:]:
        name = block.split(":")[0]
        if "\n    shell:" not in block:  # a target rule (figures): nothing runs, nothing to log
            continue
        assert "\n    log:" in block, f"rule {name} has no log"
        assert "\n    conda:" in block, f"rule {name} has no conda env"
    assert len(rules) >= 12


def test_figure_names_without_pandas_match_the_figure_functions():
    """The Snakefile and the config check read figure_names(); every name has a drawing function."""
    from ftbench.report.figure_names import figure_names
    from ftbench.report.figures import FIGURES

    assert list(FIGURES) == figure_names()


@pytest.mark.slow
@pytest.mark.ci  # pytest -q stays under 10 min; CI runs it
def test_command_line_numbers_and_unknown_keys(tmp_path):
    # Snakemake hands --config values over as strings; they are numbers once validated
    proc = snakemake(
        tmp_path,
        "-n",
        "--config",
        "seeds=[1,2]",
        "train_sizes=[10]",
        "training={max_num_epochs: 40}",
        "strategies=[naive]",
        "benchmarks=[sn2]",
        "foundation_models=[demo_gen1]",
    )
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert int(counts["finetune"]) == 2
    bad = snakemake(tmp_path, "-n", "--config", "strategy=[naive]", check=False)
    assert bad.returncode != 0
    assert "unknown config key `strategy`; did you mean `strategies`?" in bad.stdout + bad.stderr


@pytest.mark.slow
def test_robustness_at_the_largest_size_only(tmp_path):
    grid = [
        "benchmarks=[sn2]",
        "strategies=[naive,scratch]",
        "foundation_models=[demo_gen2]",
        "train_sizes=[10,20]",
        "seeds=[1,2]",
    ]
    every = snakemake(tmp_path, "-n", "--config", *grid, "robustness={benchmarks: all, sizes: all}")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", every.stdout, re.M))
    # 2 strategies x 2 sizes x 2 seeds, plus the untouched model
    assert int(counts["finetune"]) == 8 and int(counts["robustness"]) == 9
    largest = snakemake(tmp_path, "-n", "--config", *grid, "robustness={benchmarks: all, sizes: largest}")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", largest.stdout, re.M))
    assert int(counts["finetune"]) == 8 and int(counts["robustness"]) == 5
    robust = re.findall(r"output: (results/runs/\S+/robustness/robustness.json)", largest.stdout)
    assert robust and all("/n20/" in p or "/untouched/" in p for p in robust)


@pytest.mark.slow
def test_local_profile_runs_jobs_and_exits_promptly(tmp_path):
    # its scheduler keys are accepted and its rate-limiter span does not hold Snakemake at exit
    import time

    t0 = time.perf_counter()
    snakemake(tmp_path, "--profile", str(ROOT / "profiles" / "local"), "results/data/sn2/summary.json", timeout=300)
    assert (tmp_path / "results" / "data" / "sn2" / "summary.json").is_file()
    assert time.perf_counter() - t0 < 120
