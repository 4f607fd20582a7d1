"""Block-structured affinity matrices with known (planted) groups.

Used by the recovery benchmark, the solver-scaling benchmark and the tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError


@dataclass(frozen=True)
class PlantedCase:
    """A planted affinity matrix and the grouping it was built from."""

    matrix: AffinityMatrix
    labels: np.ndarray  # group index of each task
    sizes: tuple[int, ...]
    params: dict


def planted_affinity(
    sizes: Sequence[int],
    *,
    within: float | Sequence[float] = 1.0,
    between: float = -0.5,
    noise: float = 0.3,
    asym_noise: float = 0.1,
    scale_spread: float = 0.0,
    shuffle: bool = True,
    seed: int = 0,
) -> PlantedCase:
    """Build an affinity matrix with planted groups of the given ``sizes``.

    Entry ``[u, v]`` is ``within`` (or ``within[g]`` for group g, when a sequence
    gives each group its own level) when u and v share a group and ``between``
    otherwise (negative: transfer across groups hurts), plus symmetric Gaussian
    noise of standard deviation ``noise`` and asymmetric noise of ``asym_noise``.
    ``scale_spread`` > 0 multiplies each target column by ``exp(N(0, scale_spread))``,
    mimicking targets whose metrics move on different scales. Signal-to-noise is
    ``(within - between) / noise``.

    Parameters
    ----------
    sizes : sequence of int
        Group sizes (each >= 1); n = sum(sizes), k = len(sizes).
    shuffle : bool
        Randomly permute task order so groups are not contiguous.
    seed : int
        Seed of every random draw.
    """
    sizes = tuple(int(s) for s in sizes)
    if not sizes or min(sizes) < 1:
        raise InvalidInputError(f"planted sizes {sizes}: need at least one group, each of size >= 1.")
    if noise < 0 or asym_noise < 0 or scale_spread < 0:
        raise InvalidInputError("planted noise levels must be >= 0.")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    if shuffle:
        labels = rng.permutation(labels)
    n = labels.size
    same = labels[:, None] == labels[None, :]
    level = np.broadcast_to(np.asarray(within, dtype=np.float64), (len(sizes),))  # one level per group
    base = np.where(same, level[labels][:, None], between).astype(np.float64)
    sym = rng.normal(0.0, noise, size=(n, n))
    sym = (sym + sym.T) / np.sqrt(2.0)
    values = base + sym + rng.normal(0.0, asym_noise, size=(n, n))
    if scale_spread > 0:
        values = values * np.exp(rng.normal(0.0, scale_spread, size=n))[None, :]
    names = [f"t{i:0{len(str(n - 1))}d}" for i in range(n)]
    params = dict(sizes=list(sizes), within=np.asarray(within, dtype=np.float64).tolist(), between=between, noise=noise, asym_noise=asym_noise,
                  scale_spread=scale_spread, seed=seed)
    matrix = AffinityMatrix(names=names, values=values, metric="planted", estimator="planted", seed=seed,
                            notes=f"planted groups of sizes {list(sizes)}")
    return PlantedCase(matrix=matrix, labels=labels, sizes=sizes, params=params)
