"""What every grouping method shares: input handling, order independence, results.

Every estimator takes an :class:`~core.matrix.affinity.AffinityMatrix` (a bare square
array is wrapped with names ``t0, t1, ...``), applies an optional
:class:`~core.matrix.preprocess.Preprocessing` (recorded in ``preprocessing_``), and
works on ``S = (T + T') / 2``.

Order independence: before fitting, tasks are put in name order and the
method runs on that permuted matrix; labels are mapped back afterwards. So
every deterministic tie-break inside a method ("first index wins") is a
tie-break by task name, and permuting the input (names with their rows and
columns) gives the same partition.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError
from core.grouping.objective import (average_density, canonical_labels, labels_to_groups, symmetrize, validate_k,
                                     validate_scale)
from core.matrix.preprocess import Preprocessing


@dataclass
class GroupingResult:
    """One grouping, as the CLI and dashboard show it.

    ``sdp_value`` is the SDP relaxation's certified upper bound on the objective of
    any partition into k groups (None for methods that do not solve it), and ``gap``
    is ``sdp_value - objective`` (how far from optimal the result can at most be).
    """

    method: str
    k: int
    labels: list[int]
    groups: list[list[str]]
    objective: float
    sdp_value: float | None
    gap: float | None
    seconds: float
    names: list[str] = field(default_factory=list)
    preprocessing: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return _jsonable(asdict(self))


def as_affinity_matrix(matrix: Any) -> AffinityMatrix:
    """``matrix`` if it is an AffinityMatrix, else a validated one named ``t0, t1, ...``."""
    if isinstance(matrix, AffinityMatrix):
        return matrix
    if isinstance(matrix, (np.ndarray, list, tuple)):
        n = len(matrix)
        width = len(str(max(n - 1, 0)))
        return AffinityMatrix(names=[f"t{i:0{width}d}" for i in range(n)], values=matrix)
    raise InvalidInputError(
        f"grouping input is a {type(matrix).__name__}; give an AffinityMatrix (core.read_affinity) or a square array.")


class BaseGrouping(ABC):
    """Base class: subclasses set ``method`` and implement ``_fit_sorted(T, S, k)``.

    ``_fit_sorted`` gets the preprocessed matrix with tasks in name order and returns
    labels in that order; it may store extra results via ``self._unsort`` (for
    per-task arrays) and fill ``self.details_``.
    """

    method: str = "base"

    def __init__(self, k: int, *, preprocessing: Preprocessing | None = None) -> None:
        self.k = k
        self.preprocessing = preprocessing

    def _check_params(self) -> None:
        """Validate method parameters (subclasses extend); called first in fit."""
        if self.preprocessing is not None and not isinstance(self.preprocessing, Preprocessing):
            raise InvalidInputError(
                f"preprocessing must be a core.matrix.preprocess.Preprocessing or None, got {type(self.preprocessing).__name__}.")
        if not isinstance(getattr(self, "refine", False), (bool, np.bool_)):  # every method takes refine=
            raise InvalidInputError(f"refine must be True or False, got {self.refine!r}.")

    @abstractmethod
    def _fit_sorted(self, T: np.ndarray, S: np.ndarray, k: int) -> np.ndarray:
        """Labels (0..k-1) of the tasks of ``T`` (raw, validated) and ``S`` (its symmetrised form)."""

    def fit(self, matrix: AffinityMatrix | np.ndarray) -> "BaseGrouping":
        """Group the tasks of ``matrix`` into exactly ``k`` non-empty groups.

        Sets ``labels_``, ``groups_`` (task names), ``objective_``, ``seconds_``,
        ``names_``, ``k_``, ``preprocessing_``, ``details_``.
        """
        start = time.perf_counter()
        m, T, Ts, k = self._prepare(matrix)
        order = self._order
        rank = np.empty(m.n, dtype=np.int64)
        rank[order] = np.arange(m.n)
        self.details_: dict[str, Any] = {}
        labels_sorted = np.asarray(self._fit_sorted(Ts, symmetrize(Ts), k), dtype=np.int64)
        labels = np.empty(m.n, dtype=np.int64)
        labels[order] = labels_sorted
        labels = canonical_labels(labels, rank)
        if np.unique(labels).size != k:  # a method bug, never a user error
            raise AssertionError(f"{self.method} returned {np.unique(labels).size} groups, expected {k}")
        self.names_ = list(m.names)
        self.k_ = k
        self.labels_ = labels
        self.groups_ = labels_to_groups(labels, m.names)
        self.objective_ = average_density(symmetrize(T), labels)
        self.preprocessing_ = list(m.preprocessing)
        self.matrix_ = m
        self.seconds_ = time.perf_counter() - start
        return self

    def _prepare(self, matrix: AffinityMatrix | np.ndarray) -> tuple[AffinityMatrix, np.ndarray, np.ndarray, int]:
        """Validate and preprocess: ``(matrix, T, T in name order, k)``; sets the name order ``_order``."""
        self._check_params()
        m = as_affinity_matrix(matrix)
        k = validate_k(self.k, m.n)
        validate_scale(m.values)  # before preprocessing too: z-scoring huge values overflows
        if self.preprocessing is not None:
            m = self.preprocessing.apply(m)
        T = np.array(m.values, dtype=np.float64)
        validate_scale(T)
        self._order = np.array(sorted(range(m.n), key=lambda i: m.names[i]))
        return m, T, T[np.ix_(self._order, self._order)], k

    def _unsort(self, a: np.ndarray) -> np.ndarray:
        """Map an (n,) or (n, n) array from name order back to input order."""
        a = np.asarray(a)
        inv = np.empty_like(self._order)
        inv[self._order] = np.arange(self._order.size)
        return a[np.ix_(inv, inv)] if a.ndim == 2 else a[inv]

    @property
    def sdp_value(self) -> float | None:
        return None

    def result(self) -> GroupingResult:
        """The fitted grouping as a :class:`GroupingResult`."""
        if not hasattr(self, "labels_"):
            raise InvalidInputError(f"{type(self).__name__} is not fitted; call fit(matrix) first.")
        bound = self.sdp_value
        return GroupingResult(
            method=self.method, k=self.k_, labels=self.labels_.tolist(), groups=self.groups_,
            objective=float(self.objective_), sdp_value=bound,
            gap=None if bound is None else float(bound - self.objective_), seconds=float(self.seconds_),
            names=self.names_, preprocessing=self.preprocessing_, details=dict(self.details_))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
