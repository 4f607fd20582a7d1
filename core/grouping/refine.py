"""Local refinement of a partition: best single moves and swaps, never lowering the objective.

Each round evaluates, in closed form, every single move (task u from group A
to group B, A keeping at least one task) and every swap (u in A with v in B),
and applies the one with the largest gain if that gain exceeds ``tol``. It stops
when no move or swap gains more than ``tol`` (a local optimum for both
neighbourhoods) or after ``max_rounds``. The number of groups never changes.

With ``s_C(u) = sum_{w in C} S[u, w]`` and ``W(C) = sum_{u,w in C} S[u, w]``:

- moving u from A to B: ``W(A-u) = W(A) - 2 s_A(u) + S[u,u]``,
  ``W(B+u) = W(B) + 2 s_B(u) + S[u,u]``;
- swapping u in A with v in B: ``W(A-u+v) = W(A) - 2 s_A(u) + S[u,u] + 2 s_A(v) - 2 S[u,v] + S[v,v]``
  (and symmetrically for B).

Deterministic: ties between equal gains go to the first in (task, group) index
order, which the estimators make name order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.grouping.objective import average_density


def refine_partition(S: np.ndarray, labels: np.ndarray, *, tol: float | None = None,
                     max_rounds: int | None = None, swaps: bool = True) -> tuple[np.ndarray, dict]:
    """Improve ``labels`` by best-improvement moves and swaps.

    Parameters
    ----------
    S : ndarray of shape (n, n)
        Affinity (its symmetric part is used).
    labels : ndarray of shape (n,)
        Starting partition; its number of groups is kept.
    tol : float, optional
        Minimum gain to accept a step; default ``1e-12 * (1 + max|S|) * n``.
    max_rounds : int, optional
        Cap on steps; default ``20 * n``.
    swaps : bool
        Also consider swaps (needed to move between groups whose sizes should stay fixed).

    Returns
    -------
    labels : ndarray
        Refined labels (groups renumbered 0..k-1 by first appearance).
    info : dict
        ``moves``, ``swaps``, ``rounds``, ``start_objective``, ``objective``, ``converged``.
    """
    S = np.asarray(S, dtype=np.float64)
    S = (S + S.T) / 2.0
    n = S.shape[0]
    _, labels = np.unique(np.asarray(labels), return_inverse=True)
    labels = labels.astype(np.int64)
    tol = 1e-12 * (1.0 + float(np.abs(S).max())) * n if tol is None else float(tol)
    max_rounds = 20 * n if max_rounds is None else int(max_rounds)
    start = average_density(S, labels)
    counts = dict(moves=0, swaps=0)
    rounds, converged = 0, False
    lower = np.tri(n, dtype=bool)  # each unordered pair of a swap once: the lower triangle is never a swap
    S2 = 2.0 * S
    while rounds < max_rounds:
        stats = _group_stats(S, labels)
        move_gain = _move_gains(S, labels, stats)
        swap_gain = _swap_gains(S, labels, stats, lower, S2) if swaps and stats.k > 1 else None
        step = _best_step(move_gain, swap_gain)
        if step[0] <= tol:
            converged = True
            break
        _apply_step(labels, step)
        counts["moves" if step[1] == "move" else "swaps"] += 1
        rounds += 1
    end = average_density(S, labels)
    if end < start - 1e-9 * (1.0 + abs(start)):  # pragma: no cover - guards the closed forms
        raise AssertionError(f"refinement lowered the objective from {start} to {end}")
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int64), dict(moves=counts["moves"], swaps=counts["swaps"], rounds=rounds,
                                         start_objective=start, objective=end, converged=converged)


@dataclass
class _GroupStats:
    """Per-group sums of the current partition: ``sizes``, ``sC[u, C] = s_C(u)``, ``W[C]``, ``own[u] = s_A(u)``."""

    k: int
    sizes: np.ndarray
    sC: np.ndarray
    W: np.ndarray
    own: np.ndarray


def _group_stats(S: np.ndarray, labels: np.ndarray) -> _GroupStats:
    n = labels.size
    k = int(labels.max()) + 1
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    sC = S @ onehot
    return _GroupStats(k=k, sizes=onehot.sum(axis=0), sC=sC, W=(onehot * sC).sum(axis=0),
                       own=sC[np.arange(n), labels])


def _move_gains(S: np.ndarray, labels: np.ndarray, st: _GroupStats) -> np.ndarray:
    """``gain[u, B]`` of moving u from its group A to B (-inf where A would empty or B = A)."""
    n = labels.size
    diag = np.diag(S)
    a_size = st.sizes[labels]
    with np.errstate(divide="ignore", invalid="ignore"):
        w_a_new = st.W[labels] - 2.0 * st.own + diag
        loss_a = np.where(a_size > 1, w_a_new / (a_size - 1), -np.inf) - st.W[labels] / a_size
        gain_b = ((st.W[None, :] + 2.0 * st.sC + diag[:, None]) / (st.sizes[None, :] + 1.0)
                  - st.W[None, :] / st.sizes[None, :])
    gain = loss_a[:, None] + gain_b
    gain[np.arange(n), labels] = -np.inf
    return gain


def _swap_gains(S: np.ndarray, labels: np.ndarray, st: _GroupStats, lower: np.ndarray,
                S2: np.ndarray) -> np.ndarray:
    """``gain[u, v]`` (u < v, different groups) of swapping u (in A) with v (in B); -inf elsewhere.

    ``lower`` (``np.tri(n, dtype=bool)``) and ``S2`` (``2 S``) are made once per refinement. The n x n work
    is done in place in two buffers: each step used to allocate about fifteen n x n temporaries, which
    cost more than the arithmetic. The operations and their order are the ones of the formula, so the
    gains are the same numbers.
    """
    diag = np.diag(S)
    sB_u = st.sC[:, labels]              # sB_u[u, v] = s_{B(v)}(u); its transpose is s_{A(u)}(v)
    WA, WB = st.W[labels][:, None], st.W[labels][None, :]
    nA, nB = st.sizes[labels][:, None], st.sizes[labels][None, :]
    # new_A - W_A = W_A - 2 s_A(u) + S[u,u] + 2 s_A(v) - 2 S[u,v] + S[v,v] - W_A, then / n_A; B alike.
    gain = np.multiply(sB_u.T, 2.0)
    np.add((WA - 2.0 * st.own[:, None]) + diag[:, None], gain, out=gain)
    np.subtract(gain, S2, out=gain)
    np.add(gain, diag[None, :], out=gain)
    np.subtract(gain, WA, out=gain)
    np.divide(gain, nA, out=gain)
    other = np.multiply(sB_u, 2.0)
    np.add((WB - 2.0 * st.own[None, :]) + diag[None, :], other, out=other)
    np.subtract(other, S2, out=other)
    np.add(other, diag[:, None], out=other)
    np.subtract(other, WB, out=other)
    np.divide(other, nB, out=other)
    np.add(gain, other, out=gain)
    np.putmask(gain, (labels[:, None] == labels[None, :]) | lower, -np.inf)
    return gain


def _best_step(move_gain: np.ndarray, swap_gain: np.ndarray | None) -> tuple[float, str, int, int]:
    """(gain, "move" or "swap", a, b) of the best step; a move wins ties (first index in each)."""
    u, b = np.unravel_index(int(np.argmax(move_gain)), move_gain.shape)
    best = (float(move_gain[u, b]), "move", int(u), int(b))
    if swap_gain is not None:
        u, v = np.unravel_index(int(np.argmax(swap_gain)), swap_gain.shape)
        if float(swap_gain[u, v]) > best[0]:
            best = (float(swap_gain[u, v]), "swap", int(u), int(v))
    return best


def _apply_step(labels: np.ndarray, step: tuple[float, str, int, int]) -> None:
    _, kind, a, b = step
    if kind == "move":
        labels[a] = b
    else:
        labels[a], labels[b] = labels[b], labels[a]


def refine_from_starts(S: np.ndarray, starts: list[np.ndarray], *, refine: bool = True) -> tuple[np.ndarray, dict]:
    """Multi-start local search: refine every starting partition, keep the best.

    Parameters
    ----------
    S : ndarray of shape (n, n)
    starts : list of label arrays
        Starting partitions, all with the same number of groups; earlier ones win ties.
    refine : bool
        With False, only score the starts and keep the best as it is.

    Returns
    -------
    labels : ndarray
        The best partition found.
    info : dict
        ``winner`` (index into ``starts``), ``rounded_objectives`` and ``objectives``
        (per start, before and after refinement), ``objective`` (the winner's),
        ``refine`` (the winner's :func:`refine_partition` info, or None) and ``refines``
        (that info per start).
    """
    if not starts:
        raise ValueError("refine_from_starts needs at least one starting partition")
    S = np.asarray(S, dtype=np.float64)
    before, after, results = [], [], []
    for start in starts:
        before.append(average_density(S, start))
        labels, rinfo = refine_partition(S, start) if refine else (np.asarray(start), None)
        after.append(rinfo["objective"] if refine else before[-1])
        results.append((labels, rinfo))
    # Highest objective; on exact ties the earliest start.
    winner = max(range(len(starts)), key=lambda i: (after[i], -i))
    labels, rinfo = results[winner]
    return labels, dict(winner=winner, rounded_objectives=before, objectives=after, objective=after[winner],
                        refine=rinfo, refines=[r for _, r in results])
