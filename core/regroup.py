"""Re-round a solved SDP with new rounding options, without solving it again.

The SDP solve dominates the cost of :class:`~core.grouping.sdp_grouping.SDPGrouping`
(seconds at n = 200); rounding and refinement take milliseconds. The dashboard
keeps each solution (per matrix, k, preprocessing and solver) and calls
:class:`ReroundedSDPGrouping` when only ``c``, ``rounding`` or ``refine`` change,
so moving the threshold slider answers at once. The candidate loop below is the
same as ``SDPGrouping._fit_sorted`` after its solve; a test checks both give the
same grouping for the same solution.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import InvalidInputError
from core.grouping.base import BaseGrouping
from core.grouping.objective import average_density
from core.grouping.refine import refine_partition
from core.grouping.rounding import round_solution
from core.grouping.sdp_grouping import ROUNDINGS, SDPGrouping, rows_kmeans_labels
from core.preprocess import Preprocessing


class ReroundedSDPGrouping(BaseGrouping):
    """SDP grouping from a given SDP solution ``X`` (in the input task order).

    Parameters
    ----------
    k : int
    X : ndarray (n, n)
        ``SDPGrouping.X_`` of a fit on the same matrix, k and preprocessing.
    sdp_value : float
        ``SDPGrouping.sdp_value_`` of that fit (the certified bound).
    c, rounding, refine, seed, preprocessing
        As for :class:`SDPGrouping`.
    """

    method = "sdp"

    def __init__(self, k: int, *, X: np.ndarray, sdp_value: float, c: float = 1.0, rounding: str = "best",
                 refine: bool = True, seed: int = 0, preprocessing: Preprocessing | None = None,
                 solver_details: dict[str, Any] | None = None) -> None:
        super().__init__(k, preprocessing=preprocessing)
        self.X = X
        self.sdp_value_ = sdp_value
        self.c = c
        self.rounding = rounding
        self.refine = refine
        self.seed = seed
        self.solver_details = solver_details or {}

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self.c, bool) or not isinstance(self.c, (int, float, np.floating)) or not (
                np.isfinite(self.c) and self.c > 0):
            raise InvalidInputError(f"rounding threshold factor c={self.c!r} must be a positive number "
                                    "(tasks are linked when X[u, v] > c / n).")
        if self.rounding not in ROUNDINGS:
            raise InvalidInputError(f"unknown rounding {self.rounding!r}; choose one of {', '.join(ROUNDINGS)}.")

    def _fit_sorted(self, T: np.ndarray, S: np.ndarray, k: int) -> np.ndarray:
        X = np.asarray(self.X, dtype=np.float64)
        if X.shape != S.shape:
            raise InvalidInputError(f"SDP solution is {X.shape}, the matrix is {S.shape}; solve again for this matrix.")
        X = X[np.ix_(self._order, self._order)]
        candidates = []
        if self.rounding in ("best", "threshold"):
            labels, info = round_solution(X, k, float(self.c))
            candidates.append(("threshold", labels, info))
        if self.rounding in ("best", "rows"):
            candidates.append(("rows", rows_kmeans_labels(X, k, self.seed), {}))
        scored = []
        for name, labels, info in candidates:
            entry = dict(rounding=name, rounded_objective=average_density(S, labels), **info)
            if self.refine:
                labels, rinfo = refine_partition(S, labels)
                entry["refine"] = rinfo
            entry["objective"] = average_density(S, labels)
            scored.append((entry["objective"], name, labels, entry))
        best = max(range(len(scored)), key=lambda i: (scored[i][0], -i))
        _, name, labels, entry = scored[best]
        self.details_.update(self.solver_details)
        self.details_.update(c=float(self.c), threshold=float(self.c) / S.shape[0], rounding=self.rounding,
                             chosen_rounding=name, rounded_objective=float(entry["rounded_objective"]),
                             refine=bool(self.refine), candidates=[e for *_, e in scored], reused_solution=True)
        return labels

    def fit(self, matrix) -> "ReroundedSDPGrouping":
        super().fit(matrix)
        self.gap_ = float(self.sdp_value_ - self.objective_)
        self.details_.update(gap=self.gap_, relative_gap=self.gap_ / max(1.0, abs(self.sdp_value_)))
        return self

    @property
    def sdp_value(self) -> float | None:
        v = self.sdp_value_
        return float(v) if v is not None and np.isfinite(v) else None


SOLVER_DETAIL_KEYS = ("solver", "status", "iterations", "solver_gap", "primal_residual", "dual_residual",
                      "solve_seconds", "sdp_primal_value", "sdp_upper_bound")


def solver_details(fitted: SDPGrouping) -> dict[str, Any]:
    """The solve-related part of a fitted SDPGrouping's details (kept when re-rounding)."""
    return {key: fitted.details_[key] for key in SOLVER_DETAIL_KEYS if key in fitted.details_}
