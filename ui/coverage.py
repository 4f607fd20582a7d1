"""How much evidence is behind each affinity entry, and what a run trained elsewhere still lacks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.estimation.runs.folder import RunDir
from core.matrix.affinity import AffinityMatrix

SHOWN = 5000  # rows of the table a page shows (a 500-task run has 249,500 entries)
FEW = 2  # below two observations an entry has no standard error: one noisy training decides it


def low_count_entries(m: AffinityMatrix, few: int = FEW) -> pd.DataFrame:
    """Off-diagonal entries resting on fewer than ``few`` observations, fewest first.

    Columns: source, target, observations, value. Empty when the matrix records no counts.
    """
    cols = ["source", "target", "observations", "value"]
    if m.counts is None:
        return pd.DataFrame(columns=cols)
    counts = np.asarray(m.counts, dtype=float)
    mask = (counts < few) & ~np.eye(m.n, dtype=bool)
    i, j = np.nonzero(mask)
    order = np.lexsort((j, i, counts[i, j]))
    i, j = i[order], j[order]
    names = np.asarray(m.names, dtype=object)
    return pd.DataFrame({"source": names[i], "target": names[j], "observations": counts[i, j].astype(int),
                         "value": np.asarray(m.values)[i, j]}, columns=cols)


def low_count_caption(m: AffinityMatrix, table: pd.DataFrame, few: int = FEW) -> str:
    """One sentence on how many entries rest on few observations (empty when the matrix records no counts)."""
    if m.counts is None:
        return ""
    total = m.n * (m.n - 1)
    if table.empty:
        return f"Every one of the {total} entries rests on at least {few} observations."
    unseen = int((table["observations"] == 0).sum())
    return (f"{len(table)} of {total} entries rest on fewer than {few} observations"
            + (f", {unseen} of them on none yet (shown as 0)" if unseen else "")
            + "; read them with care (listed below, fewest first).")


def remaining_plan_csv(path: Path) -> bytes:
    """The planned trainings a run trained elsewhere still lacks, as CSV bytes for a download."""
    return RunDir(path).read_remaining_plan().to_csv(index=False).encode("utf-8")


def remaining_plan(path: Path) -> pd.DataFrame:
    """The planned trainings a run trained elsewhere still lacks (id, tasks, seed, split, batch)."""
    return RunDir(path).read_remaining_plan()
