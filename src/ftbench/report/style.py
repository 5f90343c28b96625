"""One look for every figure and table: strategy colours, markers, order and line styles.

Colours and order follow a strategy's roles (foundation, replay, frozen, lora; recorded per run
from the catalog), not its name: the study's eight keep fixed Okabe-Ito colours, and any other
strategy gets a colour and marker no other strategy of the same figure set has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ftbench.core.grid import UNTOUCHED
from ftbench.core.strategies import default_catalog_roles

# Okabe-Ito palette (colour-blind safe), fixed per study strategy so figures agree with each other.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
STRATEGY_ORDER = ["naive", "freeze5", "freeze6", "lora", "replay", "pseudo_replay", "replay_lora", "scratch"]
MARKERS = "osD^vP*X"
# Strategies beyond the study's eight (Paul Tol's muted palette: none equals an Okabe-Ito colour)
# and markers the eight do not use, so a custom strategy is never a twin of a study strategy.
EXTRA_COLOURS = [
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
    "#DDDDDD",
]
EXTRA_MARKERS = "hp<>d8H"
UNTOUCHED_STYLE = {"color": "#7f7f7f", "linestyle": "--", "marker": "*"}
# E0 modes and heads are not strategies: line styles, so strategy colours stay unambiguous.
E0_STYLE = {"estimated": "-", "isolated": "--", "average": ":", "foundation": "-."}
HEAD_STYLE = {"Default": "-", "pt_head": "--"}
HEAD_LABEL = {"Default": "target head", "pt_head": "replay (pt) head"}


def role_group(roles: Mapping | None) -> int:
    """Return the order of a strategy by what it does.

    Zero-shot, full fine-tune, frozen, LoRA, replay, replay+LoRA, scratch.
    """
    if roles is None:
        return 9
    if not roles.get("trained", True):
        return 0
    if not roles.get("foundation", True):
        return 6
    replay, lora, frozen = bool(roles.get("replay")), bool(roles.get("lora")), bool(roles.get("frozen"))
    if replay:
        return 5 if lora else 4
    return 3 if lora else 2 if frozen else 1


def strategy_sort(names: Iterable[str], roles: Mapping[str, Mapping] | None = None) -> list[str]:
    """Study strategies in the study's order; others after the study strategy of the same role."""
    roles = roles or {}

    def key(name):
        if name == UNTOUCHED:
            return (0, -1, name)
        i = STRATEGY_ORDER.index(name) if name in STRATEGY_ORDER else 99
        return (role_group(roles[name] if name in roles else default_catalog_roles().get(name)), i, name)

    return sorted(names, key=key)


def strategy_styles(names: Iterable[str]) -> dict[str, dict]:
    """Return colour, marker and line style per strategy.

    Study strategies are fixed, the others distinct from them and from each other (assigned in
    sorted order, so every figure of a run agrees).
    """
    out, extra = {}, sorted({n for n in names if n not in STRATEGY_ORDER and n != UNTOUCHED})
    for name in names:
        out[name] = strategy_style(name)
    for i, name in enumerate(extra):
        out[name] = {
            "color": EXTRA_COLOURS[i % len(EXTRA_COLOURS)],
            "marker": EXTRA_MARKERS[(i // len(EXTRA_COLOURS) + i) % len(EXTRA_MARKERS)],
            "linestyle": "-",
        }
    return out


def strategy_style(name: str) -> dict:
    """Return the style of one strategy.

    A name outside the study's eight without the figure set's list of strategies gets a stable
    style from the extra palette (still never a study strategy's twin).
    """
    if name == UNTOUCHED:
        return dict(UNTOUCHED_STYLE)
    if name in STRATEGY_ORDER:
        i = STRATEGY_ORDER.index(name)
        return {"color": OKABE_ITO[i], "marker": MARKERS[i], "linestyle": "-"}
    h = sum((k + 1) * ord(c) for k, c in enumerate(name))
    return {
        "color": EXTRA_COLOURS[h % len(EXTRA_COLOURS)],
        "marker": EXTRA_MARKERS[h % len(EXTRA_MARKERS)],
        "linestyle": "-",
    }
