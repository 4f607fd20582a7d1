"""Grouping engine: objective, exhaustive DP, rounding, refinement, estimators, choose_k, planted suite."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import AffinityMatrix, InvalidInputError, Preprocessing, UnknownNameError
from core.grouping.baselines import LloydGrouping, SpectralGrouping
from core.grouping.choose_k import choose_k, in_group_score
from core.grouping.api import GROUPING_METHODS, group, make_grouping
from core.grouping.exhaustive import ExhaustiveGrouping, exhaustive_partition, stirling2
from core.grouping.objective import (average_density, canonical_labels, groups_to_labels, labels_to_groups,
                                     partition_matrix, same_partition)
from core.grouping.planted import planted_affinity
from core.grouping.planted_suite import build_suite, optimum_is_planted
from core.grouping.refine import refine_partition
from core.grouping.rounding import fix_group_count, greedy_scan_rounding, round_solution, threshold_groups
from core.grouping.sdp.grouping import SDPGrouping



def all_partitions(n: int, k: int):
    """Restricted-growth strings: every partition of range(n) into exactly k groups once."""
    def rec(prefix, m):
        if len(prefix) == n:
            if m == k:
                yield list(prefix)
            return
        for g in range(min(m + 1, k)):
            yield from rec(prefix + [g], max(m, g + 1))
    yield from rec([], 0)


# ---------------------------------------------------------------- objective

def test_objective_matches_partition_matrix_inner_product():
    rng = np.random.default_rng(0)
    T = rng.normal(size=(7, 7))
    labels = np.array([0, 1, 0, 2, 1, 2, 2])
    X = partition_matrix(labels)
    np.testing.assert_allclose(X.sum(axis=1), 1.0)
    assert np.trace(X) == pytest.approx(3.0)
    assert average_density(T, labels) == pytest.approx(float(np.sum((T + T.T) / 2 * X)))
    # Diagonal included: a singleton group contributes its own entry.
    assert average_density(np.diag([1.0, 2.0]), [0, 1]) == pytest.approx(3.0)


def test_labels_groups_round_trip_and_canonical():
    names = ["b", "a", "d", "c"]
    labels = np.array([5, 2, 5, 7])
    groups = labels_to_groups(labels, names)
    assert groups == [["a"], ["b", "d"], ["c"]]
    assert same_partition(groups_to_labels(groups, names), labels)
    assert canonical_labels(labels).tolist() == [0, 1, 0, 2]
    with pytest.raises(InvalidInputError, match="no group"):
        groups_to_labels([["a"]], names)


# ---------------------------------------------------------------- exhaustive

@pytest.mark.parametrize("n,k", [(5, 2), (6, 3), (7, 3), (7, 1), (6, 6), (8, 4)])
def test_exhaustive_dp_equals_brute_force(n, k):
    rng = np.random.default_rng(n * 10 + k)
    T = rng.normal(size=(n, n))
    parts = list(all_partitions(n, k))
    assert len(parts) == stirling2(n, k)
    best = max(average_density(T, p) for p in parts)
    labels, value = exhaustive_partition(T, k)
    assert value == pytest.approx(best, abs=1e-12)
    assert average_density(T, labels) == pytest.approx(value, abs=1e-12)
    assert np.unique(labels).size == k


def test_exhaustive_refuses_more_than_12_tasks():
    m = planted_affinity([7, 6], seed=0).matrix
    with pytest.raises(InvalidInputError, match="at most 12 tasks"):
        ExhaustiveGrouping(2).fit(m)


def test_exhaustive_estimator_agrees_on_small_planted_cases():
    for seed in range(4):
        case = planted_affinity([3, 2, 3], noise=0.2, seed=seed)
        est = ExhaustiveGrouping(3).fit(case.matrix)
        assert same_partition(est.labels_, case.labels)
        assert est.n_partitions_ == stirling2(8, 3)


# ---------------------------------------------------------------- rounding

def test_threshold_recovers_exact_partition_matrix():
    labels = np.array([0, 1, 1, 2, 0, 1, 2, 2, 2])
    X = partition_matrix(labels)
    assert same_partition(threshold_groups(X, 1.0), labels)
    out, info = round_solution(X, 3, 1.0)
    assert same_partition(out, labels) and info["merges"] == info["splits"] == 0


@pytest.mark.parametrize("c", [0.25, 0.5, 1.0, 1.5, 2.0, 5.0, 50.0])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
def test_rounding_gives_exactly_k_covering_groups(c, k):
    rng = np.random.default_rng(int(c * 100) + k)
    A = rng.random((9, 9))
    X = A @ A.T / 9  # any non-negative symmetric matrix
    labels, _ = round_solution(X, k, c)
    assert labels.shape == (9,) and labels.min() >= 0
    assert np.unique(labels).size == k


def test_fix_group_count_merges_most_similar_and_splits_weakest_link():
    W = np.array([[1.0, 0.9, 0.1, 0.0],
                  [0.9, 1.0, 0.2, 0.1],
                  [0.1, 0.2, 1.0, 0.8],
                  [0.0, 0.1, 0.8, 1.0]])
    merged, info = fix_group_count(np.arange(4), 2, W)
    assert same_partition(merged, [0, 0, 1, 1]) and info["merges"] == 2
    split, info = fix_group_count(np.zeros(4, dtype=int), 2, W)
    assert same_partition(split, [0, 0, 1, 1]) and info["splits"] == 1


def test_published_greedy_scan_has_the_documented_defects():
    # Two groups joined by one fractional link 1-2: the scan puts 2 in a new group without 1,
    # then 3 in yet another group without 2, so 3 groups for k = 2.
    X = np.array([[0.5, 0.5, 0.0, 0.0],
                  [0.5, 0.2, 0.3, 0.0],
                  [0.0, 0.3, 0.3, 0.4],
                  [0.0, 0.0, 0.4, 0.6]])
    assert np.unique(greedy_scan_rounding(X, 1.0)).size == 3
    assert (greedy_scan_rounding(X, 3.0) < 0).any()  # c > 1 leaves tasks unassigned
    assert np.unique(round_solution(X, 2, 3.0)[0]).size == 2


# ---------------------------------------------------------------- refinement

def _is_local_optimum(S, labels):
    base = average_density(S, labels)
    n, k = labels.size, labels.max() + 1
    for u in range(n):
        for g in range(k):
            if g != labels[u] and np.count_nonzero(labels == labels[u]) > 1:
                moved = labels.copy()
                moved[u] = g
                if average_density(S, moved) > base + 1e-9:
                    return False
        for v in range(u + 1, n):
            if labels[u] != labels[v]:
                sw = labels.copy()
                sw[u], sw[v] = sw[v], sw[u]
                if average_density(S, sw) > base + 1e-9:
                    return False
    return True


def test_refinement_never_lowers_the_objective_and_ends_locally_optimal():
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(3, 10))
        k = int(rng.integers(1, n + 1))
        S = rng.normal(size=(n, n))
        start = np.r_[np.arange(k), rng.integers(0, k, n - k)]
        rng.shuffle(start)
        out, info = refine_partition(S, start)
        assert np.unique(out).size == k
        assert average_density(S, out) >= average_density(S, start) - 1e-12
        assert info["objective"] == pytest.approx(average_density(S, out))
        assert info["converged"] and _is_local_optimum(S, out)
        one, _ = refine_partition(S, start, max_rounds=1)
        assert average_density(S, one) >= average_density(S, start) - 1e-12


# ---------------------------------------------------------------- estimators

@pytest.fixture(scope="module")
def planted8():
    return planted_affinity([3, 3, 2], noise=0.3, seed=1)


@pytest.mark.parametrize("method", list(GROUPING_METHODS))
def test_every_method_returns_exactly_k_groups_and_is_order_independent(method, planted8):
    m = planted8.matrix
    perm = np.random.default_rng(5).permutation(m.n)
    shuffled = AffinityMatrix(names=[m.names[i] for i in perm], values=m.values[np.ix_(perm, perm)])
    for k in (1, 2, 3, 5, 8):
        a = make_grouping(method, k).fit(m)
        b = make_grouping(method, k).fit(shuffled)
        assert len(a.groups_) == k and sorted(sum(a.groups_, [])) == sorted(m.names)
        assert a.groups_ == b.groups_, (method, k)
        assert a.objective_ == pytest.approx(b.objective_)


def test_sdp_order_independent_with_threshold_rounding_and_no_refine(planted8):
    m = planted8.matrix
    perm = np.arange(m.n)[::-1]
    shuffled = AffinityMatrix(names=[m.names[i] for i in perm], values=m.values[np.ix_(perm, perm)])
    for c in (0.5, 1.0, 3.0):
        a = SDPGrouping(3, c=c, rounding="threshold", refine=False).fit(m)
        b = SDPGrouping(3, c=c, rounding="threshold", refine=False).fit(shuffled)
        assert a.groups_ == b.groups_ and len(a.groups_) == 3


def test_sdp_reports_bound_gap_and_solver_info(planted8):
    est = SDPGrouping(3).fit(planted8.matrix)
    assert same_partition(est.labels_, planted8.labels)
    assert est.sdp_value_ >= est.objective_ - 1e-6
    assert est.gap_ == pytest.approx(est.sdp_value_ - est.objective_)
    assert est.objective_ >= est.rounded_objective_ - 1e-12
    assert est.X_.shape == (8, 8)
    d = est.details_
    assert {"solver", "status", "iterations", "primal_residual", "solve_seconds", "candidates"} <= set(d)
    res = est.result()
    assert res.sdp_value == pytest.approx(est.sdp_value_) and res.gap == pytest.approx(est.gap_)
    json.dumps(res.to_dict())


@pytest.mark.parametrize("solver", ["cvxpy", "torch"])
def test_sdp_solve_then_fit_equals_fit(solver):
    # The dashboard solves ahead of time (solve) and rounds later (fit with solution=): same answer as one fit.
    case = planted_affinity([4, 3, 5, 3], noise=0.4, seed=3)
    pre = Preprocessing(diagonal="zero")
    est = SDPGrouping(4, solver=solver, preprocessing=pre)
    solution = est.solve(case.matrix)
    assert solution.k == 4 and solution.X.shape == (15, 15)
    split = SDPGrouping(4, solver=solver, preprocessing=pre).fit(case.matrix, solution=solution)
    whole = SDPGrouping(4, solver=solver, preprocessing=pre).fit(case.matrix)
    assert split.labels_.tolist() == whole.labels_.tolist()
    assert split.objective_ == pytest.approx(whole.objective_) and split.sdp_value_ == pytest.approx(whole.sdp_value_)
    with pytest.raises(InvalidInputError):
        SDPGrouping(16, solver=solver).solve(case.matrix)  # validated up front, like fit


def test_sdp_equals_exhaustive_where_the_optimum_is_planted():
    checked = 0
    for case in build_suite():
        if case.n > 12 or case.family not in ("balanced", "unequal", "asymmetric", "low_snr", "shifted"):
            continue
        if not optimum_is_planted(case):
            continue
        est = SDPGrouping(case.k).fit(case.matrix)
        assert same_partition(est.labels_, case.labels), case.name
        checked += 1
    assert checked >= 30


def test_preprocessing_is_applied_and_recorded(planted8):
    pre = Preprocessing(diagonal="zero", transform="zscore")
    res = group(planted8.matrix, 3, "spectral", preprocessing=pre)
    assert "diagonal=zero" in res.preprocessing and any("zscore" in p for p in res.preprocessing)
    raw = group(planted8.matrix, 3, "spectral")
    assert raw.preprocessing == []


# ---------------------------------------------------------------- invalid input

def test_invalid_inputs_raise_clear_errors(planted8):
    m = planted8.matrix
    with pytest.raises(InvalidInputError, match="not square"):
        group(np.zeros((3, 4)), 2, "sdp")
    bad = np.array(m.values)
    bad[1, 2] = np.nan
    with pytest.raises(InvalidInputError, match="finite"):
        group(bad, 2, "sdp")
    with pytest.raises(InvalidInputError, match="appears twice"):
        AffinityMatrix(names=["a", "a", "b"], values=np.eye(3))
    for k in (0, -1, 9):
        with pytest.raises(InvalidInputError, match="out of range"):
            group(m, k, "sdp")
    with pytest.raises(InvalidInputError, match="not an integer"):
        group(m, 2.5, "lloyd")
    with pytest.raises(InvalidInputError, match="whole number or 'auto'"):
        group(m, "many", "lloyd")
    with pytest.raises(UnknownNameError, match="unknown grouping method"):
        group(m, 2, "kmeans++")
    with pytest.raises(UnknownNameError, match="unknown SDP solver"):
        group(m, 2, "sdp", solver="mosek")
    with pytest.raises(InvalidInputError, match="positive number"):
        group(m, 2, "sdp", c=0)
    with pytest.raises(InvalidInputError, match="unexpected keyword"):
        group(m, 2, "lloyd", c=2.0)
    with pytest.raises(InvalidInputError, match="Preprocessing"):
        group(m, 2, "lloyd", preprocessing="zscore")
    with pytest.raises(InvalidInputError, match="not fitted"):
        SpectralGrouping(2).result()


# ---------------------------------------------------------------- choose_k and suite

def test_choose_k_reports_every_rule_and_finds_clean_planted_k():
    case = planted_affinity([3, 3, 3], noise=0.15, seed=2)
    choice = choose_k(case.matrix, [2, 3, 4, 5], n_penalties=11)
    assert choice.k == 3 and choice.suggestions["penalty"] == 3
    assert set(choice.suggestions) == {"sweep", "penalty", "eigengap"}
    assert [row["k"] for row in choice.table] == [2, 3, 4, 5]
    assert all({"objective", "sdp_value", "score", "eigengap", "lam_share", "groups"} <= set(r) for r in choice.table)
    assert len(choice.penalty_sweep) == 11 and "penalty" in choice.reason
    json.dumps(choice.to_dict())
    res = group(case.matrix, "auto", "lloyd")
    assert res.k == 3 and res.details["choose_k"]["k"] == 3


def test_in_group_score_uses_diagonal_for_singletons():
    S = np.array([[5.0, 1.0, 2.0], [1.0, 7.0, 3.0], [2.0, 3.0, 9.0]])
    assert in_group_score(S, [0, 0, 1]) == pytest.approx((1.0 + 1.0 + 9.0) / 3)


def test_planted_suite_shape():
    cases = build_suite()
    assert len(cases) >= 60
    assert min(c.n for c in cases) == 6 and max(c.n for c in cases) == 30
    assert {c.k for c in cases} == {2, 3, 4, 5, 6}
    assert len({c.family for c in cases}) >= 5
    assert all(np.unique(c.labels).size == c.k for c in cases)
    assert any((c.matrix.values < 0).any() for c in cases)
    assert any(not np.allclose(c.matrix.values, c.matrix.values.T) for c in cases)
    # Same seed, same suite.
    again = build_suite()
    assert all(np.array_equal(a.matrix.values, b.matrix.values) for a, b in zip(cases, again))


@pytest.mark.parametrize("method", ["sdp", "spectral", "lloyd", "exhaustive"])
def test_every_method_takes_the_same_refine_option(method):
    # Large group beside singletons, noisy: Lloyd alone stops short here, refined it reaches the optimum.
    case = planted_affinity([5, 3, 1, 1], noise=0.6, seed=1)
    plain = group(case.matrix, 4, method, refine=False)
    refined = group(case.matrix, 4, method, refine=True)
    assert refined.objective >= plain.objective - 1e-12
    optimum = ExhaustiveGrouping(4).fit(case.matrix).objective_
    assert refined.objective == pytest.approx(optimum, abs=1e-9)
    if method == "lloyd":
        assert plain.objective < optimum - 0.1
        assert refined.details["refinement"]["moves"] + refined.details["refinement"]["swaps"] >= 1
    with pytest.raises(InvalidInputError, match="refine"):
        make_grouping(method, 2, refine="yes").fit(case.matrix)


def test_choose_k_says_when_the_data_supports_no_k_above_one():
    rng = np.random.default_rng(0)
    noise = AffinityMatrix(names=[f"t{i}" for i in range(8)], values=rng.normal(size=(8, 8)),
                           uncertainty=np.ones((8, 8)))
    choice = choose_k(noise, [2, 3, 4], n_penalties=5, n_resamples=6)
    assert choice.supported is False
    assert choice.reason.startswith("the data does not support any k > 1")
    assert all(0.0 <= row["stability"] < 0.8 or row["gain_z"] < 2 for row in choice.table)
    assert "standard errors" in choice.noise


def test_choose_k_finds_planted_k_stable_under_the_matrix_uncertainty():
    case = planted_affinity([4, 3, 3], noise=0.2, seed=4)
    m = case.matrix
    m = AffinityMatrix(names=m.names, values=m.values, uncertainty=np.full((m.n, m.n), 0.2))
    choice = choose_k(m, [2, 3, 4], n_penalties=15, n_resamples=6)
    assert choice.k == 3 and choice.supported is True
    row = next(r for r in choice.table if r["k"] == 3)
    assert row["stability"] >= 0.8 and row["gain_z"] >= 2
    assert "the matrix's standard errors" in choice.reason
    json.dumps(choice.to_dict())
    # A symmetric matrix without standard errors has no noise level: stability is not claimed.
    sym = AffinityMatrix(names=m.names, values=(m.values + m.values.T) / 2)
    unknown = choose_k(sym, [2, 3], n_penalties=5, n_resamples=6)
    assert unknown.supported is None and "stability not measured" in unknown.reason
