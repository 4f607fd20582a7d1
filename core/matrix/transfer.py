"""The negative-transfer table: which source tasks hurt which targets."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.matrix.affinity import AffinityMatrix

COLUMNS = ["source", "target", "transfer", "uncertainty", "z", "count"]


def transfer_table(matrix: AffinityMatrix, *, include_diagonal: bool = False) -> pd.DataFrame:
    """Every off-diagonal pair (source u, target v) with its transfer ``T[u, v]``.

    ``uncertainty`` is the matrix's per-entry uncertainty (NaN where unknown) and
    ``z = transfer / uncertainty`` says how many standard errors the effect is
    away from zero (the confidence of a negative transfer).
    """
    n = matrix.n
    u, v = np.nonzero(np.ones((n, n), dtype=bool) if include_diagonal else ~np.eye(n, dtype=bool))
    vals = matrix.values[u, v]
    unc = matrix.uncertainty[u, v] if matrix.uncertainty is not None else np.full(vals.shape, np.nan)
    cnt = matrix.counts[u, v] if matrix.counts is not None else np.full(vals.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(unc > 0, vals / unc, np.nan)
    names = np.array(matrix.names, dtype=object)
    return pd.DataFrame({"source": names[u], "target": names[v], "transfer": vals, "uncertainty": unc,
                         "z": z, "count": cnt}, columns=COLUMNS)


def negative_transfers(matrix: AffinityMatrix, threshold: float = 0.0, *, target: str | None = None) -> pd.DataFrame:
    """Pairs whose transfer is below ``-threshold`` (so ``threshold=0`` gives every T < 0), worst first.

    Parameters
    ----------
    threshold : float
        Minimum magnitude of harm to report (>= 0).
    target : str, optional
        Only the sources that hurt this task ("who hurts this task").
    """
    table = transfer_table(matrix)
    if target is not None:
        matrix.index(target)  # raises a clear error for an unknown name
        table = table[table["target"] == target]
    table = table[table["transfer"] < -abs(threshold)]
    return table.sort_values(["transfer", "source", "target"]).reset_index(drop=True)
