"""The names of every figure, without importing pandas or matplotlib (the Snakefile and config read them).

The report's own figures are listed here; each robustness probe adds the figures its registry
entry names (ftbench.probes.registry), after them, in registry order.
"""

from __future__ import annotations

from ftbench.probes.registry import PROBES

REPORT_FIGURES = ("schematic", "learning_curves", "forgetting", "multihead_lr_sweep", "stage_two", "e0_dimers")


def figure_names() -> list[str]:
    """Every figure `ftbench figures` draws, in drawing order."""
    probe_figures = [f if isinstance(f, str) else f.name for p in PROBES for f in p.figures]
    return list(REPORT_FIGURES) + probe_figures
