"""Reference SDP solver: cvxpy with SCS (splitting conic solver), or Clarabel for small n.

Constraints are written in vector form (``X @ ones == ones``), never as the n + 1
dense constraint matrices of the authors' code (about 1 GB at n = 500).
"""
from __future__ import annotations

import numpy as np

from core.errors import InvalidInputError
from core.grouping.sdp.certify import BackendResult

#: Clarabel (interior point) needs O(n^4) memory through the n^2 elementwise
#: constraints: about 40 s at n = 100 where SCS takes under 1 s.
CLARABEL_MAX_N = 60

_STATUS = {
    "optimal": "optimal",
    "optimal_inaccurate": "inaccurate",
    "user_limit": "max_iters",
    "infeasible": "infeasible",
    "infeasible_inaccurate": "infeasible",
    "unbounded": "unbounded",
    "unbounded_inaccurate": "unbounded",
}


def solve_cvxpy(S: np.ndarray, k: int | None, *, tol: float, max_iters: int | None, penalty: float | None,
                backend: str = "SCS", verbose: bool = False) -> BackendResult:
    """Solve the SDP with cvxpy.

    Parameters
    ----------
    S : ndarray (n, n)
        Symmetric objective matrix.
    k : int or None
        Trace (number of groups); None for the penalised variant.
    tol : float
        SCS ``eps_abs`` and ``eps_rel`` (Clarabel: gap and feasibility tolerances).
    max_iters : int or None
        Iteration cap (SCS default 100000, Clarabel 200).
    penalty : float or None
        ``lam`` of the penalised objective ``<S, X> - lam tr X`` (k None).
    backend : {"SCS", "CLARABEL"}
        Conic solver; Clarabel only for n <= ``CLARABEL_MAX_N``.
    """
    import cvxpy as cp

    n = S.shape[0]
    backend = backend.upper()
    if backend not in ("SCS", "CLARABEL"):
        raise InvalidInputError(f"cvxpy backend {backend!r} is not supported; choose 'SCS' or 'CLARABEL'.")
    if backend == "CLARABEL" and n > CLARABEL_MAX_N:
        raise InvalidInputError(
            f"cvxpy backend CLARABEL is limited to n <= {CLARABEL_MAX_N} (interior point needs O(n^4) memory); "
            f"got n = {n}: use SCS or the torch solver.")
    X = cp.Variable((n, n), symmetric=True)
    ones = np.ones(n)
    nonneg = X >= 0
    cons = [X >> 0, nonneg, X @ ones == ones]
    obj = cp.sum(cp.multiply(S, X))
    if k is not None:
        cons.append(cp.trace(X) == k)
    else:
        obj = obj - penalty * cp.trace(X)
    prob = cp.Problem(cp.Maximize(obj), cons)
    if backend == "SCS":
        opts = dict(eps_abs=tol, eps_rel=tol, max_iters=int(max_iters or 100_000))
    else:
        opts = dict(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, max_iter=int(max_iters or 200))
    try:
        prob.solve(solver=backend, verbose=verbose, **opts)
    except cp.error.SolverError as exc:
        return BackendResult(X=np.full((n, n), np.nan), N=None, status="solver_error", iterations=0,
                             dual_residual=np.inf, solver=f"cvxpy-{backend.lower()}", note=str(exc))
    status = _STATUS.get(prob.status, prob.status)
    stats = prob.solver_stats
    iters = int(stats.num_iters or 0) if stats is not None else 0
    extra = (stats.extra_stats or {}) if stats is not None else {}
    info = extra.get("info", {}) if isinstance(extra, dict) else {}
    dres = float(info.get("res_dual", np.nan)) if isinstance(info, dict) else np.nan
    if status == "optimal" and backend == "SCS" and iters >= int(max_iters or 100_000):
        status = "max_iters"
    Xv = X.value
    if Xv is None:
        Xv = np.full((n, n), np.nan)
    N = nonneg.dual_value
    return BackendResult(X=np.asarray(Xv, dtype=np.float64), N=None if N is None else np.asarray(N, dtype=np.float64),
                         status=status, iterations=iters, dual_residual=dres, solver=f"cvxpy-{backend.lower()}")
