"""SDP grouping: solve the relaxation, round to exactly k groups from many starts, refine each locally.

Pipeline (on ``S = (T + T')/2`` after the optional preprocessing):

1. ``solve_sdp(S, k)``: ``max <S, X>`` s.t. ``X e = e``, ``tr X = k``, ``X`` PSD, ``X >= 0``.
   Its certified upper bound bounds the objective of *every* partition into k groups.
2. Rounding to exactly k non-empty groups (:mod:`core.grouping.rounding`), from
   several families of candidates:
   ``"threshold"``: components of ``X > c/n``, then merge/split on X;
   ``"rows"``: k-means (seeded) on the rows of X, which are identical within a
   group when X is an exact partition matrix;
   ``"sweep"``: the same threshold rule at *every* threshold where the graph
   changes (the n - 1 maximum-spanning-tree weights of X), not only c/n;
   ``"random"``: ``n_starts`` seeded vector roundings from a factor of X.
   ``rounding="best"`` (default) uses all four families.
3. Refinement (:mod:`core.grouping.refine`): best single moves and swaps, never
   lowering the objective, from every distinct candidate (a multi-start local
   search); the highest objective wins, the earliest candidate on ties, and
   ``details_["chosen_rounding"]`` says which candidate it was. ``refine=False``
   keeps the best rounding as it is.

Why so many starts: one rounding plus one local search stops at a local
optimum on real matrices (the 12-task CLRS matrices of the AdaGroup authors at
k = 3; 31 of 556 (matrix, k, preprocessing) cases from the project's own runs
and benchmarks with n <= 12). With the sweep and the randomized starts the SDP
method reaches the exhaustive optimum on all of them
(tests/grouping/test_real_matrices.py).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from core.devices import check_device, describe_device
from core.errors import InvalidInputError, UnknownNameError
from core.grouping.base import BaseGrouping
from core.grouping.refine import refine_from_starts
from core.grouping.rounding import factor_roundings, fix_group_count, round_solution, threshold_sweep
from core.grouping.sdp.relaxation import DEFAULT_TOL, SOLVERS, SDPSolution, solve_sdp
from core.matrix.preprocess import Preprocessing, symmetrize

ROUNDINGS = ("best", "threshold", "rows", "sweep", "random")
FAMILIES = ("threshold", "rows", "sweep", "random")


def rows_kmeans_labels(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means (``n_init=10``, ``random_state=seed``) on the rows of X, repaired to exactly k groups."""
    from sklearn.cluster import KMeans

    with warnings.catch_warnings(), threadpool_limits(1):
        # Duplicate rows (an exact partition matrix) make sklearn warn about fewer distinct clusters.
        # One thread: on matrices this small OpenMP start-up costs 50x the work on a busy machine.
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
    rounding : {"best", "threshold", "rows", "sweep", "random"}, default "best"
        Which rounding candidates to try (see the module docstring); "best" tries them all.
    n_starts : int, default 32
        Number of randomized roundings (family "random").
    solver : {"auto", "cvxpy", "torch"}, default "auto"
    refine : bool, default True
        Local refinement by moves and swaps from every distinct rounding (multi-start).
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
        Objective of the chosen candidate before refinement.
    refined_objective_ : float or None
        Its objective after refinement (None with ``refine=False``).
    gap_ : float
        ``sdp_value_ - objective_`` (>= 0): how far below the best possible partition the answer can be.
    relative_gap_ : float
        ``gap_ / max(1, |sdp_value_|)``.
    solution_ : SDPSolution
    details_ : dict
        Solver name, status, iterations, residuals, solve seconds; ``chosen_rounding`` (e.g. "sweep#3"),
        ``starts`` (distinct candidates tried) and ``candidates`` (per family: count, best rounded and
        best final objective).
    """

    method = "sdp"

    def __init__(self, k: int, *, c: float = 1.0, rounding: str = "best", n_starts: int = 32, solver: str = "auto",
                 refine: bool = True,
                 preprocessing: Preprocessing | None = None, tol: float = DEFAULT_TOL, max_iters: int | None = None,
                 device: str | None = None, seed: int = 0) -> None:
        super().__init__(k, preprocessing=preprocessing)
        self.c = c
        self.rounding = rounding
        self.n_starts = n_starts
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
        if isinstance(self.n_starts, bool) or not isinstance(self.n_starts, (int, np.integer)) or self.n_starts < 0:
            raise InvalidInputError(f"n_starts must be a whole number >= 0, got {self.n_starts!r}.")
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
        names, starts, rounding_info = self._candidates(X, k)
        labels, info = refine_from_starts(S, starts, refine=bool(self.refine))
        chosen = names[info["winner"]]
        self.solution_ = sol
        self.X_ = self._unsort(X)
        self.sdp_primal_value_ = float(sol.value)
        self.sdp_value_ = float(sol.upper_bound)
        self.rounded_objective_ = float(info["rounded_objectives"][info["winner"]])
        self.refined_objective_ = float(info["objective"]) if self.refine else None
        self.details_.update(
            solver=sol.solver, status=sol.status, iterations=int(sol.iterations), solver_gap=float(sol.gap),
            primal_residual=float(sol.primal_residual), dual_residual=float(sol.dual_residual),
            solve_seconds=float(sol.seconds), sdp_primal_value=float(sol.value), sdp_upper_bound=float(sol.upper_bound),
            c=float(self.c), threshold=float(self.c) / S.shape[0], rounding=self.rounding, chosen_rounding=chosen,
            rounded_objective=self.rounded_objective_, refine=bool(self.refine), starts=len(starts),
            n_starts=int(self.n_starts), candidates=_family_summary(names, info, rounding_info), reused_solution=self._given is not None)
        if sol.solver.startswith("torch"):  # the only solver that runs on a chosen device
            self.details_["device"] = describe_device(self.device)
        return labels

    def _candidates(self, X: np.ndarray, k: int) -> tuple[list[str], list[np.ndarray], dict[str, dict]]:
        """Distinct rounding candidates, named "family#i", in family order (earlier wins ties), and what the
        threshold rounding did at c (groups formed by the links, merges or splits to reach k)."""
        families = FAMILIES if self.rounding == "best" else (self.rounding,)
        made: dict[str, list[np.ndarray]] = {}
        extra: dict[str, dict] = {}
        if "threshold" in families:
            labels, how = round_solution(X, k, float(self.c))
            made["threshold"] = [labels]
            extra["threshold"] = {key: value for key, value in how.items() if key != "threshold"}
        if "rows" in families:
            made["rows"] = [rows_kmeans_labels(X, k, self.seed)]
        if "sweep" in families:
            made["sweep"] = threshold_sweep(X, k)
        if "random" in families and self.n_starts > 0:
            made["random"] = factor_roundings(X, k, int(self.n_starts), seed=self.seed)
        names, starts, seen = [], [], set()
        for family, parts in made.items():
            for i, labels in enumerate(parts):
                key = np.unique(labels, return_inverse=True)[1].tobytes()
                if key not in seen:  # the same partition from two families is refined once
                    seen.add(key)
                    names.append(f"{family}#{i}" if len(parts) > 1 else family)
                    starts.append(labels)
        return names, starts, extra

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

    def solve(self, matrix) -> SDPSolution:
        """Only the relaxation, for this matrix, k and preprocessing: the ``solution`` that :meth:`fit` rounds.

        For callers that solve ahead of time (the dashboard's background worker) and round later, perhaps
        several times with different ``c``: ``fit(matrix, solution=self.solve(matrix))`` equals ``fit(matrix)``.
        """
        _, _, Ts, k = self._prepare(matrix)
        return solve_sdp(symmetrize(Ts), k, solver=self.solver, tol=self.tol, max_iters=self.max_iters,
                         device=self.device, seed=self.seed)

    @property
    def sdp_value(self) -> float | None:
        v = getattr(self, "sdp_value_", None)
        return v if v is not None and np.isfinite(v) else None


def _family_summary(names: list[str], info: dict[str, Any], extra: dict[str, dict]) -> list[dict[str, Any]]:
    """Per rounding family: how many distinct candidates, best objective before and after refinement, the
    refinement's moves and swaps from the family's best start (None with refinement off), and ``extra``."""
    out: dict[str, dict[str, Any]] = {}
    for name, before, after, ref in zip(names, info["rounded_objectives"], info["objectives"], info["refines"]):
        fam = name.split("#")[0]
        row = out.setdefault(fam, dict(rounding=fam, starts=0, rounded_objective=-np.inf, objective=-np.inf,
                                       refine=None, **extra.get(fam, {})))
        row["starts"] += 1
        row["rounded_objective"] = max(row["rounded_objective"], float(before))
        if float(after) > row["objective"]:  # the earliest start wins ties, as in refine_from_starts
            row["objective"] = float(after)
            row["refine"] = None if ref is None else dict(moves=int(ref["moves"]), swaps=int(ref["swaps"]))
    return list(out.values())
