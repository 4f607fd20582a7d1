"""Preprocessing of affinity matrices, recorded in the result.

Raw affinities of different targets live on different scales (a hard task's
accuracy moves less), so groupings can depend on how T is normalised. Every
step applied is appended to :attr:`AffinityMatrix.preprocessing`, in order:

1. ``diagonal``: ``"keep"``; ``"zero"`` (set T[v, v] = 0 after the transform);
   ``"gain"`` (subtract the target's own entry T[v, v] from column v, so entries
   become the gain over the single-task value the diagonal holds).
2. ``transform`` per target (column), computed over the off-diagonal entries:
   ``"none"``; ``"center"`` (subtract the mean); ``"zscore"`` (centre and divide by
   the standard deviation, 1 where it is 0); ``"rank"`` (ranks scaled to [-1, 1],
   ties averaged).
3. ``symmetrize``: ``(T + T') / 2``. The SDP only sees the symmetric part anyway
   (``<T, X> = <(T+T')/2, X>`` for symmetric X).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError

DIAGONAL_MODES = ("keep", "zero", "gain")
TRANSFORMS = ("none", "center", "zscore", "rank")


def symmetrize(values: np.ndarray) -> np.ndarray:
    """``(T + T') / 2``."""
    values = np.asarray(values, dtype=np.float64)
    return (values + values.T) / 2.0


def per_target(values: np.ndarray, transform: str) -> np.ndarray:
    """Apply a monotone ``transform`` to each column (target), using off-diagonal statistics."""
    if transform not in TRANSFORMS:
        raise InvalidInputError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}.")
    out = np.array(values, dtype=np.float64)
    if transform == "none":
        return out
    n = out.shape[0]
    off = ~np.eye(n, dtype=bool)
    for v in range(n):
        col = out[:, v]
        others = col[off[:, v]]
        if transform == "rank":
            ranks = rankdata(col[off[:, v]])
            scaled = np.zeros(n)
            scaled[off[:, v]] = 2.0 * (ranks - 1.0) / max(n - 2, 1) - 1.0
            # The diagonal is placed by where it would rank among the others.
            scaled[v] = 2.0 * (np.searchsorted(np.sort(others), col[v]) / max(n - 1, 1)) - 1.0
            out[:, v] = scaled
            continue
        centred = col - others.mean()
        if transform == "zscore":
            sd = others.std()
            centred = centred / (sd if sd > 0 else 1.0)
        out[:, v] = centred
    return out


@dataclass(frozen=True)
class Preprocessing:
    """A preprocessing recipe; ``apply`` returns a new matrix with the steps recorded.

    Parameters
    ----------
    diagonal : {"keep", "zero", "gain"}
    transform : {"none", "center", "zscore", "rank"}
    symmetrize : bool
    """

    diagonal: str = "keep"
    transform: str = "none"
    symmetrize: bool = False

    def __post_init__(self) -> None:
        if self.diagonal not in DIAGONAL_MODES:
            raise InvalidInputError(
                f"unknown diagonal handling {self.diagonal!r}; choose one of {', '.join(DIAGONAL_MODES)}.")
        if self.transform not in TRANSFORMS:
            raise InvalidInputError(f"unknown transform {self.transform!r}; choose one of {', '.join(TRANSFORMS)}.")

    def apply(self, matrix: AffinityMatrix) -> AffinityMatrix:
        out = matrix
        vals = np.array(matrix.values)
        if self.diagonal == "gain":
            vals = vals - np.diag(vals)[None, :]
            out = out.with_values(vals, "diagonal=gain (T[u,v] - T[v,v])")
        if self.transform != "none":
            vals = per_target(vals, self.transform)
            out = out.with_values(vals, f"per-target {self.transform}")
        if self.diagonal == "zero":
            vals = vals.copy()
            np.fill_diagonal(vals, 0.0)
            out = out.with_values(vals, "diagonal=zero")
        if self.symmetrize:
            vals = symmetrize(vals)
            out = out.with_values(vals, "symmetrize (T+T')/2", uncertainty=None)
        return out

    def describe(self) -> str:
        return f"diagonal={self.diagonal}, transform={self.transform}, symmetrize={self.symmetrize}"
