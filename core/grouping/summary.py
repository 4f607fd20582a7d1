"""One row per group, with the one group value every page and export shows: the mean affinity inside.

The grouping objective adds ``v'Sv / |v|`` over groups (``S = (T + T')/2``); divided once more by the
group size it is the plain mean of S over the group's block, diagonal included, which reads the same
for a group of 3 and of 90 tasks. The dashboard and the reports call it :data:`MEAN_INSIDE` and
define it by :data:`MEAN_INSIDE_HELP`; nothing calls it "density".
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from core.errors import InvalidInputError
from core.matrix.affinity import AffinityMatrix

MEAN_INSIDE = "mean affinity inside"
MEAN_INSIDE_HELP = ("mean of (T[u,v] + T[v,u]) / 2 over every pair u, v of tasks in the group, u = v included: "
                    "above 0, the group's tasks help each other on average")


def mean_affinity_inside(S: np.ndarray, idx: Sequence[int]) -> float:
    """Mean of ``S`` over the block ``idx x idx`` (S symmetric; the diagonal counts)."""
    idx = np.asarray(idx, dtype=int)
    if idx.size == 0:
        raise InvalidInputError("a group has no tasks; every group needs at least one.")
    return float(np.asarray(S, dtype=np.float64)[np.ix_(idx, idx)].mean())


def group_rows(matrix: AffinityMatrix, groups: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """``group`` (1-based), ``size``, :data:`MEAN_INSIDE` and ``tasks`` (a list of names) for each group."""
    S = (matrix.values + matrix.values.T) / 2.0
    pos = {name: i for i, name in enumerate(matrix.names)}
    unknown = [x for g in groups for x in g if x not in pos]
    if unknown:
        raise InvalidInputError(f"the grouping names {len(unknown)} tasks that are not in the matrix "
                                f"(first: {unknown[0]!r}); group the same matrix you summarise.")
    return [{"group": i, "size": len(g), MEAN_INSIDE: mean_affinity_inside(S, [pos[x] for x in g]), "tasks": list(g)}
            for i, g in enumerate(groups, start=1)]
