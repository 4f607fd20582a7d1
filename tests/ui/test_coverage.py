"""ui.coverage: which affinity entries rest on few observations (the Affinity page's list)."""
import numpy as np

from core.matrix.affinity import AffinityMatrix
from ui.coverage import low_count_caption, low_count_entries


def test_low_count_entries_fewest_first_diagonal_left_out():
    counts = np.array([[5, 0, 1], [3, 5, 2], [1, 4, 5]], dtype=float)
    m = AffinityMatrix(names=("a", "b", "c"), values=np.arange(9.0).reshape(3, 3), counts=counts)
    few = low_count_entries(m)
    assert list(zip(few["source"], few["target"], few["observations"])) == [("a", "b", 0), ("a", "c", 1),
                                                                             ("c", "a", 1)]
    assert list(few["value"]) == [1.0, 2.0, 6.0]
    assert low_count_caption(m, few) == ("3 of 6 entries rest on fewer than 2 observations, 1 of them on none yet "
                                         "(shown as 0); read them with care (listed below, fewest first).")


def test_no_counts_no_list():
    m = AffinityMatrix(names=("a", "b"), values=np.zeros((2, 2)))
    assert low_count_entries(m).empty and low_count_caption(m, low_count_entries(m)) == ""
    full = AffinityMatrix(names=("a", "b"), values=np.zeros((2, 2)), counts=np.full((2, 2), 3.0))
    assert low_count_caption(full, low_count_entries(full)).startswith("Every one of the 2 entries")
