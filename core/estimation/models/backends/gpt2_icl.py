"""``gpt2-icl`` backend: a small GPT-2 that learns function classes in context (Garg et al. 2022).

A prompt ``(x_1, y_1, ..., x_m, y_m)`` becomes a sequence of ``2m`` tokens of width
``d + 1``: ``[x_i, 0]`` and ``[0, y_i]`` (Garg et al. put ``y_i`` in the first coordinate
of a zero vector of width ``d``; an extra coordinate keeps x and y apart). A linear
read-in maps tokens to ``n_embd``, a randomly initialised GPT-2 (``transformers.GPT2Model``,
no download) runs causally over them, and each task's linear read-out predicts ``y_i``
from the hidden state at ``x_i``'s position, i.e. from ``x_1, y_1, ..., x_i``. The shared
trunk is the read-in and the GPT-2; the heads are the read-outs. The loss is the mean
squared error over the prompt's positions (the base backend's regression loss).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from core.errors import InvalidInputError
from core.estimation.models.backends.base import Backend, MultiTaskNet, task_seed
from core.estimation.data.tasks import Split, Task, TaskSet


def icl_shape(taskset: TaskSet, tasks: Sequence[str]) -> tuple[int, int]:
    """(points per prompt, dim of x) shared by ``tasks``."""
    shapes = {}
    for name in tasks:
        x = np.asarray(taskset[name].train.inputs)
        y = np.asarray(taskset[name].train.targets)
        if x.ndim != 3 or y.shape != x.shape[:2]:
            raise InvalidInputError(
                f"task {name!r}: backend 'gpt2-icl' needs prompts with inputs (n, points, dim) and targets (n, points); "
                f"got {x.shape} and {y.shape}.")
        shapes[name] = x.shape[1:]
    if len(set(shapes.values())) > 1:
        raise InvalidInputError(f"backend 'gpt2-icl': tasks trained together need the same prompt shape; got {shapes}.")
    return next(iter(shapes.values()))


class ICLTrunk(nn.Module):
    """Read-in + GPT-2 over interleaved (x, y) tokens; returns hidden states at the x positions (b, m, n_embd)."""

    def __init__(self, dim: int, n_points: int, n_embd: int, n_layer: int, n_head: int, dropout: float):
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        config = GPT2Config(n_positions=2 * n_points, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                            resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, use_cache=False,
                            vocab_size=1, bos_token_id=0, eos_token_id=0)  # inputs_embeds only: no token table use
        self.dim = dim
        self.read_in = nn.Linear(dim + 1, n_embd)
        self.gpt2 = GPT2Model(config)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        xs, ys = inputs
        b, m, d = xs.shape
        tokens = xs.new_zeros(b, m, 2, d + 1)
        tokens[:, :, 0, :d] = xs
        tokens[:, :, 1, d] = ys
        hidden = self.gpt2(inputs_embeds=self.read_in(tokens.reshape(b, 2 * m, d + 1))).last_hidden_state
        return hidden[:, 0::2, :]


class GPT2ICLBackend(Backend):
    """A small GPT-2 trained on in-context prompts, one read-out head per task.

    Parameters
    ----------
    n_layer, n_embd, n_head : int, default 2, 64, 2
        GPT-2 size (Garg et al. use 12 / 256 / 8; these defaults train on a CPU).
    dropout : float, default 0.0
    """

    name = "gpt2-icl"
    eval_batch_size = 256

    def __init__(self, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, dropout: float = 0.0, **options: Any):
        super().__init__(**options)
        for key, v in (("n_layer", n_layer), ("n_embd", n_embd), ("n_head", n_head)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InvalidInputError(f"backend 'gpt2-icl': {key}={v!r} must be an integer >= 1.")
        if n_embd % n_head:
            raise InvalidInputError(f"backend 'gpt2-icl': n_embd={n_embd} must be divisible by n_head={n_head}.")
        if not isinstance(dropout, (int, float)) or not 0.0 <= float(dropout) < 1.0:
            raise InvalidInputError(f"backend 'gpt2-icl': dropout={dropout!r} must be in [0, 1).")
        self.n_layer, self.n_embd, self.n_head, self.dropout = int(n_layer), int(n_embd), int(n_head), float(dropout)

    def input_kinds(self) -> tuple[str, ...]:
        return ("icl",)

    def prepare(self, taskset: TaskSet) -> TaskSet:
        self.check_inputs(taskset)
        for name in taskset.names:
            icl_shape(taskset, [name])
        return taskset

    def build(self, taskset: TaskSet, tasks: Sequence[str], seed: int) -> MultiTaskNet:
        m, d = icl_shape(taskset, tasks)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            trunk = ICLTrunk(d, m, self.n_embd, self.n_layer, self.n_head, self.dropout)
        heads, kinds = {}, {}
        for name in tasks:
            if taskset[name].kind != "regression":
                raise InvalidInputError(f"task {name!r}: backend 'gpt2-icl' predicts real values; the task must be a regression.")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(task_seed(seed, name))
                heads[name] = nn.Linear(self.n_embd, 1)
            kinds[name] = "regression"
        return MultiTaskNet(trunk, heads, kinds)

    def batch(self, task: Task, split: Split, device: torch.device) -> tuple[Any, torch.Tensor]:
        xs = torch.as_tensor(np.asarray(split.inputs, dtype=np.float32), device=device)
        ys = self.targets(task, split, device)
        return (xs, ys), ys

    def forward_flops(self, net: MultiTaskNet, task: str, inputs: Any, n: int) -> float:
        """2 x trunk parameters x tokens (2 per point) + 2 x head parameters x points; position table left out."""
        cache = net.__dict__.setdefault("_flop_params", {})
        if "trunk" not in cache:
            emb = {id(p) for mod in net.trunk.modules() if isinstance(mod, nn.Embedding) for p in mod.parameters()}
            cache["trunk"] = sum(p.numel() for p in net.trunk.parameters() if id(p) not in emb)
        if task not in cache:
            cache[task] = sum(p.numel() for p in net.head(task).parameters())
        points = int(inputs[0].shape[1])
        return 2.0 * n * (cache["trunk"] * 2 * points + cache[task] * points)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "n_layer": self.n_layer, "n_embd": self.n_embd, "n_head": self.n_head,
                "dropout": self.dropout}
