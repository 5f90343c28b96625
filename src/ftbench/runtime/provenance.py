"""Provenance written next to every result: argv, versions, input checksums, wall time, device."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import socket
import sys
import time
from importlib import metadata
from pathlib import Path

PACKAGES = ("ftbench", "mace-torch", "torch", "ase", "numpy", "tblite")


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str | None]:
    """Return the versions of python and of the packages a result depends on (None when missing)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: str = "cpu") -> dict:
    """Return where a step ran: device, host, CPUs, SLURM job, visible GPUs (and the GPU name on cuda)."""
    info = {
        "device": device,
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


class Provenance:
    """Start the clock at construction; `write` records everything at the end of the step."""

    def __init__(self, inputs: list[str | Path], argv: list[str] | None = None, device: str = "cpu"):
        self.t0 = time.time()
        self.argv = list(sys.argv if argv is None else argv)
        self.inputs = [Path(p) for p in inputs if p]
        self.device = device

    def record(self, outputs: list[str | Path] = (), extra: dict | None = None) -> dict:
        """Return the provenance record: argv, versions, input hashes, outputs, timing, device and `extra`."""
        return {
            "argv": self.argv,
            "versions": versions(),
            "inputs": {str(p): sha256(p) for p in self.inputs if p.is_file()},
            "outputs": [str(p) for p in outputs],
            "wall_time_s": round(time.time() - self.t0, 3),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.t0)),
            **device_info(self.device),
            **(extra or {}),
        }

    def write(self, path: str | Path, outputs: list[str | Path] = (), extra: dict | None = None) -> dict:
        """Write the provenance record (with `extra`) as JSON to `path`; return it."""
        rec = self.record(outputs, extra)
        write_json(path, rec)
        return rec


def finite_or_none(x) -> float | None:
    """Return a number for a JSON result: None where it is not finite (JSON has no NaN or inf)."""
    x = float(x)
    return x if math.isfinite(x) else None


def write_json(path: str | Path, obj) -> None:
    """Atomic write, so an interrupted job never leaves a half-written result behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)  # Paths, and anything else a result's options hold, as its text
