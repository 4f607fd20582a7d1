"""Compare groupings of the same tasks: agreement (adjusted Rand index) and where they differ."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from core.errors import InvalidInputError


def agreement_matrix(labelings: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Pairwise adjusted Rand index between named labelings (1 = same partition, ~0 = chance)."""
    names = list(labelings)
    sizes = {len(v) for v in labelings.values()}
    if len(sizes) > 1:
        raise InvalidInputError("groupings to compare cover different numbers of tasks; compare groupings of one matrix.")
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out.loc[a, b] = out.loc[b, a] = adjusted_rand_score(labelings[a], labelings[b])
    return out


def align_labels(reference: Sequence[int], other: Sequence[int]) -> np.ndarray:
    """``other`` relabelled so its groups carry the number of the reference group they overlap most."""
    ref, oth = np.asarray(reference), np.asarray(other)
    ref_ids, oth_ids = np.unique(ref), np.unique(oth)
    overlap = np.array([[np.sum((ref == r) & (oth == o)) for r in ref_ids] for o in oth_ids])
    rows, cols = linear_sum_assignment(-overlap)
    mapping = {int(oth_ids[r]): int(ref_ids[c]) for r, c in zip(rows, cols)}
    spare = iter(range(int(ref_ids.max()) + 1, int(ref_ids.max()) + 1 + len(oth_ids)))
    for o in oth_ids:
        mapping.setdefault(int(o), next(spare))
    return np.array([mapping[int(x)] for x in oth])


def differences(names: Sequence[str], labelings: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Tasks not placed alike by every labeling, with each labeling's group (aligned to the first one).

    Group numbers are 1-based and aligned by maximum overlap, so a task whose
    number differs between two columns is one the methods put in different groups.
    """
    keys = list(labelings)
    if not keys:
        return pd.DataFrame(columns=["task"])
    ref = np.asarray(labelings[keys[0]])
    cols = {k: align_labels(ref, labelings[k]) + 1 for k in keys}
    frame = pd.DataFrame({"task": list(names), **cols})
    same = np.all([frame[k].to_numpy() == frame[keys[0]].to_numpy() for k in keys], axis=0)
    return frame[~same].reset_index(drop=True)
