"""How many groups? Objective versus k, and three stated rules for suggesting k.

All rules work on ``S = (T + T')/2`` after the optional preprocessing.

(a) **sweep** (the authors' "estimated group performance"): group the tasks for
    every k in the range and score each grouping by the mean over tasks of the
    task's mean affinity to the other members of its group (a task alone scores
    its own diagonal entry ``S[v, v]``). Suggest the k with the highest score,
    the smallest such k on ties.
(b) **penalty** (the authors' k-free SDP): solve ``max <S,X> - lam tr X`` over a
    grid of ``lam`` and read k = round(tr X). The grid spans the slopes
    ``v(k) - v(k-1)`` of the fixed-k SDP values, so each k in the range is hit
    by a share of the grid proportional to the width of the ``lam`` interval for
    which the relaxation prefers it. Suggest the k held over the widest range of
    ``lam`` (smallest k on ties).
(c) **eigengap** of S: with eigenvalues ``mu_1 >= mu_2 >= ...``, suggest the k in
    the range maximising ``mu_k - mu_{k+1}``.

Combined suggestion: the penalty rule's k, with the others shown as evidence.
On planted cases (bench/bench_recovery.py, table "choosing k") it is the most
often right; rule (a) drifts to large k because splitting a true group keeps
its in-group mean while noise rewards small groups, and (c) is confused by
unequal group sizes and the negative between-group level of signed matrices.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from core.errors import InvalidInputError
from core.grouping.base import _jsonable, as_affinity_matrix
from core.grouping.objective import symmetrize, validate_k, validate_scale
from core.grouping.registry import make_grouping
from core.grouping.sdp.relaxation import solve_sdp
from core.matrix.affinity import AffinityMatrix
from core.matrix.preprocess import Preprocessing

RULES = ("sweep", "penalty", "eigengap")


@dataclass
class KChoice:
    """The suggested k with the evidence for it.

    ``table`` has one row per k: ``k, objective, sdp_value, score`` (rule a),
    ``eigenvalue, eigengap`` (rule c), ``lam_share`` (rule b: fraction of the lam grid
    choosing k), and ``groups``.
    """

    k: int
    reason: str
    suggestions: dict[str, int]
    k_range: list[int]
    table: list[dict[str, Any]] = field(default_factory=list)
    penalty_sweep: list[dict[str, Any]] = field(default_factory=list)
    method: str = "sdp"
    preprocessing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def in_group_score(S: np.ndarray, labels: Sequence[int]) -> float:
    """The authors' group-performance estimate: mean over tasks of the mean affinity to its group mates.

    A task alone in its group contributes its diagonal entry ``S[v, v]``.
    """
    S = np.asarray(S, dtype=np.float64)
    labels = np.asarray(labels)
    per_task = np.empty(labels.size)
    for v in range(labels.size):
        mates = np.flatnonzero((labels == labels[v]) & (np.arange(labels.size) != v))
        per_task[v] = S[v, mates].mean() if mates.size else S[v, v]
    return float(per_task.mean())


def default_k_range(n: int) -> list[int]:
    """2 .. min(n - 1, 10) (just [2] or [1] for tiny n)."""
    hi = min(n - 1, 10)
    return list(range(2, hi + 1)) if hi >= 2 else [min(2, n)]


def choose_k(matrix: AffinityMatrix | np.ndarray, k_range: Sequence[int] | None = None, *, method: str = "sdp",
             preprocessing: Preprocessing | None = None, solver: str = "auto", n_penalties: int = 25,
             **opts: Any) -> KChoice:
    """Objective versus k over ``k_range`` and a suggested k (see the module docstring for the rules).

    Parameters
    ----------
    matrix : AffinityMatrix
    k_range : sequence of int, optional
        Candidate k values (default :func:`default_k_range`).
    method : str
        Grouping method used for the sweep (rule a); any key of ``GROUPING_METHODS``.
    preprocessing : Preprocessing or None
    solver : str
        SDP solver for the fixed-k values and the penalty sweep.
    n_penalties : int
        Size of the lam grid of rule (b).
    **opts
        Further options of the grouping method.
    """
    m = as_affinity_matrix(matrix)
    validate_scale(m.values)
    if preprocessing is not None:
        if not isinstance(preprocessing, Preprocessing):
            raise InvalidInputError("preprocessing must be a core.matrix.preprocess.Preprocessing or None.")
        m = preprocessing.apply(m)
    n = m.n
    ks = sorted({validate_k(k, n) for k in (default_k_range(n) if k_range is None else k_range)})
    if not ks:
        raise InvalidInputError("choose_k: the range of k is empty; give at least one k.")
    if isinstance(n_penalties, bool) or not isinstance(n_penalties, int) or n_penalties < 2:
        raise InvalidInputError(f"n_penalties must be an integer >= 2, got {n_penalties!r}.")
    validate_scale(m.values)
    S = symmetrize(m.values)
    mu = np.sort(np.linalg.eigvalsh(S))[::-1]

    rows = []
    for k in ks:
        est = make_grouping(method, k, solver=solver, **opts) if method == "sdp" else make_grouping(method, k, **opts)
        est.fit(m)
        sdp_value = getattr(est, "sdp_primal_value_", None)
        rows.append(dict(k=k, objective=float(est.objective_), sdp_value=sdp_value,
                         score=in_group_score(S, est.labels_), eigenvalue=float(mu[k - 1]),
                         eigengap=float(mu[k - 1] - mu[k]) if k < n else float("nan"), groups=est.groups_))

    # Rule (b): fixed-k SDP values give the lam grid; penalised solves read off k.
    vals: dict[int, float] = {row["k"]: row["sdp_value"] for row in rows if row["sdp_value"] is not None}
    span = range(max(1, ks[0] - 1), min(n, ks[-1] + 1) + 1)
    for k in span:
        if k not in vals:
            vals[k] = float(solve_sdp(S, k, solver=solver).value)
    slopes = [vals[k] - vals[k - 1] for k in span if k - 1 in vals]
    lo, hi = min(slopes), max(slopes)
    if hi - lo <= 1e-12 * (1.0 + abs(hi)):
        lo, hi = lo - 1.0, hi + 1.0
    sweep = []
    for lam in np.linspace(lo, hi, n_penalties):
        sol = solve_sdp(S, None, penalty=float(lam), solver=solver)
        t = float(np.trace(sol.X))
        sweep.append(dict(lam=float(lam), trace=t, k=int(np.clip(round(t), 1, n)), status=sol.status))
    counts = Counter(s["k"] for s in sweep)
    for row in rows:
        row["lam_share"] = counts.get(row["k"], 0) / len(sweep)

    def argmax(key: str) -> int:
        vals_k = [(row[key], -row["k"]) for row in rows if np.isfinite(row[key])]
        return -max(vals_k)[1] if vals_k else ks[0]

    suggestions = {"sweep": argmax("score"), "penalty": argmax("lam_share"), "eigengap": argmax("eigengap")}
    k = suggestions["penalty"]
    agree = [r for r in ("sweep", "eigengap") if suggestions[r] == k]
    differ = [f"{r} {suggestions[r]}" for r in ("sweep", "eigengap") if suggestions[r] != k]
    reason = (f"k={k}: the widest lam interval of the penalised SDP (rule penalty)"
              + (f"; {' and '.join(agree)} agree" if agree else "")
              + (f"; {', '.join(differ)} differ" if differ else ""))
    return KChoice(k=int(k), reason=reason, suggestions=suggestions, k_range=ks, table=rows, penalty_sweep=sweep,
                   method=method, preprocessing=list(m.preprocessing))
