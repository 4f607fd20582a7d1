"""Seeded random projections of gradients to a low dimension (Johnson-Lindenstrauss sketches).

A projector represents a ``p x d`` matrix ``P`` (``p`` = number of differentiated
parameters, ``d`` = projection dimension). It maps a batch of flat gradients
``G (b, p)`` to features ``G @ P (b, d)`` and lifts regression coefficients back to
a weight change ``P @ theta (p,)``. Because ``g . (P theta) = (P^T g) . theta``, the
logistic regression fitted on projected gradients and the lifted weight change
describe the same linearised model.

``P`` is never held in memory whole: it is generated in row blocks of
``block_size`` parameters, each from its own seed derived from ``(seed, block)``,
so any block can be regenerated in any order, on any machine, and ``lift`` uses
exactly the matrix ``project`` used. Small matrices (under ``cache_bytes``) are
kept after their first use, since regenerating them costs more than storing them.

Kinds (all scaled so that ``E[P P^T] = I``, hence inner products are preserved in
expectation):

- ``gaussian``: entries N(0, 1/d).
- ``rademacher``: entries +-1/sqrt(d) (what the Grad-TAG authors use, d = 200).
- ``countsketch``: one entry +-1 per row, in a hashed column; O(p) to apply instead
  of O(p d), at the price of a larger distortion for spiky vectors.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from core.errors import InvalidInputError, UnknownNameError

DEFAULT_BLOCK = 1 << 15


def _block_seed(seed: int, block: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(block)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def check_dim(dim: Any) -> int:
    """Validate a projection dimension (a positive integer)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or int(dim) <= 0:
        raise InvalidInputError(f"projection dimension d={dim!r} is invalid; give a positive integer such as 200.")
    return int(dim)


class Projector(ABC):
    """A seeded ``p x d`` random projection applied block-wise.

    Parameters
    ----------
    n_params : int
        Number of rows ``p`` (length of a flat gradient).
    dim : int
        Projection dimension ``d`` (> 0).
    seed : int
        Seed; two projectors with the same kind, sizes, seed and block size are the same matrix.
    block_size : int
        Rows generated at once; bounds memory at ``block_size * d`` floats.
    cache_bytes : int
        Keep generated blocks when the whole matrix is at most this many bytes.
    """

    kind: ClassVar[str]

    def __init__(self, n_params: int, dim: int, seed: int = 0, block_size: int = DEFAULT_BLOCK,
                 cache_bytes: int = 256 << 20):
        if isinstance(n_params, bool) or not isinstance(n_params, (int, np.integer)) or n_params <= 0:
            raise InvalidInputError(f"a projector needs a positive number of parameters, got {n_params!r}.")
        if not isinstance(block_size, (int, np.integer)) or block_size <= 0:
            raise InvalidInputError(f"projector block_size={block_size!r} must be a positive integer.")
        self.n_params = int(n_params)
        self.dim = check_dim(dim)
        self.seed = int(seed)
        self.block_size = int(block_size)
        self._cache: dict[int, Any] | None = {} if self._matrix_bytes() <= cache_bytes else None

    # -- description ---------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        """What identifies this matrix (stored with projected gradients)."""
        return {"kind": self.kind, "n_params": self.n_params, "dim": self.dim, "seed": self.seed,
                "block_size": self.block_size}

    def _matrix_bytes(self) -> int:
        return self.n_params * self.dim * 4

    @property
    def n_blocks(self) -> int:
        return -(-self.n_params // self.block_size)

    def _rows(self, block: int) -> tuple[int, int]:
        start = block * self.block_size
        return start, min(start + self.block_size, self.n_params)

    def _get(self, block: int):
        if self._cache is not None and block in self._cache:
            return self._cache[block]
        start, stop = self._rows(block)
        gen = torch.Generator().manual_seed(_block_seed(self.seed, block))
        value = self._generate(stop - start, gen)
        if self._cache is not None:
            self._cache[block] = value
        return value

    # -- the two operations --------------------------------------------------------------------
    def project(self, grads: torch.Tensor) -> torch.Tensor:
        """``grads (b, p) -> grads @ P (b, d)`` in float32 on the gradients' device."""
        if grads.ndim != 2 or grads.shape[1] != self.n_params:
            raise InvalidInputError(
                f"projector expects gradients of shape (batch, {self.n_params}), got {tuple(grads.shape)}.")
        grads = grads.float()
        out = torch.zeros(grads.shape[0], self.dim, dtype=torch.float32, device=grads.device)
        for block in range(self.n_blocks):
            start, stop = self._rows(block)
            self._project_block(grads[:, start:stop], self._get(block), out)
        return out

    def lift(self, theta: torch.Tensor) -> torch.Tensor:
        """``theta (d,) or (B, d) -> P @ theta``: a weight change of shape (p,) or (B, p)."""
        single = theta.ndim == 1
        theta2 = theta.reshape(1, -1) if single else theta
        if theta2.ndim != 2 or theta2.shape[1] != self.dim:
            raise InvalidInputError(f"lift expects coefficients of shape (..., {self.dim}), got {tuple(theta.shape)}.")
        theta2 = theta2.float()
        out = torch.empty(theta2.shape[0], self.n_params, dtype=torch.float32, device=theta2.device)
        for block in range(self.n_blocks):
            start, stop = self._rows(block)
            out[:, start:stop] = self._lift_block(theta2, self._get(block))
        return out[0] if single else out

    def flops_per_vector(self) -> float:
        """Floating-point operations to project one gradient."""
        return 2.0 * self.n_params * self.dim

    @abstractmethod
    def _generate(self, rows: int, gen: torch.Generator): ...

    @abstractmethod
    def _project_block(self, g: torch.Tensor, block, out: torch.Tensor) -> None: ...

    @abstractmethod
    def _lift_block(self, theta: torch.Tensor, block) -> torch.Tensor: ...


class _DenseProjector(Projector):
    def _project_block(self, g, block, out):
        out.addmm_(g, block.to(g.device))

    def _lift_block(self, theta, block):
        return theta @ block.to(theta.device).T


class GaussianProjector(_DenseProjector):
    """Entries i.i.d. N(0, 1/d)."""

    kind = "gaussian"

    def _generate(self, rows, gen):
        return torch.randn(rows, self.dim, generator=gen) / np.sqrt(self.dim)


class RademacherProjector(_DenseProjector):
    """Entries i.i.d. +-1/sqrt(d) (the Grad-TAG authors' choice)."""

    kind = "rademacher"

    def _generate(self, rows, gen):
        signs = torch.randint(0, 2, (rows, self.dim), generator=gen, dtype=torch.int8)
        return (signs.float() * 2.0 - 1.0) / np.sqrt(self.dim)


class CountSketchProjector(Projector):
    """One +-1 per row in a hashed column: applying it costs O(p), not O(p d)."""

    kind = "countsketch"

    def _matrix_bytes(self) -> int:
        return self.n_params * 12

    def _generate(self, rows, gen):
        cols = torch.randint(0, self.dim, (rows,), generator=gen)
        signs = torch.randint(0, 2, (rows,), generator=gen).float() * 2.0 - 1.0
        return cols, signs

    def _project_block(self, g, block, out):
        cols, signs = block
        out.index_add_(1, cols.to(g.device), g * signs.to(g.device))

    def _lift_block(self, theta, block):
        cols, signs = block
        return theta[:, cols.to(theta.device)] * signs.to(theta.device)

    def flops_per_vector(self) -> float:
        return 2.0 * self.n_params


PROJECTORS: dict[str, type[Projector]] = {
    cls.kind: cls for cls in (GaussianProjector, RademacherProjector, CountSketchProjector)}


def make_projector(kind: str, n_params: int, dim: int, seed: int = 0, **options: Any) -> Projector:
    """Build a projector by kind name ("gaussian", "rademacher", "countsketch")."""
    try:
        cls = PROJECTORS[kind]
    except KeyError:
        raise UnknownNameError(f"unknown projection {kind!r}; choose one of {', '.join(PROJECTORS)}.") from None
    return cls(n_params, dim, seed=seed, **options)


def inner_product_distortion(projector: Projector, vectors: torch.Tensor) -> dict[str, float]:
    """How far projection moves pairwise inner products, relative to the vectors' norms.

    Returns the max and mean over pairs (i <= j) of ``|<Pu, Pv> - <u, v>| / (|u| |v|)``,
    the quantity the Johnson-Lindenstrauss lemma bounds by epsilon.
    """
    v = vectors.float()
    exact = v @ v.T
    proj = projector.project(v)
    approx = proj @ proj.T
    norms = v.norm(dim=1)
    rel = (approx - exact).abs() / (norms[:, None] * norms[None, :]).clamp_min(1e-30)
    iu = torch.triu_indices(len(v), len(v))
    vals = rel[iu[0], iu[1]]
    return {"max": float(vals.max()), "mean": float(vals.mean())}


def jl_epsilon(n_points: int, dim: int) -> float:
    """The JL distortion bound: smallest eps with ``dim >= 4 ln(n) / (eps^2/2 - eps^3/3)``."""
    target = 4.0 * np.log(max(n_points, 2)) / dim
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if mid * mid / 2 - mid ** 3 / 3 >= target:
            hi = mid
        else:
            lo = mid
    return hi
