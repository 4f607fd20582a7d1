"""Exact optimum of the average-density objective by dynamic programming over subsets.

Enumerating every partition into k groups (S(12, 4) = 611,501) is slow in
Python. Instead: precompute the density ``d(A) = sum_{u,v in A} S[u,v] / |A|``
of every subset ``A`` (bitmask), then

    F_1(M) = d(M),   F_j(M) = max_{A subset of M, low(M) in A, A != M} d(A) + F_{j-1}(M \\ A)

where ``low(M)`` is M's lowest task, so each partition is reached exactly once.
``F_k(all tasks)`` is the optimum over all partitions into exactly k non-empty
groups. The work is about ``k * 3^n / 2`` array operations (n = 12: 0.3 M per
level), well under a second.

Ties: among (mask, subset) candidates of equal value, the first in a fixed order
wins (``argmax`` is first-max). Estimators run this on tasks sorted by name, so
the optimum returned does not depend on the order tasks were given in.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from core.errors import InvalidInputError
from core.grouping.base import BaseGrouping
from core.matrix.preprocess import Preprocessing

MAX_TASKS = 12


def stirling2(n: int, k: int) -> int:
    """Number of partitions of n items into exactly k non-empty groups."""
    return sum((-1) ** i * math.comb(k, i) * (k - i) ** n for i in range(k + 1)) // math.factorial(k)


@functools.lru_cache(maxsize=4)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (mask, sub) with sub a proper-or-full subset of mask holding mask's lowest bit.

    Returned sorted by mask, plus the start offset of each mask's run (for reduceat).
    """
    full = 1 << n
    masks = np.arange(full, dtype=np.int64)
    low = masks & -masks
    mask_list, sub_list = [], []
    # Chunked over sub to bound memory at (chunk x 2^n) booleans.
    for start in range(0, full, 512):
        subs = masks[start:start + 512]
        ok = ((subs[:, None] & ~masks[None, :]) == 0) & ((subs[:, None] & low[None, :]) != 0)
        s_idx, m_idx = np.nonzero(ok)
        mask_list.append(masks[m_idx])
        sub_list.append(subs[s_idx])
    mask_arr = np.concatenate(mask_list)
    sub_arr = np.concatenate(sub_list)
    order = np.lexsort((sub_arr, mask_arr))
    mask_arr, sub_arr = mask_arr[order], sub_arr[order]
    starts = np.flatnonzero(np.r_[True, mask_arr[1:] != mask_arr[:-1]])
    return mask_arr, sub_arr, starts


def subset_densities(S: np.ndarray) -> np.ndarray:
    """``d[mask] = sum_{u,v in mask} S[u,v] / |mask|`` for every bitmask (d[0] = 0)."""
    n = S.shape[0]
    masks = np.arange(1 << n, dtype=np.int64)
    bits = ((masks[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
    sums = np.einsum("mi,ij,mj->m", bits, S, bits, optimize=True)
    sizes = bits.sum(axis=1)
    d = np.zeros(1 << n)
    d[1:] = sums[1:] / sizes[1:]
    return d


def exhaustive_partition(S: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Optimal labels and objective over all partitions of ``S``'s tasks into exactly ``k`` groups.

    Parameters
    ----------
    S : ndarray of shape (n, n)
        Affinity (symmetrised inside; only the symmetric part matters). n <= 12.
    k : int
        Number of non-empty groups, 1 <= k <= n.
    """
    S = np.asarray(S, dtype=np.float64)
    n = S.shape[0]
    if n > MAX_TASKS:
        raise InvalidInputError(
            f"exhaustive search handles at most {MAX_TASKS} tasks (got {n}; {n} tasks have "
            f"{stirling2(n, min(k, n)):,} partitions into {k} groups); use method 'sdp' instead.")
    if not 1 <= k <= n:
        raise InvalidInputError(f"number of groups k={k} is out of range for {n} tasks; choose k from 1 to {n}.")
    S = (S + S.T) / 2.0
    d = subset_densities(S)
    full = (1 << n) - 1
    mask_arr, sub_arr, starts = _pairs(n)
    rest_arr = mask_arr ^ sub_arr
    F = [None, d.copy()]
    choice: list[np.ndarray | None] = [None, None]
    uniq_masks = mask_arr[starts]
    for j in range(2, k + 1):
        prev = F[j - 1]
        # F_{j-1}(empty) is -inf for j-1 >= 1: a group may not be empty.
        cand = d[sub_arr] + np.where(rest_arr == 0, -np.inf, prev[rest_arr])
        best = np.maximum.reduceat(cand, starts)
        # First index achieving the max within each mask's run.
        is_best = cand == np.repeat(best, np.diff(np.r_[starts, cand.size]))
        # The first maximiser within each run: the first True at or after the run start.
        pos = np.searchsorted(np.flatnonzero(is_best), starts)
        first = np.flatnonzero(is_best)[pos]
        Fj = np.full(1 << n, -np.inf)
        Fj[uniq_masks] = best
        pick = np.zeros(1 << n, dtype=np.int64)
        pick[uniq_masks] = sub_arr[first]
        F.append(Fj)
        choice.append(pick)
    labels = np.empty(n, dtype=np.int64)
    mask, g = full, 0
    for j in range(k, 0, -1):
        sub = mask if j == 1 else int(choice[j][mask])
        members = [i for i in range(n) if sub >> i & 1]
        labels[members] = g
        g += 1
        mask ^= sub
    return labels, float(F[k][full])



class ExhaustiveGrouping(BaseGrouping):
    """The exact optimum over all partitions into exactly k groups (n <= 12).

    Parameters
    ----------
    k : int
    refine : bool, default False
        Accepted so that every method takes the same options; the optimum cannot be refined.
    preprocessing : Preprocessing or None

    Attributes
    ----------
    labels_, groups_, objective_, seconds_ : the optimal partition and its objective
    n_partitions_ : int
        How many partitions into k groups exist (Stirling number S(n, k)); the search covers all.
    """

    method = "exhaustive"

    def __init__(self, k: int, *, refine: bool = False, preprocessing: Preprocessing | None = None) -> None:
        super().__init__(k, preprocessing=preprocessing)
        self.refine = refine

    def _fit_sorted(self, T: np.ndarray, S: np.ndarray, k: int) -> np.ndarray:
        labels, value = exhaustive_partition(S, k)
        self.n_partitions_ = stirling2(S.shape[0], k)
        self.details_.update(n_partitions=self.n_partitions_, optimum=value)
        return labels
