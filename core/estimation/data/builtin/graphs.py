"""Graphs with planted communities (networkx generators) as node-classification tasks.

One binary task per community ("is this node in community c?"), on a balanced node sample
per task (see :func:`core.estimation.data.loaders.graph_tasks`); the ``graph`` backend feeds
propagated features to an MLP. Communities sit in ``super_groups`` super-communities with
denser links between communities of the same super-community, so tasks of one
super-community are related (their group is recorded in ``Task.group``).
"""
from __future__ import annotations

import numpy as np

from core.errors import InvalidInputError
from core.estimation.data.loaders import graph_tasks
from core.estimation.data.tasks import TaskSet


def sbm_tasks(n_communities: int = 8, community_size: int = 60, super_groups: int = 2, p_in: float = 0.15,
              p_group: float = 0.03, p_out: float = 0.005, seed: int = 0) -> TaskSet:
    """A stochastic block model: ``n_communities`` blocks of ``community_size`` nodes.

    Edge probability ``p_in`` inside a block, ``p_group`` between blocks of the same
    super-group, ``p_out`` otherwise.
    """
    from dataclasses import replace

    import networkx as nx


    if n_communities < 2 or community_size < 8 or super_groups < 1 or n_communities % super_groups:
        raise InvalidInputError(
            f"sbm tasks: need n_communities >= 2 divisible by super_groups >= 1, community_size >= 8 "
            f"(got {n_communities}, {super_groups}, {community_size}).")
    for name, p in (("p_in", p_in), ("p_group", p_group), ("p_out", p_out)):
        if not 0 <= p <= 1:
            raise InvalidInputError(f"sbm tasks: {name}={p} must be a probability.")
    per = n_communities // super_groups
    group = [c // per for c in range(n_communities)]
    probs = [[p_in if a == b else p_group if group[a] == group[b] else p_out for b in range(n_communities)]
             for a in range(n_communities)]
    g = nx.stochastic_block_model([community_size] * n_communities, probs, seed=seed)
    adj = nx.to_scipy_sparse_array(g, format="csr", dtype=np.float32)
    blocks = np.repeat(np.arange(n_communities), community_size)
    y = (blocks[:, None] == np.arange(n_communities)[None, :]).astype(np.int64)
    ts = graph_tasks(adj, y, [f"c{c}" for c in range(n_communities)], min_positive=1, seed=seed, name="sbm",
                     source="networkx stochastic_block_model")
    tasks = [replace(t, group=f"s{group[int(t.name[1:])]}") for t in ts.values()]
    return TaskSet(tasks, context=ts.context, name="sbm")


def lfr_tasks(n: int = 250, tau1: float = 3.0, tau2: float = 1.5, mu: float = 0.1, average_degree: float = 5,
              min_community: int = 20, max_tasks: int = 12, seed: int = 10) -> TaskSet:
    """An LFR benchmark graph (networkx); one task per community, the ``max_tasks`` largest."""
    import networkx as nx


    try:
        g = nx.LFR_benchmark_graph(n, tau1, tau2, mu, average_degree=average_degree, min_community=min_community,
                                   seed=seed)
    except nx.ExceededMaxIterations:
        raise InvalidInputError("lfr tasks: networkx could not build this LFR graph; change mu, degrees or seed.") from None
    comms = sorted({frozenset(g.nodes[v]["community"]) for v in g}, key=lambda c: (-len(c), min(c)))[:max_tasks]
    nodes = list(g.nodes)
    y = np.array([[v in c for c in comms] for v in nodes], dtype=np.int64)
    adj = nx.to_scipy_sparse_array(g, nodelist=nodes, format="csr", dtype=np.float32)
    return graph_tasks(adj, y, [f"c{i}" for i in range(len(comms))], min_positive=1, seed=seed, name="lfr",
                       source="networkx LFR_benchmark_graph")
