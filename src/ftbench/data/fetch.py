"""Download the study's pinned sources, with sha256 checks, into a plain cache.

Sources come from a `sources:` mapping (in config/paper.yaml; the fetch rules pass
the config file that holds it). One entry per host:

    sources:
      NAME:
        kind: hf_dataset | zenodo | url | local
        repo: owner/name          # hf_dataset
        path: data/demo           # local: a folder shipped with ftbench (relative: to the repo)
        revision: <commit sha>    # hf_dataset, pinned
        record: "<id>"            # zenodo
        url: https://host/prefix  # url: each file is {url}/{path}
        base_url: https://mirror  # optional: replaces scheme and host
        files:
          LOGICAL:
            path: relative/path   # also its place in the cache
            sha256: <hex> | null  # null: taken from the lock file
            confirmed: true       # false: path not checked at the host

URLs: hf_dataset `{base}/datasets/{repo}/resolve/{revision}/{path}`,
zenodo `{base}/records/{record}/files/{path}?download=1`, url `{url}/{path}`.
`FTBENCH_BASE_URL` replaces the scheme and host of every URL (tests, mirrors). A `local` source
is copied from its folder with the same checks (the shipped demo world comes this way).

Cache: `{data_dir}/{NAME}/{path}`; data_dir is the argument, else
`FTBENCH_DATA_DIR`, else `data/sources`. A file already there is used without
any network access when its sha256 matches, so clusters without internet work
from pre-staged copies.

The fetch rules pass the one source entry they need as JSON (`--sources-json`, from the config's
`sources:` or its `sources_file`): the entry is a rule parameter, so a changed URL, path or pinned
sha256 re-runs the fetch and everything downstream.

A user's own file (`source: local` catalog entries) is copied with `--local FILE --out OUT`;
`OUT.source.json` records its path and sha256 (the copy rule declares the file as its input,
so a newer file or a changed path re-runs the copy).

Checksums not given in the config are recorded in the lock file
(config/checksums.lock, `NAME/path: sha256`) on first download and enforced
afterwards; commit the lock file. A download that fails its hash or is cut
short is deleted, never kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
import urllib.parse
from pathlib import Path, PurePosixPath

import yaml

from ftbench.core.config import ROOT as CONFIG_ROOT
from ftbench.core.errors import FtbenchError
from ftbench.runtime.provenance import sha256, write_json

log = logging.getLogger("ftbench.data.fetch")

DEFAULT_SOURCES = "config/paper.yaml"
DEFAULT_LOCK = "config/checksums.lock"
DEFAULT_DATA_DIR = "data/sources"
DEFAULT_BASES = {"hf_dataset": "https://huggingface.co", "zenodo": "https://zenodo.org"}
KINDS = ("hf_dataset", "zenodo", "url", "local")
SOURCE_KEYS = {
    "kind",
    "repo",
    "revision",
    "record",
    "url",
    "path",
    "base_url",
    "description",
    "citation",
    "license",
    "files",
}
FILE_KEYS = {"path", "sha256", "confirmed", "description", "license"}
_REQUIRED = {"hf_dataset": ("repo", "revision"), "zenodo": ("record",), "url": ("url",), "local": ("path",)}
REPO_ROOT = CONFIG_ROOT  # the checkout, or the working directory of an installed ftbench
_CHUNK = 1 << 20


# ---------------------------------------------------------------- catalogue


def load_sources(path: str | Path) -> dict:
    """Return the validated `sources:` mapping of a YAML file (a bare mapping is accepted too)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FtbenchError(f"sources file {path} does not exist; pass --sources") from None
    except yaml.YAMLError as err:
        raise FtbenchError(f"{path} is not valid YAML: {err}") from None
    if isinstance(doc, dict) and "sources" in doc:
        doc = doc["sources"]
    validate_sources(doc, str(path))
    return doc


def _check_keys(entry, allowed: set[str], where: str, expected: str) -> None:
    if not isinstance(entry, dict):
        raise FtbenchError(f"{where}: expected {expected}")
    unknown = set(entry) - allowed
    if unknown:
        raise FtbenchError(f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}")


def validate_sources(sources, origin: str = "sources") -> None:
    """Raise FtbenchError naming the entry and key at fault."""
    if not isinstance(sources, dict) or not sources:
        raise FtbenchError(f"{origin}: expected a non-empty `sources:` mapping")
    for name, src in sources.items():
        where = f"{origin}: sources.{name}"
        _check_keys(src, SOURCE_KEYS, where, "a mapping")
        kind = src.get("kind")
        if kind not in KINDS:
            raise FtbenchError(f"{where}.kind: {kind!r} is not one of {list(KINDS)}")
        for key in _REQUIRED[kind]:
            if not src.get(key):
                raise FtbenchError(f"{where}: kind {kind} needs `{key}`")
        if kind == "hf_dataset" and not _is_sha(str(src["revision"]), 40):
            raise FtbenchError(f"{where}.revision: pin a full 40-hex commit, not {src['revision']!r}")
        files = src.get("files")
        if not isinstance(files, dict) or not files:
            raise FtbenchError(f"{where}.files: expected a non-empty mapping of logical names")
        for logical, entry in files.items():
            fwhere = f"{where}.files.{logical}"
            _check_keys(entry, FILE_KEYS, fwhere, "a mapping with `path`")
            _check_rel_path(entry.get("path"), fwhere)
            sha = entry.get("sha256")
            if sha is not None and not _is_sha(str(sha), 64):
                raise FtbenchError(f"{fwhere}.sha256: expected 64 hex digits or null, got {sha!r}")
            if not isinstance(entry.get("confirmed", True), bool):
                raise FtbenchError(f"{fwhere}.confirmed: expected true or false")


def _is_sha(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdefABCDEF" for c in text)


def _check_rel_path(path, where: str) -> None:
    # The path doubles as a cache path: no escaping the cache directory.
    if not isinstance(path, str) or not path:
        raise FtbenchError(f"{where}.path: expected a relative path string")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or "\\" in path or ".." in parts or "." in parts:
        raise FtbenchError(f"{where}.path: {path!r} must be a plain relative path (no '..', '/', '\\')")


def _base(src: dict, default: str) -> str:
    return (os.environ.get("FTBENCH_BASE_URL") or src.get("base_url") or default).rstrip("/")


def local_file(src: dict, path: str) -> Path:
    """Where a `local` source keeps `path` (a relative folder is taken from the repository)."""
    folder = Path(src["path"])
    return (folder if folder.is_absolute() else REPO_ROOT / folder) / path


def file_url(src: dict, path: str) -> str:
    """Return the download URL of `path` in source entry `src`."""
    quoted = urllib.parse.quote(path, safe="/")
    kind = src["kind"]
    if kind == "local":
        return local_file(src, path).as_uri()
    if kind == "hf_dataset":
        base = _base(src, DEFAULT_BASES[kind])
        return f"{base}/datasets/{src['repo']}/resolve/{src['revision']}/{quoted}"
    if kind == "zenodo":
        base = _base(src, DEFAULT_BASES[kind])
        return f"{base}/records/{src['record']}/files/{quoted}?download=1"
    parts = urllib.parse.urlsplit(str(src["url"]).rstrip("/"))
    base = _base(src, f"{parts.scheme}://{parts.netloc}")
    return f"{base}{parts.path}/{quoted}"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the data cache folder: `data_dir`, else $FTBENCH_DATA_DIR, else the default."""
    return Path(data_dir or os.environ.get("FTBENCH_DATA_DIR") or DEFAULT_DATA_DIR)


def cache_path(data_dir: str | Path | None, name: str, path: str) -> Path:
    """Return where file `path` of source `name` sits in the data cache."""
    return resolve_data_dir(data_dir) / name / path


# ---------------------------------------------------------------- the config's sources

# What identifies a fetched file: a change to any of these must re-run its fetch (a rule param).
# Descriptions, licences and `confirmed` only inform people, so they are left out.
_IDENTITY_KEYS = ("kind", "repo", "revision", "record", "url", "path", "base_url")


def config_sources(cfg: dict) -> dict:
    """Return the sources a config can fetch from: its `sources_file`'s, with its own `sources:` on top."""
    from ftbench.core.config import read_yaml, sources_path

    out = {}
    path = sources_path(cfg)
    if path.is_file():
        out.update((read_yaml(path) or {}).get("sources") or {})
    out.update(cfg.get("sources") or {})
    return out


def source_entry(sources: dict, name: str, logical: str, where: str = "") -> dict:
    """Return `{name: entry}` reduced to what identifies file `logical` of source `name`.

    The fetch rules pass it to `ftbench fetch --sources-json` and keep it as a parameter, so a new
    URL, revision, path or pinned sha256 re-runs the fetch (and what depends on it).
    """
    where = f"{where}: " if where else ""
    if name not in sources:
        raise FtbenchError(
            f"{where}unknown source {name!r}; the config's `sources:` and its `sources_file` define "
            f"{', '.join(sorted(sources)) or 'none'}. Add it under `sources:`, or give the file as "
            "`{path: FILE}` (`source: local` for a benchmark or model)"
        )
    src = sources[name]
    files = src.get("files") or {}
    if logical not in files:
        raise FtbenchError(f"{where}source {name!r} has no file {logical!r}; known: {', '.join(sorted(files))}")
    entry = {key: src[key] for key in _IDENTITY_KEYS if src.get(key) is not None}
    entry["files"] = {logical: {key: files[logical][key] for key in ("path", "sha256") if key in files[logical]}}
    return {name: entry}


# ---------------------------------------------------------------- a user's own file


def local_record_path(out: str | Path) -> Path:
    """Where the record of a copied (or fetched) file sits: `<out>.source.json`."""
    out = Path(out)
    return out.with_name(out.name + ".source.json")


def copy_local(src: str | Path, out: str | Path) -> dict:
    """Copy a user's own file to `out` (a `.gz` is decompressed) and record it; return the record.

    `<out>.source.json` holds the copy's sha256 (ftbench.probes.inference checks a model copy against it),
    the original's path, sha256, size and time, and the previous original's sha256 when it changed.
    A copy, never a hard link: a link would share the original's mtime, and an edited original
    would then never look newer than the copy to Snakemake.
    """
    src, out = Path(src).expanduser(), Path(out)
    if not src.is_file():
        raise FtbenchError(
            f"{src} does not exist or is not a file; it is the `path:` of a `source: local` entry "
            "of the config's catalog: fix the path there"
        )
    record_path = local_record_path(out)
    previous = None
    if record_path.is_file():
        try:
            previous = json.loads(record_path.read_text())
        except ValueError:
            previous = None
    got = sha256(src)
    place(src, out, link=False)
    stat = src.stat()
    record = {
        "sha256": got if not _decompressed(src, out) else sha256(out),
        "lock_key": None,
        "lock": None,
        "source": "local",
        "path": str(src.resolve()),
        "source_sha256": got,
        "bytes": stat.st_size,
        "modified": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(stat.st_mtime)),
        "copied": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if previous and previous.get("source_sha256") not in (None, got):
        record["previous"] = {key: previous.get(key) for key in ("path", "source_sha256", "copied")}
        log.info("%s changed since its last copy: sha256 %s -> %s", src, previous.get("source_sha256"), got)
    write_json(record_path, record)
    log.info("copied %s (sha256 %s) to %s", src, got, out)
    return record


def _decompressed(src: Path, out: Path) -> bool:
    return src.suffix == ".gz" and out.suffix != ".gz"


# ---------------------------------------------------------------- lock file

_LOCK_HEADER = (
    "# sha256 of downloaded sources whose hash the config leaves null.\n"
    "# Written by `ftbench fetch` on first download, enforced afterwards; commit it.\n"
)


def read_lock(path: str | Path | None) -> dict[str, str]:
    """Return the lock file's {key: sha256} (empty when there is none), read under a shared lock."""
    if path is None or not Path(path).exists():
        return {}
    with open(path) as fh:
        _flock(fh, shared=True)
        text = fh.read()
    return _parse_lock(text, path)


def _parse_lock(text: str, path) -> dict[str, str]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise FtbenchError(f"lock file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict) or not all(_is_sha(str(v), 64) for v in data.values()):
        raise FtbenchError(f"lock file {path}: expected a mapping `source/path: <64 hex sha256>`")
    return {str(k): str(v).lower() for k, v in data.items()}


def record_lock(path: str | Path, key: str, sha256: str) -> None:
    """Add `key: sha256` to the lock file; safe against parallel fetch jobs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        _flock(fh, shared=False)
        fh.seek(0)
        data = _parse_lock(fh.read(), path)
        if data.get(key, sha256) != sha256:
            raise FtbenchError(f"lock file {path} already has {key}: {data[key]}, not {sha256}")
        data[key] = sha256
        fh.seek(0)
        fh.truncate()
        fh.write(_LOCK_HEADER + yaml.safe_dump(dict(sorted(data.items())), default_flow_style=False))
        fh.flush()
        os.fsync(fh.fileno())


def _flock(fh, shared: bool) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no parallel-job protection
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)


# ---------------------------------------------------------------- download


class _Truncated(ValueError):
    """ValueError so that pooch retries it like a hash mismatch."""


class _LogProgress:
    """Stand-in for tqdm (pooch's progress protocol): bytes so far / total, to the log."""

    def __init__(self, label: str, every_s: float = 10.0):
        self.label, self.every_s, self.total, self.n = label, every_s, 0, 0
        self._last = time.monotonic()

    def update(self, n: int) -> None:
        self.n += n
        if time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self._say()

    def _say(self) -> None:
        total = f" of {self.total / 1e6:.1f}" if self.total else ""
        log.info("%s: %.1f%s MB", self.label, min(self.n, self.total or self.n) / 1e6, total)

    def reset(self) -> None:
        self.n = 0

    def close(self) -> None:
        self._say()


class _HashingWriter:
    """File wrapper: counts and hashes bytes as pooch streams them."""

    def __init__(self, fh):
        self.fh, self.n, self.digest = fh, 0, hashlib.sha256()

    def write(self, block: bytes) -> int:
        self.digest.update(block)
        self.n += len(block)
        return self.fh.write(block)

    def flush(self) -> None:
        self.fh.flush()


class _Downloader:
    """pooch downloader: HTTPDownloader plus the hash of what arrived and a length check."""

    def __init__(self, label: str, progress: bool, timeout: float):
        self.label, self.progress, self.timeout = label, progress, timeout
        self.got_sha256: str | None = None
        self.got_bytes = 0
        self.expected_bytes: int | None = None
        self.writer: _HashingWriter | None = None

    def __call__(self, url, output_file, pooch_obj=None, check_only=False):
        import pooch

        final = {}

        def remember(response, *args, **kwargs):
            # Called per response, redirects first: the last call is the file itself.
            final["headers"] = response.headers
            length = response.headers.get("Content-Length")
            self.expected_bytes = None
            if length is not None and not response.headers.get("Content-Encoding"):
                self.expected_bytes = int(length)

        if self.progress:
            try:
                import tqdm  # noqa: F401

                bar = True
            except ImportError:
                bar = _LogProgress(self.label)
        else:
            bar = False
        http = pooch.HTTPDownloader(
            progressbar=bar,
            chunk_size=_CHUNK,
            timeout=self.timeout,
            hooks={"response": remember},
            headers={"User-Agent": "ftbench-fetch"},
        )
        if check_only:
            return http(url, output_file, pooch_obj, check_only=True)
        self.expected_bytes, self.got_sha256 = None, None
        with open(output_file, "w+b") as fh:
            self.writer = _HashingWriter(fh)
            http(url, self.writer, pooch_obj)
        self.got_sha256, self.got_bytes = self.writer.digest.hexdigest(), self.writer.n
        headers = final.get("headers", {})
        # expected_bytes stays None under Content-Encoding: requests decompresses, lengths differ.
        if self.expected_bytes is not None and self.got_bytes != self.expected_bytes:
            raise _Truncated(f"got {self.got_bytes} of {self.expected_bytes} bytes")
        ctype = headers.get("Content-Type", "")
        if ctype.startswith("text/html") and not url.split("?")[0].endswith((".html", ".htm")):
            raise _Truncated("the server sent an HTML page (an error or login page?), not the file")


def _prestage_hint(dest: Path) -> str:
    return (
        f"To work without network access, download the file elsewhere, copy it to exactly "
        f"{dest} (the data dir is set by --data-dir or FTBENCH_DATA_DIR) and rerun."
    )


def fetch_file(
    sources: dict,
    name: str,
    logical: str,
    *,
    data_dir: str | Path | None = None,
    lock_path: str | Path | None = DEFAULT_LOCK,
    retries: int = 2,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Local path of file `logical` of source `name`: cached, pre-staged or downloaded; always hash-checked."""
    import pooch
    import requests

    if name not in sources:
        raise FtbenchError(f"unknown source {name!r}; known: {sorted(sources)}")
    src = sources[name]
    if logical not in src["files"]:
        raise FtbenchError(f"source {name!r} has no file {logical!r}; known: {sorted(src['files'])}")
    entry = src["files"][logical]
    path = entry["path"]
    dest = cache_path(data_dir, name, path)
    url = file_url(src, path)
    key = f"{name}/{path}"

    pinned = entry.get("sha256")
    pinned = pinned.lower() if pinned else None
    locked = read_lock(lock_path).get(key)
    if pinned and locked and pinned != locked:
        raise FtbenchError(
            f"{key}: sources config pins sha256 {pinned} but lock file {lock_path} has "
            f"{locked}; delete the stale line from the lock file"
        )
    expected = pinned or locked
    origin = "the sources config" if pinned else f"lock file {lock_path}"

    if dest.exists():
        got = sha256(dest)
        if expected is None:
            _remember(lock_path, key, got, dest)
            return dest
        if got == expected:
            return dest
        raise FtbenchError(
            f"{dest} is already there but its sha256 is {got}, not {expected} "
            f"(from {origin}) as pinned for {url}. Replace it with the right file, "
            f"or delete it to download again."
        )

    if src["kind"] == "local":
        return _copy_local(local_file(src, path), dest, expected, origin, key, lock_path)
    if not entry.get("confirmed", True):
        log.warning(
            "%s: path %r is not confirmed at the host; if it is missing, list the real "
            "paths with `ftbench fetch --list %s`",
            key,
            path,
            name,
        )
    downloader = _Downloader(key, progress, timeout)
    store = pooch.create(
        path=resolve_data_dir(data_dir) / name,
        base_url="",
        registry={path: f"sha256:{expected}" if expected else None},
        urls={path: url},
        retry_if_failed=retries,
    )
    try:
        store.fetch(path, downloader=downloader)
    except requests.exceptions.HTTPError as err:
        status = err.response.status_code if err.response is not None else "error"
        hint = ""
        if status == 404 and not entry.get("confirmed", True):
            hint = (
                f" The path is marked `confirmed: false`: list the files at the pinned "
                f"revision with `ftbench fetch --list {name}` and fix sources.{name}.files.{logical}.path."
            )
        raise FtbenchError(f"HTTP {status} for {url}.{hint} {_prestage_hint(dest)}") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
        if isinstance(err, requests.exceptions.ConnectionError) and _is_cut_short(err):
            raise FtbenchError(_cut_short_msg(url, dest, downloader, err)) from None
        raise FtbenchError(f"could not download {url}: {_reason(err)}. {_prestage_hint(dest)}") from None
    except requests.exceptions.RequestException as err:  # ChunkedEncodingError etc.
        raise FtbenchError(_cut_short_msg(url, dest, downloader, err)) from None
    except _Truncated as err:
        raise FtbenchError(_cut_short_msg(url, dest, downloader, err)) from None
    except ValueError:
        # pooch's hash check; the temporary download is already deleted.
        raise FtbenchError(
            f"sha256 mismatch for {url}: expected {expected} (from {origin}), got "
            f"{downloader.got_sha256}. The download was deleted. If the host really serves a new "
            f"file, check it and update the sha256 (in the sources config, or delete the {key} "
            f"line of the lock file); otherwise retry later or pre-stage a verified copy. "
            f"{_prestage_hint(dest)}"
        ) from None
    if expected is None:
        _remember(lock_path, key, downloader.got_sha256 or sha256(dest), dest)
    return dest


def _copy_local(origin_file: Path, dest: Path, expected: str | None, origin: str, key: str, lock_path) -> Path:
    """Copy a shipped file into the cache, hash-checked like a download; return its cache path."""
    if not origin_file.is_file():
        raise FtbenchError(
            f"{key}: {origin_file} does not exist; it ships with ftbench (git checkout "
            "incomplete?) or is rebuilt with `snakemake --configfile config/demo_build.yaml`"
        )
    got = sha256(origin_file)
    if expected is not None and got != expected:
        raise FtbenchError(
            f"{origin_file} has sha256 {got}, not {expected} as pinned in {origin}; "
            "a rebuilt demo world needs its new sha256 in the config (demo_ship prints them)"
        )
    place(origin_file, dest)
    if expected is None:
        _remember(lock_path, key, got, dest)
    return dest


def _remember(lock_path, key: str, sha: str, dest: Path) -> None:
    if lock_path is None:
        log.warning("%s: sha256 %s not pinned and no lock file given: not verified", key, sha)
        return
    record_lock(lock_path, key, sha)
    log.info("%s: recorded sha256 %s in %s (commit it)", key, sha, lock_path)


def _reason(err: Exception) -> str:
    text = str(err)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "Temporary failure in name resolution",
        "nodename nor servname",
        "timed out",
        "Network is unreachable",
    ):
        if marker in text:
            return marker.lower()
    return type(err).__name__


def _is_cut_short(err: Exception) -> bool:
    text = str(err)
    return "IncompleteRead" in text or "Connection broken" in text


def _cut_short_msg(url: str, dest: Path, downloader: _Downloader, err: Exception) -> str:
    if isinstance(err, _Truncated):
        detail = str(err)
    else:
        got = downloader.writer.n if downloader.writer is not None else 0
        of = f" of {downloader.expected_bytes}" if downloader.expected_bytes is not None else ""
        detail = f"connection broken after {got}{of} bytes ({_reason(err)})"
    return (
        f"download of {url} was cut short or invalid: {detail}. Nothing was kept at {dest}; "
        f"rerun to retry. {_prestage_hint(dest)}"
    )


def select_files(src: dict, files: list[str] | None = None, include_unconfirmed: bool = False) -> list[str]:
    """Logical names to fetch: those asked for, else all confirmed ones (or all)."""
    if files:
        return list(files)
    return [k for k, v in src["files"].items() if include_unconfirmed or v.get("confirmed", True)]


def fetch_source(
    sources: dict, name: str, files: list[str] | None = None, *, include_unconfirmed: bool = False, **kwargs
) -> dict[str, Path]:
    """fetch_file for several files of one source; {logical: path}."""
    if name not in sources:
        raise FtbenchError(f"unknown source {name!r}; known: {sorted(sources)}")
    return {k: fetch_file(sources, name, k, **kwargs) for k in select_files(sources[name], files, include_unconfirmed)}


# ---------------------------------------------------------------- listing


def list_hf_files(src: dict, prefix: str = "", timeout: float = 60.0) -> list[dict]:
    """Files of an hf_dataset source at its pinned revision: [{path, size, sha256 or None}]."""
    import requests

    if src["kind"] != "hf_dataset":
        raise FtbenchError(f"--list works for hf_dataset sources only, not kind {src['kind']}")
    base = _base(src, DEFAULT_BASES["hf_dataset"])
    tail = "/" + urllib.parse.quote(prefix.strip("/"), safe="/") if prefix.strip("/") else ""
    url = f"{base}/api/datasets/{src['repo']}/tree/{src['revision']}{tail}?recursive=true"
    out, pages = [], 0
    while url:
        try:
            resp = requests.get(url, timeout=timeout, headers={"User-Agent": "ftbench-fetch"})
            resp.raise_for_status()
            items = resp.json()
        except requests.exceptions.HTTPError as err:
            raise FtbenchError(f"HTTP {err.response.status_code} for {url}: check repo, revision and path") from None
        except requests.exceptions.RequestException as err:
            raise FtbenchError(f"could not list {url}: {_reason(err)}") from None
        except ValueError:
            raise FtbenchError(f"{url} did not return JSON") from None
        if not isinstance(items, list):
            raise FtbenchError(f"{url}: expected a JSON list of tree entries")
        for item in items:
            if item.get("type") == "file":
                lfs = item.get("lfs") or {}
                out.append(
                    {"path": item["path"], "size": item.get("size"), "sha256": lfs.get("oid") or lfs.get("sha256")}
                )
        # The tree API pages long listings with a Link: <...>; rel="next" header.
        url = resp.links.get("next", {}).get("url")
        pages += 1
        if pages > 10000:
            raise FtbenchError("tree listing did not end after 10000 pages")
    return sorted(out, key=lambda d: d["path"])


def _print_listing(name: str, src: dict, listing: list[dict], out=None) -> None:
    out = out or sys.stdout
    print(f"# {name}: {src['repo']} @ {src['revision']} ({len(listing)} files)", file=out)
    print("# size_bytes  sha256(lfs only)  path", file=out)
    for item in listing:
        print(f"{item['size'] if item['size'] is not None else '-'}\t{item['sha256'] or '-'}\t{item['path']}", file=out)
    found = {item["path"]: item for item in listing}
    print("# configured files:", file=out)
    for logical, entry in src["files"].items():
        state = "found" if entry["path"] in found else "NOT FOUND"
        note = "" if entry.get("confirmed", True) else " (confirmed: false)"
        print(f"#   {logical}: {entry['path']}: {state}{note}", file=out)


# ---------------------------------------------------------------- CLI


def add_arguments(parser) -> None:
    """Add the `ftbench fetch` options to `parser`."""
    parser.add_argument(
        "--sources", default=DEFAULT_SOURCES, help=f"YAML with a `sources:` mapping (default {DEFAULT_SOURCES})"
    )
    parser.add_argument(
        "--sources-json",
        default=None,
        metavar="JSON",
        help="a `sources:` mapping as JSON, used instead of --sources (the fetch rules pass the one entry they need)",
    )
    parser.add_argument("--source", action="append", default=[], metavar="NAME", help="source to fetch (repeatable)")
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="LOGICAL",
        help="logical file name within the source (repeatable; default: all confirmed files)",
    )
    parser.add_argument(
        "--include-unconfirmed", action="store_true", help="with no --file: also fetch files marked confirmed: false"
    )
    parser.add_argument(
        "--data-dir", default=None, help=f"cache / pre-staged files (default $FTBENCH_DATA_DIR or {DEFAULT_DATA_DIR})"
    )
    parser.add_argument("--lock", default=DEFAULT_LOCK, help=f"checksum lock file (default {DEFAULT_LOCK})")
    parser.add_argument("--no-lock", action="store_true", help="neither read nor write a lock file")
    parser.add_argument("--out", default=None, help="also place the (single) fetched file here (hard link, else copy)")
    parser.add_argument("--retries", type=int, default=2, help="download retries (default 2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per network read (default 60)")
    parser.add_argument("--no-progress", action="store_true", help="no progress output")
    parser.add_argument(
        "--list", metavar="NAME", default=None, help="list the files of hf_dataset source NAME at its pinned revision"
    )
    parser.add_argument("--path", default="", help="with --list: only this folder")
    parser.add_argument(
        "--local",
        default=None,
        metavar="FILE",
        help="copy this file of your own to --out and record its sha256 in OUT.source.json (no sources file)",
    )


def run(args) -> int:
    """Run `ftbench fetch` with parsed `args`: fetch (or list) and print the paths; return the exit code."""
    if args.local:
        if not args.out:
            raise FtbenchError("--local needs --out (where the copy goes)")
        copy_local(args.local, args.out)
        print(args.out)
        return 0
    if args.sources_json:
        try:
            sources = json.loads(args.sources_json)
        except ValueError as err:
            raise FtbenchError(f"--sources-json is not valid JSON: {err}") from None
        if "error" in sources:  # the workflow could not resolve the source (common.smk fetch_entry)
            raise FtbenchError(sources["error"])
        validate_sources(sources, "--sources-json")
    else:
        sources = load_sources(args.sources)
    if args.list:
        if args.list not in sources:
            raise FtbenchError(f"unknown source {args.list!r}; known: {sorted(sources)}")
        listing = list_hf_files(sources[args.list], args.path, timeout=args.timeout)
        _print_listing(args.list, sources[args.list], listing)
        return 0
    if not args.source:
        raise FtbenchError(f"name a source with --source (known: {sorted(sources)}) or use --list NAME")
    if args.file and len(args.source) != 1:
        raise FtbenchError("--file needs exactly one --source")
    lock = None if args.no_lock else args.lock
    fetched = []
    for name in args.source:
        got = fetch_source(
            sources,
            name,
            args.file or None,
            include_unconfirmed=args.include_unconfirmed,
            data_dir=args.data_dir,
            lock_path=lock,
            retries=args.retries,
            progress=not args.no_progress,
            timeout=args.timeout,
        )
        fetched.extend(got.values())
    if args.out:
        if len(fetched) != 1:
            raise FtbenchError(f"--out needs exactly one file, but {len(fetched)} were selected; add --file")
        place(fetched[0], args.out)
        if len(args.source) == 1 and args.file and len(args.file) == 1:
            record_source(args.out, fetched[0], sources, args.source[0], args.file[0], lock)
    for path in fetched:
        print(path)
    return 0


def record_source(
    out: str | Path, fetched: str | Path, sources: dict, name: str, logical: str, lock: str | Path | None
) -> None:
    """Write `<out>.source.json`: the sha256 and lock-file key of a placed file.

    With it ftbench.probes.inference can tell a model that was corrupted after its download from a good one.
    """
    path = sources[name]["files"][logical]["path"]
    record = {"sha256": sha256(fetched), "lock_key": f"{name}/{path}", "lock": str(lock) if lock else None}
    write_json(str(out) + ".source.json", record)


def place(src: str | Path, out: str | Path, link: bool = True) -> Path:
    """Put a cached file at `out` atomically (hard link when possible and `link`, else a copy).

    A `.gz` source placed under a name without `.gz` is decompressed (the pipeline streams plain extxyz).
    """
    src, out = Path(src), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    if _decompressed(src, out):
        import gzip

        with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    elif not link:
        shutil.copyfile(src, tmp)
    else:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
    os.replace(tmp, out)
    return out


__all__ = [
    "load_sources",
    "validate_sources",
    "file_url",
    "cache_path",
    "resolve_data_dir",
    "read_lock",
    "record_lock",
    "fetch_file",
    "fetch_source",
    "select_files",
    "list_hf_files",
    "place",
    "config_sources",
    "source_entry",
    "copy_local",
    "add_arguments",
    "run",
]
