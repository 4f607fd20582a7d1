"""Fit the linearised model of each task subset on projected gradients, many subsets at once.

For a subset ``S`` with training rows ``i in S`` (features ``phi_i = P^T g_i``, base
margins ``f0_i``, targets ``y_i``) the scorer finds ``theta_S`` minimising

- logistic (classification margins): ``mean_i log(1 + exp(-(f0_i + phi_i . theta))) + reg ||theta||^2``
- squared (regression outputs): ``mean_i (y_i - f0_i - phi_i . theta)^2 + reg ||theta||^2``

``offset=False`` drops ``f0`` (the published Grad-TAG scripts do; the authors' newest
code keeps it, which makes ``theta = 0`` reproduce the base model exactly).
Logistic fits use Newton's method with per-subset step halving, batched over
subsets (a ``(B, d, d)`` Hessian solve per iteration); squared loss is a batched
ridge solve. Everything runs in torch, on the GPU when one is given.
"""
from __future__ import annotations

import numpy as np
import torch

from core.errors import InvalidInputError, UnknownNameError

LOSSES = ("logistic", "squared")


class SubsetScorer:
    """Batched regularised fits of the linearised model, one ``theta`` per subset.

    Parameters
    ----------
    loss : {"logistic", "squared"}
    reg : float
        L2 penalty ``reg * ||theta||^2`` (>= 0; > 0 keeps the fit well posed).
    offset : bool
        Include the base output ``f0`` as a fixed offset.
    max_iter : int
        Newton iterations (logistic).
    tol : float
        Stop when every subset's Newton decrement squared is below ``tol``.
    device : str or torch.device

    Attributes
    ----------
    n_iter_ : int
        Newton iterations run by the last ``fit``.
    flops_ : float
        Approximate floating-point operations of the last ``fit``.
    """

    def __init__(self, loss: str = "logistic", reg: float = 1e-3, offset: bool = True, max_iter: int = 50,
                 tol: float = 1e-10, device: str | torch.device = "cpu", max_chunk_elems: int = 40_000_000):
        if loss not in LOSSES:
            raise UnknownNameError(f"unknown Grad-TAG loss {loss!r}; choose one of {', '.join(LOSSES)}.")
        if not np.isfinite(reg) or reg < 0:
            raise InvalidInputError(f"regularisation reg={reg!r} must be a finite number >= 0.")
        if int(max_iter) < 1:
            raise InvalidInputError(f"max_iter={max_iter!r} must be at least 1.")
        self.loss = loss
        self.reg = float(reg)
        self.offset = bool(offset)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.device = torch.device(device)
        self.max_chunk_elems = int(max_chunk_elems)

    def fit(self, features: np.ndarray | torch.Tensor, outputs: np.ndarray | torch.Tensor,
            targets: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Coefficients ``theta (B, d)``, one row per subset.

        Parameters
        ----------
        features : (n, d) projected gradients of all training rows.
        outputs : (n,) base margins / predictions ``f0``.
        targets : (n,) regression targets (ignored by the logistic loss: margins already
            refer to the correct label).
        masks : (B, n) bool, row i of subset b is used when ``masks[b, i]``.
        """
        dev = self.device
        phi = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features,
                              dtype=torch.float64, device=dev)
        f0 = torch.as_tensor(np.asarray(outputs), dtype=torch.float64, device=dev) if not torch.is_tensor(outputs) \
            else outputs.to(dev, torch.float64)
        y = torch.as_tensor(np.asarray(targets), dtype=torch.float64, device=dev) if not torch.is_tensor(targets) \
            else targets.to(dev, torch.float64)
        m = torch.as_tensor(np.asarray(masks), device=dev) if not torch.is_tensor(masks) else masks.to(dev)
        if m.ndim != 2 or m.shape[1] != phi.shape[0]:
            raise InvalidInputError(f"subset masks must have shape (subsets, {phi.shape[0]}), got {tuple(m.shape)}.")
        counts = m.sum(1)
        if (counts == 0).any():
            bad = int(torch.nonzero(counts == 0)[0])
            raise InvalidInputError(f"subset {bad} selects no training rows; every subset needs at least one task "
                                    "with training data.")
        if self.reg == 0 and phi.shape[0] < phi.shape[1]:
            raise InvalidInputError("reg=0 with fewer rows than dimensions is ill-posed; set reg > 0.")
        if not self.offset:
            f0 = torch.zeros_like(f0)
        # weights: each subset's rows averaged, as in "mean over the subset's training samples"
        w = m.to(torch.float64) / counts[:, None].to(torch.float64)
        n, d = phi.shape
        step = max(1, self.max_chunk_elems // max(1, n * d))
        thetas, self.n_iter_, self.flops_ = [], 0, 0.0
        for lo in range(0, w.shape[0], step):
            wb = w[lo:lo + step]
            if self.loss == "squared":
                thetas.append(self._ridge(phi, f0, y, wb))
            else:
                thetas.append(self._newton(phi, f0, wb))
        return torch.cat(thetas).float()

    # -- solvers ---------------------------------------------------------------------------------
    def _gram(self, phi: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # (B, d, d) = sum_i weights[b, i] phi_i phi_i^T
        return torch.einsum("bn,nd,ne->bde", weights, phi, phi)

    def _ridge(self, phi, f0, y, w):
        n, d = phi.shape
        eye = torch.eye(d, dtype=phi.dtype, device=phi.device)
        h = self._gram(phi, w) + self.reg * eye
        rhs = (w * (y - f0)[None, :]) @ phi
        self.flops_ += w.shape[0] * (2.0 * n * d * d + 2.0 * n * d + d ** 3 / 3)
        self.n_iter_ = max(self.n_iter_, 1)
        return torch.linalg.solve(h, rhs)

    def _objective(self, phi, f0, w, theta):
        margins = f0[None, :] + theta @ phi.T
        return (w * torch.nn.functional.softplus(-margins)).sum(1) + self.reg * (theta * theta).sum(1)

    def _newton(self, phi, f0, w):
        n, d = phi.shape
        b = w.shape[0]
        theta = torch.zeros(b, d, dtype=phi.dtype, device=phi.device)
        eye = torch.eye(d, dtype=phi.dtype, device=phi.device)
        obj = self._objective(phi, f0, w, theta)
        active = torch.ones(b, dtype=torch.bool, device=phi.device)
        for it in range(self.max_iter):
            margins = f0[None, :] + theta @ phi.T
            s = torch.sigmoid(-margins)                      # -d loss / d margin
            g = -(w * s) @ phi + 2 * self.reg * theta
            h = self._gram(phi, w * s * (1 - s)) + 2 * self.reg * eye
            delta = torch.linalg.solve(h, g[:, :, None])[:, :, 0]
            decrement = (g * delta).sum(1)
            self.flops_ += b * (2.0 * n * d * d + 6.0 * n * d + d ** 3 / 3)
            active = decrement > self.tol
            if not bool(active.any()):
                break
            t = torch.ones(b, dtype=phi.dtype, device=phi.device)
            for _ in range(30):  # backtracking (Armijo) per subset
                cand = theta - t[:, None] * delta
                new = self._objective(phi, f0, w, cand)
                ok = (new <= obj - 0.25 * t * decrement) | ~active
                if bool(ok.all()):
                    break
                t = torch.where(ok, t, t / 2)
            theta = torch.where(active[:, None], theta - t[:, None] * delta, theta)
            obj = self._objective(phi, f0, w, theta)
            self.n_iter_ = max(self.n_iter_, it + 1)
        return theta
