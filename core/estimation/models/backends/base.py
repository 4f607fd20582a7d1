"""Model backends: a shared trunk with one head per task, and how to feed it.

A :class:`Backend` knows three things about a family of models:

* ``prepare``: a one-time conversion of a task set (texts -> cached sentence
  embeddings, graph nodes -> propagated features); tasks already in the right
  form pass through unchanged;
* ``build``: a :class:`MultiTaskNet` for a subset of tasks, initialised from a seed;
* ``batch``: model inputs and target tensors for (a slice of) one split.

Losses and the FLOPs rule live here too so that training code stays generic.
"""
from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from core.errors import InvalidInputError
from core.estimation.data.tasks import Split, Task, TaskSet


def task_seed(seed: int, name: str) -> int:
    """A seed for one task's random streams that does not depend on the other tasks of a subset.

    Heads and batch orders seeded this way make ``{v}`` and ``{u, v}`` differ only by
    what ``u`` contributes, not by a reshuffled initialisation of ``v``'s head.
    """
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


def out_dim(task: Task) -> int:
    """Head width: one logit per class, one output for regression."""
    return int(task.n_classes) if task.kind == "classification" else 1


def build_heads(taskset: TaskSet, tasks: Sequence[str], width: int, seed: int) -> tuple[dict, dict]:
    """One linear head per task, each seeded from (seed, task name) so a task's head is the same in every subset."""
    heads, kinds = {}, {}
    for name in tasks:
        task = taskset[name]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(task_seed(seed, name))
            heads[name] = nn.Linear(width, out_dim(task))
        kinds[name] = task.kind
    return heads, kinds


class MultiTaskNet(nn.Module):
    """A shared trunk and one head per task.

    Parameters
    ----------
    trunk : nn.Module
        Maps model inputs to a shared representation (``nn.Identity`` for no sharing).
    heads : mapping of task name -> nn.Module
        One head per task; its output is (b, C) logits or (b, 1) / (b,) regression values.
    kinds : mapping of task name -> "classification" | "regression"
    """

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module], kinds: Mapping[str, str]):
        super().__init__()
        self.trunk = trunk
        self.tasks: tuple[str, ...] = tuple(heads)
        # ModuleDict keys may not contain "." and must not clash with attributes, so task names are mapped.
        self._keys = {name: f"t{i}" for i, name in enumerate(self.tasks)}
        self.heads = nn.ModuleDict({self._keys[n]: h for n, h in heads.items()})
        self.kinds = dict(kinds)

    def head(self, task: str) -> nn.Module:
        try:
            return self.heads[self._keys[task]]
        except KeyError:
            raise InvalidInputError(f"this model has no head for task {task!r}; its tasks are {list(self.tasks)}.") from None

    def represent(self, inputs: Any) -> torch.Tensor:
        """The shared representation (trunk output)."""
        return self.trunk(inputs)

    def forward(self, inputs: Any, task: str) -> torch.Tensor:
        out = self.head(task)(self.represent(inputs))
        if self.kinds[task] == "regression" and out.dim() >= 2 and out.shape[-1] == 1:
            out = out.squeeze(-1)
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters of the trunk (what tasks share; Grad-TAG and TAG look at these)."""
        return [p for p in self.trunk.parameters() if p.requires_grad]

    def task_parameter_count(self, task: str) -> int:
        """Parameters one example of ``task`` passes through (trunk + its head)."""
        cache = self.__dict__.setdefault("_param_counts", {})
        if task not in cache:
            cache[task] = self._count(task)
        return cache[task]

    def _count(self, task: str) -> int:
        return sum(p.numel() for p in self.trunk.parameters()) + sum(p.numel() for p in self.head(task).parameters())


class Backend(ABC):
    """Base class of model backends; see :func:`core.estimation.models.backends.get_backend`.

    Options are keyword arguments of ``__init__``; subclasses validate them there
    so that a bad option fails before any training.
    """

    name: ClassVar[str] = ""

    def __init__(self, **options: Any):
        if options:
            raise InvalidInputError(
                f"backend {self.name!r} got unknown option(s) {sorted(options)}; see its docstring for the options it takes.")

    # -- data -------------------------------------------------------------------------
    def prepare(self, taskset: TaskSet) -> TaskSet:
        """One-time conversion of the task set; the default checks the input kinds."""
        self.check_inputs(taskset)
        return taskset

    def check_inputs(self, taskset: TaskSet) -> None:
        accepted = self.input_kinds()
        for task in taskset.values():
            if task.input_kind not in accepted:
                raise InvalidInputError(
                    f"task {task.name!r} has {task.input_kind!r} inputs, which backend {self.name!r} does not take "
                    f"(it takes {', '.join(accepted)}); pick another backend in the config.")

    def input_kinds(self) -> tuple[str, ...]:
        return ("features",)

    @abstractmethod
    def build(self, taskset: TaskSet, tasks: Sequence[str], seed: int) -> MultiTaskNet:
        """A fresh network with one head per task in ``tasks``, initialised from ``seed``."""

    @abstractmethod
    def batch(self, task: Task, split: Split, device: torch.device) -> tuple[Any, torch.Tensor]:
        """Model inputs and targets (on ``device``) for the examples of ``split``."""

    def targets(self, task: Task, split: Split, device: torch.device) -> torch.Tensor:
        y = np.asarray(split.targets)
        if task.kind == "classification":
            return torch.as_tensor(y.astype(np.int64), device=device)
        return torch.as_tensor(y.astype(np.float32), device=device)

    # -- losses and predictions -----------------------------------------------------------
    def loss(self, task: Task, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-example loss, shape (b,): cross-entropy for classification, squared error for regression."""
        if task.kind == "classification":
            return nn.functional.cross_entropy(outputs, targets, reduction="none")
        err = (outputs - targets) ** 2
        return err.reshape(err.shape[0], -1).mean(dim=1)

    def predict(self, task: Task, outputs: torch.Tensor) -> torch.Tensor:
        """Predictions from outputs: class ids or regression values."""
        return outputs.argmax(dim=-1) if task.kind == "classification" else outputs

    # -- cost -----------------------------------------------------------------------------
    def forward_flops(self, net: MultiTaskNet, task: str, inputs: Any, n: int) -> float:
        """Forward FLOPs of ``n`` examples: 2 x parameters on the example's path x examples.

        Training counts 3 x this (forward + backward), i.e. the usual 6 x params x examples
        rule for dense nets; backends with token sequences multiply by tokens per example.
        """
        return 2.0 * net.task_parameter_count(task) * n

    def train_flops(self, net: MultiTaskNet, task: str, inputs: Any, n: int) -> float:
        """FLOPs of one training forward + backward: 3 x the forward FLOPs (backward = 2 x forward)."""
        return 3.0 * self.forward_flops(net, task, inputs, n)

    def describe(self) -> dict[str, Any]:
        """Backend name and options, recorded in run manifests."""
        return {"backend": self.name}
