"""Round an SDP solution X to exactly k non-empty groups covering every task.

The authors threshold ``X > c/n`` and scan rows greedily; that scan depends on
task order, can return more or fewer than k groups, and leaves tasks unassigned
when c > 1 (seeds/methods.md section 1.3). The rule here:

1. **Threshold graph.** Tasks u != v are linked when ``(X[u,v] + X[v,u]) / 2 > c / n``.
   Its connected components are the starting groups; a task with no link is a
   group of its own. (For an exact partition solution ``X*``, a group of size m
   has entries ``1/m > 1/n``, so with c = 1 the components are its groups.)
2. **Merge** while there are more than k groups: join the two groups with the
   highest mean ``W`` between them (average linkage; ``W = X`` here). With
   c > 1 few links survive, so this step does most of the work and the result is
   average-linkage clustering of X, started from the confident links.
3. **Split** while there are fewer than k groups: over every group of two or
   more tasks, take its maximum spanning tree on ``W`` and cut the weakest tree
   edge overall (the least confident link that holds a group together).

Ties (equal W) go to the lowest task indices; the estimators run on tasks in
name order, so that is a tie-break by name and the result does not depend on
the input order. :func:`fix_group_count` (steps 2-3) is also how the baselines
guarantee exactly k groups, with ``W = S``.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from core.errors import InvalidInputError


def threshold_groups(X: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Labels of the connected components of the graph ``(X + X')/2 > c/n`` (step 1)."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    W = (X + X.T) / 2.0
    adj = W > c / n
    np.fill_diagonal(adj, False)
    _, labels = connected_components(adj.astype(np.int8), directed=False)
    return _first_appearance(labels)


def fix_group_count(labels: np.ndarray, k: int, W: np.ndarray) -> tuple[np.ndarray, dict]:
    """Merge (average linkage on W) or split (weakest maximum-spanning-tree edge of W) until k groups."""
    W = np.asarray(W, dtype=np.float64)
    W = (W + W.T) / 2.0
    n = W.shape[0]
    if not 1 <= k <= n:
        raise InvalidInputError(f"number of groups k={k} is out of range for {n} tasks; choose k from 1 to {n}.")
    labels = _first_appearance(np.asarray(labels))
    merges = splits = 0
    while labels.max() + 1 > k:
        g = int(labels.max()) + 1
        onehot = np.zeros((n, g))
        onehot[np.arange(n), labels] = 1.0
        sizes = onehot.sum(axis=0)
        mean_between = (onehot.T @ W @ onehot) / np.outer(sizes, sizes)
        mean_between[np.tril_indices(g)] = -np.inf
        a, b = np.unravel_index(int(np.argmax(mean_between)), mean_between.shape)
        labels = _first_appearance(np.where(labels == b, a, labels))
        merges += 1
    while labels.max() + 1 < k:
        best: tuple[float, int, int, int] | None = None  # (weight, group, u, v)
        for grp in range(int(labels.max()) + 1):
            idx = np.flatnonzero(labels == grp)
            if idx.size < 2:
                continue
            u, v, w = _weakest_tree_edge(W[np.ix_(idx, idx)])
            cand = (w, grp, int(idx[u]), int(idx[v]))
            if best is None or cand[0] < best[0]:
                best = cand
        assert best is not None  # fewer than k <= n groups means some group has >= 2 tasks
        _, grp, u, v = best
        idx = np.flatnonzero(labels == grp)
        side = _tree_side_without_edge(W[np.ix_(idx, idx)], int(np.searchsorted(idx, u)), int(np.searchsorted(idx, v)))
        new = labels.copy()
        new[idx[side]] = labels.max() + 1
        labels = _first_appearance(new)
        splits += 1
    return labels, dict(merges=merges, splits=splits)


def round_solution(X: np.ndarray, k: int, c: float = 1.0) -> tuple[np.ndarray, dict]:
    """Exactly k non-empty groups from an SDP solution X (threshold c/n, then merge or split on X).

    Returns labels and ``info`` with ``threshold_groups`` (count after step 1),
    ``merges`` and ``splits``.
    """
    X = np.asarray(X, dtype=np.float64)
    if not np.isfinite(c) or c <= 0:
        raise InvalidInputError(f"rounding threshold factor c={c} must be a positive number (the threshold is c/n).")
    start = threshold_groups(X, c)
    labels, info = fix_group_count(start, k, X)
    return labels, dict(threshold=c / X.shape[0], threshold_groups=int(start.max()) + 1, **info)


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    mapping: dict[int, int] = {}
    return np.array([mapping.setdefault(int(g), len(mapping)) for g in labels], dtype=np.int64)


def _max_spanning_tree(W: np.ndarray) -> np.ndarray:
    """Dense 0/1 adjacency of a maximum spanning tree of the complete graph weighted by W."""
    # Shift to strictly positive costs so that zero-weight edges stay edges for scipy.
    cost = (W.max() - W) + 1.0
    np.fill_diagonal(cost, 0.0)
    tree = minimum_spanning_tree(cost).toarray() != 0
    return tree | tree.T


def _weakest_tree_edge(W: np.ndarray) -> tuple[int, int, float]:
    tree = _max_spanning_tree(W)
    us, vs = np.nonzero(np.triu(tree))
    weights = W[us, vs]
    i = int(np.argmin(weights))  # first minimum: lowest (u, v) in index order
    return int(us[i]), int(vs[i]), float(weights[i])


def _tree_side_without_edge(W: np.ndarray, u: int, v: int) -> np.ndarray:
    """Tasks on v's side of the maximum spanning tree once edge (u, v) is cut."""
    tree = _max_spanning_tree(W)
    tree[u, v] = tree[v, u] = False
    _, comp = connected_components(tree.astype(np.int8), directed=False)
    return np.flatnonzero(comp == comp[v])


def greedy_scan_rounding(X: np.ndarray, c: float = 1.0) -> np.ndarray:
    """The published rounding, for comparison only: threshold ``X > c/n`` and scan rows in index order.

    Behaviour as described in seeds/methods.md section 1.3: for each row i and each
    ``j >= i`` above the threshold with j unassigned, i (if unassigned) and j join
    the current group; the group id advances after a row that assigned something.
    Depends on task order, returns any number of groups, and leaves tasks whose row
    never passes the threshold unassigned (label -1).
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    above = X > c / n
    labels = np.full(n, -1, dtype=np.int64)
    current = 0
    for i in range(n):
        assigned = False
        for j in range(i, n):
            if above[i, j] and labels[j] < 0:
                if labels[i] < 0:
                    labels[i] = current
                labels[j] = current
                assigned = True
        if assigned:
            current += 1
    return labels


#: Levels of the threshold sweep with more than k + MAX_SWEEP_MERGES components are skipped.
MAX_SWEEP_MERGES = 30


def threshold_sweep(X: np.ndarray, k: int, max_merges: int = MAX_SWEEP_MERGES) -> list[np.ndarray]:
    """Exactly-k roundings of X at every threshold where the threshold graph changes.

    The components of ``(X + X')/2 > t`` only change when t passes the weight of an
    edge of the maximum spanning tree of W (single linkage), so the n - 1 tree
    edge weights are every distinct threshold there is. Each level's components
    are brought to k groups by :func:`fix_group_count` on X. Levels with more than
    ``k + max_merges`` components are skipped: from them the merges alone are
    average-linkage clustering, which the coarser levels already start from, and
    each merge costs O(n^2 k); for n <= k + max_merges + 1 (every n <= 31) no
    level is skipped. Returns the distinct partitions, from the highest
    threshold down, without duplicates.
    """
    X = np.asarray(X, dtype=np.float64)
    W = (X + X.T) / 2.0
    n = W.shape[0]
    if n == 1:
        return [np.zeros(1, dtype=np.int64)]
    tree = np.triu(_max_spanning_tree(W))
    us, vs = np.nonzero(tree)
    order = np.argsort(-W[us, vs], kind="stable")
    parent = np.arange(n)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    levels = [np.arange(n)]
    weights = W[us, vs][order]
    for i, e in enumerate(order):
        parent[root(int(us[e]))] = root(int(vs[e]))
        # Record a level once every edge of equal weight has joined (one threshold, one level).
        if i + 1 == len(order) or weights[i + 1] < weights[i]:
            levels.append(np.array([root(a) for a in range(n)]))
    levels = [lv for lv in levels if np.unique(lv).size <= k + max_merges]
    return _distinct([fix_group_count(level, k, X)[0] for level in levels])


def factor_roundings(X: np.ndarray, k: int, n_starts: int, seed: int = 0) -> list[np.ndarray]:
    """Randomized roundings from a factor ``V`` of X (``X = V V'``): k Gaussian directions, each task to the best.

    For each start, draw k directions ``r_j ~ N(0, I)`` and put task u in group
    ``argmax_j <V_u, r_j>`` (the vector rounding of max-k-cut), then bring the
    result to exactly k groups with :func:`fix_group_count`. Tasks whose rows of
    V point the same way (a group of an exact partition matrix) stay together.
    Seeded: the same ``seed`` gives the same roundings. Returns distinct partitions.
    """
    X = np.asarray(X, dtype=np.float64)
    X = (X + X.T) / 2.0
    vals, vecs = np.linalg.eigh(X)
    keep = vals > 1e-9 * max(1.0, float(vals.max()))
    V = vecs[:, keep] * np.sqrt(vals[keep])[None, :]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(int(n_starts)):
        labels = np.argmax(V @ rng.normal(size=(V.shape[1], k)), axis=1)
        out.append(fix_group_count(labels, k, X)[0])
    return _distinct(out)


def _distinct(partitions: list[np.ndarray]) -> list[np.ndarray]:
    """The partitions in order, each once (compared as partitions, not label arrays)."""
    seen: set[bytes] = set()
    out = []
    for labels in partitions:
        key = _first_appearance(labels).tobytes()
        if key not in seen:
            seen.add(key)
            out.append(_first_appearance(labels))
    return out
