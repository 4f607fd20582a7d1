"""Statistics of a validation: per-strategy means, seed-paired differences, per-task gains, verdicts.

Every function takes the long per-task table of a validation (``ROWS`` columns: one row per
strategy, draw, seed and task with ``perf``, higher is better) and returns plain tables, so the
numbers in the CLI, the dashboard and the exports come from one place and the verdict
sentence is generated from them (never written by hand).

The unit of replication is the training seed: for each strategy and seed we average ``perf``
over tasks (and over the draws of a strategy holding several partitions, e.g. random groups),
and the uncertainty is the spread of that average over seeds. Differences between two
strategies are paired on the seed (same seed = same initialisations and batches of a group).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from core.errors import InvalidInputError

ROWS = ["strategy", "draw", "group", "task", "seed", "perf", "metric", "training_id"]
LEVEL = 0.95


def seed_means(rows: pd.DataFrame) -> pd.DataFrame:
    """Task-average ``perf`` per strategy and seed (draws of one strategy averaged within a seed).

    Returns a table indexed by seed with one column per strategy (NaN where a strategy lacks a seed).
    """
    _check(rows)
    per_draw = rows.groupby(["strategy", "draw", "seed"], sort=False)["perf"].mean()
    per_seed = per_draw.groupby(["strategy", "seed"], sort=False).mean()
    table = per_seed.unstack("strategy")
    order = list(dict.fromkeys(rows["strategy"]))
    return table.reindex(columns=order).sort_index()


def strategy_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per strategy: ``mean`` over seeds of the task-average perf, ``se`` (sd / sqrt(seeds)), ``seeds``, ``draws``."""
    means = seed_means(rows)
    draws = rows.groupby("strategy")["draw"].nunique()
    out = []
    for strategy in means.columns:
        x = means[strategy].dropna().to_numpy()
        se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
        out.append({"strategy": strategy, "mean": float(x.mean()) if len(x) else float("nan"), "se": se,
                    "seeds": int(len(x)), "draws": int(draws.get(strategy, 0))})
    return pd.DataFrame(out, columns=["strategy", "mean", "se", "seeds", "draws"])


def paired_difference(rows: pd.DataFrame, label: str, reference: str, level: float = LEVEL) -> dict[str, float]:
    """Task-average perf of ``label`` minus ``reference``, paired on the seed, with a t-interval.

    Returns ``diff`` (mean over seeds of the per-seed difference), ``se``, ``low`` and ``high``
    (the ``level`` t-interval: diff -/+ t_{n-1} * se; NaN for one seed) and ``seeds`` (the
    seeds both strategies have).
    """
    means = seed_means(rows)
    for x in (label, reference):
        if x not in means.columns:
            raise InvalidInputError(f"strategy {x!r} is not in the validation's results.")
    d = (means[label] - means[reference]).dropna().to_numpy()
    n = len(d)
    if n == 0:
        return {"diff": float("nan"), "se": float("nan"), "low": float("nan"), "high": float("nan"), "seeds": 0}
    diff = float(d.mean())
    if n < 2:
        return {"diff": diff, "se": float("nan"), "low": float("nan"), "high": float("nan"), "seeds": 1}
    se = float(d.std(ddof=1) / math.sqrt(n))
    t = float(_st.t.ppf(0.5 + level / 2, n - 1))
    return {"diff": diff, "se": se, "low": diff - t * se, "high": diff + t * se, "seeds": n}


def paired_differences(rows: pd.DataFrame, label: str, references: Sequence[str],
                       level: float = LEVEL) -> pd.DataFrame:
    """:func:`paired_difference` of ``label`` against each reference present, with its verdict."""
    present = set(rows["strategy"])
    out = []
    for ref in references:
        if ref == label or ref not in present:
            continue
        d = paired_difference(rows, label, ref, level)
        out.append({"baseline": ref, **d, "verdict": verdict(label, ref, d, level)})
    return pd.DataFrame(out, columns=["baseline", "diff", "se", "low", "high", "seeds", "verdict"])


def _fmt(x: float) -> str:
    return f"{x:+.4g}"


def verdict(label: str, reference: str, d: Mapping[str, float], level: float = LEVEL) -> str:
    """One sentence from a paired difference: better / worse beyond the interval, or not distinguishable."""
    pct = f"{level:.0%}"
    n = int(d.get("seeds", 0))
    if n == 0:
        return f"{label} vs {reference}: no seed with results for both."
    if n < 2 or not np.isfinite(d["low"]):
        return (f"{label} vs {reference}: difference {_fmt(d['diff'])} from one seed; no interval "
                "(run at least 2 seeds to judge).")
    ci = f"{pct} interval {_fmt(d['low'])} to {_fmt(d['high'])}, {n} seeds"
    if d["low"] > 0:
        return f"{label} beats {reference} by {_fmt(d['diff'])} ({ci})."
    if d["high"] < 0:
        return f"{label} is worse than {reference} by {_fmt(d['diff'])} ({ci})."
    return f"{label} and {reference} are not distinguishable: difference {_fmt(d['diff'])} ({ci} covers 0)."


def task_gains(rows: pd.DataFrame, label: str, reference: str) -> pd.DataFrame:
    """Per task: seed-mean perf of ``label`` and ``reference``, their difference and its SE over seeds.

    Columns: task, ``perf`` (label), ``reference_perf``, ``gain`` (mean over seeds of the
    per-seed difference, draws averaged within a seed), ``se``, ``seeds``, ``helps`` (gain > 0).
    """
    _check(rows)
    per = rows.groupby(["strategy", "task", "seed"])["perf"].mean()  # sorted index: fast .loc
    out = []
    for task in dict.fromkeys(rows["task"]):
        try:
            a, b = per.loc[(label, task)], per.loc[(reference, task)]
        except KeyError:
            continue
        d = (a - b).dropna().to_numpy()
        se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
        out.append({"task": task, "perf": float(a.mean()), "reference_perf": float(b.mean()),
                    "gain": float(d.mean()) if len(d) else float("nan"), "se": se, "seeds": int(len(d))})
    df = pd.DataFrame(out, columns=["task", "perf", "reference_perf", "gain", "se", "seeds"])
    df["helps"] = df["gain"] > 0
    return df


def predicted_gains(values: np.ndarray, names: Sequence[str], groups: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Per task, the gain the affinity matrix predicts: the mean of ``T[u, v]`` over its group-mates ``u``.

    ``T[u, v]`` is the effect of training with source ``u`` on target ``v``, so a task's
    predicted gain from its group is the mean over the other members of its group (0 for a
    task alone). Columns: task, group (index), ``predicted``.
    """
    idx = {n: i for i, n in enumerate(names)}
    values = np.asarray(values, dtype=float)
    out = []
    for gi, group in enumerate(groups):
        for v in group:
            mates = [u for u in group if u != v]
            if v not in idx or any(u not in idx for u in mates):
                raise InvalidInputError(f"task {v!r} or a group-mate is not in the affinity matrix.")
            pred = float(np.mean([values[idx[u], idx[v]] for u in mates])) if mates else 0.0
            out.append({"task": v, "group": gi, "predicted": pred})
    return pd.DataFrame(out, columns=["task", "group", "predicted"])


def agreement(predicted: pd.Series, measured: pd.Series) -> dict[str, float]:
    """How well predicted gains order the measured ones: Spearman rho, sign agreement, tasks compared."""
    both = pd.concat([predicted, measured], axis=1).dropna()
    n = len(both)
    if n < 3 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        rho = float("nan")
    else:
        rho = float(_st.spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic)
    sign = float((np.sign(both.iloc[:, 0]) == np.sign(both.iloc[:, 1])).mean()) if n else float("nan")
    return {"spearman": rho, "sign_agreement": sign, "tasks": int(n)}


def _check(rows: pd.DataFrame) -> None:
    missing = [c for c in ("strategy", "draw", "task", "seed", "perf") if c not in rows.columns]
    if missing:
        raise InvalidInputError(f"validation rows lack column(s) {missing}.")
