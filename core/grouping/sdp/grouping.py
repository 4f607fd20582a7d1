"""SDP grouping: solve the relaxation, round to exactly k groups, refine locally.

Pipeline (on ``S = (T + T')/2`` after the optional preprocessing):

1. ``solve_sdp(S, k)``: ``max <S, X>`` s.t. ``X e = e``, ``tr X = k``, ``X`` PSD, ``X >= 0``.
   Its certified upper bound bounds the objective of *every* partition into k groups.
2. Rounding to exactly k non-empty groups (:mod:`core.grouping.rounding`):
   ``"threshold"``: components of ``X > c/n``, then merge/split on X;
   ``"rows"``: k-means (seeded) on the rows of X, which are identical within a
   group when X is an exact partition matrix; ``"best"`` (default): both, each
   refined, keeping the higher objective (the threshold candidate on ties).
   On the real 12-task CLRS matrices the threshold candidate alone stops at a
   local optimum for k = 4, 5 while the rows candidate reaches the exhaustive
   optimum, hence "best".
3. Refinement (:mod:`core.grouping.refine`): best single moves and swaps, never
   lowering the objective; ``refine=False`` turns it off.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from core.devices import check_device, describe_device
from core.errors import InvalidInputError, UnknownNameError
from core.grouping.base import BaseGrouping
from core.grouping.objective import average_density
from core.grouping.refine import refine_partition
from core.grouping.rounding import fix_group_count, round_solution
from core.grouping.sdp.relaxation import DEFAULT_TOL, SOLVERS, SDPSolution, solve_sdp
from core.matrix.preprocess import Preprocessing

ROUNDINGS = ("best", "threshold", "rows")


def rows_kmeans_labels(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means (``n_init=10``, ``random_state=seed``) on the rows of X, repaired to exactly k groups."""
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        # Duplicate rows (an exact partition matrix) make sklearn warn about fewer distinct clusters.
        warnings.simplefilter("ignore")
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(X, dtype=np.float64))
    labels, _ = fix_group_count(labels, k, X)
    return labels


class SDPGrouping(BaseGrouping):
    """Group tasks by the SDP relaxation of the average-density objective.

    Parameters
    ----------
    k : int
        Number of groups, 1 <= k <= n.
    c : float, default 1.0
        Rounding threshold factor: tasks u, v are linked when ``X[u, v] > c / n``
        (the authors' code uses c = 1; their poster says c > 1). Any c > 0 yields
        exactly k groups.
    rounding : {"best", "threshold", "rows"}, default "best"
    solver : {"auto", "cvxpy", "torch"}, default "auto"
    refine : bool, default True
        Local refinement by moves and swaps after rounding.
    preprocessing : Preprocessing or None
    tol, max_iters, device, seed
        Passed to :func:`core.grouping.sdp.relaxation.solve_sdp`; ``seed`` also seeds the rows k-means.

    Attributes
    ----------
    labels_, groups_, objective_, seconds_ : as for every grouping method
    X_ : ndarray (n, n)
        The SDP solution, in input task order.
    sdp_value_ : float
        Certified upper bound on the objective of any partition into k groups.
    sdp_primal_value_ : float
        ``<S, X_>``.
    rounded_objective_ : float
        Objective of the chosen rounding before refinement.
    gap_ : float
        ``sdp_value_ - objective_`` (>= 0): how far below the best possible partition the answer can be.
    relative_gap_ : float
        ``gap_ / max(1, |sdp_value_|)``.
    solution_ : SDPSolution
    details_ : dict
        Solver name, status, iterations, residuals, solve seconds, rounding and refinement info.
    """

    method = "sdp"

    def __init__(self, k: int, *, c: float = 1.0, rounding: str = "best", solver: str = "auto", refine: bool = True,
                 preprocessing: Preprocessing | None = None, tol: float = DEFAULT_TOL, max_iters: int | None = None,
                 device: str | None = None, seed: int = 0) -> None:
        super().__init__(k, preprocessing=preprocessing)
        self.c = c
        self.rounding = rounding
        self.solver = solver
        self.refine = refine
        self.tol = tol
        self.max_iters = max_iters
        self.device = device
        self.seed = seed
        self._given: SDPSolution | None = None

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self.c, bool) or not isinstance(self.c, (int, float, np.floating)) or not (
                np.isfinite(self.c) and self.c > 0):
            raise InvalidInputError(f"rounding threshold factor c={self.c!r} must be a positive number "
                                    "(tasks are linked when X[u, v] > c / n).")
        if self.rounding not in ROUNDINGS:
            raise UnknownNameError(f"unknown rounding {self.rounding!r}; choose one of {', '.join(ROUNDINGS)}.")
        if self.solver not in SOLVERS:
            raise UnknownNameError(f"unknown SDP solver {self.solver!r}; choose one of {', '.join(SOLVERS)}.")
        if self.device is not None:
            check_device(self.device)
        if not isinstance(self.refine, (bool, np.bool_)):
            raise InvalidInputError(f"refine must be True or False, got {self.refine!r}.")

    def _fit_sorted(self, T: np.ndarray, S: np.ndarray, k: int) -> np.ndarray:
        sol = self._given
        if sol is None:
            sol = solve_sdp(S, k, solver=self.solver, tol=self.tol, max_iters=self.max_iters, device=self.device,
                            seed=self.seed)
        elif np.shape(sol.X) != S.shape or sol.k != k:
            raise InvalidInputError(
                f"the given SDP solution is for {np.shape(sol.X)[0]} tasks and k = {sol.k}, this fit has {S.shape[0]} "
                f"tasks and k = {k}; pass the solution_ of a fit on the same matrix, k and preprocessing.")
        if not np.all(np.isfinite(sol.X)):
            raise InvalidInputError(
                f"SDP solver {sol.solver} failed (status {sol.status}); try solver='cvxpy' or a larger max_iters.")
        X = sol.X
        candidates: list[tuple[str, np.ndarray, dict[str, Any]]] = []
        if self.rounding in ("best", "threshold"):
            labels, info = round_solution(X, k, float(self.c))
            candidates.append(("threshold", labels, info))
        if self.rounding in ("best", "rows"):
            candidates.append(("rows", rows_kmeans_labels(X, k, self.seed), {}))
        scored = []
        for name, labels, info in candidates:
            rounded = average_density(S, labels)
            entry = dict(rounding=name, rounded_objective=rounded, **info)
            if self.refine:
                labels, rinfo = refine_partition(S, labels)
                entry["refine"] = rinfo
            entry["objective"] = average_density(S, labels)
            scored.append((entry["objective"], name, labels, entry))
        # Highest objective; on exact ties the earlier candidate (threshold) wins.
        best = max(range(len(scored)), key=lambda i: (scored[i][0], -i))
        objective, name, labels, entry = scored[best]
        self.solution_ = sol
        self.X_ = self._unsort(X)
        self.sdp_primal_value_ = float(sol.value)
        self.sdp_value_ = float(sol.upper_bound)
        self.rounded_objective_ = float(entry["rounded_objective"])
        self.refined_objective_ = float(objective) if self.refine else None
        self.details_.update(
            solver=sol.solver, status=sol.status, iterations=int(sol.iterations), solver_gap=float(sol.gap),
            primal_residual=float(sol.primal_residual), dual_residual=float(sol.dual_residual),
            solve_seconds=float(sol.seconds), sdp_primal_value=float(sol.value), sdp_upper_bound=float(sol.upper_bound),
            c=float(self.c), threshold=float(self.c) / S.shape[0], rounding=self.rounding, chosen_rounding=name,
            rounded_objective=float(entry["rounded_objective"]), refine=bool(self.refine),
            candidates=[e for *_, e in scored], reused_solution=self._given is not None)
        if sol.solver.startswith("torch"):  # the only solver that runs on a chosen device
            self.details_["device"] = describe_device(self.device)
        return labels

    def fit(self, matrix, solution: SDPSolution | None = None) -> "SDPGrouping":
        """Solve the SDP for ``matrix`` (or reuse ``solution``), round to k groups and refine.

        Parameters
        ----------
        matrix : AffinityMatrix or square array
        solution : SDPSolution, optional
            ``solution_`` of an earlier fit on the same matrix, k and preprocessing: only
            the rounding and refinement run (milliseconds), so ``c``, ``rounding`` or
            ``refine`` can change without solving again. ``seconds_`` then counts only
            the rounding; ``solution.seconds`` is the solve.
        """
        if solution is not None and not isinstance(solution, SDPSolution):
            raise InvalidInputError(f"solution must be the SDPSolution of an earlier fit (solution_), got "
                                    f"{type(solution).__name__}.")
        self._given = solution
        try:
            super().fit(matrix)
        finally:
            self._given = None
        self.gap_ = float(self.sdp_value_ - self.objective_)
        self.relative_gap_ = self.gap_ / max(1.0, abs(self.sdp_value_))
        self.details_.update(gap=self.gap_, relative_gap=self.relative_gap_)
        return self

    @property
    def sdp_value(self) -> float | None:
        v = getattr(self, "sdp_value_", None)
        return v if v is not None and np.isfinite(v) else None
