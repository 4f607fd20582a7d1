"""First-order SDP solver in torch (CUDA when present, CPU otherwise; float64).

Two phases, both built on one fact: a feasible X is symmetric doubly stochastic,
so ``X = J + W`` with ``J = ee'/n`` and W's eigenvalues in [0, 1] on e-perp and
``tr W = k - 1``. Call that spectral set A; the SDP is ``max <C, X>`` over
``A ∩ {X >= 0}`` (C = S, or S - lam I for the penalised variant, where the trace is free).

1. **Dual projected gradient (fast on structured matrices).** The Lagrange dual of
   ``X >= 0`` is ``h(N) = max_{X in A} <C + N, X>`` over ``N >= 0``: e'(C+N)e/n plus
   the sum of the top k - 1 eigenvalues of C + N on e-perp. h is a certified upper
   bound for every N >= 0, its gradient is the maximiser ``X(N) = J + V V'`` (V the
   top eigenvectors), and min h equals the SDP optimum. Accelerated projected
   gradient ``N <- max(N - eta X(N), 0)`` needs only the top k - 1 eigenpairs, tracked
   by warm-started subspace iteration (O(n^2 k) per step). When the matrix has
   group structure the eigengap keeps h smooth and this converges in a few
   hundred cheap steps; X(N) is then the primal solution.
2. **ADMM on the exact SDP (the fallback).** If the gap has not closed (no
   eigengap, e.g. unstructured matrices whose optimum has rank > k - 1), ADMM on
   ``X in A``, ``Y >= 0``, ``X = Y`` continues from phase 1's N and X, one full
   eigendecomposition per step, with residual balancing of the penalty rho.

Stopping (both phases): the most negative entry of X (the only constraint X may
violate; the others hold by construction) is below ``tol`` and the relative gap
between h(N) and ``<C, X>`` is below ``tol``. The final certificate is recomputed in
float64 by :func:`core.grouping.sdp.certify.dual_bound` from the best N.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from core.devices import resolve_device
from core.grouping.sdp.certify import BackendResult

PHASE1_MAX_ITERS = 1500
DEFAULT_MAX_ITERS = 6000
CHECK_EVERY = 10
SKIP_AFTER_MISSES = 20  # full eigendecompositions in a row after the subspace iteration missed twice
STALL_CHECKS = 6        # phase 1 hands over to ADMM after this many checks without 10% progress
OVER_RELAX = 1.6        # ADMM over-relaxation (Eckstein & Bertsekas; convergent for any value in (0, 2))


@contextlib.contextmanager
def _cpu_threads(dev: torch.device, n: int):
    """One intra-op thread on CPU: the dense kernels here are small enough that extra
    threads mostly contend (10x slower measured at n = 500 on a busy 2-core machine)."""
    if dev.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _center(D: torch.Tensor) -> torch.Tensor:
    """``P D P`` with ``P = I - ee'/n``."""
    r = D.mean(dim=1)
    return D - r[:, None] - r[None, :] + r.mean()


class _TopEig:
    """Top eigenpairs of ``P D P`` on e-perp, warm-started between calls.

    Chebyshev-filtered subspace iteration with Rayleigh-Ritz on a block of
    ``want + pad`` vectors; the Ritz residual of the wanted pairs is checked and a
    full eigendecomposition is the fallback (also for small n).
    """

    def __init__(self, n: int, want: int, dev: torch.device, seed: int):
        self.n, self.want = n, want
        self.block = min(n - 1, want + max(6, want // 2))
        self.full = n <= 160 or self.block * 4 >= n
        self.Q: torch.Tensor | None = None
        self.low = 0.0
        self.cut = 0.0
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.dev = dev
        self.full_calls = 0
        self.misses = 0  # consecutive calls where subspace iteration did not converge
        self.skip = 0    # calls left to go straight to the full eigendecomposition

    def _eigh_full(self, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n
        alpha = float(torch.linalg.matrix_norm(B)) + 1.0
        lam, V = torch.linalg.eigh(B - alpha / n)  # the e direction drops to -alpha
        lam, V = lam.flip(0)[: n - 1], V.flip(1)[:, : n - 1]
        self.full_calls += 1
        self.low = float(lam[-1])
        return lam, V

    def top(self, B: torch.Tensor, count: int | None = None, accuracy: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
        """Largest ``count`` (default ``want``) restricted eigenpairs of centred symmetric ``B``.

        ``accuracy`` is the largest accepted Ritz residual ``||B v - w v||``.
        """
        count = self.want if count is None else count
        if self.skip > 0:  # the filter has been failing here: do not pay for it again yet
            self.skip -= 1
            lam, V = self._eigh_full(B)
            self.Q = V[:, : self.block].contiguous()
            self.cut = float(lam[self.block])
            return lam[:count], V[:, :count]
        if self.full or count > self.block or self.Q is None:
            lam, V = self._eigh_full(B)
            if not self.full:
                self.Q = V[:, : self.block].contiguous()
                self.cut = float(lam[self.block])
            return lam[:count], V[:, :count]
        Q = self.Q
        for _ in range(4):
            Q = self._chebyshev(B, Q)
            H = Q.T @ (B @ Q)
            w, U = torch.linalg.eigh((H + H.T) / 2)
            w, U = w.flip(0), U.flip(1)
            Q = Q @ U
            m = self.want  # residual of the wanted pairs only; extra ones (count > want) only inform the gap
            res = torch.linalg.vector_norm(B @ Q[:, :m] - Q[:, :m] * w[:m], dim=0).max()
            if float(res) <= accuracy:
                self.Q = Q
                self.cut = float(w[-1])
                self.misses = 0
                return w[:count], Q[:, :count]
        # Four filtered rounds did not converge (a crowded spectrum: noisy or unstructured matrices):
        # they cost more than the full eigendecomposition that follows, so after two misses in a
        # row skip them for a while (retrying now and then, as the iterate may become structured).
        self.misses += 1
        if self.misses >= 2:
            self.skip = SKIP_AFTER_MISSES
        lam, V = self._eigh_full(B)
        self.Q = V[:, : self.block].contiguous()
        self.cut = float(lam[self.block])
        return lam[:count], V[:, :count]

    def _chebyshev(self, B: torch.Tensor, Q: torch.Tensor, degree: int = 6) -> torch.Tensor:
        """Chebyshev filter damping the spectrum in [low, cut], amplifying above; re-orthonormalised, kept in e-perp."""
        lo = self.low - 0.05 * abs(self.low) - 1e-12
        hi = self.cut
        c, e = 0.5 * (hi + lo), 0.5 * (hi - lo)
        if e <= 0:
            return Q
        Y0, Y1 = Q, (B @ Q - c * Q) / e
        for _ in range(degree - 1):
            Y0, Y1 = Y1, 2.0 * (B @ Y1 - c * Y1) / e - Y0
        Y1 = Y1 - Y1.mean(dim=0, keepdim=True)
        Q, _ = torch.linalg.qr(Y1)
        return Q


def _spectral_threshold(lam: torch.Tensor, tau: float) -> torch.Tensor:
    """Weights ``clip(lam - theta, 0, 1)`` summing to ``tau`` (bisection on theta)."""
    lo = float(lam.min()) - 1.0
    hi = float(lam.max())
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if float(torch.clamp(lam - mid, 0.0, 1.0).sum()) > tau:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(1.0, abs(mid)):
            break
    return torch.clamp(lam - 0.5 * (lo + hi), 0.0, 1.0)


class _Problem:
    """The scaled problem and its dual oracle ``h(N)``, ``X(N)``."""

    def __init__(self, C: torch.Tensor, k: int | None, dev: torch.device, seed: int, tol: float):
        self.n = C.shape[0]
        self.tol = tol
        self.accuracy = 1e-12
        self.k = k
        self.C = C
        self.eig = _TopEig(self.n, (k - 1) if k is not None else self.n - 1, dev, seed)
        if k is None:
            self.eig.full = True

    def oracle(self, N: torch.Tensor) -> tuple[float, torch.Tensor, float]:
        """``h(N)``, the maximiser ``X(N)`` in A, and the eigengap below the used eigenvalues."""
        n = self.n
        D = self.C + N
        B = _center(D)
        if self.k is None:
            lam, V = self.eig.top(B, count=n - 1)
            w = torch.clamp(lam, 0.0, 1.0)
            keep = w > 0
            h = float(D.sum()) / n + float(torch.clamp(lam, min=0.0).sum())
            Vk = V[:, keep] * torch.sqrt(w[keep])
            gap = float(lam[keep].min()) if bool(keep.any()) else 1.0
        else:
            lam, V = self.eig.top(B, count=min(self.k, n - 1), accuracy=self.accuracy)
            h = float(D.sum()) / n + float(lam[: self.k - 1].sum())
            Vk = V[:, : self.k - 1]
            gap = float(lam[self.k - 2] - lam[self.k - 1]) if self.k < n else 1.0
        X = Vk @ Vk.T + 1.0 / n
        self.accuracy = max(1e-12, 1e-2 * self.tol * abs(gap))
        return h, X, gap

    def project(self, M: torch.Tensor) -> torch.Tensor:
        """Frobenius projection onto A (one full eigendecomposition)."""
        n = self.n
        lam, V = self.eig._eigh_full(_center(M))
        if self.k is None:
            w = torch.clamp(lam, 0.0, 1.0)
        else:
            w = _spectral_threshold(lam, float(self.k - 1))
        keep = w > 0
        return (V[:, keep] * w[keep]) @ V[:, keep].T + 1.0 / n


def _gap(h: float, val: float) -> float:
    return (h - val) / max(1.0, abs(h))


def _violation(C: torch.Tensor, X: torch.Tensor, h: float) -> float:
    """How far ``X`` is from certified optimal: the larger of its negativity and its relative gap to the dual bound ``h``."""
    return max(0.0, -float(X.min()), _gap(h, float((C * X).sum())))


def solve_torch(S: np.ndarray, k: int | None, *, tol: float, max_iters: int | None, penalty: float | None,
                device: str | None = None, seed: int = 0) -> BackendResult:
    """Solve the SDP with dual projected gradient, then ADMM if needed (see module docstring)."""
    dev = resolve_device(device, "solver device")
    n = S.shape[0]
    max_iters = int(max_iters or DEFAULT_MAX_ITERS)
    with _cpu_threads(dev, n):
        C = torch.tensor(S, dtype=torch.float64, device=dev)
        if penalty is not None:
            C = C - penalty * torch.eye(n, dtype=torch.float64, device=dev)
        scale = float(C.abs().max()) or 1.0
        prob = _Problem(C / scale, k, dev, seed, tol)
        state = _dual_gradient(prob, tol, min(max_iters, PHASE1_MAX_ITERS))
        iters = state["iters"]
        solver = "torch-dualpg"
        if state["status"] != "optimal" and iters < max_iters:
            state = _admm(prob, tol, max_iters - iters, state)
            iters += state["iters"]
            solver = "torch-dualpg+admm"
        X = state["X"].cpu().numpy()
        N = (state["N"] * scale).cpu().numpy()
    return BackendResult(X=X, N=N, status=state["status"], iterations=iters, dual_residual=state["dual_residual"],
                         solver=solver, note=f"full eigendecompositions: {prob.eig.full_calls}")


def _dual_gradient(prob: _Problem, tol: float, max_iters: int) -> dict:
    """Accelerated projected gradient on ``h(N)`` with function-value restarts and step adaptation."""
    C = prob.C
    N = torch.zeros_like(C)
    h, X, gap = prob.oracle(N)
    best = dict(h=h, N=N, X=X, score=math.inf)
    eta = min(max(0.2 * gap, 1e-3), 1e3)
    N_prev, t_mom, h_prev = N, 1.0, h
    stall, last_score = 0, math.inf
    it = 0
    for it in range(1, max_iters + 1):
        N_new = torch.clamp(N - eta * X, min=0.0)
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t_mom * t_mom))
        Z = torch.clamp(N_new + ((t_mom - 1.0) / t_next) * (N_new - N_prev), min=0.0)
        N_prev, t_mom = N_new, t_next
        h, X, gap = prob.oracle(Z)
        if h > h_prev:  # overshoot: restart momentum from the last projected point, smaller step
            t_mom = 1.0
            eta *= 0.5
            Z = N_new
            h, X, gap = prob.oracle(Z)
        h_prev = h
        N = Z
        if it % CHECK_EVERY == 0 or it == max_iters:
            score = _violation(C, X, h)
            if score < best["score"]:
                best = dict(h=h, N=N, X=X, score=score)
            if score <= tol:
                return dict(status="optimal", iters=it, X=X, N=N, dual_residual=0.0)
            stall = stall + 1 if score > 0.9 * last_score else 0
            last_score = min(last_score, score)
            if stall >= STALL_CHECKS:  # no progress in 60 steps: the dual is nonsmooth here, hand over to ADMM
                break
    return dict(status="max_iters", iters=it, X=best["X"], N=best["N"], dual_residual=0.0)


def _admm(prob: _Problem, tol: float, max_iters: int, start: dict) -> dict:
    """ADMM on ``max <C, X>``, X in A, Y >= 0, X = Y; the multiplier of X >= 0 is ``-rho U``."""
    C = prob.C
    n = prob.n
    Y = torch.clamp(start["X"], min=0.0)
    rho = max(float(torch.linalg.matrix_norm(C)) / max(1.0, math.sqrt(prob.k or n)), 1e-3)
    U = -start["N"] / rho
    best = dict(h=math.inf, N=start["N"], X=start["X"], score=math.inf)
    dres = math.inf
    status = "max_iters"
    X = start["X"]
    it = 0
    for it in range(1, max_iters + 1):
        X = prob.project(Y - U + C / rho)
        Y_old = Y
        # over-relaxed: the Y and U updates see a mix of the new X and the old Y (fewer iterations on
        # the crowded spectra where ADMM does the work; each iteration is one full eigendecomposition)
        Xr = OVER_RELAX * X + (1.0 - OVER_RELAX) * Y_old
        Y = torch.clamp(Xr + U, min=0.0)
        U = U + Xr - Y
        if it % CHECK_EVERY == 0 or it == max_iters:
            pres = float(torch.linalg.matrix_norm(X - Y)) / max(1.0, float(torch.linalg.matrix_norm(X)))
            dres = rho * float(torch.linalg.matrix_norm(Y - Y_old)) / max(1.0, float(torch.linalg.matrix_norm(C)))
            N = -rho * U
            h, _, _ = prob.oracle(N)
            score = _violation(C, X, h)
            if score < best["score"]:
                best = dict(h=h, N=N, X=X, score=score)
            if score <= tol:
                status = "optimal"
                best = dict(h=h, N=N, X=X, score=score)
                break
            if pres > 10.0 * dres:
                rho *= 2.0
                U = U / 2.0
            elif dres > 10.0 * pres:
                rho /= 2.0
                U = U * 2.0
    return dict(status=status, iters=it, X=best["X"], N=best["N"], dual_residual=dres)
