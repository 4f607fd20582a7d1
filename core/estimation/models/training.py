"""Multi-task training under an equal budget, evaluation, and per-example losses.

Every subset of tasks gets the same budget: ``spec.steps`` optimisation steps, each on
one batch of *every* task in the subset (the step's loss is the sum of the tasks' mean
losses). Early stopping watches the mean validation loss of the subset's tasks every
``eval_every`` steps and restores the best weights.

Determinism: for a seed, the trunk initialisation, each task's head initialisation
and each task's batch order are fixed, and the latter two do not depend on which
other tasks are in the subset (see :func:`core.estimation.models.backends.base.task_seed`).
On CPU, rerunning a subset with the same seed and thread count gives identical numbers.

FLOPs rule (recorded per training): forward FLOPs of a batch = 2 x (trunk + head
parameters) x examples (x tokens per example for sequence backends); a training step
costs 3 x its forward FLOPs (forward + backward, the usual 6 x params x examples; a backend
whose lower layers are frozen counts the backward of its trained part only);
validation and test evaluations add their forward FLOPs. One-time feature preparation
(sentence embeddings, graph propagation) is not counted.
"""
from __future__ import annotations

import contextlib
import math
import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from core.devices import check_device, resolve_device
from core.errors import InvalidInputError
from core.estimation.data.tasks import SPLITS, Split, Task, TaskSet
from core.estimation.models.backends import BACKENDS, Backend, MultiTaskNet, get_backend, task_seed

EVAL_CHUNK = 1024
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainSpec:
    """How every subset is trained (the equal budget).

    Parameters
    ----------
    backend : str
        Backend name (``mlp``, ``transformer``, ``gpt2-icl``, ``graph``).
    steps : int
        Optimisation steps; each step uses one batch of every task in the subset.
    batch_size : int
        Examples per task per step.
    lr, weight_decay : float
        AdamW settings.
    eval_every : int
        Validation every this many steps (0: no validation, keep the final weights).
    patience : int
        Stop after this many validations without improvement (0: never stop early,
        still restore the best weights).
    device : str
        ``auto`` (GPU when present), ``cpu``, ``cuda`` or ``cuda:N`` (:mod:`core.devices`).
    precision : {"fp32", "bf16"}
        ``bf16``: mixed precision, the forward passes and losses of the training steps under
        ``torch.autocast(bfloat16)`` (on CUDA, or on the CPU where the CPU supports it); weights,
        optimizer state, gradients and evaluations stay float32.
    options : mapping
        Backend options (e.g. ``hidden`` for ``mlp``).
    """

    backend: str = "mlp"
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 50
    patience: int = 3
    device: str = "auto"
    options: Mapping[str, Any] = field(default_factory=dict)
    precision: str = "fp32"

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> InvalidInputError:
            return InvalidInputError(f"training option {name}={getattr(self, name)!r} {rule}.")

        if self.backend not in BACKENDS:
            raise InvalidInputError(f"training option backend={self.backend!r} is not one of {', '.join(BACKENDS.names())}.")
        for name, lo in (("steps", 1), ("batch_size", 1), ("eval_every", 0), ("patience", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise bad(name, f"must be an integer >= {lo}")
        for name, lo in (("lr", 0.0), ("weight_decay", 0.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo or (name == "lr" and v == 0):
                raise bad(name, "must be a positive number" if name == "lr" else "must be a number >= 0")
        check_device(self.device, "training option device")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if not isinstance(self.options, Mapping):
            raise bad("options", "must be a mapping of backend options")
        object.__setattr__(self, "options", dict(self.options))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "training") -> "TrainSpec":
        """Build from a config section; unknown keys fail with a message naming them."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"{where}: expected a mapping of training options, got {type(data).__name__}.")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"{where}: unknown training option(s) {unknown}; known: {', '.join(sorted(known))}.")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"options": dict(self.options)}


@dataclass(frozen=True)
class TaskScore:
    """Scores of one task on one split: ``metric`` as the task defines it, mean ``loss``, ``n`` examples."""

    metric: float
    loss: float
    n: int


@dataclass(frozen=True)
class TrainedModel:
    """A trained multi-task network and what is needed to evaluate it."""

    backend: Backend
    net: MultiTaskNet
    taskset: TaskSet  # the prepared task set
    device: torch.device
    steps: int
    flops: float
    seed: int = 0
    history: tuple[tuple[int, float], ...] = ()  # (step, mean validation loss) at each validation


@dataclass(frozen=True)
class SubsetOutcome:
    """What one subset training produced: scores of each task in the subset on the evaluated split."""

    subset: tuple[str, ...]
    seed: int
    scores: dict[str, TaskScore]
    seconds: float
    flops: float
    steps: int


def perf(task: Task, score: TaskScore) -> float:
    """The score used in affinities: higher is always better."""
    return float(score.metric) if task.higher_is_better else -float(score.metric)


# Prepared task sets, per (task set object, backend description): preparing is one-time work.
_PREPARED: dict[tuple[int, str], tuple[weakref.ref, TaskSet]] = {}


def prepare_taskset(backend: Backend, taskset: TaskSet) -> TaskSet:
    """``backend.prepare(taskset)``, memoised for the lifetime of ``taskset``."""
    key = (id(taskset), repr(sorted(backend.describe().items())))
    hit = _PREPARED.get(key)
    if hit is not None and hit[0]() is taskset:
        return hit[1]
    prepared = backend.prepare(taskset)
    # The callback holds the dict itself: at interpreter exit the module global may already be None.
    _PREPARED[key] = (weakref.ref(taskset, lambda _r, k=key, memo=_PREPARED: memo.pop(k, None)), prepared)
    return prepared


class _BatchStream:
    """Batches of one task's train split: a fresh permutation each epoch, seeded per task."""

    def __init__(self, split: Split, batch_size: int, seed: int):
        self.split = split
        self.size = min(batch_size, len(split))
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(split))
        self.pos = 0

    def next(self) -> Split:
        if self.pos + self.size > len(self.order):
            self.order = self.rng.permutation(len(self.split))
            self.pos = 0
        idx = np.sort(self.order[self.pos:self.pos + self.size])
        self.pos += self.size
        return self.split.take(idx)


def _load_init(net: MultiTaskNet, init: Any) -> None:
    if isinstance(init, MultiTaskNet):
        net.trunk.load_state_dict(init.trunk.state_dict())
        for name in set(net.tasks) & set(init.tasks):
            net.head(name).load_state_dict(init.head(name).state_dict())
    elif isinstance(init, Mapping):
        try:
            net.load_state_dict(init)
        except RuntimeError as exc:
            raise InvalidInputError(f"init weights do not fit this model: {str(exc).splitlines()[0]}") from None
    else:
        raise InvalidInputError(f"init must be a MultiTaskNet or a state dict, got {type(init).__name__}.")


def _outputs(backend: Backend, net: MultiTaskNet, task: Task, split: Split, device: torch.device,
             chunk: int) -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
    outs, ys, flops = [], [], 0.0
    for start in range(0, len(split), chunk):
        part = split.take(np.arange(start, min(start + chunk, len(split))))
        x, y = backend.batch(task, part, device)
        outs.append(net(x, task.name))
        ys.append(y)
        flops += backend.forward_flops(net, task.name, x, len(part))
    return outs, ys, flops


@torch.no_grad()
def _split_losses(backend: Backend, net: MultiTaskNet, task: Task, split: Split, device: torch.device
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per-example losses, predictions and targets of a whole split (eval mode), and its forward FLOPs."""
    was = net.training
    net.eval()
    try:
        chunk = getattr(backend, "eval_batch_size", EVAL_CHUNK)
        outs, ys, flops = _outputs(backend, net, task, split, device, chunk)
        losses = torch.cat([backend.loss(task, o, y) for o, y in zip(outs, ys)])
        preds = torch.cat([backend.predict(task, o) for o in outs])
        targets = torch.cat(ys)
    finally:
        net.train(was)
    return (losses.double().cpu().numpy(), preds.cpu().numpy(), targets.cpu().numpy(), flops)


def _metric(task: Task, preds: np.ndarray, targets: np.ndarray, losses: np.ndarray) -> float:
    if task.metric == "accuracy":
        return float(np.mean(preds == targets))
    if task.metric == "f1":
        from sklearn.metrics import f1_score

        average = "binary" if task.n_classes == 2 else "macro"
        return float(f1_score(targets, preds, average=average, labels=list(range(task.n_classes)), zero_division=0))
    mse = float(np.mean((preds.astype(np.float64) - targets.astype(np.float64)) ** 2))
    return mse if task.metric == "mse" else -mse


def train_multitask(taskset: TaskSet, tasks: Sequence[str], spec: TrainSpec, seed: int, *,
                    hooks: Any = None, init: Any = None) -> TrainedModel:
    """Train one network on the tasks ``tasks`` of ``taskset`` under ``spec``'s budget.

    Parameters
    ----------
    taskset : TaskSet
        Tasks as loaded; the backend prepares them once (memoised per task set).
    tasks : sequence of str
        The subset to train together (validated, put in task-set order).
    spec : TrainSpec
    seed : int
    hooks : object, optional
        May define ``on_step(step, net, optimizer, batches)``, called at the start of every
        step (``step`` counts from 0) *before* the update, with ``batches`` the
        ``{task: (inputs, targets)}`` this step will train on (TAG lookahead uses it; the
        hook may compute its own gradients, they are cleared before the update), and
        ``on_eval(step, net, val_loss)`` after each validation.
    init : MultiTaskNet or state dict, optional
        Starting weights: a net's trunk and the heads of the tasks both nets share, or a
        full state dict of a net with the same tasks.

    Returns
    -------
    TrainedModel
        Best weights by mean validation loss (or the final ones when ``eval_every`` is 0).
    """
    if not isinstance(spec, TrainSpec):
        raise InvalidInputError(f"spec must be a TrainSpec, got {type(spec).__name__}.")
    seed = int(seed)
    backend = get_backend(spec.backend, **spec.options)
    prepared = prepare_taskset(backend, taskset)
    names = prepared.check_names(tasks)
    device = resolve_device(spec.device, "training option device")
    on_step = getattr(hooks, "on_step", None)
    on_eval = getattr(hooks, "on_eval", None)

    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        net = backend.build(prepared, names, seed).to(device)
        if init is not None:
            _load_init(net, init)
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, foreach=True)
        streams = {n: _BatchStream(prepared[n].train, spec.batch_size, task_seed(seed, n)) for n in names}
        best = _BestWeights(spec.patience)
        flops = 0.0
        step = 0
        net.train()
        while step < spec.steps:
            batches = {n: backend.batch(prepared[n], streams[n].next(), device) for n in names}
            if on_step is not None:
                on_step(step, net, optimizer, batches)
            flops += _update(backend, prepared, net, optimizer, batches, spec.precision)
            step += 1
            if spec.eval_every and (step % spec.eval_every == 0 or step == spec.steps):
                val_loss, f = _validation_loss(backend, prepared, net, names, device)
                flops += f
                if on_eval is not None:
                    on_eval(step, net, val_loss)
                if best.update(step, val_loss, net):
                    break
        best.restore(net)
    net.eval()
    return TrainedModel(backend=backend, net=net, taskset=prepared, device=device, steps=step, flops=flops,
                        seed=seed, history=tuple(best.history))


def _autocast(precision: str, device: torch.device) -> Any:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _update(backend: Backend, prepared: TaskSet, net: MultiTaskNet, optimizer: Any,
            batches: dict[str, tuple[Any, Any]], precision: str = "fp32") -> float:
    """One optimizer step on the sum of the tasks' mean losses; returns its FLOPs."""
    optimizer.zero_grad(set_to_none=True)
    total, flops = 0.0, 0.0
    device = next(net.parameters()).device
    with _autocast(precision, device):  # forward and losses only: autocast's rule, backward outside it
        for n, (x, y) in batches.items():
            total = total + backend.loss(prepared[n], net(x, n), y).float().mean()
            flops += backend.train_flops(net, n, x, len(y))
    total.backward()
    optimizer.step()
    return flops


def _validation_loss(backend: Backend, prepared: TaskSet, net: MultiTaskNet, names: Sequence[str],
                     device: Any) -> tuple[float, float]:
    """Mean over tasks of the mean validation loss, and the FLOPs it took."""
    val, flops = [], 0.0
    for n in names:
        losses, _, _, f = _split_losses(backend, net, prepared[n], prepared[n].val, device)
        val.append(float(losses.mean()))
        flops += f
    return float(np.mean(val)), flops


class _BestWeights:
    """Keeps the weights of the best validation loss; says when ``patience`` evaluations brought no gain."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.loss, self.state, self.bad = math.inf, None, 0
        self.history: list[tuple[int, float]] = []

    def update(self, step: int, val_loss: float, net: MultiTaskNet) -> bool:
        """Record ``val_loss``; True when training should stop early."""
        self.history.append((step, val_loss))
        if val_loss < self.loss - 1e-12:
            self.loss, self.bad = val_loss, 0
            self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            return False
        self.bad += 1
        return bool(self.patience and self.bad >= self.patience)

    def restore(self, net: MultiTaskNet) -> None:
        if self.state is not None:
            net.load_state_dict(self.state)


def _check(model: TrainedModel, task: str, split: str) -> Task:
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    t = model.taskset[task]
    model.net.head(task)
    return t


def _evaluate(model: TrainedModel, task: str, split: str) -> tuple[TaskScore, float]:
    t = _check(model, task, split)
    losses, preds, targets, flops = _split_losses(model.backend, model.net, t, t.split(split), model.device)
    return TaskScore(metric=_metric(t, preds, targets, losses), loss=float(losses.mean()), n=len(losses)), flops


def evaluate(model: TrainedModel, task: str, split: str = "test") -> TaskScore:
    """Metric, mean loss and size of ``task``'s ``split`` under the trained model."""
    return _evaluate(model, task, split)[0]


def per_sample_loss(model: TrainedModel, task: str, split: str) -> np.ndarray:
    """Loss of every example of ``task``'s ``split``, shape (n,), in split order."""
    t = _check(model, task, split)
    return _split_losses(model.backend, model.net, t, t.split(split), model.device)[0]


def train_and_evaluate(taskset: TaskSet, subset: Sequence[str], spec: TrainSpec, seed: int,
                       split: str = "test") -> SubsetOutcome:
    """Train on ``subset`` and score every task of it on ``split`` (what executors call)."""
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    start = time.perf_counter()
    model = train_multitask(taskset, subset, spec, seed)
    scores, flops = {}, model.flops
    for name in model.net.tasks:
        score, f = _evaluate(model, name, split)
        scores[name] = score
        flops += f
    return SubsetOutcome(subset=tuple(model.net.tasks), seed=int(seed), scores=scores,
                         seconds=time.perf_counter() - start, flops=flops, steps=model.steps)
