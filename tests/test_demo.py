"""Demo structure generators (no labelling: tblite is not needed)."""

from __future__ import annotations

from ftbench.demo.demo import generate_structures


def test_corpus_without_elements_uses_every_corpus_molecule_and_their_pairs():
    out = generate_structures("corpus", 12, seed=0)
    assert len(out) == 12
    dimers = out[-2:]  # n // 6 = 2 short-range pairs close the corpus
    assert all(len(a) == 2 for a in dimers)
    assert all(a.info["config_type"] == "corpus" for a in out)


def test_corpus_element_filter_keeps_molecules_and_pairs_inside_it():
    out = generate_structures("corpus", 12, seed=0, elements=["H", "O"])
    assert {int(z) for a in out for z in a.numbers} <= {1, 8}
