"""The study's six findings (study.md), each checked against this run's numbers.

Each check returns a verdict (supported / not supported / mixed / not testable) and the numbers
that decide it, so a reader sees why. Thresholds are stated in the evidence text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ftbench.config import NO_MODEL, UNTOUCHED
from ftbench.tables import REPLAY, cost

KEPT = 1.2  # pretraining error within 20 % of the untouched model's counts as "kept"
SINGLE_HEAD = ("naive", "freeze5", "freeze6", "lora")


def _trained(m: pd.DataFrame) -> pd.DataFrame:
    return m[(m.strategy != UNTOUCHED) & (m.status == "ok")]


def _verdict(passed: list[bool]) -> str:
    if not passed:
        return "not testable"
    return "supported" if all(passed) else "not supported" if not any(passed) else "mixed"


def _cells(m: pd.DataFrame, size: str = "max"):
    """(benchmark, model, frame at that benchmark's smallest/largest size), e0 'estimated' first."""
    for bench, b in _trained(m).groupby("benchmark"):
        n = b.train_size.min() if size == "min" else b.train_size.max()
        b = b[b.train_size == n]
        e0 = "estimated" if (b.e0 == "estimated").any() else b.e0.iloc[0]
        b = b[(b.e0 == e0) | (b.model == NO_MODEL)]
        for model in sorted(x for x in b.model.unique() if x != NO_MODEL):
            yield bench, model, n, b[b.model.isin([model, NO_MODEL])].groupby("strategy").mean(numeric_only=True)


def foundation_quality(m: pd.DataFrame) -> dict:
    t = _trained(m)
    t = t[(t.model != NO_MODEL) & (t.e0 == "estimated")]
    passed, ev = [], []
    for (bench, size), b in t.groupby(["benchmark", "train_size"]):
        if b.model.nunique() < 2 or b.strategy.nunique() < 2:
            continue
        p = b.groupby(["model", "strategy"]).target_force_rmse.mean().unstack()
        model_gap = (p.max() - p.min()).median()       # per strategy: spread across models
        strategy_gap = (p.max(axis=1) - p.min(axis=1)).median()  # per model: spread across strategies
        best = p.mean(axis=1).idxmin()
        passed.append(model_gap > strategy_gap)
        ev.append(f"{bench} n{size}: model spread {model_gap:.0f} vs strategy spread {strategy_gap:.0f} meV/A "
                  f"(median over strategies / models; best model {best})")
    return {"finding": 1, "claim": "Foundation-model quality matters more than the strategy",
            "verdict": _verdict(passed), "evidence": "; ".join(ev) or "needs >= 2 foundation models"}


def beats_scratch(m: pd.DataFrame) -> dict:
    passed, ev = [], []
    for bench, model, n, s in _cells(m, "min"):
        if "scratch" not in s.index:
            continue
        ft = s.drop(index="scratch").target_force_rmse.dropna()
        if ft.empty:
            continue
        scratch = s.loc["scratch", "target_force_rmse"]
        frac = float((ft < scratch).mean())
        naive_ok = "naive" in ft and ft["naive"] <= 1.1 * ft.min()
        passed.append(frac > 0.5 and naive_ok)
        naive = f"naive {ft['naive']:.0f}" if "naive" in ft else "no naive run"
        ev.append(f"{bench}/{model} n{n}: {frac:.0%} of fine-tunes beat scratch ({scratch:.0f} meV/A); "
                  f"{naive} vs best {ft.idxmin()} {ft.min():.0f}")
    return {"finding": 2, "claim": "Most strategies beat scratch; naive converges best for one target system",
            "verdict": _verdict(passed),
            "evidence": "; ".join(ev) + " (naive must be within 10 % of the best)" if ev else
            "needs scratch and fine-tuned runs"}


def replay_keeps_pretraining(m: pd.DataFrame) -> dict:
    untouched = m[m.strategy == UNTOUCHED].groupby(["benchmark", "model"]).pt_force_rmse.mean()
    passed, ev = [], []
    for bench, model, n, s in _cells(m):
        base = untouched.get((bench, model))
        if base is None or np.isnan(base):
            continue
        rel = (s.pt_force_rmse / base).dropna()
        rep = [r for r in REPLAY if r in rel]
        single = [r for r in SINGLE_HEAD if r in rel]
        if not rep or not single:
            continue
        ok = all(rel[r] <= KEPT for r in rep) and all(rel[r] > KEPT for r in single)
        if {"replay", "pseudo_replay"} <= set(rel.index):
            same = abs(rel["pseudo_replay"] - rel["replay"]) <= 0.2 * rel["replay"]
            ok = ok and same
        walls = s.dimer_wall_failures
        if "naive" in walls and walls[rep].notna().all() and not np.isnan(walls["naive"]):
            ok = ok and bool((walls[rep] <= walls["naive"]).all())
        passed.append(ok)
        ev.append(f"{bench}/{model}: pretraining F RMSE / untouched: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in rel.items())
                  + (f"; dimer wall failures naive {walls['naive']:.0f}, "
                     + ", ".join(f"{r} {walls[r]:.0f}" for r in rep) if "naive" in walls else ""))
    return {"finding": 3, "claim": "Only multihead replay keeps pretraining accuracy (and the short-range wall); "
            "pseudolabels match original labels",
            "verdict": _verdict(passed),
            "evidence": ("; ".join(ev) + f" (kept: ratio <= {KEPT}; pseudo within 20 % of replay)") if ev else
            "needs replay, single-head and untouched runs"}


def replay_lora_worse(m: pd.DataFrame) -> dict:
    passed, ev = [], []
    for bench, model, n, s in _cells(m):
        if not {"replay_lora", "replay", "lora"} <= set(s.index):
            continue
        f = s.target_force_rmse
        passed.append(f["replay_lora"] > f["replay"] and f["replay_lora"] > f["lora"])
        ev.append(f"{bench}/{model}: target F RMSE replay_lora {f['replay_lora']:.0f}, replay {f['replay']:.0f}, "
                  f"lora {f['lora']:.0f} meV/A")
    ranks = m[m.lora_rank.notna()] if "lora_rank" in m else m.iloc[0:0]
    if ranks.lora_rank.nunique() > 1:
        by_rank = ranks.groupby("lora_rank").target_force_rmse.mean()
        ev.append("LoRA rank sweep: " + ", ".join(f"r{int(k)} {v:.0f}" for k, v in by_rank.items()) + " meV/A")
    else:
        ev.append("LoRA-rank part needs config/ablations/lora_ranks.yaml")
    return {"finding": 4, "claim": "Replay + LoRA is worse than either alone; higher LoRA ranks help on broad data",
            "verdict": _verdict(passed), "evidence": "; ".join(ev)}


def md_stability(m: pd.DataFrame) -> dict:
    passed, ev = [], []
    for bench, model, n, s in _cells(m):
        t = s.md_time_ps.dropna()
        groups = {"naive": ["naive"], "lora/freeze": ["lora", "freeze5", "freeze6"], "replay": list(REPLAY)}
        g = {k: t[[x for x in v if x in t]].mean() for k, v in groups.items() if any(x in t for x in v)}
        if len(g) < 3:
            continue
        passed.append(g["naive"] <= g["lora/freeze"] <= g["replay"])
        ev.append(f"{bench}/{model}: mean MD time naive {g['naive']:.3g}, lora/freeze {g['lora/freeze']:.3g}, "
                  f"replay {g['replay']:.3g} ps")
    e0 = _trained(m).groupby("e0").md_survival.mean()
    if {"average", "estimated"} <= set(e0.index):
        passed.append(e0["average"] <= e0["estimated"])
        ev.append(f"MD survival average-E0 {e0['average']:.2f} vs estimated-E0 {e0['estimated']:.2f}")
    else:
        ev.append("E0 part needs config/ablations/e0_modes.yaml")
    return {"finding": 5, "claim": "MD instability: naive worst, LoRA/freezing between, replay least; "
            "average E0s run unstable MD", "verdict": _verdict(passed), "evidence": "; ".join(ev)}


def replay_cost(m: pd.DataFrame) -> dict:
    c = cost(m)
    ratios = c[c.strategy.isin(REPLAY)]["wall time / naive"].dropna()
    passed = [bool(3 <= r <= 15) for r in ratios]
    ev = ", ".join(f"{r.model}/{r.strategy} {r['wall time / naive']:.1f}x" for _, r in
                   c[c.strategy.isin(REPLAY)].iterrows())
    return {"finding": 6, "claim": "Replay costs about 3-15x the training compute of naive",
            "verdict": _verdict(passed), "evidence": (ev + " median wall time vs naive, same cell") if ev else
            "needs replay and naive runs"}


CHECKS = [foundation_quality, beats_scratch, replay_keeps_pretraining, replay_lora_worse, md_stability,
          replay_cost]


def findings(metrics: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([check(metrics) for check in CHECKS])
