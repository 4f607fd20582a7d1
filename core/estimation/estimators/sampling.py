"""Subset samplers for higher-order affinity, with pair coverage.

The authors' sampler draws subsets uniformly and leaves some pairs of tasks never sampled
together (with 2,000 subsets of 5 out of 100 tasks about 1.8% of pairs; the averaging then
divides 0/0). :func:`sample_subsets` draws ``n_subsets`` distinct uniform subsets and then, when
``min_pair_coverage`` > 0, *adds* greedy covering subsets until every pair of tasks appears
together in at least that many subsets (the added count is returned, so callers record it).
The result is a deterministic function of the arguments, which is what makes runs resumable.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb
from typing import Sequence

import numpy as np

from core.errors import InvalidInputError


@dataclass(frozen=True)
class SubsetSample:
    """Sampled subsets (each a tuple of names in the order of ``names``) and their pair coverage."""

    subsets: tuple[tuple[str, ...], ...]
    n_random: int
    n_added: int
    coverage: np.ndarray  # (n, n) number of subsets holding both tasks; diagonal = subsets holding the task

    @property
    def min_pair_coverage(self) -> int:
        n = self.coverage.shape[0]
        off = self.coverage[~np.eye(n, dtype=bool)]
        return int(off.min()) if off.size else 0


def pair_coverage(names: Sequence[str], subsets: Sequence[Sequence[str]]) -> np.ndarray:
    """(n, n) counts of subsets holding both tasks (diagonal: subsets holding the task)."""
    pos = {x: i for i, x in enumerate(names)}
    cov = np.zeros((len(names), len(names)), dtype=np.int64)
    for s in subsets:
        idx = np.array([pos[x] for x in s])
        cov[np.ix_(idx, idx)] += 1
    return cov


def check_subset_params(n_tasks: int, n_subsets: int, size: int, min_pair_coverage: int = 1) -> None:
    """Raise :class:`InvalidInputError` naming the bad option (``subsets``, ``subset_size``, ``min_pair_coverage``)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise InvalidInputError(f"subset_size must be an integer, got {size!r}.")
    if isinstance(n_subsets, bool) or not isinstance(n_subsets, (int, np.integer)):
        raise InvalidInputError(f"subsets must be an integer, got {n_subsets!r}.")
    if isinstance(min_pair_coverage, bool) or not isinstance(min_pair_coverage, (int, np.integer)) \
            or min_pair_coverage < 0:
        raise InvalidInputError(f"min_pair_coverage must be an integer >= 0, got {min_pair_coverage!r}.")
    if n_tasks < 2:
        raise InvalidInputError(f"higher-order affinity needs at least 2 tasks, got {n_tasks}.")
    if not 2 <= size <= n_tasks:
        raise InvalidInputError(f"subset_size {size} must be between 2 and the number of tasks ({n_tasks}).")
    if n_subsets < 1:
        raise InvalidInputError(f"subsets must be >= 1, got {n_subsets}.")
    if n_subsets > comb(n_tasks, size):
        raise InvalidInputError(
            f"subsets {n_subsets} exceeds the {comb(n_tasks, size)} distinct subsets of size {size} "
            f"from {n_tasks} tasks; lower subsets or raise subset_size.")
    most = comb(n_tasks - 2, size - 2)
    if min_pair_coverage > most:
        raise InvalidInputError(
            f"min_pair_coverage {min_pair_coverage} is impossible: a pair of tasks is in at most {most} distinct "
            f"subsets of size {size}; lower min_pair_coverage.")


def sample_subsets(names: Sequence[str], n_subsets: int, size: int, *, seed: int = 0,
                   min_pair_coverage: int = 1) -> SubsetSample:
    """``n_subsets`` distinct uniform random subsets of ``size`` tasks, plus covering subsets.

    Parameters
    ----------
    names : sequence of str
        The tasks.
    n_subsets : int
        Number of uniform random subsets (distinct).
    size : int
        Tasks per subset (2 <= size <= n).
    seed : int
        Seed of the sampler (not of the trainings).
    min_pair_coverage : int
        After the random draw, greedy subsets are appended until every pair is held by at least
        this many subsets (0 disables; the estimator then fills uncovered pairs, see its notes).
    """
    names = tuple(names)
    n = len(names)
    check_subset_params(n, n_subsets, size, min_pair_coverage)
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    while len(chosen) < n_subsets:
        s = tuple(sorted(int(i) for i in rng.choice(n, size=size, replace=False)))
        if s not in seen:
            seen.add(s)
            chosen.append(s)
    cov = np.zeros((n, n), dtype=np.int64)
    for s in chosen:
        cov[np.ix_(s, s)] += 1
    n_random = len(chosen)
    if min_pair_coverage > 0:
        off = ~np.eye(n, dtype=bool)
        while (cov[off] < min_pair_coverage).any():
            s = _greedy_cover(cov, size, min_pair_coverage, rng, seen)
            seen.add(s)
            chosen.append(s)
            cov[np.ix_(s, s)] += 1
    subsets = tuple(tuple(names[i] for i in s) for s in chosen)
    return SubsetSample(subsets=subsets, n_random=n_random, n_added=len(chosen) - n_random, coverage=cov)


def _greedy_cover(cov: np.ndarray, size: int, need: int, rng: np.random.Generator,
                  seen: set[tuple[int, ...]]) -> tuple[int, ...]:
    """A subset that starts from the least-covered pair and adds the tasks closing most deficits."""
    n = cov.shape[0]
    deficit = np.maximum(need - cov, 0)
    np.fill_diagonal(deficit, 0)
    for _ in range(100):
        pairs = np.argwhere(np.triu(deficit == deficit.max(), 1) & (deficit > 0))
        i, j = pairs[rng.integers(len(pairs))]
        members = [int(i), int(j)]
        while len(members) < size:
            rest = np.setdiff1d(np.arange(n), members)
            gain = deficit[np.ix_(rest, members)].sum(axis=1) + rng.random(len(rest)) * 0.5
            members.append(int(rest[np.argmax(gain)]))
        s = tuple(sorted(members))
        if s not in seen:
            return s
        deficit = deficit + (rng.random(deficit.shape) < 0.1)  # perturb ties to escape a duplicate
        np.fill_diagonal(deficit, 0)
    # Greedy keeps hitting taken subsets: take the first untaken subset holding an under-covered pair
    # (one exists, since coverage below comb(n-2, size-2) means not all of them are taken).
    deficit = np.maximum(need - cov, 0)
    np.fill_diagonal(deficit, 0)
    for i, j in np.argwhere(np.triu(deficit > 0, 1)):
        rest = [k for k in range(n) if k not in (i, j)]
        for extra in combinations(rest, size - 2):
            s = tuple(sorted((int(i), int(j), *extra)))
            if s not in seen:
                return s
    raise AssertionError("no untaken covering subset; check_subset_params should have refused these options")


def all_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    return list(combinations(tuple(names), 2))
