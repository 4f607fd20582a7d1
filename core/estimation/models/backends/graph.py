"""``graph`` backend: SGC-style propagated node features plus the ``mlp`` trunk and heads.

``prepare`` computes ``P = A_hat^k X`` once per task set (``A_hat = D^-1/2 (A + I) D^-1/2``,
Wu et al. 2019 "Simplifying Graph Convolutional Networks") and turns every node task into
a feature task whose inputs are the rows of ``P`` for its nodes. ``X`` is the graph's own
node features (``taskset.context["graph"]["features"]``) or, for graphs without features,
a ``dim``-dimensional spectral embedding (randomized SVD of the normalised adjacency).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from core.errors import InvalidInputError
from core.estimation.models.backends.mlp import MLPBackend
from core.estimation.data.tasks import Split, TaskSet


def normalized_adjacency(adjacency):
    import scipy.sparse as sp

    a = sp.csr_matrix(adjacency, dtype=np.float64) + sp.identity(adjacency.shape[0], format="csr")
    d = np.asarray(a.sum(axis=1)).ravel()
    inv = sp.diags(1.0 / np.sqrt(d))
    return (inv @ a @ inv).tocsr()


def spectral_features(adjacency, dim: int, seed: int = 0) -> np.ndarray:
    from sklearn.utils.extmath import randomized_svd

    dim = min(int(dim), adjacency.shape[0] - 1)
    u, s, _ = randomized_svd(normalized_adjacency(adjacency), n_components=dim, random_state=seed)
    return u * np.sqrt(s)


def propagate(adjacency, features: np.ndarray, k: int) -> np.ndarray:
    a_hat = normalized_adjacency(adjacency)
    x = np.asarray(features, dtype=np.float64)
    for _ in range(int(k)):
        x = a_hat @ x
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)  # standardised so one lr fits graphs of any size
    return x.astype(np.float32)


class GraphBackend(MLPBackend):
    """Node classification: propagated features into an MLP trunk with one head per task.

    Parameters
    ----------
    k : int, default 2
        Propagation hops.
    dim : int, default 64
        Spectral-embedding width when the graph has no node features.
    hidden, activation, dropout :
        As for the ``mlp`` backend.
    """

    name = "graph"

    def __init__(self, k: int = 2, dim: int = 64, hidden: Any = 64, activation: str = "relu", dropout: float = 0.0,
                 **options: Any):
        super().__init__(hidden=hidden, activation=activation, dropout=dropout, **options)
        if int(k) < 0 or int(dim) < 1:
            raise InvalidInputError(f"backend 'graph': k={k} must be >= 0 and dim={dim} >= 1.")
        self.k, self.dim = int(k), int(dim)

    def input_kinds(self) -> tuple[str, ...]:
        return ("graph_nodes", "features")

    def prepare(self, taskset: TaskSet) -> TaskSet:
        self.check_inputs(taskset)
        if all(t.input_kind == "features" for t in taskset.values()):
            return taskset
        graph = taskset.context.get("graph")
        if not graph or graph.get("adjacency") is None:
            raise InvalidInputError(f"{taskset.name}: node tasks need a graph in the task set's context (graph.adjacency).")
        adj = graph["adjacency"]
        x = graph.get("features")
        x = spectral_features(adj, self.dim) if x is None else np.asarray(x)
        if x.shape[0] != adj.shape[0]:
            raise InvalidInputError(f"{taskset.name}: node features have {x.shape[0]} rows for {adj.shape[0]} nodes.")
        p = propagate(adj, x, self.k)
        tasks = []
        for t in taskset.values():
            if t.input_kind == "graph_nodes":
                splits = {s: Split(p[np.asarray(getattr(t, s).inputs)], getattr(t, s).targets) for s in ("train", "val", "test")}
                t = replace(t, **splits, input_kind="features")
            tasks.append(t)
        return TaskSet(tasks, context={**taskset.context, "propagated": p}, name=taskset.name)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"backend": self.name, "k": self.k, "dim": self.dim}
