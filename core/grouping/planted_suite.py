"""A fixed, seeded suite of planted grouping cases (n = 6..30, k = 2..6) for tests and the recovery benchmark.

Families (12 cases each, 72 in all; about half have n <= 12, where the exact
optimum is known by exhaustive search):

- ``balanced``: equal group sizes, within 1, between -0.5, noise 0.3, asymmetric noise 0.1;
- ``unequal``: sizes drawn from a skewed Dirichlet (each >= 2), same levels;
- ``asymmetric``: noise 0.2 plus asymmetric noise 0.5 (T far from symmetric);
- ``scaled``: per-target scale spread 0.5 (targets' metrics move on different scales);
- ``low_snr``: noise 0.55 (SNR = 1.5 / 0.55, about 2.7);
- ``shifted``: accuracy-like, all entries positive (within 0.80, between 0.70, noise 0.04).

A case's planted partition need not be the optimum of the objective under
noise; :func:`optimum_is_planted` checks that by exhaustive search (n <= 12).
"""
from __future__ import annotations

from dataclasses import dataclass

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
    """The suite: every family x every shape in :data:`SHAPES`, seeded by ``seed``."""
    cases = []
    for f_idx, family in enumerate(families or tuple(FAMILIES)):
        for i, (n, k) in enumerate(SHAPES):
            case_seed = seed * 100_000 + f_idx * 1000 + i
            rng = np.random.default_rng(case_seed)
            sizes = _sizes(n, k, family, rng)
            planted = planted_affinity(sizes, seed=case_seed, **FAMILIES[family])
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
