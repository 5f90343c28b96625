"""Your own system: a data file under your own key names and a local foundation model file.

`ftbench init` writes the overlay, `ftbench grid` reads it, the real workflow runs it to the
recommendation, and a changed path or file re-runs the copy and what depends on it. The user's
data is the shipped sn2 world under other key names (`dft_energy`, `dft_forces`, `traj`), the
user's model a copy of the shipped demo_gen1 model in a temporary folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read, write

from conftest import ROOT, ftbench, snakemake
from ftbench.core.errors import FtbenchError
from ftbench.data import fetch
from http_server import serve

SN2 = ROOT / "data" / "demo" / "benchmarks" / "sn2.xyz.gz"
MODEL = ROOT / "data" / "demo" / "foundation" / "demo_gen1.model"
POOL = ROOT / "data" / "demo" / "foundation" / "demo_gen1_train.xyz.gz"
REPLAY = ["replay", "pseudo_replay", "replay_lora"]
# A short run: few optimiser steps, a token robustness protocol (the tests' micro settings).
FAST = {
    "training": {"steps": 8},
    "robustness": {
        "md": {"replicas": 2, "steps": 20, "friction": 0.5, "thermalise_steps": 2, "save_every": 2},
        "production": {"steps": 10, "thermalise_steps": 2, "save_every": 2, "min_survival": 0.5},
        "rdf": {"skip_frames": 1},
        "rss": {"n_structures": 2, "max_steps": 10},
        "dimers": {"n_points": 12},
    },
}


def user_frames(n_traj: int = 6, isolated: bool = False) -> list:
    """Whole sn2 trajectories under the user's keys (`dft_energy`, `dft_forces`, `traj`)."""
    frames = read(SN2, ":")
    keep = sorted({a.info["group"] for a in frames if a.info["config_type"] != "IsolatedAtom"})[:n_traj]
    out = []
    for a in frames:
        free = a.info["config_type"] == "IsolatedAtom"
        if not (free and isolated) and a.info["group"] not in keep:
            continue
        b = a.copy()
        b.info = {"dft_energy": a.info["REF_energy"], "traj": a.info["group"], "temperature": 350.0}
        if free:
            b.info = {"dft_energy": a.info["REF_energy"], "config_type": "IsolatedAtom"}
        b.arrays["dft_forces"] = b.arrays.pop("REF_forces")
        b.arrays.pop("momenta", None)
        out.append(b)
    return out


@pytest.fixture
def system(tmp_path) -> Path:
    """A work folder with the user's data file and model file (no replay pool)."""
    write(tmp_path / "cluster.xyz", user_frames(), format="extxyz")
    shutil.copy(MODEL, tmp_path / "my_foundation.model")
    return tmp_path


def init_args(**extra) -> list[str]:
    args = {
        "--data": "cluster.xyz",
        "--energy-key": "dft_energy",
        "--forces-key": "dft_forces",
        "--model": "my_foundation.model",
        "--group-key": "traj",
        "--name": "mysys",
        "--out": "config/own_system.yaml",
    } | extra
    return [x for k, v in args.items() if v is not None for x in (k, v)]


# ---------------------------------------------------------------- init refuses bad input


def test_init_refuses_a_missing_key_and_lists_the_keys_it_found(system):
    proc = ftbench("init", *init_args(**{"--energy-key": "energy"}), cwd=system)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr
    assert "no energy under --energy-key 'energy'" in err
    assert "cluster.xyz" in err
    # what the file does have, with the likely candidates named
    assert "dft_energy" in err and "dft_forces" in err and "traj" in err
    assert "energy-like (one number): dft_energy" in err
    assert "forces-like (N x 3): dft_forces" in err
    assert not (system / "config" / "own_system.yaml").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"--forces-key": "forces"}, "no forces under --forces-key 'forces'"),
        ({"--data": "missing.xyz"}, "--data missing.xyz: no such file"),
        (
            {"--group-key": "trajectory"},
            "have no info key 'trajectory' (--group-key); info keys of frame 0: dft_energy",
        ),
        ({"--model": "https://example.org/m.model"}, "pin the file with --model-sha256"),
        ({"--model": "nowhere.model"}, "--model nowhere.model: no such file"),
        ({"--pt-eval": "cluster.xyz"}, "--pt-eval needs --replay-pool"),
        ({"--name": "sn2"}, "`catalog.benchmarks.sn2` already exists"),
    ],
)
def test_init_refuses_bad_input_before_writing(system, extra, message):
    proc = ftbench("init", *init_args(**extra), cwd=system)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert not (system / "config" / "own_system.yaml").exists()


@pytest.mark.slow
def test_init_refuses_elements_the_model_does_not_know(system):
    frames = user_frames()
    for a in frames:  # Cl -> Si in every frame (every split has it); demo_gen1 knows H C N O F Li Na Cl
        a.numbers[a.numbers == 17] = 14
    write(system / "cluster.xyz", frames, format="extxyz")
    proc = ftbench("init", *init_args(), cwd=system)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "contains Si, which --model my_foundation.model does not know" in proc.stderr


# ---------------------------------------------------------------- init -> grid


@pytest.mark.slow
def test_init_writes_an_overlay_that_grid_reads(system):
    proc = ftbench("init", *init_args(), cwd=system)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "wrote config/own_system.yaml" in out
    assert "skipped: replay, pseudo_replay, replay_lora: no --replay-pool" in out
    assert "not measured: forgetting" in out
    assert "scratch E0s: a fit on composition (no IsolatedAtom frames)" in out
    assert "snakemake -c 2 --configfile config/own_system.yaml" in out

    text = (system / "config" / "own_system.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["benchmarks"] == ["mysys"] and cfg["foundation_models"] == ["mysys_model"]
    assert cfg["strategies"] == ["zeroshot", "naive", "freeze5", "freeze6", "lora", "scratch"]
    assert cfg["seeds"] == [1, 2] and cfg["train_sizes"] == "auto"
    assert cfg["e0_without_foundation"] == "average"  # no IsolatedAtom frames: said why in a comment
    assert "needs an E0 per element" in text
    bench = cfg["catalog"]["benchmarks"]["mysys"]
    assert bench["source"] == "local" and bench["path"] == "cluster.xyz"
    assert (bench["energy_key"], bench["forces_key"]) == ("dft_energy", "dft_forces")
    assert bench["split"]["group_key"] == "traj"
    assert bench["robustness"]["rdf"]["reference_trajectory"] is None
    assert bench["robustness"]["production"]["temperature"] == 350  # the frames' own, not the default 300
    model = cfg["catalog"]["foundation_models"]["mysys_model"]
    assert model == {"source": "local", "path": "my_foundation.model"}

    # the training pool init computed is the one prepare's split leaves (whole trajectories)
    match = re.search(r"split \(split_seed 12345\): (\d+) train, (\d+) validation, (\d+) test", out)
    n_train, n_valid, n_test = map(int, match.groups())
    assert n_train + n_valid + n_test == 126 and bench["max_train"] == n_train
    assert n_valid >= bench["split"]["valid"] and n_test >= bench["split"]["test"]
    sizes = [int(s) for s in re.search(r"training sizes: ([\d, ]+);", out).group(1).split(", ")]
    assert len(sizes) >= 3 and sizes[-1] == n_train and sizes == sorted(sizes)

    grid = ftbench("grid", "--configfile", "config/own_system.yaml", cwd=system)
    assert grid.returncode == 0, grid.stderr
    runs = [line for line in grid.stdout.splitlines() if line.startswith("mysys/")]
    assert len(runs) == 6 * len(sizes) * 2  # 6 strategies x sizes x 2 seeds
    assert {r.split("/")[2] for r in runs} == set(cfg["strategies"])
    assert f"# mysys: train sizes {sizes}" in grid.stdout
    assert re.search(r"(not in this grid|skipped).*replay, pseudo_replay, replay_lora", grid.stderr)


@pytest.mark.slow
def test_init_with_isolated_atoms_a_replay_pool_and_a_model_url(system):
    write(system / "cluster.xyz", user_frames(isolated=True), format="extxyz")
    sha = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    url = "https://models.example.org/mace/demo_gen1.model"
    proc = ftbench(
        "init",
        *init_args(**{"--model": url, "--model-sha256": sha, "--replay-pool": str(POOL)}),
        cwd=system,
    )
    assert proc.returncode == 0, proc.stderr
    assert "skipped" not in proc.stdout
    assert "scratch E0s: your IsolatedAtom frames" in proc.stdout
    cfg = yaml.safe_load((system / "config" / "own_system.yaml").read_text())
    assert set(REPLAY) <= set(cfg["strategies"]) and "scratch" in cfg["strategies"]
    assert "e0_without_foundation" not in cfg
    model = cfg["catalog"]["foundation_models"]["mysys_model"]
    assert model["fetch"] == {"source": "mysys_model", "file": "model"}
    assert model["replay_pool"] == {"path": str(POOL), "energy_key": "REF_energy", "forces_key": "REF_forces"}
    source = cfg["sources"]["mysys_model"]
    assert source["url"] == "https://models.example.org/mace"
    assert source["files"]["model"] == {"path": "demo_gen1.model", "sha256": sha}
    grid = ftbench("grid", "--configfile", "config/own_system.yaml", "--counts-only", cwd=system)
    assert grid.returncode == 0, grid.stderr
    assert all(f"{s}=" in grid.stdout for s in REPLAY)


# ---------------------------------------------------------------- fetch: local copies, source entries


def test_copy_local_records_sha256_and_the_previous_one(tmp_path):
    src = tmp_path / "mine.xyz"
    src.write_text("first\n")
    out = tmp_path / "data" / "local" / "benchmarks" / "b" / "data.xyz"
    first = fetch.copy_local(src, out)
    assert out.read_text() == "first\n" and not out.samefile(src)  # a copy, never a link
    record = json.loads((out.parent / "data.xyz.source.json").read_text())
    assert record == first
    assert record["sha256"] == record["source_sha256"] == hashlib.sha256(b"first\n").hexdigest()
    assert record["path"] == str(src.resolve()) and "previous" not in record
    src.write_text("second\n")
    second = fetch.copy_local(src, out)
    assert out.read_text() == "second\n"
    assert second["previous"]["source_sha256"] == first["source_sha256"]
    with pytest.raises(FtbenchError, match="does not exist.*`source: local`"):
        fetch.copy_local(tmp_path / "gone.xyz", out)


def test_source_entry_keeps_what_identifies_the_file():
    sources = fetch.load_sources(ROOT / "data" / "demo" / "sources.yaml")
    entry = fetch.source_entry(sources, "demo_world", "demo_gen1")
    assert entry == {
        "demo_world": {
            "kind": "local",
            "path": "data/demo",
            "files": {
                "demo_gen1": {
                    "path": "foundation/demo_gen1.model",
                    "sha256": sources["demo_world"]["files"]["demo_gen1"]["sha256"],
                }
            },
        }
    }
    with pytest.raises(FtbenchError, match="unknown source 'nowhere'.*`\\{path: FILE\\}`"):
        fetch.source_entry(sources, "nowhere", "x")


# ---------------------------------------------------------------- the workflow


@pytest.mark.slow
@pytest.mark.ci  # pytest -q stays under 10 min; CI runs it
def test_url_model_of_init_is_fetched_from_the_overlay_sources(system, monkeypatch):
    """The overlay's own `sources:` reach the fetch rule (no `sources_file` of its own)."""
    sha = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    proc = ftbench(
        "init",
        *init_args(**{"--model": "https://models.example.org/mace/demo_gen1.model", "--model-sha256": sha}),
        cwd=system,
    )
    assert proc.returncode == 0, proc.stderr
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("FTBENCH_FORKSERVER", "0")
    with serve() as host:
        host.add("/mace/demo_gen1.model", MODEL.read_bytes())
        monkeypatch.setenv("FTBENCH_BASE_URL", host.base)
        snakemake(
            system, "-c", "1", "data/models/mysys_model.model", "--configfile", str(system / "config/own_system.yaml")
        )
        assert host.hits("/mace/demo_gen1.model") == 1
    assert (system / "data" / "models" / "mysys_model.model").read_bytes() == MODEL.read_bytes()


@pytest.mark.ci
def test_changed_source_of_a_fetch_reruns_it_and_what_depends_on_it(tmp_path):
    """A fetch's source entry is a param: another path (or URL, or pinned sha256) re-runs it."""
    snakemake(tmp_path, "-c", "1", "results/data/sn2/summary.json")
    moved = yaml.safe_load((ROOT / "data" / "demo" / "sources.yaml").read_text())
    moved["sources"]["demo_world"]["path"] = str(ROOT / "data" / "demo")  # the same files, another path
    (tmp_path / "moved.yaml").write_text(yaml.safe_dump({"sources": moved["sources"]}))
    proc = snakemake(tmp_path, "-n", "results/data/sn2/summary.json", "--configfile", str(tmp_path / "moved.yaml"))
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert jobs.get("fetch_benchmark") == "1" and jobs.get("prepare_benchmark") == "1"
    assert "Params have changed since last execution" in proc.stdout
    # unchanged config: nothing to do
    proc = snakemake(tmp_path, "-n", "results/data/sn2/summary.json")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.ci
def test_own_system_runs_to_the_recommendation_and_a_changed_file_reruns(system):
    proc = ftbench("init", *init_args(), cwd=system)
    assert proc.returncode == 0, proc.stderr
    (system / "fast.yaml").write_text(yaml.safe_dump(FAST))
    axes = ["--config", "strategies=[zeroshot,naive,scratch]", "train_sizes=[10]", "report_dir=results"]
    run = ["--configfile", str(system / "config" / "own_system.yaml"), str(system / "fast.yaml"), *axes]
    snakemake(system, "-c", "2", *run)

    table = (system / "results" / "tables" / "recommendations.csv").read_text()
    assert "mysys" in table and "mysys_model" in table
    assert re.search(r"\b(naive|zeroshot|scratch)\b", table)
    # the copies and their records
    model_copy = system / "data" / "local" / "models" / "mysys_model.model"
    record = json.loads(Path(f"{model_copy}.source.json").read_text())
    assert (
        record["sha256"]
        == hashlib.sha256(MODEL.read_bytes()).hexdigest()
        == hashlib.sha256(model_copy.read_bytes()).hexdigest()
    )
    data_record = json.loads((system / "data" / "local" / "benchmarks" / "mysys" / "data.xyz.source.json").read_text())
    assert data_record["path"] == str((system / "cluster.xyz").resolve())
    again = snakemake(system, "-n", *run)
    assert "Nothing to be done" in again.stdout + again.stderr

    def scheduled(overlay):
        proc = snakemake(
            system, "-n", "--configfile", str(system / "config" / overlay), str(system / "fast.yaml"), *axes
        )
        return dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M)), proc.stdout

    # another path (the same frames): the copy and everything downstream run again
    shutil.copy(system / "cluster.xyz", system / "cluster_v2.xyz")
    overlay = (system / "config" / "own_system.yaml").read_text()
    (system / "config" / "moved.yaml").write_text(overlay.replace("path: cluster.xyz", "path: cluster_v2.xyz"))
    jobs, out = scheduled("moved.yaml")
    # the reason names the new input (newer than the copy) or the changed set of inputs
    assert jobs.get("copy_local") == "1"
    assert re.search(r"reason: (Set of input files has changed|Updated input files: \S*cluster_v2\.xyz)", out)
    for rule in ("prepare_benchmark", "finetune", "evaluate", "aggregate", "tables"):
        assert int(jobs.get(rule, 0)) >= 1, (rule, jobs)
    assert "fetch_model" not in jobs and int(jobs.get("finetune")) == 6  # 3 strategies x 2 seeds at n10

    # the same path, the file edited: its copy is older than it, and the run follows
    frames = read(system / "cluster.xyz", ":")
    frames[0].info["dft_energy"] += 1e-3
    write(system / "cluster.xyz", frames, format="extxyz")
    jobs, out = scheduled("own_system.yaml")
    assert jobs.get("copy_local") == "1" and "Updated input files" in out
    assert int(jobs.get("finetune", 0)) == 6 and int(jobs.get("prepare_benchmark", 0)) == 1
    assert np.isclose(read(system / "cluster.xyz", 0).info["dft_energy"], frames[0].info["dft_energy"])

    # a model path that is gone is refused, though its old copy is there
    (system / "config" / "typo.yaml").write_text(
        overlay.replace("path: my_foundation.model", "path: my_fundation.model")
    )
    proc = snakemake(system, "-n", "--configfile", str(system / "config" / "typo.yaml"), *axes, check=False)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert "`catalog.foundation_models.mysys_model.path`" in said and "my_fundation.model does not exist" in said


def _broken(system, name: str, edit) -> str:
    frames = read(system / "cluster.xyz", ":")
    edit(frames)
    write(system / f"{name}.xyz", frames, format="extxyz")
    overlay = (system / "config" / "own_system.yaml").read_text().replace("path: cluster.xyz", f"path: {name}.xyz")
    (system / "config" / f"{name}.yaml").write_text(overlay)
    return str(system / "config" / f"{name}.yaml")


def _overlap(frames):
    frames[7].positions[1] = frames[7].positions[0]


def _hartree(frames):
    for a in frames:
        a.info["dft_energy"] /= 27.211386
        a.arrays["dft_forces"] /= 27.211386


def _renamed(frames):
    for a in frames:
        a.info["E_dft"] = a.info.pop("dft_energy")


@pytest.mark.parametrize(
    ("name", "edit", "needles"),
    [
        ("overlap", _overlap, ["overlap.xyz: frame 7", "0 A apart", "data_checks.min_pair_distance"]),
        ("renamed", _renamed, ["no energy under key 'dft_energy'", "E_dft", "`energy_key`"]),
    ],
)
@pytest.mark.ci
def test_the_workflow_refuses_a_broken_variant_before_any_job(system, name, edit, needles):
    # the user's overlay on a broken copy of the data: the parse itself stops, no job runs
    assert ftbench("init", *init_args(), cwd=system).returncode == 0
    overlay = _broken(system, name, edit)
    proc = snakemake(system, "-c", "2", "--configfile", overlay, check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in said
    for needle in needles:
        assert needle in said, (needle, said[-3000:])
    assert not (system / "results").exists() and not (system / "data" / "local").exists()


@pytest.mark.ci
def test_labels_in_hartree_stop_at_the_e0_step_before_any_fine_tune(system):
    assert ftbench("init", *init_args(), cwd=system).returncode == 0
    overlay = _broken(system, "hartree", _hartree)
    axes = ["--config", "strategies=[naive]", "train_sizes=[10]", "seeds=[1]"]
    proc = snakemake(system, "-c", "2", "--configfile", overlay, *axes, check=False)
    assert proc.returncode != 0
    log = next((system / "logs" / "e0").rglob("n10.log")).read_text()
    assert "the labels look like Hartree/A, not eV/A" in log and "data_checks.unit_slope_range" in log
    assert not list((system / "results").glob("runs/*/*/naive/*/*/*/run.json"))
