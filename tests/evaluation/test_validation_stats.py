"""Validation statistics against values computed by hand on small synthetic tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidInputError
from core.evaluation.validation import stats

T975_2 = 4.302652729911275  # t quantile 0.975 with 2 degrees of freedom (tables)


def _rows(spec: dict) -> pd.DataFrame:
    """spec: {strategy: {seed: {draw: [perf of task a, perf of task b]}}}"""
    out = []
    for strategy, seeds in spec.items():
        for seed, draws in seeds.items():
            for draw, perfs in draws.items():
                for task, p in zip("ab", perfs):
                    out.append({"strategy": strategy, "draw": draw, "group": 0, "task": task, "seed": seed,
                                "perf": p, "metric": p, "training_id": "x"})
    return pd.DataFrame(out)


ROWS = _rows({
    "grouping": {0: {0: [0.8, 0.6]}, 1: {0: [0.9, 0.7]}, 2: {0: [0.7, 0.5]}},   # seed means 0.7, 0.8, 0.6
    "all": {0: {0: [0.5, 0.5]}, 1: {0: [0.7, 0.5]}, 2: {0: [0.5, 0.5]}},        # 0.5, 0.6, 0.5
    "random": {0: {0: [0.6, 0.6], 1: [0.4, 0.4]}, 1: {0: [0.7, 0.7], 1: [0.7, 0.7]},
               2: {0: [0.6, 0.8], 1: [0.5, 0.5]}},                               # 0.5, 0.7, 0.6 (draws averaged)
})


def test_strategy_mean_and_standard_error_over_seeds():
    s = stats.strategy_summary(ROWS).set_index("strategy")
    assert s.loc["grouping", "mean"] == pytest.approx(0.7)
    assert s.loc["grouping", "se"] == pytest.approx(0.1 / math.sqrt(3))       # sd of 0.7, 0.8, 0.6 is 0.1
    assert s.loc["all", "mean"] == pytest.approx(1.6 / 3)
    assert s.loc["all", "se"] == pytest.approx(np.std([0.5, 0.6, 0.5], ddof=1) / math.sqrt(3))
    assert s.loc["random", "mean"] == pytest.approx(0.6) and s.loc["random", "draws"] == 2
    assert s.loc["random", "se"] == pytest.approx(0.1 / math.sqrt(3))
    assert list(s["seeds"]) == [3, 3, 3]


def test_paired_difference_with_t_interval():
    d = stats.paired_difference(ROWS, "grouping", "all")
    # per-seed differences 0.2, 0.2, 0.1: mean 1/6, sd 0.057735, se 0.033333
    assert d["diff"] == pytest.approx(0.5 / 3)
    assert d["se"] == pytest.approx(0.1 / math.sqrt(3) / math.sqrt(3))
    assert d["low"] == pytest.approx(0.5 / 3 - T975_2 * 0.1 / 3)
    assert d["high"] == pytest.approx(0.5 / 3 + T975_2 * 0.1 / 3)
    assert d["seeds"] == 3


def test_verdict_generated_from_the_numbers():
    d = stats.paired_difference(ROWS, "grouping", "all")
    assert stats.verdict("the grouping", "one model", d).startswith("the grouping beats one model by +0.1667")
    # grouping - random per seed: 0.2, 0.1, 0.0 -> interval covers 0
    d2 = stats.paired_difference(ROWS, "grouping", "random")
    assert d2["low"] < 0 < d2["high"]
    assert "not distinguishable" in stats.verdict("g", "r", d2) and "covers 0" in stats.verdict("g", "r", d2)
    worse = stats.paired_difference(ROWS, "all", "grouping")
    assert stats.verdict("all", "g", worse).startswith("all is worse than g by -0.1667")
    one = stats.paired_difference(ROWS[ROWS["seed"] == 0], "grouping", "all")
    assert one["seeds"] == 1 and math.isnan(one["low"])
    assert "no interval" in stats.verdict("g", "a", one)
    table = stats.paired_differences(ROWS, "grouping", ["all", "random", "missing"])
    assert list(table["baseline"]) == ["all", "random"] and table["verdict"].str.len().gt(0).all()


def test_task_gains_and_predicted_gains():
    g = stats.task_gains(ROWS, "grouping", "all").set_index("task")
    assert g.loc["a", "gain"] == pytest.approx((0.3 + 0.2 + 0.2) / 3)        # 0.8-0.5, 0.9-0.7, 0.7-0.5
    assert g.loc["b", "gain"] == pytest.approx((0.1 + 0.2 + 0.0) / 3)
    assert g.loc["b", "se"] == pytest.approx(0.1 / math.sqrt(3))
    assert g["helps"].all()
    T = np.array([[0.0, 0.3, -0.2],
                  [0.1, 0.0, 0.4],
                  [0.5, -0.1, 0.0]])
    p = stats.predicted_gains(T, ["a", "b", "c"], [["a", "b", "c"]]).set_index("task")["predicted"]
    # target v's gain: mean over sources u != v of T[u, v] (column v)
    assert p["a"] == pytest.approx((0.1 + 0.5) / 2) and p["b"] == pytest.approx((0.3 - 0.1) / 2)
    assert p["c"] == pytest.approx((-0.2 + 0.4) / 2)
    alone = stats.predicted_gains(T, ["a", "b", "c"], [["a"], ["b", "c"]]).set_index("task")["predicted"]
    assert alone["a"] == 0.0 and alone["b"] == pytest.approx(-0.1)
    a = stats.agreement(pd.Series([1.0, 2.0, 3.0]), pd.Series([0.1, 0.3, 0.2]))
    assert a["spearman"] == pytest.approx(0.5) and a["sign_agreement"] == 1.0 and a["tasks"] == 3


def test_bad_rows_are_refused():
    with pytest.raises(InvalidInputError, match="lack column"):
        stats.strategy_summary(ROWS.drop(columns=["perf"]))
    with pytest.raises(InvalidInputError, match="not in the validation"):
        stats.paired_difference(ROWS, "grouping", "spectral")


def test_summary_counts_a_partition_only_when_all_its_trainings_of_a_seed_are_stored():
    from core.evaluation.validation.orchestrator import summarize_validation
    from core.evaluation.validation.plan import build_plan

    plan = build_plan(["a", "b"], [["a"], ["b"]], seeds=[0, 1, 2], split="test", baselines=["all"])
    rows = ROWS[ROWS["strategy"].isin(["grouping", "all"])]
    # seed 2 of "all" lost task b (its training of {a, b} cannot have scored only a; a partial table must not count)
    rows = rows[~((rows["strategy"] == "all") & (rows["seed"] == 2) & (rows["task"] == "b"))]
    s = summarize_validation(plan, rows)
    by = {r["strategy"]: r for r in s["strategies"]}
    assert by["all"]["seeds"] == 2 and by["grouping"]["seeds"] == 3 and s["partial_rows"] == 1
    d = s["differences"][0]
    assert d["seeds"] == 2 and d["diff"] == pytest.approx(0.2)
    assert s["verdicts"] == [d["verdict"]] and "2 seeds" in d["verdict"]
