"""scikit-learn's digits (bundled with scikit-learn, no download) as 10 one-vs-rest tasks.

Task ``digit_k`` asks "is this image a k?" on its own balanced sample: every image of
digit k plus as many images of other digits, split 50 / 20 / 30 into train / val /
test (stratified). Features are the 64 pixel intensities scaled to [0, 1]. Digits that
look alike (3/8/9, 1/7) make related tasks.
"""
from __future__ import annotations

import numpy as np

from core.errors import InvalidInputError
from core.estimation.data.tasks import Split, Task, TaskSet


def digits_tasks(digits: list[int] | None = None, max_train: int | None = None, seed: int = 0) -> TaskSet:
    """One binary task per digit in ``digits`` (default 0..9); ``max_train`` caps train examples."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    labels = data.target
    digits = list(range(10)) if digits is None else [int(d) for d in digits]
    if not digits or any(d < 0 or d > 9 for d in digits) or len(set(digits)) != len(digits):
        raise InvalidInputError(f"digits tasks: digits={digits} must be distinct values in 0..9.")
    rng = np.random.default_rng(seed)
    tasks = []
    for d in digits:
        pos = np.flatnonzero(labels == d)
        neg = rng.choice(np.flatnonzero(labels != d), size=len(pos), replace=False)
        idx = np.concatenate([pos, neg])
        y = (labels[idx] == d).astype(np.int64)
        tr, rest, ytr, yrest = train_test_split(idx, y, train_size=0.5, stratify=y, random_state=seed + d)
        va, te, yva, yte = train_test_split(rest, yrest, train_size=0.4, stratify=yrest, random_state=seed + d)
        if max_train is not None:
            if int(max_train) < 4:
                raise InvalidInputError(f"digits tasks: max_train={max_train} is too small; use at least 4.")
            tr, ytr = tr[: int(max_train)], ytr[: int(max_train)]
        tasks.append(Task(
            name=f"digit_{d}", train=Split(x[tr], ytr), val=Split(x[va], yva), test=Split(x[te], yte),
            kind="classification", metric="accuracy", input_kind="features", n_classes=2,
            label_names=(f"not {d}", str(d)), info={"family": "digits", "digit": d}))
    return TaskSet(tasks, name="digits")
