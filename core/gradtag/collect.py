"""Compute every training sample's projected gradient at the base model into a resumable store.

Rows are ordered task by task (task-set order), each task's training split cut
into batches of ``batch_size``; a batch never mixes tasks because the model's
forward pass takes the task name. Each finished batch is written to the
:class:`~core.gradtag.store.GradientStore` before the next starts, so a crash or
kill loses at most the batch in flight.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from core.errors import InvalidInputError
from core.estimation.data.tasks import Split, Task, TaskSet
from core.gradtag.gradients import GradientComputer
from core.gradtag.projector import Projector
from core.gradtag.store import GradientStore

MakeBatch = Callable[[Task, Split], tuple[Any, torch.Tensor]]


def plan_batches(taskset: TaskSet, tasks: Sequence[str], batch_size: int) -> list[tuple[str, int, int]]:
    """``(task, start_row, stop_row)`` for every batch; rows are global over the tasks' train splits."""
    if int(batch_size) < 1:
        raise InvalidInputError(f"gradient batch_size={batch_size!r} must be a positive integer.")
    out, row = [], 0
    for name in tasks:
        n = len(taskset[name].train)
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            out.append((name, row + lo, row + hi))
        row += n
    return out


def model_fingerprint(model: torch.nn.Module, names: Sequence[str]) -> str:
    """Hash of the differentiated parameters' values (a store is only valid for these weights)."""
    h = hashlib.sha256()
    params = dict(model.named_parameters())
    for n in names:
        h.update(n.encode())
        h.update(params[n].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def collect_gradients(model: torch.nn.Module, taskset: TaskSet, tasks: Sequence[str], make_batch: MakeBatch,
                      computer: GradientComputer, projector: Projector, store: GradientStore,
                      batch_size: int = 64, on_batch: Callable[[int], None] | None = None,
                      extra_meta: dict[str, Any] | None = None) -> tuple[GradientStore, dict[str, float]]:
    """Fill (or resume) ``store`` (a :class:`~core.gradtag.store.GradientStore` stage).

    Returns the store and timings ``{"seconds", "batches_computed", "samples_computed"}``
    for this call (batches resumed from disk are not recomputed and not counted).
    ``on_batch(index)`` is called after each batch is safely stored.
    """
    computer.bind(model)
    if projector.n_params != computer.n_params_:
        raise InvalidInputError(f"projector has {projector.n_params} rows but {computer.n_params_} parameters are "
                                "differentiated; build the projector from the gradient computer's n_params_.")
    for name in tasks:
        if taskset[name].kind not in ("classification", "regression"):
            raise InvalidInputError(f"task {name!r}: unsupported kind {taskset[name].kind!r}.")
    batches = plan_batches(taskset, tasks, batch_size)
    targets = np.concatenate([np.asarray(taskset[t].train.targets, dtype=np.float32) for t in tasks])
    task_index = np.concatenate([np.full(len(taskset[t].train), i, dtype=np.int32) for i, t in enumerate(tasks)])
    meta = {"tasks": list(tasks), "params": list(computer.names_), "projector": projector.header(),
            "model": model_fingerprint(model, computer.names_), "data": {t: taskset[t].fingerprint() for t in tasks},
            **(extra_meta or {})}
    store = store.create_or_resume(dim=projector.dim, batches=batches, targets=targets,
                                           task_index=task_index, meta=meta)
    starts = {t: min(b[1] for b in batches if b[0] == t) for t in tasks}
    t0, computed, samples = time.perf_counter(), 0, 0
    for index in range(store.completed, len(batches)):
        name, lo, hi = batches[index]
        task = taskset[name]
        local = np.arange(lo - starts[name], hi - starts[name])
        inputs, y = make_batch(task, task.train.take(local))
        grads, margins = computer.compute(model, inputs, y, task.kind, kwargs={"task": name})
        feats = projector.project(grads)
        store.write_batch(index, feats.cpu().numpy(), margins.float().cpu().numpy())
        computed += 1
        samples += hi - lo
        if on_batch is not None:
            on_batch(index)
    return store, {"seconds": time.perf_counter() - t0, "batches_computed": computed, "samples_computed": samples}
