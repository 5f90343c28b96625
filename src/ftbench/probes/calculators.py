"""ASE calculators for the models ftbench trains or downloads."""

from __future__ import annotations

from pathlib import Path


def load_calculator(model: str | Path, head: str | None = None, device: str = "cpu", default_dtype: str = "float64"):
    """Return a MACECalculator for a saved mace model file, with `head` selected for multihead models."""
    from mace.calculators import MACECalculator

    from ftbench.probes.inference import read_model

    kwargs = {"head": head} if head else {}
    return MACECalculator(models=read_model(model, device), device=device, default_dtype=default_dtype, **kwargs)


def add_model_arguments(parser) -> None:
    """Add the options every model-driven subcommand (md, rss, dimers) takes."""
    parser.add_argument("--model", required=True, help="MACE model file")
    parser.add_argument("--head", default=None, help="head of a multihead model (the pipeline passes the target head)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")


def calculator_for(args, elements, what: str):
    """Return the calculator of `args`, refusing elements (symbols) the model was not trained on."""
    from ase.data import atomic_numbers

    from ftbench.probes.inference import check_elements

    calc = load_calculator(args.model, head=args.head, device=args.device, default_dtype=args.dtype)
    known = supported_elements(calc)
    if known is not None:
        check_elements(
            (atomic_numbers[e] for e in known),
            (atomic_numbers[e] for e in elements),
            what,
            f"--model {args.model}",
            "use a model trained on these elements",
        )
    return calc


def supported_elements(calc) -> set[str] | None:
    """Elements a MACE calculator was trained on, or None when the calculator does not say."""
    from ase.data import chemical_symbols

    zs = getattr(getattr(calc, "z_table", None), "zs", None)
    if zs is None:
        return None
    return {chemical_symbols[int(z)] for z in zs}
