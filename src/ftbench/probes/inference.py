"""Batched predictions of a saved mace model (the same path mace's eval_configs takes)."""

from __future__ import annotations

from pathlib import Path

from ftbench.core.errors import FtbenchError

MODEL_SOURCE_SUFFIX = ".source.json"  # beside a fetched model: its sha256 and lock-file key


def resolve_device(device: str) -> str:
    """`auto`: cuda when a GPU is visible to this process, else cpu; any other name as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def read_model(path: str | Path, device: str = "cpu"):
    """Open a saved MACE model: the one way ftbench does.

    A missing, corrupt or foreign file, or a fetched model whose bytes no longer match its pinned
    sha256, is an error naming the file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FtbenchError(f"model file {path} does not exist; run the step that makes it first")
    check_model_checksum(path)
    fix = "delete it and rerun the step that makes it (pretraining, fine-tuning or fetch)"
    try:
        model = torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # pickle, zip and torch raise many types for a bad file
        raise FtbenchError(
            f"model file {path} is corrupt or not a MACE model ({type(err).__name__}: {err}); {fix}"
        ) from None
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "atomic_numbers") and hasattr(model, "r_max")):
        raise FtbenchError(
            f"model file {path} is corrupt or not a MACE model (it holds a "
            f"{type(model).__name__}, not a saved MACE torch module); {fix}"
        )
    return model


def check_model_checksum(path: Path) -> None:
    """Refuse a fetched model whose bytes changed since its download.

    A fetched model carries `<file>.source.json` (written by `ftbench fetch --out`): its bytes must
    still have the sha256 of the lock file (or of the config) they were fetched with.
    """
    import json

    from ftbench.runtime.provenance import sha256

    record = path.with_name(path.name + MODEL_SOURCE_SUFFIX)
    if not record.is_file():
        return
    info = json.loads(record.read_text())
    expected = info["sha256"]
    lock = Path(info.get("lock") or "")
    if info.get("lock_key") and lock.is_file():
        from ftbench.data.fetch import read_lock

        expected = read_lock(lock).get(info["lock_key"], expected)
    got = sha256(path)
    if got != expected:
        raise FtbenchError(
            f"model file {path} is corrupt or not a MACE model: sha256 {got} differs from "
            f"the pinned {expected} ({info.get('lock_key') or record}); delete it and fetch it again"
        )


def load_model(path: str | Path, device: str = "cpu", dtype: str = "float64", head: str | None = None):
    """Load a saved MACE model for inference (read_model, then dtype, no gradients, eval mode).

    With `head`, the model is reduced to that head (select_head).
    """
    from mace.tools import torch_tools

    model = read_model(path, "cpu")
    torch_tools.set_default_dtype(dtype)
    model = select_head(model, head, str(path))
    model = model.double() if dtype == "float64" else model.float()
    for p in model.parameters():
        p.requires_grad = False
    return model.to(device).eval()


def heads_of(model) -> list[str]:
    """Return the model's head names (`Default` for a model without heads)."""
    return list(getattr(model, "heads", None) or ["Default"])


def check_head(model, head: str, what: str) -> str:
    """`head` if the model has it; otherwise an error that lists the model's heads."""
    heads = heads_of(model)
    if head not in heads:
        raise FtbenchError(
            f"{what} has no head {head!r}; its heads are: {', '.join(heads)}. "
            "Fix --head (or `head:` in the model's catalog entry)"
        )
    return head


def select_head(model, head: str | None, what: str = "the model"):
    """Return the single-head model of `head`; head None keeps the model as it is.

    A multihead model is reduced with mace's own remove_pt_head, the path mace_run_train takes with
    --foundation_head, so E0s, predictions and pseudolabels all come from that head.
    """
    if head is None:
        return model
    check_head(model, head, what)
    if len(heads_of(model)) == 1:
        return model
    from mace.tools.scripts_utils import remove_pt_head

    return remove_pt_head(model, head)


def elements_of(model) -> list[int]:
    """Return the atomic numbers the model has embeddings for."""
    return [int(z) for z in model.atomic_numbers]


def check_elements(known, present, what: str, model: str, fix: str) -> None:
    """Refuse elements a model cannot handle, before any work: the one element check.

    An error when `present` (atomic numbers) holds an element the model (`known` atomic numbers) has
    no embedding for.
    """
    from ase.data import chemical_symbols

    known = {int(z) for z in known}
    missing = sorted({int(z) for z in present} - known)
    if missing:
        raise FtbenchError(
            f"{what} contains {', '.join(chemical_symbols[z] for z in missing)}, which {model} does not "
            f"know (it covers {', '.join(chemical_symbols[z] for z in sorted(known))}); {fix}"
        )


def predict(model, atoms_list, head: str | None = None, batch_size: int = 32, device: str = "cpu") -> list[dict]:
    """Energy (eV), forces (eV/A) and, for periodic cells, stress (eV/A^3, 3x3) per configuration."""
    from mace import data
    from mace.tools import torch_geometric, torch_tools, utils

    heads = getattr(model, "heads", None)
    if head is None and heads is not None and len(heads) > 1:
        raise FtbenchError(f"the model has heads {', '.join(heads)}: name the one to predict with")
    head = check_head(model, head, "the model") if head else (heads[0] if heads else "Default")
    z_table = utils.AtomicNumberTable(elements_of(model))
    r_max = float(model.r_max)
    results: list[dict] = []
    # the data in the model's dtype, whatever torch's default was left at by the caller
    with torch_tools.default_dtype(next(model.parameters()).dtype):
        for start in range(0, len(atoms_list), batch_size):
            chunk = atoms_list[start : start + batch_size]
            # stress per configuration: a periodic one gets it whatever else shares its batch
            periodic = [bool(a.pbc.all()) for a in chunk]
            dataset = [
                data.AtomicData.from_config(
                    data.config_from_atoms(a, head_name=head), z_table=z_table, cutoff=r_max, heads=heads
                )
                for a in chunk
            ]
            loader = torch_geometric.dataloader.DataLoader(dataset, batch_size=len(dataset), shuffle=False)
            batch = next(iter(loader)).to(device)
            out = model(batch.to_dict(), compute_stress=any(periodic), training=False)
            energies = torch_tools.to_numpy(out["energy"])
            forces = torch_tools.to_numpy(out["forces"])
            stress = torch_tools.to_numpy(out["stress"]) if any(periodic) and out.get("stress") is not None else None
            ptr = torch_tools.to_numpy(batch.ptr)
            for i in range(len(chunk)):
                rec = {"energy": float(energies[i]), "forces": forces[ptr[i] : ptr[i + 1]]}
                if stress is not None and periodic[i]:
                    rec["stress"] = stress[i]
                results.append(rec)
    return results


def model_e0s(model, head: str | None = None) -> dict[int, float]:
    """E0s stored in a model for `head` (default: the first head, as mace's foundation E0s)."""
    zs = elements_of(model)
    rows = model.atomic_energies_fn.atomic_energies.detach().cpu().numpy().reshape(-1, len(zs))
    row = rows[heads_of(model).index(head)] if head is not None else rows[0]
    return {z: float(e) for z, e in zip(zs, row)}


def foundation_for(path: str | Path, head: str | None, device: str = "cpu", what: str | None = None):
    """Load the single-head foundation model that E0 estimation and pseudolabelling use.

    That is `head` of a multihead model (select_head), or the model itself; a multihead model
    without a head is an error, since mace would silently use its first head.
    """
    what = what or str(path)
    model = load_model(path, device, head=head)
    if len(heads_of(model)) > 1:
        raise FtbenchError(
            f"{what} is a multihead model (heads: {', '.join(heads_of(model))}); "
            "choose one with --head (the catalog's `head:`)"
        )
    return model
