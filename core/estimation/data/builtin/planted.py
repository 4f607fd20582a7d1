"""Planted task groups: tasks that share parameters within known groups.

Every task is a linear regression (or, with ``kind="classification"``, a logistic
one) on its own Gaussian inputs ``x ~ N(0, I_dim)``. Group ``g`` has a unit parameter
vector ``w_g``; a task of the group uses ``w_t = normalise(w_g + within * eps)``. The
knob ``between`` is the cosine between the groups' vectors: at 1 every task wants the
same parameters (training together only helps); at 0 (default) groups want orthogonal
parameters, so a network whose shared trunk is narrow (the ``mlp`` backend with
``hidden: [1], activation: linear``, i.e. a rank-one shared representation, as in
``sample_data/configs/planted.yaml``) must split its trunk between the groups when
trained across them: cross-group training hurts (negative transfer) while same-group
partners add data for the same parameters (positive transfer, strongest with few
training examples per task).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from core.errors import InvalidInputError
from core.estimation.data.tasks import Split, Task, TaskSet


def group_vectors(n_groups: int, dim: int, between: float, rng: np.random.Generator) -> np.ndarray:
    """``n_groups`` unit vectors in R^dim with pairwise cosine ``between``."""
    gram = np.full((n_groups, n_groups), float(between))
    np.fill_diagonal(gram, 1.0)
    vals, vecs = np.linalg.eigh(gram)
    if vals.min() < -1e-9:
        raise InvalidInputError(
            f"planted tasks: between={between} is impossible for {n_groups} groups; it must be >= {-1 / (n_groups - 1):.3f}.")
    coords = vecs * np.sqrt(np.clip(vals, 0, None))  # rows: coordinates with the wanted Gram matrix
    basis, _ = np.linalg.qr(rng.standard_normal((dim, n_groups)))
    return coords @ basis.T


def planted_tasks(n_groups: int = 3, tasks_per_group: int | Sequence[int] = 3, dim: int = 20, n_train: int = 40,
                  n_val: int = 100, n_test: int = 500, within: float = 0.1, between: float = 0.0,
                  noise: float = 0.5, kind: str = "regression", seed: int = 0) -> TaskSet:
    """Tasks in ``n_groups`` planted groups; task ``g{g}_t{i}`` belongs to group ``g{g}``.

    Parameters
    ----------
    n_groups : int
    tasks_per_group : int or sequence of int
        Tasks in each group (a sequence gives unequal group sizes).
    dim : int
        Input dimension.
    n_train, n_val, n_test : int
        Examples per task and split.
    within : float
        Spread of a task's parameters around its group's (0: identical within a group).
    between : float
        Cosine between groups' parameter vectors: the knob that makes cross-group training
        hurt (0) or help (1).
    noise : float
        Label noise (standard deviation added to ``w_t . x``).
    kind : {"regression", "classification"}
        Regression reports mse; classification thresholds at 0 and reports accuracy.
    seed : int
        Seed of the data (not of training).
    """
    sizes = [int(tasks_per_group)] * int(n_groups) if np.isscalar(tasks_per_group) else [int(s) for s in tasks_per_group]
    if int(n_groups) < 1 or len(sizes) != int(n_groups) or any(s < 1 for s in sizes):
        raise InvalidInputError(f"planted tasks: need n_groups >= 1 and tasks_per_group >= 1 per group, got {n_groups}, {tasks_per_group}.")
    if kind not in ("regression", "classification"):
        raise InvalidInputError(f"planted tasks: kind {kind!r} must be regression or classification.")
    if dim < n_groups:
        raise InvalidInputError(f"planted tasks: dim={dim} must be at least n_groups={n_groups}.")
    for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(v) < 4:
            raise InvalidInputError(f"planted tasks: {name}={v} is too few examples; use at least 4.")
    if within < 0 or noise < 0:
        raise InvalidInputError("planted tasks: within and noise must be >= 0.")
    rng = np.random.default_rng(seed)
    centers = group_vectors(len(sizes), int(dim), between, rng)
    tasks = []
    for g, size in enumerate(sizes):
        for i in range(size):
            w = centers[g] + within * rng.standard_normal(dim) / np.sqrt(dim)
            w /= np.linalg.norm(w)
            splits = {}
            for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
                x = rng.standard_normal((int(n), int(dim))).astype(np.float32)
                y = x @ w + noise * rng.standard_normal(int(n))
                if kind == "classification":
                    y = (y > 0).astype(np.int64)
                splits[split] = Split(x, y.astype(np.float32) if kind == "regression" else y)
            tasks.append(Task(
                name=f"g{g}_t{i}", **splits, kind=kind, metric="mse" if kind == "regression" else "accuracy",
                input_kind="features", n_classes=2 if kind == "classification" else None, group=f"g{g}",
                info={"family": "planted", "weights": w.round(6).tolist()}))
    return TaskSet(tasks, name="planted")
