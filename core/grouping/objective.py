"""The grouping objective and partition helpers shared by every grouping method.

Objective (average density). For a partition of the tasks into groups
``C_1..C_k`` and the symmetric part ``S = (T + T') / 2`` of the affinity matrix,

    f(C_1..C_k) = sum_i (1 / |C_i|) * sum_{u, v in C_i} S[u, v]

The double sum runs over ordered pairs *including* ``u == v``, so the diagonal
``S[v, v]`` counts once per task (divided by its group size). Whether the
diagonal holds single-task values, zeros or gains is the preprocessing's choice
(:class:`core.matrix.preprocess.Preprocessing`, ``diagonal=keep|zero|gain``), recorded
with the result. Only the symmetric part matters: ``sum_{u,v in C} T[u,v]`` is
the same for ``T`` and ``S``. With the normalised partition matrix
``X* = sum_i v_i v_i' / |C_i|`` (``v_i`` the 0/1 indicator of ``C_i``),
``f = <S, X*>``, which is what the SDP relaxes.

Labels are integer arrays (``labels[v]`` = group of task ``v``); groups are
lists of task names. Canonical labels number groups by their first member in a
given task ranking, so equal partitions get equal label arrays.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from core.errors import InvalidInputError
from core.matrix.preprocess import symmetrize

__all__ = [
    "average_density",
    "canonical_labels",
    "groups_to_labels",
    "labels_to_groups",
    "partition_matrix",
    "same_partition",
    "symmetrize",
    "validate_k",
    "validate_labels",
    "validate_scale",
]

#: Largest |T[u, v]| grouped. Above it, sums and squares inside the methods (S = (T + T')/2,
#: k-means distances, exp((S - max S)/tau), SDP residuals) overflow float64 and the answer
#: would be arbitrary; found by the property tests in tests/hardening/test_hardening_properties.py.
MAX_ABS_VALUE = 1e100


def validate_scale(T: np.ndarray) -> None:
    """Refuse a matrix whose entries are so large that grouping arithmetic would overflow."""
    biggest = float(np.abs(T).max())
    if biggest > MAX_ABS_VALUE:
        raise InvalidInputError(
            f"affinity values as large as {biggest:.3g} cannot be grouped without float overflow "
            f"(limit {MAX_ABS_VALUE:.0e}); rescale the matrix, e.g. divide it by its largest absolute value.")


def validate_k(k: object, n: int) -> int:
    """Return ``k`` as an int after checking ``1 <= k <= n``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InvalidInputError(f"number of groups k={k!r} is not an integer; give a whole number from 1 to {n}.")
    k = int(k)
    if not 1 <= k <= n:
        raise InvalidInputError(f"number of groups k={k} is out of range for {n} tasks; choose k from 1 to {n}.")
    return k


def validate_labels(labels: Sequence[int], n: int, k: int | None = None) -> np.ndarray:
    """Return labels as an int array, checking length ``n`` and (if given) exactly ``k`` non-empty groups."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size != n:
        raise InvalidInputError(f"labels: expected {n} group labels (one per task), got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError("labels: group labels must be integers.")
    arr = arr.astype(np.int64)
    if k is not None and np.unique(arr).size != k:
        raise InvalidInputError(f"labels: {np.unique(arr).size} non-empty groups, expected exactly {k}.")
    return arr


def average_density(S: np.ndarray, labels: Sequence[int]) -> float:
    """Average density ``sum_i (1/|C_i|) sum_{u,v in C_i} S[u,v]`` (diagonal included).

    ``S`` may be asymmetric; only its symmetric part affects the value.
    """
    S = np.asarray(S, dtype=np.float64)
    labels = np.asarray(labels)
    total = 0.0
    for g in np.unique(labels):
        idx = np.flatnonzero(labels == g)
        total += S[np.ix_(idx, idx)].sum() / idx.size
    return float(total)


def partition_matrix(labels: Sequence[int]) -> np.ndarray:
    """Normalised partition matrix ``X* = sum_i v_i v_i' / |C_i|`` (rows sum to 1, trace = k)."""
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    sizes = np.array([np.count_nonzero(labels == g) for g in labels], dtype=np.float64)
    return same / sizes[:, None]


def canonical_labels(labels: Sequence[int], rank: Sequence[int] | None = None) -> np.ndarray:
    """Relabel groups 0, 1, ... in order of their first member by ``rank`` (default: task index).

    Pass ``rank`` = each task's position in name order to get labels that do not
    depend on the order tasks were given in.
    """
    labels = np.asarray(labels)
    n = labels.size
    order = np.arange(n) if rank is None else np.argsort(np.asarray(rank), kind="stable")
    mapping: dict[int, int] = {}
    for v in order:
        mapping.setdefault(int(labels[v]), len(mapping))
    return np.array([mapping[int(g)] for g in labels], dtype=np.int64)


def same_partition(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two label arrays describe the same partition (up to renaming groups)."""
    return bool(np.array_equal(canonical_labels(a), canonical_labels(b)))


def labels_to_groups(labels: Sequence[int], names: Sequence[str]) -> list[list[str]]:
    """Groups as lists of task names: members sorted by name, groups sorted by their first name."""
    labels = np.asarray(labels)
    groups: dict[int, list[str]] = {}
    for name, g in zip(names, labels):
        groups.setdefault(int(g), []).append(str(name))
    return sorted((sorted(members) for members in groups.values()), key=lambda m: m[0])


def groups_to_labels(groups: Sequence[Sequence[str]], names: Sequence[str]) -> np.ndarray:
    """Label array (in ``names`` order) of a partition given as lists of task names."""
    where = {str(x): i for i, x in enumerate(names)}
    labels = np.full(len(names), -1, dtype=np.int64)
    for g, members in enumerate(groups):
        for name in members:
            if str(name) not in where:
                raise InvalidInputError(f"groups: unknown task name {name!r}.")
            i = where[str(name)]
            if labels[i] >= 0:
                raise InvalidInputError(f"groups: task {name!r} is in more than one group.")
            labels[i] = g
    missing = [names[i] for i in np.flatnonzero(labels < 0)]
    if missing:
        raise InvalidInputError(f"groups: tasks {missing[:5]} are in no group; every task needs a group.")
    return labels
