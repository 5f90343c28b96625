"""Method schematic: a drawing (not computed from data) of what each fine-tuning strategy does.

What it trains, freezes, re-initialises, adapts with LoRA and replays, one column per strategy.

The MACE network is drawn as a stack of module groups, bottom to top: embedding, two interaction
blocks, products (symmetric contraction), readout. These are the groups that `--freeze` thresholds
on (>=1 embedding, >=5 interactions, >=6 products, >=7 readouts). LoRA (`inject_LoRAs` in
mace-torch) wraps every equivariant/dense linear layer, which includes the embedding and the
readouts, and freezes every base weight, so the LoRA columns show an adapter next to every group.
In multihead fine-tuning the target head and the pt head are two outputs of the same readout
layers, so one readout adapter serves both heads.
"""

from __future__ import annotations

from pathlib import Path

from ftbench.report.style import OKABE_ITO, strategy_style, strategy_styles

DEFAULT_STRATEGIES = ["scratch", "naive", "freeze5", "freeze6", "lora", "replay", "pseudo_replay", "replay_lora"]
TITLE = "Fine-tuning strategies (what trains, what is frozen, what is replayed)"

# Module groups, bottom to top.
BLOCKS = ["embedding", "interaction 1", "interaction 2", "products", "readout"]
TRAIN, FROZEN, RANDOM, UNKNOWN = "trainable", "frozen", "random", "unknown"

# What happens to each group (embedding, int 1, int 2, products, readout), the key flags shown above
# the column, LoRA adapters, and replay data (None, "original" or "pseudo").
_T, _F = TRAIN, FROZEN
SPECS: dict[str, dict] = {
    "scratch": {"blocks": [RANDOM] * 5, "flags": ["no foundation", "(random init)"]},
    "naive": {"blocks": [_T] * 5, "flags": ["--multiheads_finetuning", "False"]},
    "freeze5": {"blocks": [_F, _F, _F, _T, _T], "flags": ["--freeze 5"]},
    "freeze6": {"blocks": [_F, _F, _F, _F, _T], "flags": ["--freeze 6"]},
    "lora": {"blocks": [_F] * 5, "flags": ["--lora True", "--lora_rank r"], "lora": True},
    "replay": {"blocks": [_T] * 5, "flags": ["--multiheads_finetuning", "True"], "replay": "original"},
    "pseudo_replay": {
        "blocks": [_T] * 5,
        "replay": "pseudo",
        "flags": ["--multiheads_finetuning", "True", "--pseudolabel_replay True"],
    },
    "replay_lora": {
        "blocks": [_F] * 5,
        "lora": True,
        "replay": "original",
        "flags": ["--multiheads_finetuning", "True", "--lora True"],
    },
}
REPLAY_TEXT = {
    "original": "replay data\n(original labels)",
    "pseudo": "replay data\n(pseudolabels from\nthe foundation)",
}

FROZEN_FACE, FROZEN_EDGE, NEUTRAL_EDGE = "#dedede", "#8c8c8c", "#444444"

# Geometry in data units; every column uses the same scale (1 unit wide = 1 unit tall on paper
# is not required, only that all columns share it so text sizes match).
ROW_Y = [0.3, 2.5, 4.7, 6.9, 9.1]  # bottom of each group
ROW_H = [1.6, 1.6, 1.6, 1.6, 2.1]  # readout is taller: two text lines
DATA_Y, DATA_H = 12.0, 2.2  # replay data box
NAME_Y, FLAGS_Y, TOP = 17.0, 16.1, 17.6
LORA_W, GAP, PAD = 2.0, 0.35, 0.2
BLOCK_FONT, SMALL_FONT = 7, 6.5


# --freeze threshold at which each group (embedding, int 1, int 2, products, readout) is frozen
FREEZE_AT = [1, 5, 5, 6, 7]


def spec_from_roles(roles: dict) -> dict:
    """Return what a strategy trains, freezes, adapts and replays, from its catalog roles.

    The roles are strategies.roles: a custom strategy is drawn from what it does, not from its name.
    """
    if not roles.get("foundation", True):
        return {"blocks": [RANDOM] * 5, "flags": ["no foundation", "(random init)"]}
    if not roles.get("trained", True):  # zero-shot: the foundation model as it is, E0s refitted
        return {"blocks": [FROZEN] * 5, "flags": ["no training", "(E0s refitted)"]}
    frozen, lora, replay = int(roles.get("frozen") or 0), bool(roles.get("lora")), roles.get("replay")
    blocks = [FROZEN if lora or (frozen and frozen >= at) else TRAIN for at in FREEZE_AT]
    flags = ["--multiheads_finetuning", "True" if replay else "False"]
    flags += [f"--freeze {frozen}"] if frozen else []
    flags += ["--lora True"] if lora else []
    flags += ["--pseudolabel_replay True"] if replay == "pseudo" else []
    return {"blocks": blocks, "flags": flags, "lora": lora, "replay": replay or None}


def _spec(name: str, roles: dict | None = None) -> dict:
    """From the run's roles when known (the study's eight keep their annotated flag text)."""
    if roles is not None:
        spec = spec_from_roles(roles)
        return {**spec, "flags": SPECS[name]["flags"]} if name in SPECS else spec
    if name in SPECS:
        return SPECS[name]
    return {"blocks": [UNKNOWN] * 5, "flags": ["see config"]}


def _width(spec: dict) -> float:
    """Column width in data units: wider where LoRA adapters and replay heads need room."""
    return 8.0 + (2.4 if spec.get("lora") else 0.0) + (2.6 if spec.get("replay") else 0.0)


def _tint(color: str, amount: float = 0.55) -> tuple:
    """Return the strategy colour mixed with white, so black block labels stay readable on it."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return (1 - amount * (1 - r), 1 - amount * (1 - g), 1 - amount * (1 - b))


def _luminance(color: str) -> float:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _box_style(state: str, color: str) -> dict:
    if state == TRAIN:
        return {"facecolor": _tint(color), "edgecolor": NEUTRAL_EDGE, "linewidth": 1.0}
    if state == FROZEN:
        return {"facecolor": FROZEN_FACE, "edgecolor": FROZEN_EDGE, "hatch": "////", "linewidth": 1.0}
    if state == RANDOM:
        return {"facecolor": "white", "edgecolor": NEUTRAL_EDGE, "linestyle": (0, (4, 2)), "linewidth": 1.2}
    return {"facecolor": "#f6f6f6", "edgecolor": "#9a9a9a", "linewidth": 1.0}


def _box(ax, x, y, w, h, text, style, gid, fontsize=BLOCK_FONT, text_kw=None):
    from matplotlib.patches import FancyBboxPatch

    patch = FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.25", gid=gid, **style)
    if hasattr(patch, "set_hatch_linewidth"):  # matplotlib >= 3.10
        patch.set_hatch_linewidth(0.6)
    ax.add_patch(patch)
    if text:
        kw = {"ha": "center", "va": "center", "fontsize": fontsize, "linespacing": 1.1}
        kw.update(text_kw or {})
        # A white backing keeps labels legible over the frozen hatching.
        bbox = (
            {"boxstyle": "round,pad=0.12", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
            if style.get("hatch")
            else None
        )
        ax.text(x + w / 2, y + h / 2, text, gid=f"{gid}:label", bbox=bbox, **kw)
    return patch


def _arrow(ax, x0, y0, x1, y1, color=NEUTRAL_EDGE):
    ax.annotate(
        "",
        xy=(x1, y1),
        xytext=(x0, y0),
        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 0.9, "mutation_scale": 7, "shrinkA": 0, "shrinkB": 0},
    )


def _column(ax, name: str, spec: dict, color: str) -> None:
    width = _width(spec)
    lora, replay = bool(spec.get("lora")), spec.get("replay")
    ax.set_xlim(0, width)
    ax.set_ylim(0, TOP)
    ax.set_axis_off()

    x0, x1 = PAD, width - PAD - (LORA_W + GAP if lora else 0.0)  # main stack
    for i, (block, state) in enumerate(zip(BLOCKS, spec["blocks"])):
        y, h = ROW_Y[i], ROW_H[i]
        style = _box_style(state, color)
        if block == "readout" and replay:
            half = (x1 - x0 - GAP) / 2
            _box(ax, x0, y, half, h, "readout\n(target head)", style, f"{name}:readout")
            pt_style = dict(style, linewidth=2.2, edgecolor="#222222")
            _box(ax, x0 + half + GAP, y, half, h, "readout\n(pt head)", pt_style, f"{name}:pt_head")
        elif block == "readout":
            _box(ax, x0, y, x1 - x0, h, "readout\n(target head)", style, f"{name}:readout")
        else:
            _box(ax, x0, y, x1 - x0, h, block, style, f"{name}:{block}")
        if i:
            mid = (x0 + x1) / 2 if not (block == "readout" and replay) else None
            for xm in [mid] if mid is not None else [x0 + (x1 - x0 - GAP) / 4, x1 - (x1 - x0 - GAP) / 4]:
                _arrow(ax, xm, ROW_Y[i - 1] + ROW_H[i - 1], xm, y)
        if lora:
            lx = x1 + GAP
            _box(
                ax,
                lx,
                y + 0.2,
                LORA_W,
                h - 0.4,
                "LoRA\nr",
                _box_style(TRAIN, color) | {"linewidth": 1.4},
                f"{name}:lora:{block}",
                fontsize=SMALL_FONT,
            )
            ax.plot([x1, lx], [y + h / 2] * 2, color=NEUTRAL_EDGE, lw=0.9)

    if replay:
        half = (x1 - x0 - GAP) / 2  # the pt head is the right half of the readout row
        _box(
            ax,
            x0,
            DATA_Y,
            x1 - x0 + (LORA_W + GAP if lora else 0.0),
            DATA_H,
            REPLAY_TEXT[replay],
            {"facecolor": "white", "edgecolor": color, "linewidth": 1.4},
            f"{name}:replay_data",
            fontsize=SMALL_FONT,
        )
        xm = x0 + half + GAP + half / 2
        _arrow(ax, xm, DATA_Y, xm, ROW_Y[4] + ROW_H[4], color=color)

    name_text = ax.text(
        width / 2,
        NAME_Y,
        name,
        ha="center",
        va="center",
        fontsize=11,
        fontweight="bold",
        color=color,
        gid=f"{name}:name",
    )
    if _luminance(color) > 0.7:  # pale colours (Okabe-Ito yellow) get a thin dark outline
        from matplotlib import patheffects

        name_text.set_path_effects([patheffects.withStroke(linewidth=1.0, foreground="#666666")])
    ax.text(
        width / 2,
        FLAGS_Y,
        "\n".join(spec["flags"]),
        ha="center",
        va="top",
        fontsize=SMALL_FONT,
        family="monospace",
        linespacing=1.25,
        color="#222222",
        gid=f"{name}:flags",
    )


def _legend_handles(colors: list[str]):
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.patches import Patch

    trainable = tuple(Patch(**_box_style(TRAIN, c)) for c in colors[:3])
    handles = [
        trainable,
        Patch(**_box_style(FROZEN, "")),
        Patch(**_box_style(RANDOM, "")),
        Patch(**_box_style(TRAIN, strategy_style("lora")["color"]) | {"linewidth": 1.4}),
        Patch(facecolor="white", edgecolor="#222222", linewidth=2.2),
        Patch(facecolor="white", edgecolor=OKABE_ITO[4], linewidth=1.4),
    ]
    labels = [
        "trainable, initialised from the foundation (fill = strategy colour)",
        "frozen (foundation weights kept)",
        "randomly initialised (no foundation)",
        "LoRA adapter (trainable rank-r update; its base layer is frozen)",
        "replay head (pt head: second readout on the foundation's task)",
        "replay data box (feeds the pt head's loss)",
    ]
    return handles, labels, {tuple: HandlerTuple(ndivide=None, pad=0.0)}


def draw_schematic(out: Path, strategies: list[str] | None = None, roles: dict[str, dict] | None = None):
    """Draw the method schematic; save `out` (PNG, dpi 150) and `out.with_suffix('.pdf')`.

    Returns the figure; the caller closes it. A strategy outside the study's eight is drawn from
    its `roles` (runs.csv role columns); without roles it gets a generic column.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    names = list(DEFAULT_STRATEGIES if strategies is None else strategies)
    roles = roles or {}
    specs = {n: _spec(n, roles.get(n)) for n in names}
    styles = strategy_styles(names)
    widths = [_width(specs[n]) for n in names]
    fig = plt.figure(figsize=(16, 6))
    left, right, bottom, top, sep = 0.01, 0.99, 0.12, 0.91, 0.012
    avail = right - left - sep * (len(names) - 1)
    # Same scale as the default eight columns at most, so a short list is not stretched; centred.
    default = sum(_width(_spec(n)) for n in DEFAULT_STRATEGIES)
    scale = min(avail / sum(widths), (right - left - sep * (len(DEFAULT_STRATEGIES) - 1)) / default)
    x = left + (avail - scale * sum(widths)) / 2
    for name, w in zip(names, widths):
        frac = scale * w
        _column(fig.add_axes((x, bottom, frac, top - bottom)), name, specs[name], styles[name]["color"])
        x += frac + sep
    fig.suptitle(TITLE, fontsize=14, y=0.985)
    handles, labels, handler_map = _legend_handles([strategy_style(n)["color"] for n in DEFAULT_STRATEGIES[1:4]])
    fig.legend(
        handles,
        labels,
        handler_map=handler_map,
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.005),
        handlelength=3.2,
        columnspacing=2.0,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    fig.savefig(out.with_suffix(".pdf"))
    return fig
