"""The method schematic: both files written, one labelled column per strategy in its colour,
unknown strategies drawn generically, and no text overlapping other text or leaving its box."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from matplotlib.colors import same_color
from matplotlib.text import Text

from ftbench.report.figures import strategy_style
from ftbench.report.schematic import DEFAULT_STRATEGIES, TITLE, draw_schematic


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _by_text(fig, text: str) -> list[Text]:
    return [t for t in _texts(fig) if t.get_text() == text]


@pytest.fixture
def drawn(tmp_path):
    figs = []

    def draw(strategies=None, name="schematic.png"):
        out = tmp_path / name
        fig = draw_schematic(out, strategies)
        figs.append(fig)
        return out, fig

    yield draw
    import matplotlib.pyplot as plt  # draw_schematic has selected the Agg backend by now

    for fig in figs:
        plt.close(fig)


def _assert_files(out):
    assert out.is_file() and out.stat().st_size > 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = out.with_suffix(".pdf")
    assert pdf.is_file() and pdf.stat().st_size > 0
    assert pdf.read_bytes()[:5] == b"%PDF-"


def _assert_column_labels(fig, names):
    for name in names:
        labels = _by_text(fig, name)
        assert len(labels) == 1, f"expected one column label {name!r}, found {len(labels)}"
        assert same_color(labels[0].get_color(), strategy_style(name)["color"]), name
    # One column (axes) per strategy.
    assert len(fig.axes) == len(names)


def _assert_no_overlaps(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _texts(fig)
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        assert not ba.overlaps(bb), f"text {a.get_text()!r} overlaps {b.get_text()!r}"
    # Every block label stays inside its block.
    patches = {p.get_gid(): p for ax in fig.axes for p in ax.patches if p.get_gid()}
    labelled = 0
    for t in texts:
        gid = t.get_gid() or ""
        if gid.endswith(":label"):
            patch = patches[gid.removesuffix(":label")]
            pb, tb = patch.get_window_extent(renderer), t.get_window_extent(renderer)
            assert pb.x0 <= tb.x0 and tb.x1 <= pb.x1 and pb.y0 <= tb.y0 and tb.y1 <= pb.y1, (
                f"label {t.get_text()!r} spills out of its box {gid}"
            )
            labelled += 1
    assert labelled >= 5 * len(fig.axes)
    # Everything stays on the canvas.
    canvas = fig.bbox
    for t, b in boxes:
        assert canvas.x0 <= b.x0 and b.x1 <= canvas.x1 and canvas.y0 <= b.y0 and b.y1 <= canvas.y1, (
            f"text {t.get_text()!r} leaves the figure"
        )


def test_default_schematic(drawn):
    out, fig = drawn()
    _assert_files(out)
    assert len(DEFAULT_STRATEGIES) == 8
    _assert_column_labels(fig, DEFAULT_STRATEGIES)
    assert fig.get_suptitle() == TITLE
    all_text = "\n".join(t.get_text() for t in _texts(fig))
    for needle in [
        "embedding",
        "interaction 1",
        "interaction 2",
        "products",
        "(target head)",
        "(pt head)",
        "LoRA",
        "--freeze 5",
        "--freeze 6",
        "--lora True",
        "--pseudolabel_replay True",
        "no foundation",
        "(original labels)",
        "(pseudolabels from",
        "frozen",
        "randomly initialised",
        "LoRA adapter",
        "replay head",
    ]:
        assert needle in all_text, needle
    # Replay columns have a pt head and a data box; the others do not.
    gids = {p.get_gid() for ax in fig.axes for p in ax.patches}
    for name in DEFAULT_STRATEGIES:
        replay = "replay" in name
        assert (f"{name}:pt_head" in gids) == replay, name
        assert (f"{name}:replay_data" in gids) == replay, name
        assert (f"{name}:lora:products" in gids) == ("lora" in name), name
    _assert_no_overlaps(fig)


def test_custom_list_with_unknown_strategy(drawn):
    names = ["naive", "my_new_strategy", "replay_lora"]
    out, fig = drawn(names, name="sub/custom.png")
    _assert_files(out)
    _assert_column_labels(fig, names)
    flags = [t for t in _texts(fig) if t.get_gid() == "my_new_strategy:flags"]
    assert [t.get_text() for t in flags] == ["see config"]
    _assert_no_overlaps(fig)


def test_import_has_no_pyplot_side_effect():
    code = (
        "import sys, ftbench.report.schematic; "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported at module import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_columns_follow_roles_not_names(tmp_path):
    from ftbench.core.strategies import default_catalog_roles
    from ftbench.report.schematic import SPECS, spec_from_roles

    # the study's eight drawn from their catalog roles look exactly as annotated
    study = {n: r for n, r in default_catalog_roles().items() if n in SPECS}
    assert len(study) == 8, sorted(study)
    for name, roles in study.items():
        spec = spec_from_roles(roles)
        assert spec["blocks"] == SPECS[name]["blocks"], name
        assert bool(spec.get("lora")) == bool(SPECS[name].get("lora")), name
        assert spec.get("replay") == SPECS[name].get("replay"), name
    # a custom strategy is drawn from what it does
    spec = spec_from_roles({"foundation": True, "replay": "pseudo", "frozen": 5, "lora": False})
    assert spec["blocks"][:3] == ["frozen"] * 3 and spec["blocks"][3:] == ["trainable"] * 2
    assert spec["replay"] == "pseudo" and "--freeze 5" in spec["flags"]
    # zero-shot trains nothing: every group frozen, not drawn as a full fine-tune
    spec = spec_from_roles({"foundation": True, "trained": False})
    assert spec["blocks"] == ["frozen"] * 5 and "no training" in spec["flags"]
