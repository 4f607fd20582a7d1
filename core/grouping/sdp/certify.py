"""Certified upper bounds and feasibility residuals for the grouping SDP.

The SDP is ``max <S, X>`` over ``F = {X : X e = e, tr X = k, X PSD, X >= 0}``
(or ``max <S - lam I, X>`` without the trace constraint, the penalised variant).

Bound. Every X with ``X e = e`` and ``X PSD`` splits as ``X = J + W`` with
``J = e e'/n``, ``W PSD`` and ``W e = 0`` (e is an eigenvector of X with eigenvalue 1),
and ``tr W = tr X - 1``. Relaxing only ``X >= 0`` with a multiplier ``N >= 0``
(``<N, X> >= 0`` on F) gives, for ``C = S + N``::

    SDP <= max_{X in A} <C, X> = e'Ce/n + (k - 1) * lambda_max(C on e-perp)

where ``A`` is F without ``X >= 0``. This is the Lagrange dual bound
``sum(y) + k z`` of the full problem with the best ``(y, z)`` for the given N
(``z`` shifted by the smallest eigenvalue), so any elementwise non-negative N (a solver's dual estimate, clipped) yields a
valid bound and the exact optimum as N approaches the optimal multiplier.

Tighter, and still valid: a feasible X is symmetric doubly stochastic, so its
eigenvalues lie in [0, 1] and ``0 <= W <= I`` on e-perp. Over that spectral set
the maximum of ``<C, W>`` with ``tr W = k - 1`` is the sum of the k - 1 largest
eigenvalues of C restricted to e-perp (Ky Fan), so::

    SDP <= e'Ce/n + sum of the top k - 1 restricted eigenvalues of C.

For the penalised variant (trace free) the bound is ``e'Ce/n`` plus the sum of the
positive restricted eigenvalues of ``C = S - lam I + N``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigvalsh

_EPS = np.finfo(np.float64).eps


def restricted_eigvals(C: np.ndarray, top: int | None = None) -> np.ndarray:
    """Eigenvalues (descending) of symmetric ``C`` restricted to the subspace orthogonal to ``e``.

    Computed from ``P C P - alpha J`` with ``P = I - J``: the ``e`` direction gets
    eigenvalue ``-alpha``, below every restricted one. ``top`` limits the output to
    the largest ``top`` values (cheaper); None returns all n - 1.
    """
    n = C.shape[0]
    top = n - 1 if top is None else min(top, n - 1)
    if top <= 0:
        return np.zeros(0)
    r = C.mean(axis=1)
    m = r.mean()
    alpha = float(np.linalg.norm(C)) + 1.0
    M = C - r[:, None] - r[None, :] + (m - alpha / n)
    return eigvalsh(M, subset_by_index=[n - top, n - 1], check_finite=False)[::-1]


def dual_bound(S: np.ndarray, N: np.ndarray | None, k: int | None, penalty: float | None = None) -> float:
    """Certified upper bound on the SDP optimum from a multiplier estimate ``N`` of ``X >= 0``.

    ``N`` is symmetrised and clipped at 0, so any matrix gives a valid bound
    (``None`` means 0, the pure spectral bound). ``S`` must be symmetric. A
    floating-point margin of ``n * eps * ||C||_F`` per eigenvalue keeps the bound
    valid under rounding.
    """
    S = np.asarray(S, dtype=np.float64)
    n = S.shape[0]
    C = S.copy()
    if penalty is not None:
        C[np.diag_indices(n)] -= penalty
    if N is not None:
        N = np.asarray(N, dtype=np.float64)
        C += np.maximum((N + N.T) / 2.0, 0.0)
    margin = 4.0 * n * _EPS * (float(np.linalg.norm(C)) + 1.0)
    base = float(C.sum()) / n + margin
    if k is None:
        lam = restricted_eigvals(C)
        return base + float(np.sum(np.maximum(lam, 0.0))) + (n - 1) * margin
    lam = restricted_eigvals(C, top=k - 1)
    return base + float(np.sum(lam)) + (k - 1) * margin


def primal_residual(X: np.ndarray, k: int | None) -> float:
    """Largest violation of ``X e = e``, ``tr X = k`` (relative to k), ``X >= 0`` and PSD.

    Entries of a feasible X lie in [0, 1], so absolute violations are already on
    a unit scale; asymmetry of X also counts.
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    asym = float(np.max(np.abs(X - X.T))) if n else 0.0
    Xs = (X + X.T) / 2.0
    row = float(np.max(np.abs(Xs.sum(axis=1) - 1.0)))
    tr = abs(float(np.trace(Xs)) - k) / k if k is not None else 0.0
    neg = max(0.0, -float(Xs.min()))
    psd = max(0.0, -float(eigvalsh(Xs, subset_by_index=[0, 0], check_finite=False)[0]))
    return max(asym, row, tr, neg, psd)


@dataclass(frozen=True)
class BackendResult:
    """What a solver backend hands back for certification by :func:`core.grouping.sdp.relaxation.solve_sdp`.

    ``N`` is the backend's estimate of the multiplier of ``X >= 0`` (or None);
    ``status`` is the backend's own verdict (``"optimal"``, ``"max_iters"``, ...).
    """

    X: np.ndarray
    N: np.ndarray | None
    status: str
    iterations: int
    dual_residual: float
    solver: str
    note: str = ""

