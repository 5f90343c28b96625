"""The probe registry: what each robustness probe runs, records, ranks and draws.

A probe is its module plus one `Probe` entry in `PROBES`:
- `run`: "module:function", called as function(ctx) -> {section: result} in PROBES order
  (ftbench.probes.robustness); it is imported only when it runs, so this module stays torch-free
  and the report side can read the registry;
- its settings: the block `robustness.<name>` (schema: workflow/schemas/config.schema.yaml),
  handed over as ctx.settings[name];
- `needs`: probes whose results it reads (ctx.results); they come earlier in PROBES;
- `metrics`: ranked numbers (summary columns, deployment rank) and `recorded`: numbers kept in
  robustness.csv only, both paths into the probe's sections of robustness.json;
- `figures`: bar figures drawn from one of its metrics (data), or the names of its own figure
  functions in ftbench.report.figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def _last_key(select: tuple) -> str:
    """Return the name a path selects: its last key, or the one before a trailing "*" (the pairs)."""
    return select[-1] if select[-1] != "*" else select[-2]


@dataclass(frozen=True)
class Metric:
    """One number per run.

    column: name in the per-run metrics and the summary tables; label, unit: for people;
    lower_is_better: the direction; weight: weight in the deployment rank (0: not ranked);
    evaluation: "errors" (errors.csv) or the robustness.json section (md, emd, rss, dimers);
    select: errors: (dataset, quantity, head_role); robustness: the path in robustness.json, "*"
    standing for the pairs; how: how pairs (and several rows of a run) are combined.
    """

    column: str
    label: str
    unit: str
    lower_is_better: bool
    weight: float
    evaluation: str
    select: tuple
    how: str = "mean"

    @property
    def metric(self) -> str:
        """The robustness.csv `metric` name (the last key of the path)."""
        return _last_key(self.select)

    @property
    def header(self) -> str:
        """The column header: label and unit."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


@dataclass(frozen=True)
class Recorded:
    """A number kept in robustness.csv but not ranked (diagnostics, curve landmarks).

    select: path in robustness.json, "*" standing for the pairs; metric: its name, by default the
    last key; "{pair}" in it names the metric after the key "*" matched (and leaves pair empty).
    """

    evaluation: str
    select: tuple
    unit: str = ""
    metric: str | None = None

    def name(self, pair: str | None) -> tuple[str, str | None]:
        """(metric, pair) of one value this entry selects."""
        if self.metric and "{pair}" in self.metric:
            return self.metric.format(pair=pair), None
        return self.metric or _last_key(self.select), pair


@dataclass(frozen=True)
class BarFigure:
    """A figure of one metric: seed-mean bars per strategy and model, one panel per benchmark.

    ceiling: draw the largest finite value as the "full run length" line (times that saturate).
    """

    name: str
    column: str
    ylabel: str
    title: str
    ylim: tuple | None = None
    ceiling: bool = False


@dataclass(frozen=True)
class Probe:
    """One robustness probe (see the module docstring)."""

    name: str
    run: str
    needs: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = ()
    recorded: tuple[Recorded, ...] = ()
    figures: tuple[BarFigure | str, ...] = ()


class ProbeFailure(Exception):
    """The evaluation itself failed (e.g. the model cannot evaluate the start): the model's status is failed."""


@dataclass
class ProbeContext:
    """What a probe function gets: the model, the common start, its settings and earlier results.

    settings: the benchmark's whole `robustness` block (a probe reads settings[its name]);
    results: robustness.json sections written so far (a probe reads those of its `needs`).
    """

    calc: object
    structure: object
    out_dir: Path
    settings: dict
    reference_rdf: Path | None = None
    results: dict = field(default_factory=dict)
    _evaluator: object = None

    @property
    def evaluator(self):
        """The batched MD evaluator of the model, built once for every MD segment."""
        if self._evaluator is None:
            from ftbench.probes.md import evaluator_for

            self._evaluator = evaluator_for(self.calc)
        return self._evaluator


PROBES = (
    Probe(
        "md",
        "ftbench.probes.md:ramp_probe",
        metrics=(
            Metric("md_survival", "MD survival", "", False, 1.0, "md", ("md", "summary", "survival_fraction")),
            Metric("md_time_ps", "MD time", "ps", False, 0.0, "md", ("md", "summary", "mean_time_ps")),
            Metric("md_steps_per_s", "MD speed", "steps/s", False, 0.0, "md", ("md", "summary", "steps_per_s")),
        ),
        recorded=(Recorded("md", ("md", "summary", "reasons", "*"), metric="n_{pair}"),),
        figures=(
            BarFigure(
                "md_stability",
                "md_time_ps",
                "mean MD time survived (ps)",
                "MD stability (longer is better)",
                ceiling=True,
            ),
            "md_survival",
        ),
    ),
    # a fixed-temperature NVT segment from the same start, only when the ramp survival allows it
    Probe("production", "ftbench.probes.md:production_probe", needs=("md",)),
    Probe(
        "rdf",
        "ftbench.probes.emd:rdf_probe",
        needs=("production",),
        metrics=(Metric("emd_mean", "RDF EMD", "A", True, 1.0, "emd", ("emd", "emd", "*")),),
        figures=(
            "rdf_overlays",
            BarFigure(
                "emd", "emd_mean", "RDF EMD, mean over pairs (Å)", "RDF earth mover's distance (lower is better)"
            ),
        ),
    ),
    Probe(
        "rss",
        "ftbench.probes.rss:probe",
        metrics=(
            Metric("rss_collapse", "RSS collapse", "", True, 1.0, "rss", ("rss", "summary", "collapse_fraction")),
            Metric("rss_converged", "RSS converged", "", False, 0.0, "rss", ("rss", "summary", "converged_fraction")),
        ),
        figures=(
            BarFigure(
                "rss_collapse",
                "rss_collapse",
                "collapsed fraction of RSS structures",
                "random structure search collapse (lower is better)",
                ylim=(0, 1.05),
            ),
        ),
    ),
    Probe(
        "dimers",
        "ftbench.probes.dimers:probe",
        metrics=(
            Metric(
                "dimer_wall_failures",
                "dimer wall failures",
                "",
                True,
                1.0,
                "dimers",
                ("dimers", "*", "wall_failures"),
                "sum",
            ),
            Metric("dimer_holes", "dimer holes", "", True, 1.0, "dimers", ("dimers", "*", "holes"), "sum"),
        ),
        recorded=(
            Recorded("dimers", ("dimers", "*", "r_min"), "A"),
            Recorded("dimers", ("dimers", "*", "e_min"), "eV"),
        ),
    ),
)
BY_NAME = {p.name: p for p in PROBES}


def check_registry(probes=PROBES) -> None:
    """Refuse a registry whose probe reads a probe that runs later (or not at all)."""
    seen: set[str] = set()
    for p in probes:
        late = [n for n in p.needs if n not in seen]
        if late:
            raise ValueError(f"probe {p.name!r} needs {late}, which must come before it in PROBES")
        seen.add(p.name)


def bar_figures() -> dict[str, BarFigure]:
    """Return the bar figures the probes declare, by figure name."""
    return {f.name: f for p in PROBES for f in p.figures if isinstance(f, BarFigure)}


def load(probe: Probe):
    """Return the function that runs `probe` (imports its module)."""
    from importlib import import_module

    module, function = probe.run.split(":")
    return getattr(import_module(module), function)


check_registry()
