"""A fast suggestion for the number of groups k: one eigen-decomposition, then (optionally) a few SDPs near it.

:func:`core.grouping.choose_k.choose_k` solves one SDP per k and a penalty sweep: tens of seconds at
200 tasks and minutes at 500. The dashboard must open every matrix on a sensible k within seconds,
so it asks this screen instead.

**Screen.** The grouping SDP keeps ``X 1 = 1``, so ``X = 11'/n + Y`` with ``Y 1 = 0``: the constant
level of ``S = (T + T')/2`` is the same for every partition and only ``C = P S P`` (``P = I - 11'/n``,
the matrix with its average row and column level removed) tells groups apart. Without the entrywise
constraints, the best ``<S, X>`` with ``tr X = k`` is ``1'S1/n + nu_1 + ... + nu_{k-1}`` (``nu`` the
eigenvalues of C, largest first), so the penalised SDP's ``lam`` interval that chooses k (the rule
``penalty`` of choose_k) has width ``gap_k = nu_{k-1} - nu_k`` in this relaxation: an eigengap of C.
Removing the level is what lets it see groups in signed matrices whose between-group level is
negative (the eigengap of S itself, choose_k's rule (c), is confused by it).

Groups of unequal sizes give evenly spaced large eigenvalues (one per group, roughly proportional to
its size), so the largest gap alone often stops a few groups short. The screen therefore scores each
k by ``gap_k`` over the median of the six gaps that follow it (the typical step further down the
spectrum, where noise lives) and suggests the best score: the last step out of the structure into
the noise. Candidates run from 2 to ``min(n // 2, 12)`` (groups of two tasks on average at most).

**Check near the suggestion** (``sdp_check=True``): solve the fixed-k SDP for k-2 .. k+2 and apply
the penalty rule locally (widths ``v(k) - v(k-1) - (v(k+1) - v(k))``); five solves instead of one
per k plus a sweep.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.linalg

from core.errors import InvalidInputError
from core.grouping.base import as_affinity_matrix
from core.grouping.objective import symmetrize, validate_k, validate_scale
from core.grouping.sdp.relaxation import solve_sdp
from core.matrix.affinity import AffinityMatrix
from core.matrix.preprocess import Preprocessing

#: Largest k the screen considers by default (and at most n - 1).
SCREEN_K_MAX = 12
#: How many of the following gaps make the "typical step" a gap is compared with.
TRAIL = 6
#: A suggestion whose gap is less than this many times the runner-up's is called "weak" in the explanation.
CLEAR_RATIO = 1.5


@dataclass
class KScreen:
    """The screen's suggestion with its evidence.

    Attributes
    ----------
    k : int
        Suggested number of groups.
    runner_up : int or None
        The k with the second largest gap.
    ratio : float
        Best score over the second best (inf when the second is 0).
    reason : str
        The suggestion in plain words, for a page.
    table : list of dict
        One row per candidate k: ``k``, ``gap`` (eigengap of the centred matrix), ``share`` (gap over the
        sum of gaps in the range), ``score`` (gap over the median of the next six gaps) and, where the
        SDP check ran, ``sdp_value`` and ``lam_width``.
    checked_with_sdp : bool
    """

    k: int
    runner_up: int | None
    ratio: float
    reason: str
    table: list[dict[str, Any]] = field(default_factory=list)
    checked_with_sdp: bool = False
    preprocessing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def centred_spectrum(S: np.ndarray, top: int | None = None) -> np.ndarray:
    """Eigenvalues (largest first) of ``P S P``, ``P = I - 11'/n``: S without its average row and column level.

    ``top`` keeps only the largest ``top`` (a partial decomposition: several times faster at 500 tasks).
    """
    S = np.asarray(S, dtype=np.float64)
    n = S.shape[0]
    C = S - S.mean(axis=0, keepdims=True) - S.mean(axis=1, keepdims=True) + S.mean()
    C = (C + C.T) / 2.0
    if top is not None and top < n:
        return scipy.linalg.eigh(C, eigvals_only=True, subset_by_index=[n - top, n - 1])[::-1]
    return np.sort(np.linalg.eigvalsh(C))[::-1]


def screen_k(matrix: AffinityMatrix | np.ndarray, k_range: Sequence[int] | None = None, *,
             preprocessing: Preprocessing | None = None, sdp_check: bool = False, solver: str = "auto",
             tol: float | None = None) -> KScreen:
    """Suggest k from the eigengaps of the centred symmetrised matrix (see the module docstring).

    Parameters
    ----------
    matrix : AffinityMatrix or square array
    k_range : sequence of int, optional
        Candidates (default 2 .. min(n // 2, :data:`SCREEN_K_MAX`)).
    preprocessing : Preprocessing, optional
        Applied first, as by the groupings.
    sdp_check : bool
        Re-decide between the neighbours of the screen's k with five fixed-k SDP solves.
    solver, tol : SDP solver options for the check.

    Returns
    -------
    KScreen
    """
    m = as_affinity_matrix(matrix)
    if preprocessing is not None:
        if not isinstance(preprocessing, Preprocessing):
            raise InvalidInputError("preprocessing must be a core.matrix.preprocess.Preprocessing or None.")
        m = preprocessing.apply(m)
    validate_scale(m.values)
    n = m.n
    if n < 3:
        return KScreen(k=1, runner_up=None, ratio=float("inf"), preprocessing=list(m.preprocessing),
                       reason=f"with {n} tasks there is nothing to split: one group.")
    if k_range is None:
        k_range = range(2, max(2, min(n // 2, SCREEN_K_MAX)) + 1)
    ks = sorted({validate_k(k, n) for k in k_range if k >= 2})
    if not ks:
        raise InvalidInputError("screen_k: give at least one k of 2 or more.")
    S = symmetrize(m.values)
    nu = centred_spectrum(S, top=ks[-1] + TRAIL + 1)
    steps = np.maximum(nu[:-1] - nu[1:], 0.0)  # steps[j] = nu_{j+1} - nu_{j+2} (1-based nu): gap_k = steps[k - 2]
    floor = 1e-12 * (abs(float(nu[0])) + 1e-300)
    gaps = np.array([steps[k - 2] for k in ks])
    trail = [steps[k - 1:k - 1 + TRAIL] for k in ks]
    scores = np.array([g / max(float(np.median(t)) if t.size else float(np.median(steps)), floor)
                       for g, t in zip(gaps, trail)])
    total = float(gaps.sum()) or 1.0
    table = [dict(k=k, gap=float(g), share=float(g) / total, score=float(sc)) for k, g, sc in zip(ks, gaps, scores)]
    order = np.argsort(-scores, kind="stable")
    best = ks[int(order[0])]
    second = ks[int(order[1])] if len(ks) > 1 else None
    ratio = float(scores[order[0]] / scores[order[1]]) if len(ks) > 1 and scores[order[1]] > 0 else float("inf")
    checked = False
    screened = best
    if sdp_check and n >= 4:
        best, checked = _check_near(S, best, ks, table, solver, tol), True
    reason = _explain(screened, second, ratio, ks, float(scores[order[0]]))
    if checked:
        reason += (" Solving the SDP for the neighbouring k confirmed it." if best == screened else
                   f" Solving the SDP for the neighbouring k preferred {best} groups, so {best} is suggested.")
    reason += " It is a starting point: change k freely."
    return KScreen(k=int(best), runner_up=second, ratio=ratio, reason=reason, table=table, checked_with_sdp=checked,
                   preprocessing=list(m.preprocessing))


def _check_near(S: np.ndarray, k0: int, ks: list[int], table: list[dict[str, Any]], solver: str,
                tol: float | None) -> int:
    """The penalty rule on the fixed-k SDP values of k0 - 2 .. k0 + 2 (widest lam interval among k0 - 1 .. k0 + 1)."""
    n = S.shape[0]
    span = [k for k in range(k0 - 2, k0 + 3) if 1 <= k <= n]
    opts = {} if tol is None else {"tol": tol}
    v = {k: float(solve_sdp(S, k, solver=solver, **opts).value) for k in span}
    widths = {}
    for k in range(k0 - 1, k0 + 2):
        if k in ks and k - 1 in v and k + 1 in v:
            widths[k] = (v[k] - v[k - 1]) - (v[k + 1] - v[k])
    for row in table:
        row["sdp_value"] = v.get(row["k"])
        row["lam_width"] = widths.get(row["k"])
    return max(widths, key=lambda k: (widths[k], -k)) if widths else k0


def _explain(k: int, runner_up: int | None, ratio: float, ks: list[int], score: float) -> str:
    how = (f"Suggested from the matrix's block structure: trying 2 to {ks[-1]} groups, each added group "
           f"brings out one more block pattern; group {k} still brings out a clear one, group {k + 1} little "
           f"more than noise (the drop is {score:.1f} times the typical step after it). So **{k} groups**")
    if runner_up is None or runner_up == k:
        strength = "."
    elif ratio >= CLEAR_RATIO:
        strength = f", {'well ' if ratio >= 3 else ''}ahead of the next best, {runner_up} ({ratio:.1f} times as clear)."
    else:
        strength = f", but {runner_up} is nearly as clear ({ratio:.1f} times): a weak suggestion, try both."
    return how + strength
