"""The within-group trees the heatmap order follows, and the dendrogram lines drawn from them."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import leaves_list

from core.errors import InvalidInputError
from core.report.ordering import group_spans, group_tree, order_by_groups, within_group_dendrogram

# Group label and sub-group of each planted task: groups 0 and 1 are each two sub-groups, 2 is a pair, 3 alone.
GROUPS = np.array([0] * 8 + [1] * 6 + [2] * 2 + [3])
SUBS = np.array([0] * 4 + [1] * 4 + [2] * 3 + [3] * 3 + [4] * 2 + [5])


@pytest.fixture(scope="module")
def planted():
    """Affinities 2 inside a sub-group, 0.5 across sub-groups of a group, -1 across groups; shuffled."""
    rng = np.random.default_rng(7)
    perm = rng.permutation(GROUPS.size)
    groups, subs = GROUPS[perm], SUBS[perm]
    values = np.where(subs[:, None] == subs[None, :], 2.0, np.where(groups[:, None] == groups[None, :], 0.5, -1.0))
    values = values + rng.normal(scale=0.05, size=values.shape)
    return values, groups, subs


def _polylines(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(merges, 4) arrays of x and y: one U-shaped polyline per merge."""
    assert xs.shape == ys.shape and xs.size % 5 == 0
    px, py = xs.reshape(-1, 5), ys.reshape(-1, 5)
    assert np.isnan(px[:, 4]).all() and np.isnan(py[:, 4]).all() and np.isfinite(px[:, :4]).all()
    return px[:, :4], py[:, :4]


def test_leaf_ends_land_on_each_groups_rows(planted):
    values, groups, _ = planted
    order = order_by_groups(values, groups)
    px, py = _polylines(*within_group_dendrogram(order))
    ends_x, ends_y = np.r_[px[:, 0], px[:, 3]], np.r_[py[:, 0], py[:, 3]]
    leaf_rows = np.sort(ends_y[ends_x == 0])
    rows_of_trees = [p for a, b in group_spans(order) if b - a >= 2 for p in range(a, b)]
    assert list(leaf_rows) == rows_of_trees  # every row of a group of >= 2 tasks exactly once, nothing else
    sizes = np.bincount(order.group_of)
    assert len(px) == int(np.sum(sizes - 1))  # m - 1 merges per group, none for the single task
    # The trees the lines come from are the ones that ordered the rows (mirrored or not).
    for (a, b), tree in zip(group_spans(order), order.trees):
        members = np.sort(order.order[a:b])
        if b - a == 1:
            assert tree is None
        else:
            assert list(members[leaves_list(tree.linkage)]) == list(order.order[a:b])


def test_heights_are_non_negative_and_subgroups_join_below_their_root(planted):
    values, groups, subs = planted
    order = order_by_groups(values, groups)
    xs, ys = within_group_dendrogram(order)
    px, py = _polylines(xs, ys)
    assert (px >= 0).all() and np.isclose(px.max(), 1.0)
    drawn_sub = subs[order.order]
    for a, b in group_spans(order):
        inside = (py.min(axis=1) >= a) & (py.max(axis=1) <= b - 1)
        if len(set(drawn_sub[a:b])) < 2:
            continue
        assert np.sum(drawn_sub[a + 1:b] != drawn_sub[a:b - 1]) == 1  # sub-groups are contiguous
        heights = px[inside, 1]
        root = heights.max()
        in_one_sub = [h for h, lo, hi in zip(heights, py[inside].min(axis=1), py[inside].max(axis=1))
                      if len(set(drawn_sub[int(np.floor(lo)):int(np.ceil(hi)) + 1])) == 1]
        assert len(in_one_sub) == b - a - 2 and root > max(in_one_sub) + 0.3  # one root over two sub-trees


def test_rows_of_whole_groups_count_from_their_start(planted):
    values, groups, _ = planted
    order = order_by_groups(values, groups)
    (a, b), _ = next((s, t) for s, t in zip(group_spans(order), order.trees) if s[1] - s[0] == 6)
    px, py = _polylines(*within_group_dendrogram(order, (a, b)))
    assert py.min() == 0 and py.max() == b - a - 1 and np.isclose(px.max(), 1.0) and len(px) == 5
    with pytest.raises(InvalidInputError):
        within_group_dendrogram(order, (a, b - 1))
    with pytest.raises(InvalidInputError):
        within_group_dendrogram(order_by_groups(values, groups, within="strength"))
    single = next(s for s, t in zip(group_spans(order), order.trees) if t is None)
    xs, ys = within_group_dendrogram(order, single)
    assert xs.size == 0 and ys.size == 0


def test_a_mirrored_tree_reverses_the_leaves_and_pairs_are_one_link(planted):
    values, _, _ = planted
    tree = group_tree(values[:7, :7])
    assert list(leaves_list(tree.mirrored().linkage)) == list(leaves_list(tree.linkage))[::-1]
    assert group_tree(values[:1, :1]) is None
    pair = order_by_groups(values[:2, :2], [0, 0])
    px, py = _polylines(*within_group_dendrogram(pair))
    assert len(px) == 1 and list(py[0]) == [0, 0, 1, 1] and list(px[0]) == [0, 1, 1, 0]
