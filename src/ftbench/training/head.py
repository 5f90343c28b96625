"""`ftbench head`: the single-head artefact of one head of a multihead foundation model.

Made once per (model, head) with mace's own remove_pt_head (what mace_run_train does with
--foundation_head), then used for everything: E0s, the mismatch check, pseudolabels, fine-tunes,
the untouched evaluation and robustness, so no step can fall back to another head.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ftbench.core.errors import FtbenchError
from ftbench.runtime.provenance import Provenance


def write_head_model(model_path: Path, head: str, out: Path) -> list[str]:
    """Save `head` of the model at `model_path` as a single-head model; returns the model's heads."""
    import torch
    from mace.tools import torch_tools

    from ftbench.probes.inference import heads_of, select_head

    if not model_path.is_file():
        raise FtbenchError(f"model file {model_path} does not exist; run the step that makes it first")
    model = torch.load(model_path, map_location="cpu", weights_only=False)
    dtype = next(model.parameters()).dtype
    torch_tools.set_default_dtype("float64" if dtype == torch.float64 else "float32")
    single = select_head(model, head, str(model_path))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    torch.save(single, tmp)
    os.replace(tmp, out)
    return heads_of(model)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the `ftbench head` options to `p`."""
    p.add_argument("--model", required=True, type=Path, help="a (multihead) mace model")
    p.add_argument("--head", required=True, help="the head to keep; an unknown head lists the model's heads")
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace) -> int:
    """Run `ftbench head` with parsed `args`: write the one-head model; return the exit code."""
    prov = Provenance([args.model])
    heads = write_head_model(args.model, args.head, args.out)
    prov.write(
        args.out.with_suffix(".provenance.json"), [args.out], extra={"head": args.head, "heads_of_source": heads}
    )
    print(f"{args.out}: head {args.head!r} of {args.model} (heads: {', '.join(heads)})")
    return 0
