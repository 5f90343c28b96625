"""The `ftbench` command line: one subcommand per module, imported only when used.

Each module named here provides `add_arguments(parser)` and `run(args) -> int`.
Lazy imports keep `ftbench grid` and Snakefile parsing free of torch start-up cost.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ftbench.core.errors import FtbenchError

# subcommand -> (module under ftbench, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "grid": ("core.grid", "print the expanded fine-tune grid and counts"),
    "init": ("core.init", "write a config overlay for your own data file and foundation model"),
    "demo": ("demo.demo", "generate the offline demo world (corpus, benchmarks) with tblite"),
    "demo-world": ("demo.demo_world", "build the shipped demo world: labelled trajectories, pairs, relabelling"),
    "prepare": ("data.prepare", "split a benchmark and write nested training subsets"),
    "check-elements": ("data.elements", "check every benchmark split against a foundation model's elements"),
    "subset": ("data.subsets", "the first n configurations of a training pool (nested subsets)"),
    "head": ("training.head", "one head of a multihead model as a single-head model (mace's remove_pt_head)"),
    "e0": ("training.e0", "re-estimate E0s for a (foundation model, training set) pair"),
    "replay": ("training.replay", "select the replay pool, hold out the pretraining slice, pseudolabel"),
    "finetune": ("training.finetune", "fine-tune with mace_run_train for one grid cell"),
    "pretrain": (
        "training.finetune",
        "pretrain a demo foundation model with mace_run_train (a failed run is an error)",
    ),
    "untouched": ("training.untouched", "record an untouched foundation model as a run (no training)"),
    "evaluate": ("probes.evaluate", "energy/force/stress errors of a model on a dataset"),
    "aggregate": ("report.aggregate", "collect every run's results into tidy tables"),
    "tables": ("report.tables", "summary, recommendation, cost and findings tables from the tidy tables"),
    "figures": ("report.figures", "draw the study's figures from the tidy tables"),
    "robustness": ("probes.robustness", "all robustness evaluations of one model, as the pipeline runs them"),
    "md": ("probes.md", "MD stability test (Langevin NVT with a temperature ramp)"),
    "md-start": ("probes.mdstart", "write a benchmark's common MD start structure"),
    "rdf": ("probes.rdf", "partial radial distribution functions of a trajectory"),
    "emd": ("probes.emd", "earth mover's distance between two RDF tables"),
    "rss": ("probes.rss", "random structure search: collapse fraction of relaxed structures"),
    "dimers": ("probes.dimers", "dimer curves and repulsive-wall metrics"),
    "fetch": ("data.fetch", "download pinned sources with checksums"),
    "convert": ("data.convert", "convert a source file to normalised extxyz"),
}


def setup_logging() -> None:
    """Set the log format of every subcommand (its run() only gets loggers)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the `ftbench` parser; with `only`, import and add the options of that subcommand alone.

    Every subcommand is listed, but only the chosen one's module is imported (keeps start-up fast).
    """
    parser = argparse.ArgumentParser(prog="ftbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, helptext) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        if only is None or name == only:
            importlib.import_module(f"ftbench.{module}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `ftbench` command line; return the exit code (2 on an FtbenchError)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the module of the chosen subcommand.
    only = argv[0] if argv and not argv[0].startswith("-") else None
    args = build_parser(only).parse_args(argv)
    module = importlib.import_module(f"ftbench.{SUBCOMMANDS[args.command][0]}")
    setup_logging()
    try:
        return int(module.run(args) or 0)
    except FtbenchError as err:
        print(f"ftbench {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
