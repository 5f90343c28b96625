"""ftbench.data.fetch against a fake host on 127.0.0.1 serving the real URL shapes."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from ftbench.cli import main
from ftbench.core.errors import FtbenchError
from ftbench.data import fetch
from http_server import closed_port, make_sn2_extxyz, make_sn2_npz, serve

REPO = "ev-tlt/MACE_finetuning_supplementary"
REV = "e132ea4317a4cd1426498af8cfca24ebe88fd498"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def host(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("FTBENCH_DATA_DIR", raising=False)
    with serve() as h:
        monkeypatch.setenv("FTBENCH_BASE_URL", h.base)
        yield h


@pytest.fixture
def world(host, tmp_path):
    """Fixture files on the fake host and a sources mapping pointing at them."""
    train = tmp_path / "train.xyz"
    make_sn2_extxyz(train)
    npz = tmp_path / "sn2_reactions.npz"
    make_sn2_npz(npz)
    data = {"train": train.read_bytes(), "npz": npz.read_bytes(), "model": b"not really a model\n" * 50}
    host.add_hf(REPO, REV, "sn2/data/train.xyz", data["train"])
    host.add_hf(REPO, REV, "README.md", b"# readme\n")
    host.add_zenodo("2605341", "sn2_reactions.npz", data["npz"])
    host.add("/ACEsuit/mace-mp/releases/download/mace_mp_0/m.model", data["model"])
    sources = {
        "supp": {
            "kind": "hf_dataset",
            "repo": REPO,
            "revision": REV,
            "files": {
                "sn2_train": {"path": "sn2/data/train.xyz", "sha256": None, "confirmed": True},
                "water_train": {"path": "water/Ih/100/train.xyz", "sha256": None, "confirmed": False},
            },
        },
        "sn2": {
            "kind": "zenodo",
            "record": "2605341",
            "files": {"npz": {"path": "sn2_reactions.npz", "sha256": hashlib.sha256(data["npz"]).hexdigest()}},
        },
        "models": {
            "kind": "url",
            "url": "https://github.com/ACEsuit/mace-mp/releases/download",
            "files": {"mp0": {"path": "mace_mp_0/m.model", "sha256": None}},
        },
    }
    fetch.validate_sources(sources)
    return sources, data, tmp_path


def _kw(tmp_path, **kw):
    return dict(data_dir=tmp_path / "cache", lock_path=tmp_path / "checksums.lock", retries=0, progress=False) | kw


TRAIN_URL = f"/datasets/{REPO}/resolve/{REV}/sn2/data/train.xyz"


def test_url_shapes(monkeypatch):
    monkeypatch.delenv("FTBENCH_BASE_URL", raising=False)
    hf = {"kind": "hf_dataset", "repo": REPO, "revision": REV}
    assert (
        fetch.file_url(hf, "water/Ih/100/a b.xyz")
        == f"https://huggingface.co/datasets/{REPO}/resolve/{REV}/water/Ih/100/a%20b.xyz"
    )
    zen = {"kind": "zenodo", "record": "10975225"}
    assert (
        fetch.file_url(zen, "SPICE-2.0.1.hdf5")
        == "https://zenodo.org/records/10975225/files/SPICE-2.0.1.hdf5?download=1"
    )
    url = {"kind": "url", "url": "https://github.com/o/r/releases/download/"}
    assert fetch.file_url(url, "t/m.model") == "https://github.com/o/r/releases/download/t/m.model"
    assert (
        fetch.file_url(dict(url, base_url="http://mirror:8000/x"), "t/m.model")
        == "http://mirror:8000/x/o/r/releases/download/t/m.model"
    )
    monkeypatch.setenv("FTBENCH_BASE_URL", "http://127.0.0.1:1")
    assert fetch.file_url(dict(hf, base_url="http://other"), "p").startswith("http://127.0.0.1:1/datasets/")


def test_download_records_lock_then_cache_hit(world, host):
    sources, data, tmp = world
    path = fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp))
    assert path == tmp / "cache" / "supp" / "sn2/data/train.xyz"
    assert path.read_bytes() == data["train"]
    lock = yaml.safe_load((tmp / "checksums.lock").read_text())
    assert lock == {"supp/sn2/data/train.xyz": hashlib.sha256(data["train"]).hexdigest()}
    assert host.hits(TRAIN_URL) == 1
    assert fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp)) == path
    assert host.hits(TRAIN_URL) == 1  # cache hit: no second request


def test_lock_enforced_after_first_download(world, host):
    sources, data, tmp = world
    fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp))
    # The host now serves different bytes: a fresh cache must refuse them.
    host.add_hf(REPO, REV, "sn2/data/train.xyz", data["train"] + b"\n")
    with pytest.raises(FtbenchError) as err:
        fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp, data_dir=tmp / "other"))
    msg = str(err.value)
    assert "sha256 mismatch" in msg and host.base + TRAIN_URL in msg
    assert hashlib.sha256(data["train"]).hexdigest() in msg  # expected
    assert hashlib.sha256(data["train"] + b"\n").hexdigest() in msg  # got
    assert "lock" in msg
    assert not (tmp / "other" / "supp" / "sn2/data/train.xyz").exists()
    assert list((tmp / "other").rglob("*.*")) == []  # no temporary left behind either


def test_pinned_checksum_mismatch_keeps_nothing(world, host):
    sources, data, tmp = world
    sources["sn2"]["files"]["npz"]["sha256"] = "0" * 64
    with pytest.raises(FtbenchError, match=r"expected 0{64} \(from the sources config\), got [0-9a-f]{64}"):
        fetch.fetch_file(sources, "sn2", "npz", **_kw(tmp))
    assert [p for p in (tmp / "cache").rglob("*") if p.is_file()] == []
    assert not (tmp / "checksums.lock").exists()


def test_pinned_checksum_ok_zenodo_and_url(world, host):
    sources, data, tmp = world
    assert fetch.fetch_file(sources, "sn2", "npz", **_kw(tmp)).read_bytes() == data["npz"]
    assert host.hits("/records/2605341/files/sn2_reactions.npz") == 1
    model = fetch.fetch_file(sources, "models", "mp0", **_kw(tmp))
    assert model.read_bytes() == data["model"]
    assert host.hits("/ACEsuit/mace-mp/releases/download/mace_mp_0/m.model") == 1


def test_redirect_to_cdn_followed(world, host):
    sources, data, tmp = world
    host.files["/cdn/blob"] = host.files.pop("/ACEsuit/mace-mp/releases/download/mace_mp_0/m.model")
    host.redirects["/ACEsuit/mace-mp/releases/download/mace_mp_0/m.model"] = "/cdn/blob"
    assert fetch.fetch_file(sources, "models", "mp0", **_kw(tmp)).read_bytes() == data["model"]
    assert host.hits("/cdn/blob") == 1


def test_truncated_download_keeps_nothing(world, host):
    sources, data, tmp = world
    host.truncate.add(TRAIN_URL)
    with pytest.raises(FtbenchError) as err:
        fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp))
    assert "cut short" in str(err.value) and host.base + TRAIN_URL in str(err.value)
    assert [p for p in (tmp / "cache").rglob("*") if p.is_file()] == []
    assert not (tmp / "checksums.lock").exists()


def test_retry_after_server_error(world, host):
    sources, data, tmp = world
    host.fail_first[TRAIN_URL] = 1
    path = fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp, retries=1))
    assert path.read_bytes() == data["train"] and host.hits(TRAIN_URL) == 2


def test_html_page_is_not_a_data_file(world, host):
    sources, data, tmp = world
    host.content_type = "text/html; charset=utf-8"
    with pytest.raises(FtbenchError, match="HTML page"):
        fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp))


def test_connection_refused_names_url_and_prestage(world, monkeypatch):
    sources, data, tmp = world
    monkeypatch.setenv("FTBENCH_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(FtbenchError) as err:
        fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp))
    msg = str(err.value)
    assert re.search(r"http://127\.0\.0\.1:\d+/datasets/.*/sn2/data/train\.xyz", msg)
    assert "connection refused" in msg
    assert f"copy it to exactly {tmp / 'cache' / 'supp' / 'sn2/data/train.xyz'}" in msg


def test_http_404_on_unconfirmed_path_suggests_list(world, host):
    sources, data, tmp = world
    with pytest.raises(FtbenchError, match=r"HTTP 404 .*confirmed: false.*fetch --list supp"):
        fetch.fetch_file(sources, "supp", "water_train", **_kw(tmp))


def test_prestaged_data_dir_used_without_request(world, host, monkeypatch):
    sources, data, tmp = world
    staged = tmp / "staged" / "sn2" / "sn2_reactions.npz"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(data["npz"])
    monkeypatch.setenv("FTBENCH_DATA_DIR", str(tmp / "staged"))
    path = fetch.fetch_file(sources, "sn2", "npz", lock_path=tmp / "l.lock", progress=False)
    assert path == staged and host.requests == []
    # A pre-staged file with the wrong content is refused, and left for the user to fix.
    staged.write_bytes(b"junk")
    with pytest.raises(FtbenchError, match="already there but its sha256"):
        fetch.fetch_file(sources, "sn2", "npz", lock_path=tmp / "l.lock", progress=False)
    assert staged.exists() and host.requests == []


def test_prestaged_unpinned_file_is_recorded(world, host):
    sources, data, tmp = world
    staged = tmp / "cache" / "supp" / "sn2/data/train.xyz"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(data["train"])
    fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp))
    assert host.requests == []
    assert fetch.read_lock(tmp / "checksums.lock") == {
        "supp/sn2/data/train.xyz": hashlib.sha256(data["train"]).hexdigest()
    }


def test_config_and_lock_disagree(world, host):
    sources, data, tmp = world
    fetch.record_lock(tmp / "checksums.lock", "sn2/sn2_reactions.npz", "1" * 64)
    with pytest.raises(FtbenchError, match="delete the stale line"):
        fetch.fetch_file(sources, "sn2", "npz", **_kw(tmp))


def test_list_tree_api_with_paging(world, host, capsys):
    sources, data, tmp = world
    host.tree_page_size = 2  # force the Link: rel="next" paging
    listing = fetch.list_hf_files(sources["supp"])
    assert [x["path"] for x in listing] == ["README.md", "sn2/data/train.xyz"]
    assert listing[1]["sha256"] == hashlib.sha256(data["train"]).hexdigest()
    assert listing[0]["sha256"] is None  # not an LFS file: the API gives only a git sha1
    assert fetch.list_hf_files(sources["supp"], "sn2/data")[0]["path"] == "sn2/data/train.xyz"
    cfg = tmp / "sources.yaml"
    cfg.write_text(yaml.safe_dump({"sources": sources}))
    assert main(["fetch", "--sources", str(cfg), "--list", "supp"]) == 0
    out = capsys.readouterr().out
    assert "sn2/data/train.xyz" in out
    assert "water_train: water/Ih/100/train.xyz: NOT FOUND (confirmed: false)" in out
    assert "sn2_train: sn2/data/train.xyz: found" in out


def test_cli_fetch_with_out(world, host, capsys):
    sources, data, tmp = world
    cfg = tmp / "sources.yaml"
    cfg.write_text(yaml.safe_dump({"sources": sources}))
    out = tmp / "raw" / "train.xyz"
    argv = [
        "fetch",
        "--sources",
        str(cfg),
        "--source",
        "supp",
        "--file",
        "sn2_train",
        "--data-dir",
        str(tmp / "cache"),
        "--lock",
        str(tmp / "c.lock"),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    assert out.read_bytes() == data["train"]
    assert (tmp / "c.lock").exists()
    # Without --file only confirmed files are fetched, so the unconfirmed water path is skipped.
    assert main(argv[:5] + argv[7:-3] + ["--no-progress"]) == 0
    assert host.hits(TRAIN_URL) == 1
    assert main(["fetch", "--sources", str(cfg), "--source", "supp", "--file", "nope"]) == 2
    assert "has no file 'nope'" in capsys.readouterr().err


def test_progress_logging_without_tqdm(world, host, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm" or name.startswith("tqdm."):
            raise ImportError("no tqdm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    sources, data, tmp = world
    caplog.set_level("INFO", logger="ftbench.data.fetch")
    fetch.fetch_file(sources, "supp", "sn2_train", **_kw(tmp, progress=True))
    size = len(data["train"]) / 1e6
    assert f"{size:.1f} of {size:.1f} MB" in caplog.text


def test_bad_catalogue_entries():
    good = {"kind": "hf_dataset", "repo": REPO, "revision": REV, "files": {"a": {"path": "x/y"}}}
    fetch.validate_sources({"s": good})
    for bad, match in (
        ({**good, "revision": "main"}, "pin a full 40-hex"),
        ({**good, "kind": "ftp"}, "not one of"),
        ({**good, "files": {"a": {"path": "../etc"}}}, "plain relative path"),
        ({**good, "files": {"a": {"path": "x", "sha256": "abc"}}}, "64 hex"),
        ({**good, "files": {"a": {"path": "x", "sha": None}}}, "unknown keys"),
    ):
        with pytest.raises(FtbenchError, match=match):
            fetch.validate_sources({"s": bad})


def test_shipped_catalogue_matches_mace_urls(monkeypatch):
    monkeypatch.delenv("FTBENCH_BASE_URL", raising=False)
    sources = fetch.load_sources(ROOT / "config" / "paper.yaml")
    supp = sources["mace_ft_supplementary"]
    assert supp["revision"] == REV
    paths = {v["path"]: v.get("confirmed", True) for v in supp["files"].values()}
    confirmed = (
        "sn2/data/train.xyz",
        "sn2/data/valid.xyz",
        "sn2/data/test.xyz",
        "foundation-utils/omat24_filtered_sn2.extxyz",
        "li/data/LPSC_600.extxyz",
    )
    for p in confirmed:
        assert paths[p] is True
    assert all(not ok for p, ok in paths.items() if p not in confirmed)
    # Model and replay URLs are the ones mace-torch itself downloads (read as text: no torch import).
    mace_dir = Path(importlib.util.find_spec("mace").origin).parent
    mace_text = (mace_dir / "calculators" / "foundations_models.py").read_text() + (
        mace_dir / "tools" / "multihead_tools.py"
    ).read_text()
    for name in ("mace_mp_releases", "mace_foundations_releases"):
        for entry in sources[name]["files"].values():
            assert fetch.file_url(sources[name], entry["path"]) in mace_text


def test_fetched_model_corrupted_later_is_named_with_its_pinned_sha256(world, host, capsys):
    sources, data, tmp = world
    cfg = tmp / "sources.yaml"
    cfg.write_text(yaml.safe_dump({"sources": sources}))
    model = tmp / "models" / "mp0.model"
    assert (
        main(
            [
                "fetch",
                "--sources",
                str(cfg),
                "--source",
                "models",
                "--file",
                "mp0",
                "--data-dir",
                str(tmp / "cache"),
                "--lock",
                str(tmp / "c.lock"),
                "--out",
                str(model),
                "--no-progress",
            ]
        )
        == 0
    )
    raw, test = tmp / "raw.xyz", tmp / "test.xyz"
    make_sn2_extxyz(raw)
    # evaluate reads REF_* labels (what prepare writes): the model is the input at fault here
    assert (
        main(
            [
                "convert",
                "--format",
                "extxyz",
                str(raw),
                str(test),
                "--energy-key",
                "mp2_energy",
                "--forces-key",
                "mp2_forces",
            ]
        )
        == 0
    )
    evaluate = ["evaluate", "--model", str(model), "--data", f"test={test}", "--out", str(tmp / "e.json")]
    # the pinned bytes are not a torch file: named, no traceback
    assert main(evaluate) == 2
    assert f"model file {model} is corrupt or not a MACE model" in capsys.readouterr().err
    model.write_bytes(model.read_bytes()[:100])  # cut short after the download
    assert main(evaluate) == 2
    err = capsys.readouterr().err
    assert "differs from the pinned" in err and "models/mace_mp_0/m.model" in err
    assert not (tmp / "e.json").exists()
