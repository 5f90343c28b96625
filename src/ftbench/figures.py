"""Shared figure style: one colour-blind-safe colour and marker per strategy, in every figure."""

from __future__ import annotations

# Okabe-Ito palette (colour-blind safe), fixed per strategy so figures agree with each other.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
STRATEGY_ORDER = ["naive", "freeze5", "freeze6", "lora", "replay", "pseudo_replay", "replay_lora", "scratch"]
MARKERS = "osD^vP*X"


def strategy_style(name: str) -> dict:
    if name == "untouched":
        return {"color": "#7f7f7f", "linestyle": "--"}
    # Strategies beyond the study's eight (new config entries) get stable, distinct styles too.
    i = STRATEGY_ORDER.index(name) if name in STRATEGY_ORDER else len(STRATEGY_ORDER) + sum(map(ord, name))
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)], "linestyle": "-"}
