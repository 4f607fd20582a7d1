"""The task-grouping SDP relaxation and its solvers.

Given a symmetric affinity matrix S (n x n) and a number of groups k, solve::

    max <S, X>  s.t.  X e = e,  tr X = k,  X PSD,  X >= 0 (elementwise)

or the k-free penalised variant used by the authors for choosing k::

    max <S, X> - lam tr X  s.t.  X e = e,  X PSD,  X >= 0.

For a partition into groups C_1..C_k the matrix ``sum_i v_i v_i' / |C_i|``
(v_i the indicator of C_i) is feasible with ``<S, X>`` equal to the
average-density objective, so the SDP optimum bounds every k-partition's
objective from above.

Every solution carries a certified upper bound on the SDP optimum (from a dual
feasible point, see :mod:`core.grouping.sdp.certify`), so a first-order solver
that stops early says how far it may be from the optimum.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInputError, UnknownNameError
from core.grouping.sdp.certify import BackendResult, dual_bound, primal_residual
from core.grouping.sdp.solver_cvxpy import solve_cvxpy
from core.matrix.affinity import validate_values

SOLVERS = ("auto", "cvxpy", "torch")

#: ``solver="auto"`` uses cvxpy + SCS up to this n and the torch solver above it.
AUTO_CVXPY_MAX_N = 150

DEFAULT_TOL = 1e-5


@dataclass(frozen=True)
class SDPSolution:
    """Result of :func:`solve_sdp`.

    Attributes
    ----------
    X : ndarray (n, n)
        The solution matrix (symmetrised); feasible up to ``primal_residual``.
    value : float
        ``<S, X>`` of the returned X (minus ``penalty * tr X`` for the penalised variant),
        with S the symmetrised input.
    upper_bound : float
        Certified upper bound on the SDP optimum from a dual feasible point (inf if none).
    gap : float
        ``(upper_bound - value) / max(1, |upper_bound|)``; small means X is near-optimal.
    solver : str
        ``"cvxpy-scs"``, ``"cvxpy-clarabel"``, ``"torch-admm"``, ``"closed-form"``.
    status : str
        ``"optimal"`` (solver converged and gap within tolerance), ``"max_iters"``,
        ``"inaccurate"``, ``"solver_error"``, ...
    iterations : int
        Solver iterations.
    primal_residual : float
        Largest violation of ``X e = e``, ``tr X = k`` (relative to k), ``X >= 0``, PSD.
    dual_residual : float
        The solver's own dual residual (relative); the bound is certified regardless.
    seconds : float
        Wall time of the solve including certification.
    k, penalty : int or None, float or None
        The problem solved.
    """

    X: np.ndarray
    value: float
    upper_bound: float
    gap: float
    solver: str
    status: str
    iterations: int
    primal_residual: float
    dual_residual: float
    seconds: float
    k: int | None
    penalty: float | None


def _validate(S, k, solver, tol, max_iters, penalty) -> tuple[np.ndarray, int | None, float | None]:
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise UnknownNameError(f"unknown SDP solver {solver!r}; choose one of {', '.join(SOLVERS)}.")
    S = validate_values(S, source="SDP matrix S")
    n = S.shape[0]
    if k is None:
        if penalty is None:
            raise InvalidInputError("SDP: k is None and no penalty given; give the number of groups k "
                                    "or a penalty lam for the k-free variant.")
    else:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise InvalidInputError(f"SDP: k must be an integer number of groups, got {k!r}.")
        k = int(k)
        if not 1 <= k <= n:
            raise InvalidInputError(f"SDP: k = {k} groups for {n} tasks; choose 1 <= k <= {n}.")
        if penalty is not None:
            raise InvalidInputError("SDP: give either k (fixed number of groups) or penalty (k-free variant), not both.")
    if penalty is not None:
        penalty = float(penalty)
        if not math.isfinite(penalty):
            raise InvalidInputError(f"SDP: penalty must be a finite number, got {penalty!r}.")
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise InvalidInputError(f"SDP: tol must be in (0, 1), got {tol!r}.")
    if max_iters is not None and (isinstance(max_iters, bool) or not isinstance(max_iters, (int, np.integer))
                                  or max_iters < 1):
        raise InvalidInputError(f"SDP: max_iters must be a positive integer or None, got {max_iters!r}.")
    return (S + S.T) / 2.0, k, penalty


def _closed_form(S: np.ndarray, k: int) -> BackendResult | None:
    """k = 1 and k = n have a single feasible point: ``J = ee'/n`` and ``I``."""
    n = S.shape[0]
    if k == 1:
        X = np.full((n, n), 1.0 / n)
    elif k == n:
        X = np.eye(n)
    else:
        return None
    return BackendResult(X=X, N=None, status="optimal", iterations=0, dual_residual=0.0, solver="closed-form")


def solve_sdp(S, k: int | None, *, solver: str = "auto", tol: float = DEFAULT_TOL, max_iters: int | None = None,
              penalty: float | None = None, device: str | None = None, seed: int = 0,
              cvxpy_backend: str = "SCS") -> SDPSolution:
    """Solve the grouping SDP and certify how far the answer may be from its optimum.

    Parameters
    ----------
    S : array-like (n, n)
        Affinity matrix; only its symmetric part ``(S + S') / 2`` matters (X is
        symmetric) and is what is used.
    k : int or None
        Number of groups, 1 <= k <= n. None selects the penalised variant (needs ``penalty``).
    solver : {"auto", "cvxpy", "torch"}
        ``"cvxpy"``: cvxpy + SCS, the reference. ``"torch"``: first-order ADMM in
        torch (CUDA when present), warm-started by a non-negative low-rank
        factorisation. ``"auto"``: cvxpy for n <= 150, torch above.
    tol : float
        Solver tolerance: SCS ``eps_abs = eps_rel = tol``; torch stops when the
        certified relative gap and the residuals are below ``tol``.
    max_iters : int or None
        Iteration cap (None: the solver's default).
    penalty : float or None
        ``lam`` in ``<S, X> - lam tr X`` when k is None.
    device : str or None
        torch device (None: CUDA if available else CPU). Ignored by cvxpy.
    seed : int
        Seed of the torch solver's random initialisation.
    cvxpy_backend : {"SCS", "CLARABEL"}
        Conic solver behind ``solver="cvxpy"``; Clarabel only for n <= 60.

    Returns
    -------
    SDPSolution
        ``status == "optimal"`` only when the solver converged; ``gap`` always
        says how far ``value`` may be below the SDP optimum.
    """
    S, k, penalty = _validate(S, k, solver, tol, max_iters, penalty)
    n = S.shape[0]
    t0 = time.perf_counter()
    raw = _closed_form(S, k) if k is not None else None
    if raw is None:
        chosen = solver if solver != "auto" else ("cvxpy" if n <= AUTO_CVXPY_MAX_N else "torch")
        if chosen == "cvxpy":
            raw = solve_cvxpy(S, k, tol=tol, max_iters=max_iters, penalty=penalty, backend=cvxpy_backend)
        else:
            from core.grouping.sdp.solver_torch import solve_torch

            raw = solve_torch(S, k, tol=tol, max_iters=max_iters, penalty=penalty, device=device, seed=seed)
    return _certify(S, k, penalty, raw, t0, tol)


def objective(S: np.ndarray, X: np.ndarray, penalty: float | None = None) -> float:
    """``<S, X>`` minus ``penalty * tr X`` when a penalty is given."""
    val = float(np.sum(S * X))
    if penalty is not None:
        val -= penalty * float(np.trace(X))
    return val


def _certify(S: np.ndarray, k: int | None, penalty: float | None, raw: BackendResult, t0: float,
             tol: float) -> SDPSolution:
    X = np.asarray(raw.X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        return SDPSolution(X=X, value=float("nan"), upper_bound=float("inf"), gap=float("inf"), solver=raw.solver,
                           status=raw.status if raw.status != "optimal" else "solver_error",
                           iterations=raw.iterations, primal_residual=float("inf"), dual_residual=float("inf"),
                           seconds=time.perf_counter() - t0, k=k, penalty=penalty)
    X = (X + X.T) / 2.0
    value = objective(S, X, penalty)
    ub = value if raw.solver == "closed-form" else dual_bound(S, raw.N, k, penalty)
    gap = (ub - value) / max(1.0, abs(ub))
    return SDPSolution(X=X, value=value, upper_bound=ub, gap=float(gap), solver=raw.solver, status=raw.status,
                       iterations=raw.iterations, primal_residual=primal_residual(X, k),
                       dual_residual=float(raw.dual_residual), seconds=time.perf_counter() - t0, k=k,
                       penalty=penalty)
