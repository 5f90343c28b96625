"""The study's six findings (study.md), each checked against this run's numbers.

Each check returns a verdict and the numbers that decide it. Every comparison uses the seed
mean and spread (sample standard deviation over training seeds): a difference counts only when
it is strict and larger than `spread_factor` times the larger spread, with at least `min_seeds`
seeds on each side. Verdicts:
- supported: every comparison is decided and agrees with the claim;
- not supported / mixed: decided comparisons contradict it (all / some);
- inconclusive: every decided comparison agrees, but others are within the seed spread;
- not testable: nothing could be decided (no data, too few seeds, every difference within the
  seed spread, or a saturated observable such as an MD where no run failed); the evidence says
  what would make it testable.
Strategy roles (foundation, replay, frozen, lora) come from runs.csv, never from names. All
thresholds are the config's `findings:` block, cited in the evidence text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ftbench.core.config import schema_defaults
from ftbench.core.grid import NO_MODEL, UNTOUCHED
from ftbench.report.metrics import COMPUTE_LABELS, baseline_runs, compute_column, cost, partial_finetunes

# The findings' thresholds, with their meaning, are the schema's `findings` block (config files
# override them); results read without a config get the same defaults.
DEFAULTS = schema_defaults("findings")
NOT_TESTABLE, SUPPORTED, NOT_SUPPORTED, MIXED = "not testable", "supported", "not supported", "mixed"
INCONCLUSIVE = "inconclusive"
MARK = {-1: "", 0: " (tie)", 1: " (not)", None: " (undecided)"}  # beat-scratch marks per strategy


@dataclass
class Stat:
    """Mean, spread (sample SD; NaN for one value), number of values and of distinct seeds."""

    mean: float
    sd: float
    n: int
    seeds: int | None = None

    def __post_init__(self):
        """Count every value as its own seed unless `seeds` was given."""
        if self.seeds is None:
            self.seeds = self.n

    @classmethod
    def of(cls, values, seeds=None) -> Stat:
        """Return the Stat of `values` over runs, NaNs dropped.

        `seeds` (one per value) counts the distinct training seeds behind them, so pooling strategies or
        sizes never passes for seed replication.
        """
        v = pd.Series(values, dtype=float).reset_index(drop=True)
        keep = v.notna()
        x = np.asarray(v[keep], dtype=float)
        if not len(x):
            return cls(math.nan, math.nan, 0, 0)
        n_seeds = len(set(pd.Series(list(seeds))[keep.values])) if seeds is not None else len(x)
        return cls(float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, len(x), n_seeds)

    def text(self, fmt: str = ".3g") -> str:
        """Return `mean ± sd (n=N)` (no spread for one value, `n/a` for none)."""
        if self.n == 0:
            return "n/a"
        spread = f" ± {self.sd:{fmt}}" if self.n > 1 else ""
        return f"{self.mean:{fmt}}{spread} (n={self.n})"


def compare(a: Stat, b: Stat, cfg: dict) -> int | None:
    """+1: a > b, -1: a < b beyond the seed spread; 0: a tie; None: too few seeds to say."""
    if a.seeds < cfg["min_seeds"] or b.seeds < cfg["min_seeds"] or math.isnan(a.mean) or math.isnan(b.mean):
        return None
    diff = a.mean - b.mean
    noise = cfg["spread_factor"] * max(np.nan_to_num(a.sd), np.nan_to_num(b.sd))
    if abs(diff) <= max(noise, cfg["tie_rel"] * max(abs(a.mean), abs(b.mean))):
        return 0
    return 1 if diff > 0 else -1


def against(a: Stat, threshold: float, cfg: dict) -> int | None:
    """+1 / -1: a above / below a fixed threshold beyond its seed spread; 0 within; None: too few seeds."""
    return compare(a, Stat(threshold, 0.0, cfg["min_seeds"], cfg["min_seeds"]), cfg)


def cell(outcomes: list[int | None], want: list[int]) -> bool | str | None:
    """Return one cell's verdict from several comparisons.

    True when all come out as wanted, False when any comes out the other way, "tie" when some are
    within spread, None when any lacks seeds.
    """
    if any(o is None for o in outcomes):
        return None
    if any(o == -w for o, w in zip(outcomes, want)):
        return False
    if any(o == 0 for o in outcomes):
        return "tie"
    return True


def verdict(cells: list, untestable_note: str, cfg: dict) -> tuple[str, str]:
    """(verdict, note) over the cells' outcomes (True / False / "tie" / None)."""
    decided = [c for c in cells if isinstance(c, bool)]
    ties = sum(c == "tie" for c in cells)
    seeds = sum(c is None for c in cells)
    note = []
    if ties:
        note.append(f"{ties} comparison(s) within the seed spread")
    if seeds:
        note.append(f"{seeds} with fewer than {cfg['min_seeds']} seeds (findings.min_seeds): add seeds")
    if not cells:
        return NOT_TESTABLE, untestable_note
    if not decided:
        return NOT_TESTABLE, "; ".join(note)
    if all(decided):
        # strict: a claim is supported only when no part of it is left within the spread
        v = INCONCLUSIVE if ties or seeds else SUPPORTED
    else:
        v = NOT_SUPPORTED if not any(decided) else MIXED
    return v, "; ".join(note)


def rule(cfg: dict) -> str:
    """Return the decision rule of the findings, with the configured spread factor and seed count."""
    return (
        f"decided when the difference exceeds {cfg['spread_factor']:g} x the larger seed SD "
        f"(findings.spread_factor) with >= {cfg['min_seeds']} seeds (findings.min_seeds)"
    )


def _result(n: int, claim: str, v: tuple[str, str], ev: list[str], cfg: dict, extra: str = "") -> dict:
    verdict_, note = v
    text = "; ".join(ev)
    parts = [p for p in (text, extra, note) if p]
    return {"finding": n, "claim": claim, "verdict": verdict_, "evidence": " | ".join(parts) + f" [{rule(cfg)}]"}


# ---- selections --------------------------------------------------------------------------------


def _baseline(runs: pd.DataFrame) -> set[str]:
    """Return the reference strategy among `runs` (role_baseline) as a set of names, empty without one."""
    return set(runs.strategy[baseline_runs(runs)])


def _trained(metrics: pd.DataFrame) -> pd.DataFrame:
    """Finished fine-tunes and scratch runs: not the untouched or zero-shot (`train: false`) models."""
    return metrics[(metrics.strategy != UNTOUCHED) & (metrics.status == "ok") & metrics.role_trained.astype(bool)]


def _cells(metrics: pd.DataFrame, size: str = "max"):
    """Yield (benchmark, model, size, runs of that model and scratch) at each benchmark's smallest or largest size.

    The e0 mode is 'estimated' where present (scratch: its own E0 mode).
    """
    for bench, runs in _trained(metrics).groupby("benchmark"):
        n = runs.train_size.min() if size == "min" else runs.train_size.max()
        runs = runs[runs.train_size == n]
        e0 = "estimated" if (runs.e0 == "estimated").any() else runs.e0.iloc[0]
        runs = runs[(runs.e0 == e0) | (runs.model == NO_MODEL)]
        for model in sorted(x for x in runs.model.unique() if x != NO_MODEL):
            yield bench, model, n, runs[runs.model.isin([model, NO_MODEL])]


def _stats(frame: pd.DataFrame, column: str) -> dict[str, Stat]:
    return {s: Stat.of(g[column], g.seed) for s, g in frame.groupby("strategy")}


# ---- the six findings ------------------------------------------------------------------------


def foundation_quality(metrics: pd.DataFrame, cfg: dict) -> dict:
    """Two-way decomposition of the seed-mean target force RMSE over models and strategies."""
    trained = _trained(metrics)
    trained = trained[(trained.model != NO_MODEL) & (trained.e0 == "estimated")]
    cells, ev = [], []
    for (bench, size), runs in trained.groupby(["benchmark", "train_size"]):
        if runs.model.nunique() < 2 or runs.strategy.nunique() < 2:
            continue
        grouped = runs.groupby(["model", "strategy"]).target_force_rmse
        p = grouped.mean().unstack().dropna(axis=1)  # strategies every model has
        if p.shape[1] < 2:
            continue
        n_seeds = int(grouped.count().min())
        grand = p.values.mean()
        n_m, n_s = p.shape
        ss_m = n_s * ((p.mean(axis=1) - grand) ** 2).sum()
        ss_s = n_m * ((p.mean(axis=0) - grand) ** 2).sum()
        ss_total = ((p.values - grand) ** 2).sum()
        ss_i = max(ss_total - ss_m - ss_s, 0.0)
        ms_m, ms_s = ss_m / (n_m - 1), ss_s / (n_s - 1)
        var_seed = grouped.var(ddof=1).mean() if n_seeds > 1 else math.nan
        noise = var_seed / n_seeds if n_seeds > 1 else math.nan  # variance of a cell's seed mean
        shares = [x / ss_total if ss_total > 0 else math.nan for x in (ss_m, ss_s, ss_i)]
        if n_seeds < cfg["min_seeds"]:
            outcome = None
        elif abs(ms_m - ms_s) <= cfg["spread_factor"] * noise or ss_total == 0:
            outcome = "tie"
        else:
            outcome = bool(ms_m > ms_s)
        cells.append(outcome)
        ev.append(
            f"{bench} n{size}: variance of the seed-mean target F RMSE over {n_m} models "
            f"{shares[0]:.0%}, over {n_s} strategies {shares[1]:.0%}, interaction {shares[2]:.0%}; "
            f"mean squares {ms_m:.3g} vs {ms_s:.3g} (meV/A)^2, seed noise of a cell mean "
            f"{noise:.3g} (meV/A)^2, {n_seeds} seed(s); best model {p.mean(axis=1).idxmin()}"
        )
    return _result(
        1,
        "Foundation-model quality matters more than the strategy",
        verdict(cells, "needs >= 2 foundation models and >= 2 strategies", cfg),
        ev,
        cfg,
    )


def beats_scratch(metrics: pd.DataFrame, cfg: dict) -> dict:
    """Fine-tunes beat scratch at the smallest size; naive converges best at the largest."""
    cells, ev = [], []
    frac_needed = cfg["beat_scratch_fraction"]
    for bench, model, n, runs in _cells(metrics, "min"):
        st = _stats(runs[runs.status == "ok"], "target_force_rmse")
        scratch = [s for s in st if not runs[runs.strategy == s].role_foundation.astype(bool).iloc[0]]
        if not scratch:
            continue
        ft = {s: v for s, v in st.items() if s not in scratch and v.n}
        if not ft:
            continue
        ref = st[scratch[0]]
        outcomes = {s: compare(v, ref, cfg) for s, v in ft.items()}
        if any(o is None for o in outcomes.values()):
            cells.append(None)
        else:
            beat = sum(o == -1 for o in outcomes.values()) / len(outcomes)
            worse = sum(o == 1 for o in outcomes.values()) / len(outcomes)
            cells.append(True if beat > frac_needed else False if worse >= 1 - frac_needed else "tie")
        ev.append(
            f"{bench}/{model} n{n} (smallest): scratch {ref.text()} meV/A; beat it: "
            + ", ".join(f"{s} {v.text()}{MARK[outcomes[s]]}" for s, v in ft.items())
        )
    for bench, model, n, runs in _cells(metrics, "max"):
        runs = runs[runs.role_foundation.astype(bool)]
        st = _stats(runs, "target_force_rmse")
        base = _baseline(runs)
        plain = [s for s in st if s in base]
        if not plain or len(st) < 2:
            continue
        naive = st[plain[0]]
        others = {s: v for s, v in st.items() if s != plain[0] and v.n}
        tol = 1.0 - cfg["naive_tolerance"]
        # another strategy clearly better: below (1 - tolerance) x naive beyond the spread
        better = [
            compare(v, Stat(naive.mean * tol, naive.sd * tol, naive.n, naive.seeds), cfg) for v in others.values()
        ]
        worse = [compare(v, naive, cfg) for v in others.values()]
        if any(o is None for o in better + worse):
            outcome = None
        elif any(o == -1 for o in better):
            outcome = False
        elif any(o == 1 for o in worse):
            outcome = True
        else:
            outcome = "tie"  # everything within the spread: accuracy saturated, no ranking
        cells.append(outcome)
        ev.append(
            f"{bench}/{model} n{n} (largest): {plain[0]} {naive.text()} meV/A vs best other "
            f"{min(others, key=lambda s: others[s].mean)} {min(others.values(), key=lambda v: v.mean).text()}"
        )
    return _result(
        2,
        "Most strategies beat scratch (smallest size); naive converges best for one target system (largest size)",
        verdict(cells, "needs scratch and fine-tuned runs", cfg),
        ev,
        cfg,
        f"beat scratch: more than {frac_needed:.0%} of fine-tunes (findings.beat_scratch_fraction); "
        f"naive best unless another strategy is > {cfg['naive_tolerance']:.0%} better "
        "(findings.naive_tolerance)",
    )


def forgetting_metric(runs: pd.DataFrame) -> tuple[str, str]:
    """Return the pretraining-error column finding 3 uses, and why."""
    if "pt_relabelled_force_rmse" in runs and runs.pt_relabelled_force_rmse.notna().any():
        return (
            "pt_relabelled_force_rmse",
            "target head on the pretraining slice relabelled at the target level of "
            "theory: forgetting without the level-of-theory shift",
        )
    return (
        "pt_force_rmse",
        "target head on the pretraining slice's original labels (no relabelled slice in "
        "catalog.foundation_models.<model>.pt_eval.relabelled): includes the level-of-theory shift",
    )


def replay_keeps_pretraining(metrics: pd.DataFrame, cfg: dict) -> dict:
    """Check finding 3: only multihead replay keeps pretraining accuracy (and the short-range wall)."""
    kept = cfg["kept_ratio"]
    untouched = metrics[metrics.strategy == UNTOUCHED]
    cells, ev, used = [], [], set()
    for bench, model, _n, runs in _cells(metrics):
        runs = runs[runs.role_foundation.astype(bool)]
        col, why = forgetting_metric(runs)
        base = untouched[(untouched.benchmark == bench) & (untouched.model == model)][col].mean()
        if np.isnan(base):
            continue
        used.add(why)
        ratio = runs.assign(ratio=runs[col] / base)
        st = _stats(ratio, "ratio")
        replay = [s for s in st if ratio[ratio.strategy == s].role_replay.notna().iloc[0] and st[s].n]
        single = [s for s in st if ratio[ratio.strategy == s].role_replay.isna().iloc[0] and st[s].n]
        if not replay or not single:
            continue
        outcomes = [against(st[s], kept, cfg) for s in replay] + [against(st[s], kept, cfg) for s in single]
        want = [-1] * len(replay) + [1] * len(single)
        modes = {ratio[ratio.strategy == s].role_replay.iloc[0]: s for s in replay}
        if {"original", "pseudo"} <= set(modes):
            o, p = st[modes["original"]], st[modes["pseudo"]]
            gap = abs(p.mean - o.mean) / o.mean
            outcomes.append(1 if gap <= cfg["pseudo_match"] else -1)
            want.append(1)
        walls = _stats(runs, "dimer_wall_failures")
        base = _baseline(runs)
        plain = [s for s in single if s in base]
        if plain and walls[plain[0]].n and all(walls[s].n for s in replay):
            # the wall: replay must not have more failures than naive (equal counts are fine)
            for s_ in replay:
                o = compare(walls[s_], walls[plain[0]], cfg)
                outcomes.append(None if o is None else 1 if o <= 0 else -1)
                want.append(1)
        cells.append(cell(outcomes, want))
        pt_head = ""
        if "pt_head_force_rmse" in runs and runs.pt_head_force_rmse.notna().any():
            ph = _stats(runs, "pt_head_force_rmse")
            pt_head = "; pretraining head: " + ", ".join(f"{s} {v.text()} meV/A" for s, v in ph.items() if v.n)
        ev.append(
            f"{bench}/{model}: pretraining F RMSE / untouched ({col}): replay "
            + ", ".join(f"{s} {st[s].text('.2f')}" for s in replay)
            + "; single-head "
            + ", ".join(f"{s} {st[s].text('.2f')}" for s in single)
            + pt_head
            + (
                "; dimer wall failures " + ", ".join(f"{s} {walls[s].text('.0f')}" for s in plain + replay)
                if plain
                else ""
            )
        )
    return _result(
        3,
        "Only multihead replay keeps pretraining accuracy (and the short-range wall); pseudolabels "
        "match original labels",
        verdict(cells, "needs replay, single-head and untouched runs", cfg),
        ev,
        cfg,
        f"kept: ratio <= {kept:g} (findings.kept_ratio); pseudo within {cfg['pseudo_match']:.0%} "
        "of original (findings.pseudo_match); replay: runs whose strategy has catalog `replay:`; "
        + " / ".join(sorted(used)),
    )


def replay_lora_worse(metrics: pd.DataFrame, cfg: dict) -> dict:
    """Check finding 4: replay + LoRA is worse than either alone; higher LoRA ranks help on broad data."""
    cells, ev = [], []
    for bench, model, _n, runs in _cells(metrics):
        runs = runs[runs.role_foundation.astype(bool)]
        st = _stats(runs, "target_force_rmse")
        roles = runs.groupby("strategy").first()
        both = [
            s
            for s in st
            if roles.loc[s].role_replay is not None
            and pd.notna(roles.loc[s].role_replay)
            and bool(roles.loc[s].role_lora)
        ]
        replay = [s for s in st if pd.notna(roles.loc[s].role_replay) and not bool(roles.loc[s].role_lora)]
        lora = [s for s in st if pd.isna(roles.loc[s].role_replay) and bool(roles.loc[s].role_lora)]
        if not (both and replay and lora):
            continue
        for c in both:
            outcomes = [compare(st[c], st[s], cfg) for s in replay + lora]
            cells.append(cell(outcomes, [1] * len(outcomes)))
            ev.append(
                f"{bench}/{model}: target F RMSE {c} {st[c].text()}, "
                + ", ".join(f"{s} {st[s].text()}" for s in replay + lora)
                + " meV/A"
            )
    ranks = (
        metrics[metrics.lora_rank.notna() & (metrics.status == "ok")] if "lora_rank" in metrics else metrics.iloc[0:0]
    )
    if ranks.lora_rank.nunique() > 1:
        by_rank = {int(k): Stat.of(g.target_force_rmse, g.seed) for k, g in ranks.groupby("lora_rank")}
        ev.append("LoRA rank sweep: " + ", ".join(f"r{k} {v.text()}" for k, v in by_rank.items()) + " meV/A")
    else:
        ev.append("LoRA-rank part needs config/ablations/lora_ranks.yaml")
    return _result(
        4,
        "Replay + LoRA is worse than either alone; higher LoRA ranks help on broad data",
        verdict(cells, "needs replay+LoRA, replay and LoRA runs", cfg),
        ev,
        cfg,
    )


def md_stability_order(metrics: pd.DataFrame, cfg: dict) -> dict:
    """Naive < LoRA/frozen < replay in MD time survived; average-E0 less stable than estimated."""
    cells, ev, saturated = [], [], []
    trained = _trained(metrics)
    for bench, model, _n, runs in _cells(metrics):
        runs = runs[runs.role_foundation.astype(bool) & runs.md_time_ps.notna()]
        if runs.empty:
            continue
        if (runs.md_survival >= 1.0).all():
            saturated.append(f"{bench}/{model}")
            cells.append("tie")
            continue
        groups = {
            "naive": runs[baseline_runs(runs)],
            "LoRA/frozen": runs[partial_finetunes(runs)],
            "replay": runs[runs.role_replay.notna()],
        }
        stats = {k: Stat.of(v.md_time_ps, v.seed) for k, v in groups.items() if len(v)}
        if len(stats) < 3:
            continue
        cells.append(
            cell(
                [
                    compare(stats["naive"], stats["LoRA/frozen"], cfg),
                    compare(stats["LoRA/frozen"], stats["replay"], cfg),
                ],
                [-1, -1],
            )
        )
        ev.append(
            f"{bench}/{model}: MD time survived naive {stats['naive'].text()}, LoRA/frozen "
            f"{stats['LoRA/frozen'].text()}, replay {stats['replay'].text()} ps"
        )
    if saturated:
        ev.append(
            "no MD failure at all (saturated; a longer ramp, a higher robustness.md.t_end or more replicas "
            "would make it testable): " + ", ".join(saturated)
        )
    e0 = {k: Stat.of(v.md_survival, v.seed) for k, v in trained.groupby("e0")}
    no_md = "md_time_ps" not in metrics or metrics.md_time_ps.isna().all()
    if no_md:
        pass
    elif {"average", "estimated"} <= set(e0):
        if (trained[trained.e0.isin(["average", "estimated"])].md_survival >= 1.0).all():
            cells.append("tie")
            ev.append("E0 part: every average- and estimated-E0 run survived (saturated)")
        else:
            cells.append(cell([compare(e0["average"], e0["estimated"], cfg)], [-1]))
            ev.append(
                f"MD survival average-E0 {e0['average'].text('.2f')} vs estimated-E0 {e0['estimated'].text('.2f')}"
            )
    else:
        ev.append("E0 part needs config/ablations/e0_modes.yaml")
    untestable = "needs naive, LoRA/frozen and replay runs with MD results"
    if no_md:
        untestable = (
            "no run of this config has MD results: `robustness.benchmarks` names no benchmark here "
            "(config/robustness_water.yaml probes water, as the study did)"
        )
    return _result(
        5,
        "MD instability: naive worst, LoRA/freezing between, replay least; average E0s run unstable MD",
        verdict(cells, untestable, cfg),
        ev,
        cfg,
    )


def replay_cost(metrics: pd.DataFrame, cfg: dict, replay_steps: pd.DataFrame | None = None) -> dict:
    """Check finding 6: replay costs about 3-15x the training compute of naive.

    Training compute is CPU time where the runs recorded it (metrics.compute_column), else mace's
    optimiser-step time.
    """
    lo, hi = cfg["cost_range"]
    trained = _trained(metrics)
    col = compute_column(trained)
    if col not in trained or trained[col].isna().all():
        return _result(
            6,
            "Replay costs about 3-15x the training compute of naive",
            (
                NOT_TESTABLE,
                "runs.csv has no optimiser-step times (mace's per-step `opt` rows): rerun "
                "aggregate on runs with mace_results/*_train.txt",
            ),
            [],
            cfg,
        )
    plain = trained[baseline_runs(trained)].groupby(["benchmark", "train_size", "seed", "model"])[col].median()
    cells, ev = [], []
    table = cost(metrics, replay_steps, cfg["cost_load_spread"])
    for (model, strategy), g in trained[trained.role_replay.notna()].groupby(["model", "strategy"]):
        ratios = [r[col] / plain.get((r.benchmark, r.train_size, r.seed, model), np.nan) for _, r in g.iterrows()]
        st = Stat.of(ratios, g.seed)
        if not st.n:
            continue
        inside = [against(st, lo, cfg), against(st, hi, cfg)]
        cells.append(cell(inside, [1, -1]))
        row = table[(table.model == model) & (table.strategy == strategy)]
        per_step = row["time per step (ms)"].iloc[0] if len(row) else math.nan
        replay_step = row["replay step (s)"].iloc[0] if len(row) else math.nan
        load = row["caveat"].iloc[0] if len(row) else ""
        ev.append(
            f"{model}/{strategy}: {COMPUTE_LABELS[col]} / naive {st.text('.2f')} (time per step {per_step:.3g} ms; "
            f"replay step itself {replay_step:.3g} s, once per model and benchmark)" + (f"; {load}" if load else "")
        )
    how = (
        "CPU time of mace's training call (user + system, every thread: it does not grow when other jobs "
        "share the cores)"
        if col == "cpu_time_s"
        else "summed optimiser-step wall time from mace's per-step log (start-up and evaluation excluded; "
        "load-sensitive on a shared CPU: no CPU time in runs.csv)"
    )
    return _result(
        6,
        "Replay costs about 3-15x the training compute of naive",
        verdict(cells, "needs replay and naive runs", cfg),
        ev,
        cfg,
        f"training compute: {how}, same benchmark/size/seed; study range {lo:g}-{hi:g}x (findings.cost_range)",
    )


CHECKS = [foundation_quality, beats_scratch, replay_keeps_pretraining, replay_lora_worse, md_stability_order]


def findings(
    metrics: pd.DataFrame, settings: dict | None = None, replay_steps: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Return one row per finding (claim, verdict, evidence), with `settings` over the defaults."""
    cfg = {**DEFAULTS, **(settings or {})}
    rows = [check(metrics, cfg) for check in CHECKS] + [replay_cost(metrics, cfg, replay_steps)]
    return pd.DataFrame(rows)
