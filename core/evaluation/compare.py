"""How close an affinity estimate is to a reference (e.g. higher-order or Grad-TAG vs exhaustive pairwise or true).

Off-diagonal entries only (the diagonal means different things to different estimators). A per-target
constant shift (e.g. another baseline) changes neither the per-target Spearman nor any grouping.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError


def agreement(estimate: AffinityMatrix, reference: AffinityMatrix) -> dict[str, Any]:
    """Agreement of ``estimate`` with ``reference`` on their common tasks (reference order).

    Returns
    -------
    dict with ``spearman`` (all off-diagonal entries), ``spearman_per_target`` (mean over targets of the
    Spearman of their column), ``sign_agreement`` (fraction of off-diagonal entries with the same sign),
    ``negatives_found`` (fraction of the reference's negative entries that are negative in the estimate),
    ``rel_frobenius`` (||E - R||_F / ||R||_F) and ``n_tasks``.
    """
    common = [x for x in reference.names if x in set(estimate.names)]
    if len(common) < 3:
        raise InvalidInputError(f"agreement needs at least 3 common tasks, found {len(common)}: {common}.")
    e = estimate.subset(common).values
    r = reference.subset(common).values
    n = len(common)
    off = ~np.eye(n, dtype=bool)
    per_target = []
    for j in range(n):
        col = off[:, j]
        if np.ptp(r[col, j]) > 0 and np.ptp(e[col, j]) > 0:
            per_target.append(spearmanr(e[col, j], r[col, j]).statistic)
    neg = r[off] < 0
    return {
        "n_tasks": n,
        "spearman": float(spearmanr(e[off], r[off]).statistic),
        "spearman_per_target": float(np.mean(per_target)) if per_target else float("nan"),
        "sign_agreement": float(np.mean(np.sign(e[off]) == np.sign(r[off]))),
        "negatives_found": float(np.mean(e[off][neg] < 0)) if neg.any() else float("nan"),
        "rel_frobenius": float(np.linalg.norm((e - r)[off]) / max(np.linalg.norm(r[off]), 1e-300)),
    }
