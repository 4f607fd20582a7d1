"""Fit the linearised model of each task subset on projected gradients, many subsets at once.

For a subset ``S`` with training rows ``i in S`` (features ``phi_i = P^T g_i``, base
margins ``f0_i``, targets ``y_i``) the scorer finds ``theta_S`` minimising

- logistic (classification margins): ``mean_i log(1 + exp(-(f0_i + phi_i . theta))) + reg ||theta||^2``
- squared (regression outputs): ``mean_i (y_i - f0_i - phi_i . theta)^2 + reg ||theta||^2``

Classification and regression rows can be mixed in one subset (each row carries its
own loss). ``offset=False`` drops ``f0`` (the published Grad-TAG scripts do; the authors' newest
code keeps it, which makes ``theta = 0`` reproduce the base model exactly).
Fits use Newton's method with per-subset Armijo step halving, batched over subsets; each
Newton system is solved by conjugate gradients with Hessian-vector products (4 n d per
product), so no ``d x d`` Hessian is ever formed. A least-squares fit (regression tasks)
whose subsets are unions of whole tasks is solved directly from per-task sufficient
statistics instead. Everything runs in torch, on the GPU when one is given.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from core.errors import InvalidInputError


class SubsetScorer(ABC):
    """Stage "scoring": fit the linearised model of many task subsets on the stored features.

    Attributes
    ----------
    reg : float
        The penalty this scorer applies (reported per subset as ``GradTAG.reg_chosen_``).
    flops_ : float
        Approximate floating-point operations of the last ``fit``.
    """

    reg: float
    flops_: float = 0.0

    @abstractmethod
    def fit(self, features: Any, outputs: Any, targets: Any, masks: Any, regression: Any = None, groups: Any = None,
            device: str | torch.device | None = None) -> torch.Tensor:
        """Coefficients ``theta (B, d)``, one row per subset (row ``b`` fitted on ``masks[b]``).

        ``device`` is where the caller's model lives; a scorer without a device of its own computes there.
        """


class LogisticLinearScorer(SubsetScorer):
    """Batched regularised logistic / least-squares fits of the linearised model, one ``theta`` per subset.

    Parameters
    ----------
    reg : float
        L2 penalty ``reg * ||theta||^2`` (>= 0; > 0 keeps the fit well posed).
    offset : bool
        Include the base output ``f0`` as a fixed offset.
    max_iter : int
        Newton iterations.
    tol : float
        Stop when every subset's Newton decrement is below ``tol``.
    device : str or torch.device, optional
        Where to compute; None = the device ``fit`` is given, else the CPU.

    Attributes
    ----------
    n_iter_ : int
        Newton iterations run by the last ``fit``.
    flops_ : float
        Approximate floating-point operations of the last ``fit``.
    """

    def __init__(self, reg: float = 1e-3, offset: bool = True, max_iter: int = 50, tol: float = 1e-10,
                 device: str | torch.device | None = None, max_chunk_elems: int = 40_000_000):
        if isinstance(reg, bool) or not isinstance(reg, (int, float, np.floating)) or not np.isfinite(reg) or reg < 0:
            raise InvalidInputError(f"regularisation reg={reg!r} must be a finite number >= 0.")
        if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise InvalidInputError(f"max_iter={max_iter!r} must be an integer >= 1.")
        self.reg = float(reg)
        self.offset = bool(offset)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.device = None if device is None else torch.device(device)
        self.max_chunk_elems = int(max_chunk_elems)

    def fit(self, features: Any, outputs: Any, targets: Any, masks: Any, regression: Any = None, groups: Any = None,
            device: str | torch.device | None = None) -> torch.Tensor:
        """Coefficients ``theta (B, d)``, one row per subset.

        Parameters
        ----------
        features : (n, d) projected gradients of all training rows.
        outputs : (n,) base margins / predictions ``f0``.
        targets : (n,) regression targets (unused by logistic rows: margins already refer to the
            correct label).
        masks : (B, n) bool; row i belongs to subset b when ``masks[b, i]``.
        regression : (n,) bool, optional
            Rows fitted by least squares (regression tasks); the others by the logistic loss.
            Default: all logistic.
        groups : (n,) int, optional
            Task index of each row. When every row is least squares and every subset is a union
            of whole groups, the fit uses per-group sufficient statistics (``Phi_t^T Phi_t``
            computed once), so a subset costs ``|S| d^2 + d^3/3`` instead of ``n d^2``.
        device : str or torch.device, optional
            Used when the scorer was built without a device.
        """
        dev = self.device if self.device is not None else torch.device(device if device is not None else "cpu")

        def t(a, dtype=torch.float64):
            return (a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a))).to(dev, dtype)

        phi, f0, y = t(features), t(outputs), t(targets)
        m = t(masks, torch.bool)
        n, d = phi.shape
        sq = torch.zeros(n, dtype=torch.bool, device=dev) if regression is None else t(regression, torch.bool)
        if m.ndim != 2 or m.shape[1] != n:
            raise InvalidInputError(f"subset masks must have shape (subsets, {n}), got {tuple(m.shape)}.")
        if f0.shape != (n,) or y.shape != (n,) or sq.shape != (n,):
            raise InvalidInputError(f"outputs, targets and regression flags need shape ({n},).")
        counts = m.sum(1)
        if (counts == 0).any():
            bad = int(torch.nonzero(counts == 0)[0])
            raise InvalidInputError(f"subset {bad} selects no training rows; every subset needs at least one task "
                                    "with training data.")
        if self.reg == 0 and n < d:
            raise InvalidInputError("reg=0 with fewer rows than dimensions is ill-posed; set reg > 0.")
        if not self.offset:
            f0 = torch.zeros_like(f0)
        # each subset's rows averaged: "mean over the subset's training samples"
        w = m.to(torch.float64) / counts[:, None].to(torch.float64)
        self.n_iter_, self.flops_ = 0, 0.0
        if groups is not None and bool(sq.all()):
            fast = self._ridge_by_groups(phi, f0, y, t(groups, torch.long), m)
            if fast is not None:
                return fast.float()
        step = max(1, self.max_chunk_elems // max(1, n * d))
        thetas = []
        for lo in range(0, w.shape[0], step):
            thetas.append(self._newton(phi, f0, y, sq, w[lo:lo + step]))
        return torch.cat(thetas).float()

    def _ridge_by_groups(self, phi, f0, y, groups, m):
        n, d = phi.shape
        k = int(groups.max()) + 1
        onehot = torch.nn.functional.one_hot(groups, k).to(phi.dtype)          # (n, k)
        member = (m.to(phi.dtype) @ onehot) / onehot.sum(0).clamp_min(1)       # share of each group's rows
        if not bool(((member == 0) | (member == 1)).all()):
            return None  # a subset takes part of a group: no shortcut
        gram = torch.einsum("nk,nd,ne->kde", onehot, phi, phi)                 # per-group Phi^T Phi
        rhs_g = onehot.T @ (phi * (y - f0)[:, None])                           # per-group Phi^T r
        counts = member @ onehot.sum(0)
        h = torch.einsum("bk,kde->bde", member, gram) / counts[:, None, None]
        h = h + self.reg * torch.eye(d, dtype=phi.dtype, device=phi.device)
        rhs = (member @ rhs_g) / counts[:, None]
        self.flops_ = 2.0 * n * d * d + 4.0 * n * d + member.shape[0] * (2.0 * k * d * d + d ** 3 / 3)
        self.n_iter_ = 1
        return torch.linalg.solve(h, rhs)

    # -- Newton's method -------------------------------------------------------------------------
    @staticmethod
    def _loss_terms(margins, y, sq):
        """Per-row loss and its first and second derivative in the margin."""
        s = torch.sigmoid(-margins)
        logistic = torch.nn.functional.softplus(-margins)
        r = margins - y[None, :]
        loss = torch.where(sq[None, :], r * r, logistic)
        d1 = torch.where(sq[None, :], 2 * r, -s)
        d2 = torch.where(sq[None, :], torch.full_like(s, 2.0), s * (1 - s))
        return loss, d1, d2

    def _objective(self, phi, f0, y, sq, w, theta):
        loss, _, _ = self._loss_terms(f0[None, :] + theta @ phi.T, y, sq)
        return (w * loss).sum(1) + self.reg * (theta * theta).sum(1)

    def _newton(self, phi, f0, y, sq, w):
        """Batched Newton-CG: Hessian-vector products cost 4 n d per subset, never n d^2."""
        n, d = phi.shape
        b = w.shape[0]
        theta = torch.zeros(b, d, dtype=phi.dtype, device=phi.device)
        obj = self._objective(phi, f0, y, sq, w, theta)
        for it in range(self.max_iter):
            _, d1, d2 = self._loss_terms(f0[None, :] + theta @ phi.T, y, sq)
            g = (w * d1) @ phi + 2 * self.reg * theta
            curv = w * d2
            delta, hvps = self._cg(phi, curv, g)
            decrement = (g * delta).sum(1)
            self.flops_ += b * (4.0 * n * d * (hvps + 1) + 10.0 * n)
            self.n_iter_ = max(self.n_iter_, it + 1)
            active = decrement > self.tol
            if not bool(active.any()):
                break
            t = torch.ones(b, dtype=phi.dtype, device=phi.device)
            for _ in range(30):  # backtracking (Armijo) per subset
                new = self._objective(phi, f0, y, sq, w, theta - t[:, None] * delta)
                self.flops_ += b * 2.0 * n * d
                ok = (new <= obj - 0.25 * t * decrement) | ~active
                if bool(ok.all()):
                    break
                t = torch.where(ok, t, t / 2)
            theta = torch.where(active[:, None], theta - t[:, None] * delta, theta)
            obj = self._objective(phi, f0, y, sq, w, theta)
        return theta

    def _cg(self, phi, curv, g):
        """Solve ``H p = g`` per subset by conjugate gradients, ``H v = Phi^T (curv * Phi v) + 2 reg v``."""
        d = phi.shape[1]

        def hvp(v):
            return (curv * (v @ phi.T)) @ phi + 2 * self.reg * v

        x = torch.zeros_like(g)
        r = g.clone()
        p = r.clone()
        rs = (r * r).sum(1)
        stop = rs * 1e-12 + 1e-30  # inexact Newton: a 1e-6 relative residual is plenty
        steps = 0
        for _ in range(d):
            if bool((rs <= stop).all()):
                break
            hp = hvp(p)
            steps += 1
            alpha = torch.where(rs > stop, rs / (p * hp).sum(1).clamp_min(1e-300), torch.zeros_like(rs))
            x = x + alpha[:, None] * p
            r = r - alpha[:, None] * hp
            new_rs = (r * r).sum(1)
            p = r + (new_rs / rs.clamp_min(1e-300))[:, None] * p
            rs = new_rs
        return x, steps
