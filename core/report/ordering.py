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
class GroupTree:
    """Average-linkage tree of one group's tasks, oriented as the heatmap draws them.

    Attributes
    ----------
    linkage : ndarray, shape (m - 1, 4)
        SciPy linkage matrix over the group's tasks (in ascending original index). Its children are
        ordered so that ``leaves_list(linkage)`` is the drawn order of the group.
    top : float
        Largest symmetrized affinity in the group's block: a merge at height h joins clusters whose mean
        affinity is ``top - h``.
    """

    linkage: np.ndarray
    top: float

    def mirrored(self) -> GroupTree:
        """The same tree with every merge's children swapped: its leaf order is reversed."""
        Z = self.linkage.copy()
        Z[:, [0, 1]] = Z[:, [1, 0]]
        return GroupTree(linkage=Z, top=self.top)


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
    trees : tuple of GroupTree or None
        One per group, in drawn order, when the groups are ordered by their linkage tree (None for a
        group of one task); empty when the order follows no tree.
    """

    order: np.ndarray
    boundaries: tuple[int, ...]
    group_of: np.ndarray
    trees: tuple[GroupTree | None, ...] = ()


WITHIN = ("linkage", "strength")


def group_tree(block: np.ndarray) -> GroupTree | None:
    """Average-linkage tree of a group's tasks on their affinity, with optimal leaf ordering; None under 2 tasks.

    Tasks are close when they help each other (distance = largest affinity minus ``(B + B')/2``), so the
    leaves put sub-groups next to each other: the structure inside a group shows as smaller blocks.
    The one place the within-group tree is built: the heatmap order and its drawn dendrogram both read it.
    """
    B = np.asarray(block, dtype=np.float64)
    m = B.shape[0]
    if m < 2:
        return None
    S = (B + B.T) / 2.0
    top = float(S.max())
    D = top - S
    np.fill_diagonal(D, 0.0)
    D = np.maximum((D + D.T) / 2.0, 0.0)
    condensed = squareform(D, checks=False)
    Z = linkage(condensed, method="average")
    if 3 <= m <= 400:  # optimal leaf ordering is O(m^3): only where it stays well under a second
        Z = optimal_leaf_ordering(Z, condensed)
    return GroupTree(linkage=Z, top=top)


def linkage_order(block: np.ndarray) -> np.ndarray:
    """Leaf order of :func:`group_tree` (average linkage, optimal leaf ordering) of a group's tasks."""
    tree = group_tree(block)
    return np.arange(np.shape(block)[0]) if tree is None else np.asarray(leaves_list(tree.linkage))


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
        tree = None
        if within == "linkage":
            tree = _oriented_tree(values[np.ix_(idx, idx)], inner)
            if tree is not None:
                idx = idx[leaves_list(tree.linkage)]
        else:
            idx = idx[np.lexsort((idx, -inner))]
        groups.append((-density, int(idx[0]), idx, tree))
    groups.sort(key=lambda t: (t[0], t[1]))
    order = np.concatenate([g[2] for g in groups])
    sizes = [g[2].size for g in groups]
    boundaries = tuple(int(x) for x in np.cumsum(sizes)[:-1])
    group_of = np.repeat(np.arange(len(sizes)), sizes)
    trees = tuple(g[3] for g in groups) if within == "linkage" else ()
    return HeatmapOrder(order=order, boundaries=boundaries, group_of=group_of, trees=trees)


def _oriented_tree(block: np.ndarray, inner: np.ndarray) -> GroupTree | None:
    """The group's tree, mirrored if needed so its strongest end (by ``inner``, help given) is drawn first."""
    tree = group_tree(block)
    if tree is None:
        return None
    leaves = leaves_list(tree.linkage)
    return tree.mirrored() if inner[leaves[-1]] > inner[leaves[0]] else tree


def group_spans(order: HeatmapOrder) -> list[tuple[int, int]]:
    """``(start, stop)`` drawn positions of each group, in drawn order."""
    n = len(order.order)
    return list(zip((0, *order.boundaries), (*order.boundaries, n)))


def within_group_dendrogram(order: HeatmapOrder, rows: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Line segments of each group's linkage tree, placed at the rows the heatmap draws.

    Parameters
    ----------
    order : HeatmapOrder
        An order built with ``within="linkage"`` (it carries the trees its groups follow).
    rows : (start, stop), optional
        Drawn positions to cover (default: all); must start and stop at group boundaries. Row positions
        in the result count from ``start``.

    Returns
    -------
    xs, ys : ndarray
        One polyline per merge, ``(h_a, y_a) (h, y_a) (h, y_b) (h_b, y_b)``, NaN between polylines. ``y``
        is a row position (leaves sit on their rows, a merge halfway between its children); ``x`` is the
        merge height: the largest within-group affinity among the covered groups minus the mean affinity
        of the two merged clusters, divided by the largest such height, so every group shares one scale
        in [0, 1] and leaves sit at 0. Empty when every covered group has one task.
    """
    if not order.trees:
        raise InvalidInputError("dendrogram: this heatmap order follows no tree; order it with within='linkage'.")
    start, stop = rows or (0, len(order.order))
    inside = [(span, tree) for span, tree in zip(group_spans(order), order.trees)
              if start <= span[0] and span[1] <= stop]
    if sum(b - a for (a, b), _ in inside) != stop - start:
        raise InvalidInputError(f"dendrogram: rows {start}..{stop} cut a group; cover whole groups.")
    chosen = [(a - start, tree) for (a, _), tree in inside if tree is not None]
    if not chosen:
        return np.empty(0), np.empty(0)
    top = max(tree.top for _, tree in chosen)
    parts = [_tree_polylines(tree, offset, top - tree.top) for offset, tree in chosen]
    xs = np.concatenate([p[0] for p in parts])
    ys = np.concatenate([p[1] for p in parts])
    scale = np.nanmax(xs)
    return (xs / scale if scale > 0 else xs), ys


def _tree_polylines(tree: GroupTree, offset: int, lift: float) -> tuple[np.ndarray, np.ndarray]:
    """U-shaped polyline per merge of ``tree``: leaves at rows ``offset + 0..m-1`` in leaf order, height 0."""
    Z = tree.linkage
    m = Z.shape[0] + 1
    y = np.empty(2 * m - 1)
    h = np.zeros(2 * m - 1)
    y[np.asarray(leaves_list(Z))] = offset + np.arange(m)
    xs = np.full((m - 1, 5), np.nan)
    ys = np.full((m - 1, 5), np.nan)
    for i, (a, b, dist, _) in enumerate(Z):  # children come before their parent in a linkage matrix
        a, b = int(a), int(b)
        node = m + i
        y[node] = (y[a] + y[b]) / 2.0
        h[node] = max(float(dist) + lift, 0.0)
        xs[i, :4] = h[a], h[node], h[node], h[b]
        ys[i, :4] = y[a], y[a], y[b], y[b]
    return xs.ravel(), ys.ravel()


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
