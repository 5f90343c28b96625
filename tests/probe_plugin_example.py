"""A robustness probe written the way the registry expects (tests/test_probe_registry.py plugs it in).

Energy per atom of the common start as the model sees it: one call, one number.
"""

from __future__ import annotations


def probe(ctx) -> dict:
    """Probe `start_energy`: the model's potential energy per atom of the MD start."""
    atoms = ctx.structure.copy()
    atoms.calc = ctx.calc
    scale = ctx.settings["start_energy"]["scale"]
    return {"start_energy": {"summary": {"e_per_atom": scale * atoms.get_potential_energy() / len(atoms)}}}


def reads_dimers(ctx) -> dict:
    """A probe that reads the dimers probe's results: how many pairs it scored."""
    return {"pair_count": {"n": len(ctx.results["dimers"])}}
