"""One entry point for every grouping method: ``group(matrix, k, method, **opts)``.

The CLI and the dashboard call :func:`group`; it looks the method up in
:data:`GROUPING_METHODS`, fits it and returns a :class:`GroupingResult`.
``k="auto"`` first runs :func:`core.grouping.choose_k.choose_k` and records its
evidence under ``details["choose_k"]``.
"""
from __future__ import annotations

import time
from typing import Any

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError, UnknownNameError
from core.grouping.base import BaseGrouping, GroupingResult, as_affinity_matrix
from core.grouping.baselines import LloydGrouping, SpectralGrouping
from core.grouping.exhaustive import ExhaustiveGrouping
from core.grouping.sdp.grouping import SDPGrouping

GROUPING_METHODS: dict[str, type[BaseGrouping]] = {
    "sdp": SDPGrouping,
    "spectral": SpectralGrouping,
    "lloyd": LloydGrouping,
    "exhaustive": ExhaustiveGrouping,
}


def make_grouping(method: str, k: int, **opts: Any) -> BaseGrouping:
    """An unfitted estimator for ``method`` with options ``opts`` (unknown options are an error)."""
    if method not in GROUPING_METHODS:
        raise UnknownNameError(f"unknown grouping method {method!r}; choose one of {', '.join(GROUPING_METHODS)}.")
    cls = GROUPING_METHODS[method]
    try:
        return cls(k, **opts)
    except TypeError as exc:
        raise InvalidInputError(f"grouping method {method!r}: {exc}") from None


def group(matrix: AffinityMatrix, k: int | str, method: str = "sdp", **opts: Any) -> GroupingResult:
    """Group the tasks of ``matrix`` into ``k`` groups with ``method``.

    Parameters
    ----------
    matrix : AffinityMatrix (or a square array)
    k : int or "auto"
        ``"auto"`` picks k with :func:`~core.grouping.choose_k.choose_k` (same preprocessing).
    method : {"sdp", "spectral", "lloyd", "exhaustive"}
    **opts
        Parameters of the method's estimator (e.g. ``c``, ``solver``, ``refine``,
        ``preprocessing`` for "sdp").
    """
    if method not in GROUPING_METHODS:
        raise UnknownNameError(f"unknown grouping method {method!r}; choose one of {', '.join(GROUPING_METHODS)}.")
    start = time.perf_counter()
    matrix = as_affinity_matrix(matrix)
    choice = None
    if isinstance(k, str):
        if k != "auto":
            raise InvalidInputError(f"number of groups k={k!r}: give a whole number or 'auto'.")
        from core.grouping.choose_k import choose_k

        solver = opts.get("solver", "auto")
        choice = choose_k(matrix, preprocessing=opts.get("preprocessing"), solver=solver)
        k = choice.k
    est = make_grouping(method, k, **opts).fit(matrix)
    result = est.result()
    if choice is not None:
        result.details["choose_k"] = choice.to_dict()
        result.details["fit_seconds"] = result.seconds
        result.seconds = time.perf_counter() - start  # choosing k is part of the cost
    return result
