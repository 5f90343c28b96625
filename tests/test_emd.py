"""EMD between RDF tables: zero for identical input, grows with a peak shift, weights r^2 g(r)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ftbench.cli import main
from ftbench.core.errors import FtbenchError
from ftbench.probes.emd import emd, emd_tables
from ftbench.probes.rdf import write_curves

R = np.arange(0.01, 8.0, 0.02)


def _peak(center, width=0.15):
    """A liquid-like g(r): zero inside the core, a first peak at `center`, then 1."""
    g = 1.0 + 1.5 * np.exp(-((R - center) ** 2) / (2 * width**2))
    g[R < center - 0.6] = 0.0
    return g


def _w1_by_cdf(r, w_a, w_b):
    """Independent 1-Wasserstein distance on a common grid: integral of |F_a - F_b|."""
    f_a = np.cumsum(w_a) / w_a.sum()
    f_b = np.cumsum(w_b) / w_b.sum()
    return float(np.sum(np.abs(f_a - f_b)[:-1] * np.diff(r)))


def test_identical_inputs_give_zero():
    g = _peak(2.8)
    assert emd(R, g, R, g) == pytest.approx(0.0, abs=1e-12)


def test_grows_monotonically_with_peak_shift():
    base = _peak(2.8)
    values = [emd(R, base, R, _peak(2.8 + s)) for s in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)]
    assert values[0] == pytest.approx(0.0, abs=1e-12)
    assert all(b > a for a, b in zip(values, values[1:]))


def test_weights_are_r2_g_not_g():
    a, b = _peak(2.8), _peak(3.0, width=0.25)
    expected = _w1_by_cdf(R, R**2 * a, R**2 * b)
    assert emd(R, a, R, b) == pytest.approx(expected, rel=1e-9)
    assert abs(expected - _w1_by_cdf(R, a, b)) > 1e-3  # the weighting matters


def test_pdf_kind_compares_densities_directly():
    p = np.exp(-((R - 3.0) ** 2) / 0.1)
    q = np.exp(-((R - 3.3) ** 2) / 0.1)
    assert emd(R, p, R, q, kind="pdf") == pytest.approx(0.3, abs=1e-3)


def test_empty_pair_gives_none():
    assert emd(R, np.zeros_like(R), R, _peak(2.8)) is None


def _table(path, g_by_pair, kind="rdf"):
    write_curves(path, R, g_by_pair)
    path.with_suffix(".meta.json").write_text(json.dumps({"kind": kind}))


def test_tables_and_cli(tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _table(a, {"H-O": _peak(1.0), "O-O": _peak(2.8)})
    _table(b, {"H-O": _peak(1.1), "O-O": _peak(2.8), "H-H": _peak(1.6)})
    result = emd_tables(a, b)
    assert result["emd"]["O-O"] == pytest.approx(0.0, abs=1e-9)
    assert result["emd"]["H-O"] > 1e-4
    assert result["only_in_b"] == ["H-H"]

    out = tmp_path / "emd.json"
    assert main(["emd", str(a), str(b), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["H-O", "O-O"]
    assert json.loads(out.read_text())["emd"]["H-O"] == pytest.approx(result["emd"]["H-O"])


def test_refuses_mixed_kinds(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _table(a, {"O-O": _peak(2.8)}, kind="rdf")
    _table(b, {"O-O": _peak(2.8)}, kind="pdf")
    with pytest.raises(FtbenchError, match="like with like"):
        emd_tables(a, b)
    assert main(["emd", str(a), str(tmp_path / "missing.csv")]) == 2
