"""A fixed, seeded suite of planted grouping cases (n = 6..30, k = 2..6) for tests and the recovery benchmark.

Families (12 cases each, 72 in all; about half have n <= 12, where the exact
optimum is known by exhaustive search):

- ``balanced``: equal group sizes, within 1, between -0.5, noise 0.3, asymmetric noise 0.1;
- ``unequal``: sizes drawn from a skewed Dirichlet (each >= 2), same levels;
- ``asymmetric``: noise 0.2 plus asymmetric noise 0.5 (T far from symmetric);
- ``scaled``: per-target scale spread 0.5 (targets' metrics move on different scales);
- ``low_snr``: noise 0.55 (SNR = 1.5 / 0.55, about 2.7);
- ``shifted``: accuracy-like, all entries positive (within 0.80, between 0.70, noise 0.04).

The relaxation is tight on most of these and every method recovers nearly all
of them, so they cannot tell methods apart. The **hard families** (:data:`HARD_FAMILIES`,
8 shapes each, n = 10..30, k = 4..10), as in the poster's setting, can:

- ``singletons``: two large groups beside singletons (sizes like 6, 3, 1, 1, 1), noise 0.35,
  diagonal 0 (a gain matrix: a task alone gains nothing; with the diagonal at the
  within level the objective cannot tell a large group from its halves);
- ``heterogeneous``: each group its own within level, uniform in 0.1..1.2 (between -0.3, noise 0.3);
- ``asym_shifted``: all entries positive (within 0.80, between 0.72), asymmetric noise 0.04
  twice the symmetric 0.02;
- ``very_low_snr``: noise 0.8 (SNR 1.9), unequal sizes;
- ``many_groups``: k = n / 3 groups of 2..4 tasks, noise 0.35.

A case's planted partition need not be the optimum of the objective under
noise; :func:`optimum_is_planted` checks that by exhaustive search (n <= 12).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from core.grouping.exhaustive import MAX_TASKS, exhaustive_partition
from core.grouping.objective import average_density, same_partition, symmetrize
from core.grouping.planted import PlantedCase, planted_affinity

FAMILIES: dict[str, dict] = {
    "balanced": dict(within=1.0, between=-0.5, noise=0.3, asym_noise=0.1),
    "unequal": dict(within=1.0, between=-0.5, noise=0.3, asym_noise=0.1),
    "asymmetric": dict(within=1.0, between=-0.5, noise=0.2, asym_noise=0.5),
    "scaled": dict(within=1.0, between=-0.5, noise=0.3, asym_noise=0.1, scale_spread=0.5),
    "low_snr": dict(within=1.0, between=-0.5, noise=0.55, asym_noise=0.1),
    "shifted": dict(within=0.80, between=0.70, noise=0.04, asym_noise=0.01),
}

HARD_FAMILIES: dict[str, dict] = {
    "singletons": dict(within=1.0, between=-0.5, noise=0.35, asym_noise=0.1),
    "heterogeneous": dict(between=-0.3, noise=0.3, asym_noise=0.1),
    "asym_shifted": dict(within=0.80, between=0.72, noise=0.02, asym_noise=0.04),
    "very_low_snr": dict(within=1.0, between=-0.5, noise=0.8, asym_noise=0.1),
    "many_groups": dict(within=1.0, between=-0.5, noise=0.35, asym_noise=0.1),
}

# (n, k) per case index of a hard family: half with n <= 12 (exhaustive optimum known).
HARD_SHAPES = [(10, 4), (11, 5), (12, 5), (12, 4), (16, 6), (20, 7), (24, 8), (30, 10)]

# (n, k) per case index within a family: half with n <= 12, k cycling over 2..6.
SHAPES = [(6, 2), (8, 3), (9, 3), (10, 4), (12, 4), (12, 5), (12, 6), (11, 2), (16, 3), (20, 5), (25, 4), (30, 6)]


@dataclass(frozen=True)
class SuiteCase:
    """One case of the suite."""

    name: str
    family: str
    n: int
    k: int
    planted: PlantedCase

    @property
    def matrix(self):
        return self.planted.matrix

    @property
    def labels(self) -> np.ndarray:
        return self.planted.labels


def _sizes(n: int, k: int, family: str, rng: np.random.Generator) -> list[int]:
    if family == "singletons":  # large groups beside singletons: k - 2 singletons, the rest split 2:1
        rest = n - (k - 2)
        big = int(np.ceil(rest * 2 / 3))
        return [big, rest - big] + [1] * (k - 2)
    if family == "many_groups":  # sizes 2..4 summing to n
        sizes = [2] * k
        for _ in range(n - 2 * k):
            sizes[int(rng.choice([i for i in range(k) if sizes[i] < 4]))] += 1
        return sorted(sizes, reverse=True)
    if family == "very_low_snr":
        family = "unequal"
    if family != "unequal":
        base = [n // k + (1 if i < n % k else 0) for i in range(k)]
        return base
    # Skewed sizes, each >= 2.
    extra = n - 2 * k
    w = rng.dirichlet(np.full(k, 0.6))
    add = np.floor(w * extra).astype(int)
    add[np.argmax(w)] += extra - add.sum()
    return sorted((2 + add).tolist(), reverse=True)


def build_suite(seed: int = 0, families: tuple[str, ...] | None = None) -> list[SuiteCase]:
    """The suite: every family x every shape, seeded by ``seed``.

    ``families`` defaults to the six of :data:`FAMILIES` (shapes :data:`SHAPES`); names of
    :data:`HARD_FAMILIES` (shapes :data:`HARD_SHAPES`) may be given too.
    """
    cases = []
    for family in families or tuple(FAMILIES):
        params, shapes = (FAMILIES[family], SHAPES) if family in FAMILIES else (HARD_FAMILIES[family], HARD_SHAPES)
        # A family's seeds do not depend on which other families are built with it.
        f_idx = list(FAMILIES).index(family) if family in FAMILIES else 10 + list(HARD_FAMILIES).index(family)
        for i, (n, k) in enumerate(shapes):
            case_seed = seed * 100_000 + f_idx * 1000 + i
            rng = np.random.default_rng(case_seed)
            sizes = _sizes(n, k, family, rng)
            if family == "heterogeneous":
                params = dict(params, within=rng.uniform(0.1, 1.2, size=k).tolist())
            planted = planted_affinity(sizes, seed=case_seed, **params)
            if family == "singletons":
                values = np.array(planted.matrix.values)
                np.fill_diagonal(values, 0.0)
                planted = replace(planted, matrix=replace(planted.matrix, values=values))
            cases.append(SuiteCase(name=f"{family}-n{n}-k{k}-s{case_seed}", family=family, n=n, k=k,
                                   planted=planted))
    return cases


def planted_objective(case: SuiteCase) -> float:
    """Objective of the planted partition."""
    return average_density(symmetrize(case.matrix.values), case.labels)


def optimum_is_planted(case: SuiteCase) -> bool | None:
    """Whether the exhaustive optimum is the planted partition (None when n > 12: unknown here)."""
    if case.n > MAX_TASKS:
        return None
    labels, _ = exhaustive_partition(case.matrix.values, case.k)
    return same_partition(labels, case.labels)
