"""In-context learning of function classes (Garg et al. 2022, "What Can Transformers Learn In-Context?").

A task is one function class; each example is a prompt ``(x_1, f(x_1), ..., x_m, f(x_m))``
for a function ``f`` drawn afresh from the class, with ``x_i ~ N(0, I_d)``. The model
(``gpt2-icl`` backend) predicts ``f(x_i)`` from the ``i - 1`` earlier pairs and ``x_i``.

Split layout: ``inputs`` is an array (n, m, d) of the prompts' x's, ``targets`` an array
(n, m) of their f(x)'s (the backend also feeds the earlier f(x)'s to the model, as the
prompt does). Targets are scaled to unit variance, so a model that always predicts 0 has
mse about 1 on every class (Garg et al. report squared error / d for the same reason).

Classes (as in Garg et al.'s code, smaller sizes):

* ``linear``: ``f(x) = w . x / sqrt(d)``, ``w ~ N(0, I_d)``;
* ``sparse_linear``: the same with all but ``sparsity`` random coordinates of ``w`` zeroed
  (scaled by ``1 / sqrt(sparsity)``);
* ``tree``: a depth-``depth`` binary decision tree; each inner node tests the sign of a
  random coordinate of x, leaves hold ``N(0, 1)`` values;
* ``relu_nn``: ``f(x) = sum_j a_j relu(w_j . x) * sqrt(2 / (hidden d))``, ``w_j ~ N(0, I_d)``,
  ``a_j ~ N(0, 1)``, ``hidden`` units.

Each class may set its own ``noise`` (Gaussian noise on the targets, in units of their
standard deviation) and ``x_scale`` (input standard deviation), so classes can differ in
their input distribution as well as in their functions.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from core.errors import InvalidInputError
from core.estimation.data.tasks import Split, Task, TaskSet

CLASSES = ("linear", "sparse_linear", "tree", "relu_nn")
DEFAULT_CLASSES = ("linear", "sparse_linear", "tree", "relu_nn")
CLASS_KEYS = {"kind", "name", "noise", "x_scale", "sparsity", "depth", "hidden"}


def _linear(rng: np.random.Generator, x: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    n, _, d = x.shape
    w = rng.standard_normal((n, d))
    if spec["kind"] == "sparse_linear":
        k = spec["sparsity"]
        keep = np.argsort(rng.random((n, d)), axis=1)[:, :k]
        mask = np.zeros((n, d))
        np.put_along_axis(mask, keep, 1.0, axis=1)
        return np.einsum("nmd,nd->nm", x, w * mask) / np.sqrt(k)
    return np.einsum("nmd,nd->nm", x, w) / np.sqrt(d)


def _tree(rng: np.random.Generator, x: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    n, m, d = x.shape
    depth = spec["depth"]
    inner = 2**depth - 1
    feature = rng.integers(0, d, size=(n, inner))  # heap order: children of node j are 2j+1, 2j+2
    leaves = rng.standard_normal((n, 2**depth))
    node = np.zeros((n, m), dtype=np.int64)
    rows = np.arange(n)[:, None]
    for _ in range(depth):
        f = feature[rows, node]
        go_right = x[rows, np.arange(m)[None, :], f] > 0
        node = 2 * node + 1 + go_right
    return leaves[rows, node - inner]


def _relu_nn(rng: np.random.Generator, x: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    n, _, d = x.shape
    h = spec["hidden"]
    w1 = rng.standard_normal((n, d, h))
    w2 = rng.standard_normal((n, h))
    return np.einsum("nmh,nh->nm", np.maximum(np.einsum("nmd,ndh->nmh", x, w1), 0.0), w2) * np.sqrt(2.0 / (h * d))


_FUNCTIONS = {"linear": _linear, "sparse_linear": _linear, "tree": _tree, "relu_nn": _relu_nn}


def _class_spec(entry: Any, dim: int, i: int) -> dict[str, Any]:
    if isinstance(entry, str):
        entry = {"kind": entry}
    if not isinstance(entry, Mapping) or "kind" not in entry:
        raise InvalidInputError(f"icl tasks: classes[{i}]={entry!r} must be a class name or a mapping with kind:.")
    unknown = sorted(set(entry) - CLASS_KEYS)
    if unknown:
        raise InvalidInputError(f"icl tasks: classes[{i}] has unknown key(s) {unknown}; known: {', '.join(sorted(CLASS_KEYS))}.")
    if entry["kind"] not in CLASSES:
        raise InvalidInputError(f"icl tasks: classes[{i}] kind {entry['kind']!r} is not one of {', '.join(CLASSES)}.")
    spec = {"name": entry["kind"], "noise": 0.0, "x_scale": 1.0, "sparsity": max(1, dim // 2), "depth": 3,
            "hidden": 32} | dict(entry)
    for key in ("sparsity", "depth", "hidden"):
        v = spec[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidInputError(f"icl tasks: classes[{i}] {key}={v!r} must be an integer >= 1.")
    if spec["sparsity"] > dim:
        raise InvalidInputError(f"icl tasks: classes[{i}] sparsity={spec['sparsity']} exceeds dim={dim}.")
    for key in ("noise", "x_scale"):
        v = spec[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0 or (key == "x_scale" and v == 0):
            raise InvalidInputError(f"icl tasks: classes[{i}] {key}={v!r} must be a number >= 0 (x_scale > 0).")
    return spec


def sample_prompts(spec: Mapping[str, Any], n: int, n_points: int, dim: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` prompts of class ``spec``: x's (n, n_points, dim) and f(x)'s (n, n_points), float32."""
    x = rng.standard_normal((n, n_points, dim)) * float(spec["x_scale"])
    y = _FUNCTIONS[spec["kind"]](rng, x, spec)
    if spec["noise"]:
        y = y + float(spec["noise"]) * rng.standard_normal(y.shape)
    return x.astype(np.float32), y.astype(np.float32)


def icl_tasks(classes: Sequence[Any] = DEFAULT_CLASSES, dim: int = 5, n_points: int = 16, n_train: int = 2000,
              n_val: int = 200, n_test: int = 500, seed: int = 0) -> TaskSet:
    """One regression task per function class; task names are the class names (or their ``name:``).

    Parameters
    ----------
    classes : sequence of str or mapping
        Class names (``linear``, ``sparse_linear``, ``tree``, ``relu_nn``) or mappings
        ``{kind, name, noise, x_scale, sparsity, depth, hidden}`` (the same kind may appear
        twice under different names, e.g. with different noise).
    dim : int
        Dimension of x.
    n_points : int
        Points (x, f(x)) per prompt.
    n_train, n_val, n_test : int
        Prompts per task and split (each prompt has its own function).
    seed : int
        Seed of the data (not of training).
    """
    for key, v, lo in (("dim", dim, 1), ("n_points", n_points, 2), ("n_train", n_train, 4), ("n_val", n_val, 4),
                       ("n_test", n_test, 4)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise InvalidInputError(f"icl tasks: {key}={v!r} must be an integer >= {lo}.")
    if isinstance(classes, (str, Mapping)) or not list(classes):
        raise InvalidInputError(f"icl tasks: classes={classes!r} must be a non-empty list of function classes.")
    specs = [_class_spec(c, int(dim), i) for i, c in enumerate(classes)]
    tasks = []
    for i, spec in enumerate(specs):
        rng = np.random.default_rng([int(seed), i])
        splits = {s: Split(*sample_prompts(spec, int(n), int(n_points), int(dim), rng))
                  for s, n in (("train", n_train), ("val", n_val), ("test", n_test))}
        info = {"family": "icl", "class": spec["kind"], "dim": int(dim), "n_points": int(n_points)}
        info |= {k: spec[k] for k in ("noise", "x_scale")} | {
            k: spec[k] for k in {"sparse_linear": ("sparsity",), "tree": ("depth",), "relu_nn": ("hidden",)}.get(spec["kind"], ())}
        tasks.append(Task(name=str(spec["name"]), **splits, kind="regression", metric="mse", input_kind="icl", info=info))
    return TaskSet(tasks, name="icl")
