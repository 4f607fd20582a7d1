"""Task order, group boundaries and block aggregation for affinity heatmaps.

Pure array functions: the dashboard draws what these return.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import squareform

from core.errors import InvalidInputError


@dataclass(frozen=True)
class HeatmapOrder:
    """A permutation of the tasks with the groups contiguous.

    Attributes
    ----------
    order : ndarray of int
        ``order[i]`` is the original index of the task drawn at position i.
    boundaries : tuple of int
        Positions (in the new order) where a new group starts, excluding 0.
    group_of : ndarray of int
        Group of each drawn position (in the new order).
    """

    order: np.ndarray
    boundaries: tuple[int, ...]
    group_of: np.ndarray


WITHIN = ("linkage", "strength")


def linkage_order(block: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering of a group's tasks on their affinity (optimal leaf ordering).

    Tasks are close when they help each other (distance = largest affinity minus ``(B + B')/2``), so the
    leaves put sub-groups next to each other: the structure inside a group shows as smaller blocks.
    """
    B = np.asarray(block, dtype=np.float64)
    m = B.shape[0]
    if m < 3:
        return np.arange(m)
    S = (B + B.T) / 2.0
    D = S.max() - S
    np.fill_diagonal(D, 0.0)
    D = np.maximum((D + D.T) / 2.0, 0.0)
    condensed = squareform(D, checks=False)
    Z = linkage(condensed, method="average")
    if m <= 400:  # optimal leaf ordering is O(m^3): only where it stays well under a second
        Z = optimal_leaf_ordering(Z, condensed)
    return np.asarray(leaves_list(Z))


def order_by_groups(values: np.ndarray, labels: Sequence[int] | None, *, within: str = "linkage") -> HeatmapOrder:
    """Order tasks so each group is contiguous, largest-density groups first.

    Within a group, ``within="linkage"`` (default) follows the average-linkage tree of the group's
    affinities (:func:`linkage_order`), so sub-structure inside a group is visible; ``"strength"`` sorts
    by how much a task helps the rest of its group (row sum inside the group, descending). The tree is
    flipped if needed so the strongest source of the group comes first. ``labels=None`` keeps the
    original order.
    """
    if within not in WITHIN:
        raise InvalidInputError(f"heatmap order: within={within!r}; choose one of {', '.join(WITHIN)}.")
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if labels is None:
        return HeatmapOrder(order=np.arange(n), boundaries=(), group_of=np.zeros(n, dtype=int))
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise InvalidInputError(f"heatmap order: {labels.size} labels for {n} tasks; give one group label per task.")
    sym = (values + values.T) / 2.0
    groups = []
    for g in np.unique(labels):
        idx = np.flatnonzero(labels == g)
        block = sym[np.ix_(idx, idx)]
        density = block.sum() / idx.size
        inner = values[np.ix_(idx, idx)].sum(axis=1)
        if within == "linkage":
            leaves = linkage_order(values[np.ix_(idx, idx)])
            if inner[leaves[-1]] > inner[leaves[0]]:
                leaves = leaves[::-1]
            idx = idx[leaves]
        else:
            idx = idx[np.lexsort((idx, -inner))]
        groups.append((-density, int(idx[0]), idx))
    groups.sort(key=lambda t: (t[0], t[1]))
    order = np.concatenate([g[2] for g in groups])
    sizes = [g[2].size for g in groups]
    boundaries = tuple(int(x) for x in np.cumsum(sizes)[:-1])
    group_of = np.repeat(np.arange(len(sizes)), sizes)
    return HeatmapOrder(order=order, boundaries=boundaries, group_of=group_of)


@dataclass(frozen=True)
class Aggregated:
    """A matrix averaged over blocks of consecutive rows and columns.

    ``edges[i]:edges[i+1]`` are the original positions merged into bin i.
    ``low``/``high`` hold the smallest and largest entry of each block.
    """

    values: np.ndarray
    low: np.ndarray
    high: np.ndarray
    edges: np.ndarray

    @property
    def bins(self) -> int:
        return self.values.shape[0]


def aggregate(values: np.ndarray, max_bins: int) -> Aggregated:
    """Average ``values`` over square blocks so at most ``max_bins`` rows/columns remain.

    A browser draws a few hundred thousand heatmap cells smoothly but stalls on
    millions, so large matrices are shown as block means (with the block's range
    in the hover) and the user zooms into a range to see exact entries.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if max_bins < 1:
        raise InvalidInputError(f"heatmap aggregation: max_bins={max_bins}; need at least 1.")
    bins = min(n, int(max_bins))
    edges = np.round(np.linspace(0, n, bins + 1)).astype(int)
    starts = edges[:-1]
    counts = np.diff(edges)
    # reduceat over rows then columns: one vectorised pass even at n = 1000+.
    mean = np.add.reduceat(np.add.reduceat(values, starts, axis=0), starts, axis=1) / np.outer(counts, counts)
    low = np.minimum.reduceat(np.minimum.reduceat(values, starts, axis=0), starts, axis=1)
    high = np.maximum.reduceat(np.maximum.reduceat(values, starts, axis=0), starts, axis=1)
    return Aggregated(values=mean, low=low, high=high, edges=edges)


def transfer_in_out(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean transfer each task gives to the others (out, row) and receives from them (in, column).

    The diagonal (a task with itself) is left out of both.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    off = ~np.eye(n, dtype=bool)
    masked = np.where(off, values, 0.0)
    out = masked.sum(axis=1) / max(n - 1, 1)
    inn = masked.sum(axis=0) / max(n - 1, 1)
    return inn, out
