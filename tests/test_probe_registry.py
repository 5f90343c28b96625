"""The probe registry: a new probe is its module plus one entry, and the report reads it from there."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from ase.io import write

from ftbench.probes.registry import BY_NAME, PROBES, Metric, Probe, check_registry

sys.path.insert(0, str(Path(__file__).parent))
from robustness_support import build_tiny_mace, water_box  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_every_probe_has_a_settings_block_in_the_schema():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    blocks = schema["properties"]["robustness"]["properties"]
    for probe in PROBES:
        assert blocks[probe.name]["type"] == "object", probe.name


def test_a_probe_that_reads_a_later_probe_is_refused():
    first, second = Probe("a", "x:y", needs=("b",)), Probe("b", "x:z")
    with pytest.raises(ValueError, match=r"probe 'a' needs \['b'\]"):
        check_registry((first, second))
    check_registry((second, first))


def test_report_metrics_and_figures_come_from_the_registry():
    from ftbench.report.figure_names import figure_names
    from ftbench.report.metrics import BY_COLUMN

    for probe in PROBES:
        for m in probe.metrics:
            assert BY_COLUMN[m.column] is m
        for f in probe.figures:
            assert (f if isinstance(f, str) else f.name) in figure_names()
    assert "production" in BY_NAME["rdf"].needs and "md" in BY_NAME["production"].needs


@pytest.mark.slow
def test_a_new_probe_is_one_entry_run_on_a_real_model_and_tabulated(tmp_path):
    from ftbench.probes.robustness import robustness_of
    from ftbench.report.aggregate import robustness_rows

    model = build_tiny_mace(tmp_path / "tiny.model", elements=("H", "O"), pair_repulsion=True)
    start = water_box(2)
    write(tmp_path / "start.xyz", start)
    new = Probe(
        "start_energy",
        "probe_plugin_example:probe",
        metrics=(
            Metric(
                "start_e",
                "start energy",
                "eV/atom",
                True,
                0.0,
                "start_energy",
                ("start_energy", "summary", "e_per_atom"),
            ),
        ),
    )
    reader = Probe("pair_count", "probe_plugin_example:reads_dimers", needs=("dimers",))
    probes = (BY_NAME["dimers"], new, reader)
    check_registry(probes)
    settings = {
        "dtype": "float64",
        "dimers": {"r_min": 0.5, "r_max": 4.0, "n_points": 6, "core_fraction": 0.5},
        "start_energy": {"scale": 2.0},
    }
    status, reason, result = robustness_of(model, None, start, settings, tmp_path / "out", None, probes=probes)
    assert status == "ok", reason
    # its own number, from the real model: twice the energy per atom the calculator gives
    from ftbench.probes.calculators import load_calculator

    atoms = start.copy()
    atoms.calc = load_calculator(model)
    expected = 2.0 * atoms.get_potential_energy() / len(atoms)
    assert result["start_energy"]["summary"]["e_per_atom"] == pytest.approx(expected, rel=1e-9)
    # a probe reads the results of the probes it needs: H-H, H-O, O-O
    assert result["pair_count"] == {"n": 3}
    rows = robustness_rows({"status": "ok", **result}, {"strategy": "s"}, probes=probes)
    mine = [r for r in rows if r["metric"] == "e_per_atom"]
    assert len(mine) == 1 and mine[0]["evaluation"] == "start_energy" and mine[0]["unit"] == "eV/atom"
    assert {r["metric"] for r in rows} >= {"wall_failures", "holes", "r_min", "e_min"}
