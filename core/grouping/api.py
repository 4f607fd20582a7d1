"""One entry point for every grouping method: ``group(matrix, k, method, **opts)``.

The CLI and the dashboard call :func:`group`; it looks the method up in
:data:`GROUPING_METHODS`, fits it and returns a :class:`GroupingResult`.
``k="auto"`` first runs :func:`core.grouping.choose_k.choose_k` and records its
evidence under ``details["choose_k"]``.
"""
from __future__ import annotations

import time
from typing import Any

from core.errors import InvalidInputError
from core.grouping.base import GroupingResult, as_affinity_matrix
from core.grouping.choose_k import choose_k
from core.grouping.registry import GROUPING_METHODS, make_grouping
from core.matrix.affinity import AffinityMatrix


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
    GROUPING_METHODS.get(method)  # an unknown method fails before any work
    start = time.perf_counter()
    matrix = as_affinity_matrix(matrix)
    choice = None
    if isinstance(k, str):
        if k != "auto":
            raise InvalidInputError(f"number of groups k={k!r}: give a whole number or 'auto'.")
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
