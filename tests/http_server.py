"""A fake Hugging Face / Zenodo / GitHub host on 127.0.0.1, and fixture files in the real formats.

Imported by the tests (not a conftest): `with serve() as host: ...`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

LFS_SUFFIXES = (".xyz", ".extxyz", ".hdf5", ".h5", ".npz", ".model")


class FakeHost:
    """Files by URL path, a request log, and switches for failure modes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hf: dict[tuple[str, str], dict[str, bytes]] = {}
        self.requests: list[str] = []
        self.truncate: set[str] = set()  # serve half the body under the full Content-Length
        self.fail_first: dict[str, int] = {}  # path -> number of 503 answers before serving
        self.redirects: dict[str, str] = {}  # path -> path it answers 302 to (GitHub/HF CDN style)
        self.content_type = "application/octet-stream"
        self.tree_page_size = 1000
        self.base = ""

    def add(self, url_path: str, data: bytes) -> str:
        self.files[url_path] = data
        return url_path

    def add_hf(self, repo: str, revision: str, path: str, data: bytes) -> str:
        self.hf.setdefault((repo, revision), {})[path] = data
        return self.add(f"/datasets/{repo}/resolve/{revision}/{path}", data)

    def add_zenodo(self, record: str, name: str, data: bytes) -> str:
        return self.add(f"/records/{record}/files/{name}", data)

    def hits(self, url_path: str) -> int:
        return sum(r == url_path for r in self.requests)

    def tree(self, repo: str, revision: str, prefix: str) -> list[dict]:
        files = self.hf.get((repo, revision))
        if files is None:
            return None
        prefix = prefix.strip("/")
        entries, dirs = [], set()
        for path, data in sorted(files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            parts = path.split("/")
            for k in range(1, len(parts)):
                d = "/".join(parts[:k])
                if (not prefix or d.startswith(prefix + "/")) and d not in dirs:
                    dirs.add(d)
                    entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": d})
            item = {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": path}
            if path.endswith(LFS_SUFFIXES):
                item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(item)
        return entries


def _handler(host: FakeHost):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes, ctype: str, length: int | None = None, headers=()):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            parts = urllib.parse.urlsplit(self.path)
            path = urllib.parse.unquote(parts.path)
            host.requests.append(path)
            if path.startswith("/api/datasets/"):
                return self._tree(path, urllib.parse.parse_qs(parts.query))
            if path in host.redirects:
                return self._send(
                    302, b"<html>redirect</html>", "text/html", headers=[("Location", host.base + host.redirects[path])]
                )
            if host.fail_first.get(path, 0) > 0:
                host.fail_first[path] -= 1
                return self._send(503, b"busy", "text/plain")
            data = host.files.get(path)
            if data is None:
                return self._send(404, b"Entry not found", "text/plain")
            if path in host.truncate:
                # Full length announced, half sent, then the connection closes (HTTP/1.0).
                return self._send(200, data[: len(data) // 2], host.content_type, length=len(data))
            self._send(200, data, host.content_type)

        def _tree(self, path, query):
            # /api/datasets/<owner>/<name>/tree/<revision>[/<prefix>]
            bits = path.split("/")
            if len(bits) < 7 or bits[5] != "tree":
                return self._send(404, b"{}", "application/json")
            repo, revision, prefix = f"{bits[3]}/{bits[4]}", bits[6], "/".join(bits[7:])
            entries = host.tree(repo, revision, prefix)
            if entries is None:
                return self._send(404, b'{"error": "Revision not found"}', "application/json")
            start = int(query.get("cursor", ["0"])[0])
            page = entries[start : start + host.tree_page_size]
            headers = []
            if start + host.tree_page_size < len(entries):
                nxt = f"{host.base}{path}?recursive=true&cursor={start + host.tree_page_size}"
                headers.append(("Link", f'<{nxt}>; rel="next"'))
            self._send(200, json.dumps(page).encode(), "application/json", headers=headers)

    return Handler


@contextlib.contextmanager
def serve():
    """Run a FakeHost on an ephemeral loopback port; stopped on exit."""
    host = FakeHost()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(host))
    server.daemon_threads = True
    host.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- fixture files


def make_sn2_extxyz(path, n_configs: int = 3, seed: int = 0) -> dict:
    """Like sn2/data/train.xyz: mp2_energy / mp2_forces plus isolated atoms. Returns the labels."""
    import ase.io
    from ase import Atoms

    rng = np.random.default_rng(seed)
    images, energies, forces = [], [], []
    for symbol, e0 in (("H", -13.6), ("C", -1027.5), ("F", -2713.1), ("Cl", -12470.0)):
        a = Atoms(symbol, positions=[[0, 0, 0]], pbc=False)
        a.info.update(config_type="IsolatedAtom", mp2_energy=e0)
        images.append(a)
        energies.append(e0)
        forces.append(None)
    for i in range(n_configs):
        a = Atoms("CH3FCl", positions=rng.normal(scale=1.2, size=(6, 3)), pbc=False)
        e = -16000.0 + rng.normal()
        f = rng.normal(size=(6, 3))
        a.info.update(mp2_energy=e, config_energy_weight=0.1 if i == 0 else 1.0)
        a.arrays["mp2_forces"] = f
        images.append(a)
        energies.append(e)
        forces.append(f)
    ase.io.write(path, images, format="extxyz")
    return {"energies": energies, "forces": forces, "images": images}


SPICE_SUBSET = "SPICE PubChem Set 1 Single Points Dataset v1.2"


def make_spice_hdf5(path, seed: int = 1) -> dict:
    """SPICE-style HDF5: three molecule groups (one charged, one without formal_charges)."""
    import h5py

    rng = np.random.default_rng(seed)
    groups = {
        "water": dict(z=[8, 1, 1], fc=[0, 0, 0], subset=SPICE_SUBSET, smiles="[H:2][O:1][H:3]"),
        "acetate": dict(
            z=[6, 6, 8, 8, 1, 1, 1],
            fc=[0, 0, 0, -1, 0, 0, 0],
            subset=SPICE_SUBSET,
            smiles="[C:1]([C:2](=[O:3])[O-:4])([H:5])([H:6])[H:7]",
        ),
        "[Na+].[Cl-]": dict(
            z=[11, 17], fc=None, subset="SPICE Ion Pairs Single Points Dataset v1.2", smiles="[Na+:1].[Cl-:2]"
        ),
    }
    out = {}
    with h5py.File(path, "w") as h5:
        for name, spec in groups.items():
            n, m = len(spec["z"]), 2
            g = h5.create_group(name)
            g["atomic_numbers"] = np.array(spec["z"], dtype=np.int16)
            conf = rng.normal(scale=2.0, size=(m, n, 3))
            energy = -100.0 * n + rng.normal(size=m)
            grad = rng.normal(scale=0.05, size=(m, n, 3))
            g["conformations"] = conf.astype(np.float32)
            g["dft_total_energy"] = energy
            g["dft_total_gradient"] = grad.astype(np.float32)
            g["subset"] = np.array([spec["subset"].encode()])
            g["smiles"] = np.array([spec["smiles"].encode()])
            if spec["fc"] is not None:
                g["formal_charges"] = np.array(spec["fc"], dtype=np.float32)
            # what the file really holds (float32 where stored as float32)
            out[name] = dict(
                spec,
                conf=conf.astype(np.float32).astype(float),
                energy=energy,
                grad=grad.astype(np.float32).astype(float),
            )
    return out


def make_sn2_npz(path, seed: int = 2) -> dict:
    """SN2-reactions-style npz: zero-padded Z/R/F, E relative to free atoms, Q, D."""
    rng = np.random.default_rng(seed)
    mols = [[6, 1, 1, 1, 9, 17], [6, 1, 1, 1, 35], [6, 1, 1, 1, 9, 17], [6, 1, 1, 1, 53, 9]]
    width, m = 6, len(mols)
    N = np.array([len(z) for z in mols])
    Z = np.zeros((m, width), dtype=np.int64)
    R = np.zeros((m, width, 3))
    F = np.zeros((m, width, 3))
    for i, z in enumerate(mols):
        Z[i, : len(z)] = z
        R[i, : len(z)] = rng.normal(scale=1.5, size=(len(z), 3))
        F[i, : len(z)] = rng.normal(size=(len(z), 3))
    E = rng.normal(loc=-20.0, size=m)
    Q = -np.ones(m)
    D = rng.normal(size=(m, 3))
    np.savez(path, N=N, Z=Z, R=R, E=E, F=F, Q=Q, D=D)
    return dict(N=N, Z=Z, R=R, E=E, F=F, Q=Q, D=D)
