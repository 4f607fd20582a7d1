"""TAG: lookahead inter-task affinity during one multitask training (Fifty et al. 2021).

Every ``every`` optimisation steps, for each source task i: take the current
network, do one SGD step on task i's training loss alone (on the shared
parameters, with the optimiser's current learning rate, on a copy: the real
training is not changed), and measure how the loss of every target task j on
its current batch changed:

    Z_t[i, j] = 1 - L_j(theta - lr * grad L_i(theta)) / L_j(theta)

The affinity is the average of ``Z_t`` over the lookahead steps of the run.
Row i = source, column j = target (the project's convention); positive means a
step on i also lowers j's loss. One training gives the whole n x n matrix.

Details that are our choices (the paper leaves them open or uses its own code):
- "shared parameters" are all parameters outside the task heads
  (``net.heads`` when the network has one; otherwise every parameter, and then
  only the diagonal also sees the source head move);
- losses before and after are measured in eval mode (no dropout noise between
  the two) on the same batches the training step used;
- SGD lookahead even when the trainer uses Adam (the paper's definition), so
  values scale with ``lr``; ranks are what grouping uses.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from core.errors import InvalidInputError


def task_loss(kind: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The training loss of one task: cross-entropy (classification) or MSE (regression)."""
    if kind == "classification":
        return torch.nn.functional.cross_entropy(logits, targets.long())
    return torch.nn.functional.mse_loss(logits.reshape(-1).float(), targets.reshape(-1).float())


def shared_parameters(net: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters outside the per-task heads (all of them when no ``heads`` ModuleDict is found)."""
    if hasattr(net, "shared_parameters"):
        return list(net.shared_parameters())
    heads = getattr(net, "heads", None)
    head_ids = {id(p) for p in heads.parameters()} if isinstance(heads, torch.nn.Module) else set()
    return [p for p in net.parameters() if p.requires_grad and id(p) not in head_ids]


class LookaheadAffinity:
    """Training hook that accumulates TAG lookahead affinities.

    Parameters
    ----------
    tasks : sequence of str
        Task names, in matrix order.
    kinds : mapping of str to str
        ``"classification"`` or ``"regression"`` per task (selects the loss).
    every : int
        Lookahead every ``every`` steps (step 0 included).
    lr : float, optional
        Lookahead learning rate; default the optimiser's current ``lr``.
    loss_fn : callable, optional
        ``loss_fn(task, logits, targets) -> scalar tensor``; default :func:`task_loss`.

    Attributes
    ----------
    affinity_ : ndarray (n, n)
        Mean of ``1 - L_j(after)/L_j(before)`` over the lookahead steps so far.
    steps_ : int
        Number of lookahead steps taken.
    history_ : list of ndarray
        The per-step matrices (for uncertainty / plots).
    """

    def __init__(self, tasks: Sequence[str], kinds: Mapping[str, str], every: int = 5, lr: float | None = None,
                 loss_fn: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        if len(tasks) < 2:
            raise InvalidInputError(f"TAG lookahead needs at least 2 tasks, got {len(tasks)}.")
        if int(every) < 1:
            raise InvalidInputError(f"TAG lookahead interval every={every} must be >= 1.")
        missing = [t for t in tasks if t not in kinds]
        if missing:
            raise InvalidInputError(f"TAG lookahead: no task kind for {missing}.")
        self.tasks = tuple(tasks)
        self.kinds = dict(kinds)
        self.every = int(every)
        self.lr = lr
        self.loss_fn = loss_fn or (lambda t, logits, y: task_loss(self.kinds[t], logits, y))
        n = len(self.tasks)
        self._sum = np.zeros((n, n))
        self.steps_ = 0
        self.history_: list[np.ndarray] = []

    @property
    def affinity_(self) -> np.ndarray:
        if self.steps_ == 0:
            raise InvalidInputError("TAG lookahead: no lookahead step was taken (training ran fewer steps than "
                                    "'every'); lower 'every' or train longer.")
        return self._sum / self.steps_

    @property
    def uncertainty_(self) -> np.ndarray:
        """Standard error of the mean over lookahead steps (NaN with a single step)."""
        h = np.stack(self.history_)
        if len(h) < 2:
            return np.full(h.shape[1:], np.nan)
        return h.std(axis=0, ddof=1) / np.sqrt(len(h))

    def _losses(self, net: torch.nn.Module, batches: Mapping[str, tuple[Any, torch.Tensor]]) -> np.ndarray:
        with torch.no_grad():
            return np.array([float(self.loss_fn(t, net(batches[t][0], t), batches[t][1])) for t in self.tasks])

    def on_step(self, step: int, net: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                batches: Mapping[str, tuple[Any, torch.Tensor]]) -> None:
        """Take the lookahead measurements when ``step % every == 0``."""
        if step % self.every:
            return
        missing = [t for t in self.tasks if t not in batches]
        if missing:
            raise InvalidInputError(f"TAG lookahead: the training step has no batch for tasks {missing}.")
        lr = self.lr if self.lr is not None else (optimizer.param_groups[0]["lr"] if optimizer is not None else None)
        if lr is None or lr <= 0:
            raise InvalidInputError(f"TAG lookahead: learning rate {lr!r} must be > 0.")
        params = shared_parameters(net)
        was_training = net.training
        net.eval()
        try:
            before = self._losses(net, batches)
            saved = [p.detach().clone() for p in params]
            Z = np.zeros((len(self.tasks),) * 2)
            for i, src in enumerate(self.tasks):
                inputs, y = batches[src]
                loss = self.loss_fn(src, net(inputs, src), y)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        if g is not None:
                            p.sub_(lr * g)
                after = self._losses(net, batches)
                with torch.no_grad():
                    for p, s in zip(params, saved):
                        p.copy_(s)
                with np.errstate(divide="ignore", invalid="ignore"):
                    Z[i] = np.where(before > 0, 1.0 - after / before, 0.0)
        finally:
            net.train(was_training)
        self._sum += Z
        self.history_.append(Z)
        self.steps_ += 1


class TAGEstimator:
    """TAG lookahead affinities from one multitask training of all tasks.

    Parameters
    ----------
    every : int
        Lookahead every ``every`` training steps.
    lr : float, optional
        Lookahead SGD learning rate (default: the trainer's current one).

    Attributes
    ----------
    matrix_ : AffinityMatrix
        Row = source, column = target; uncertainty = standard error over lookahead steps.
    hook_ : LookaheadAffinity
    cost_ : dict
        ``trainings`` (1), ``seconds``, ``flops`` (the training's, plus the lookahead
        passes counted as 3 x forward per source task and 2 forwards per target).
    """

    name = "tag"

    def __init__(self, every: int = 5, lr: float | None = None):
        if int(every) < 1:
            raise InvalidInputError(f"TAG lookahead interval every={every} must be >= 1.")
        self.every = int(every)
        self.lr = lr

    def fit(self, taskset: Any, spec: Any, seed: int = 0, tasks: Sequence[str] | None = None) -> "TAGEstimator":
        import time

        from core.affinity import AffinityMatrix
        from core.estimation.backends import get_backend
        from core.estimation.training import prepare_taskset, train_multitask

        names = taskset.check_names(tasks) if tasks is not None else taskset.names
        backend = get_backend(spec.backend, **spec.options)
        prepared = prepare_taskset(backend, taskset)
        kinds = {n: prepared[n].kind for n in names}
        hook = LookaheadAffinity(names, kinds, every=self.every, lr=self.lr,
                                 loss_fn=lambda t, out, y: backend.loss(prepared[t], out, y).mean())
        start = time.perf_counter()
        model = train_multitask(prepared, names, spec, seed, hooks=hook)
        n = len(names)
        # per lookahead step: n source forward+backward, then n x n target forwards, plus n "before" forwards
        per_train_flops = model.flops / max(model.steps, 1)
        extra = hook.steps_ * per_train_flops * (1 + (n + 1) / 3)
        self.hook_ = hook
        self.cost_ = {"trainings": 1, "seconds": time.perf_counter() - start, "flops": model.flops + extra,
                      "lookahead_steps": hook.steps_}
        self.matrix_ = AffinityMatrix(
            names=names, values=hook.affinity_, metric="lookahead loss reduction 1 - L_j(after)/L_j(before)",
            estimator="tag", cost=self.cost_, seed=seed, uncertainty=hook.uncertainty_,
            counts=np.full((n, n), hook.steps_, dtype=float),
            notes=f"TAG lookahead (Fifty et al. 2021) every {self.every} steps over {model.steps} steps; SGD lookahead "
                  f"on shared (trunk) parameters.")
        return self
