"""ASE calculators for the models ftbench trains or downloads."""

from __future__ import annotations

from pathlib import Path

from ftbench.errors import FtbenchError


def load_calculator(model: str | Path, head: str | None = None, device: str = "cpu",
                    default_dtype: str = "float64"):
    """A MACECalculator for a saved mace model file, with `head` selected for multihead models."""
    from mace.calculators import MACECalculator

    path = Path(model)
    if not path.is_file():
        raise FtbenchError(f"model file {path} does not exist; run the step that makes it first")
    kwargs = {"head": head} if head else {}
    return MACECalculator(model_paths=str(path), device=device, default_dtype=default_dtype, **kwargs)


def model_heads(model) -> list[str]:
    """Head names of a loaded mace model (single-head models report ['Default'])."""
    return list(getattr(model, "heads", None) or ["Default"])
