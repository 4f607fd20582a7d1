"""The grouping SDP: cvxpy and torch solvers agree, bounds are certified, inputs are validated."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import InvalidInputError, UnknownNameError
from core.grouping.planted import planted_affinity
from core.grouping.sdp.relaxation import SOLVERS, solve_sdp
from core.grouping.sdp.certify import dual_bound

torch.set_num_threads(1)


def planted(n: int, k: int, seed: int = 0, noise: float = 0.5):
    case = planted_affinity([n // k] * k, noise=noise, seed=seed)
    return case.matrix.values, case.labels


def gaussian(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, n))


def partition_matrix(labels: np.ndarray) -> np.ndarray:
    X = np.zeros((labels.size, labels.size))
    for g in np.unique(labels):
        v = (labels == g).astype(float)
        X += np.outer(v, v) / v.sum()
    return X


CASES = {
    "planted40": lambda: (planted(40, 4)[0], 4),
    "planted60": lambda: (planted(60, 5, seed=2)[0], 5),
    "gaussian30": lambda: (gaussian(30), 3),
}


@pytest.fixture(scope="module")
def solved():
    out = {}
    for name, make in CASES.items():
        S, k = make()
        out[name] = (S, k, solve_sdp(S, k, solver="cvxpy"), solve_sdp(S, k, solver="torch"))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_solvers_agree_on_value(solved, name):
    S, k, ref, fo = solved[name]
    assert ref.status == "optimal" and fo.status == "optimal", (ref.status, fo.status)
    assert abs(ref.value - fo.value) <= 1e-3 * max(1.0, abs(ref.value))
    assert ref.solver == "cvxpy-scs" and fo.solver.startswith("torch")


@pytest.mark.parametrize("name", list(CASES))
def test_upper_bound_is_certified(solved, name):
    S, k, ref, fo = solved[name]
    slack = 1e-4 * max(1.0, abs(ref.value))  # X may violate X >= 0 by up to tol
    for sol in (ref, fo):
        assert np.isfinite(sol.upper_bound)
        assert sol.upper_bound >= sol.value - slack
        assert sol.gap <= 1e-3
    assert fo.upper_bound >= ref.value - slack
    assert ref.upper_bound >= fo.value - slack


@pytest.mark.parametrize("name", list(CASES))
def test_solution_is_feasible(solved, name):
    S, k, ref, fo = solved[name]
    for sol in (ref, fo):
        X = sol.X
        assert sol.primal_residual <= 1e-4
        np.testing.assert_allclose(X, X.T, atol=1e-12)
        np.testing.assert_allclose(X.sum(axis=1), 1.0, atol=1e-4)
        assert abs(np.trace(X) - k) <= 1e-4 * k
        assert X.min() >= -1e-4
        assert np.linalg.eigvalsh(X).min() >= -1e-4


def test_sdp_bounds_the_planted_partition_objective(solved):
    S, labels = planted(40, 4)
    Xstar = partition_matrix(labels)
    np.testing.assert_allclose(Xstar.sum(axis=1), 1.0)
    assert np.trace(Xstar) == pytest.approx(4)
    part_value = float(np.sum((S + S.T) / 2 * Xstar))
    for sol in solved["planted40"][2:]:
        assert sol.value >= part_value - 1e-4 * abs(part_value)
        assert sol.upper_bound >= part_value


def test_dual_bound_is_valid_for_any_nonnegative_multiplier(solved):
    S, k, ref, _ = solved["gaussian30"]
    Ssym = (S + S.T) / 2
    rng = np.random.default_rng(3)
    for scale in (0.0, 0.1, 1.0, 10.0):
        N = scale * rng.random(S.shape)
        assert dual_bound(Ssym, N, k) >= ref.value - 1e-4
    assert dual_bound(Ssym, -np.ones_like(S), k) == pytest.approx(dual_bound(Ssym, None, k))  # clipped at 0


def test_penalised_variant_agrees_and_is_bounded():
    S = gaussian(30, seed=1)
    lam = 0.5
    ref = solve_sdp(S, None, penalty=lam, solver="cvxpy")
    fo = solve_sdp(S, None, penalty=lam, solver="torch")
    assert ref.k is None and ref.penalty == lam
    assert ref.status == "optimal" and fo.status == "optimal"
    assert abs(ref.value - fo.value) <= 1e-3 * max(1.0, abs(ref.value))
    for sol in (ref, fo):
        assert sol.value == pytest.approx(float(np.sum((S + S.T) / 2 * sol.X)) - lam * np.trace(sol.X))
        assert sol.upper_bound >= sol.value - 1e-4 * abs(sol.value)
        assert 1 - 1e-4 <= np.trace(sol.X) <= 30 + 1e-4
        np.testing.assert_allclose(sol.X.sum(axis=1), 1.0, atol=1e-4)


def test_permutation_equivariance():
    S, _ = planted(36, 4, seed=5, noise=0.3)
    perm = np.random.default_rng(7).permutation(36)
    for solver in ("cvxpy", "torch"):
        a = solve_sdp(S, 4, solver=solver)
        b = solve_sdp(S[np.ix_(perm, perm)], 4, solver=solver)
        assert b.value == pytest.approx(a.value, rel=1e-4)
        np.testing.assert_allclose(b.X, a.X[np.ix_(perm, perm)], atol=2e-3)


def test_only_the_symmetric_part_matters():
    S = gaussian(20, seed=4)
    a = solve_sdp(S, 3, solver="cvxpy")
    b = solve_sdp((S + S.T) / 2, 3, solver="cvxpy")
    assert a.value == pytest.approx(b.value, rel=1e-6)


def test_trivial_k_have_closed_forms():
    S = gaussian(8, seed=6)
    one = solve_sdp(S, 1)
    np.testing.assert_allclose(one.X, np.full((8, 8), 1 / 8))
    assert one.value == pytest.approx(((S + S.T) / 2).sum() / 8) and one.gap == 0.0
    all_ = solve_sdp(S, 8)
    np.testing.assert_allclose(all_.X, np.eye(8))
    assert all_.value == pytest.approx(np.trace(S))


def test_auto_picks_cvxpy_for_small_n():
    S, _ = planted(20, 2)
    assert solve_sdp(S, 2).solver == "cvxpy-scs"


@pytest.mark.parametrize("S, k, kwargs, match", [
    (np.ones((3, 4)), 2, {}, "not square"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), 1, {}, "non-finite"),
    (np.eye(4), 0, {}, "1 <= k <= 4"),
    (np.eye(4), 5, {}, "1 <= k <= 4"),
    (np.eye(4), 2.5, {}, "integer"),
    (np.eye(4), None, {}, "penalty"),
    (np.eye(4), 2, {"penalty": 1.0}, "not both"),
    (np.eye(4), None, {"penalty": float("inf")}, "finite"),
    (np.eye(4), 2, {"tol": 0.0}, "tol"),
    (np.eye(4), 2, {"max_iters": 0}, "max_iters"),
])
def test_invalid_inputs_raise_clear_errors(S, k, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        solve_sdp(S, k, **kwargs)


def test_unknown_solver_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        solve_sdp(np.eye(4), 2, solver="mosek")
    for name in SOLVERS:
        assert name in str(err.value)


def test_clarabel_is_refused_for_large_n():
    with pytest.raises(InvalidInputError, match="CLARABEL"):
        solve_sdp(gaussian(80), 4, solver="cvxpy", cvxpy_backend="clarabel")
