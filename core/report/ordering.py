"""Task order, group boundaries and block aggregation for affinity heatmaps.

Pure array functions: the dashboard draws what these return.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

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


def order_by_groups(values: np.ndarray, labels: Sequence[int] | None) -> HeatmapOrder:
    """Order tasks so each group is contiguous, largest-density groups first.

    Within a group, tasks are sorted by how much they help the rest of their
    group (row sum inside the group, descending), so the strongest sources sit
    in the top-left corner of each block. ``labels=None`` keeps the original order.
    """
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
