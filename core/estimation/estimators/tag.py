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

from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch

from core.errors import InvalidInputError
from core.estimation.estimators.base import EstimationContext, Estimator, cost_of, require_outcomes, select
from core.estimation.runs.store import Job, JobResult, Score
from core.matrix.affinity import AffinityMatrix


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


class LookaheadTracker:
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


def lookahead_training(prepared: Any, names: Sequence[str], spec: Any, seed: int, *, every: int,
                       lr: float | None = None) -> tuple[Any, LookaheadTracker, float]:
    """One multitask training of ``names`` with the lookahead hook; returns ``(model, hook, flops)``.

    ``flops`` is the training's plus the lookahead passes: per lookahead step, n source
    forward+backward passes, n x n target forwards and n "before" forwards, each counted as a
    third of a training step's cost per task.
    """
    from core.estimation.models.backends import get_backend
    from core.estimation.models.training import train_multitask

    backend = get_backend(spec.backend, **spec.options)
    kinds = {n: prepared[n].kind for n in names}
    hook = LookaheadTracker(names, kinds, every=every, lr=lr,
                             loss_fn=lambda t, out, y: backend.loss(prepared[t], out, y).mean())
    model = train_multitask(prepared, names, spec, seed, hooks=hook)
    per_train_flops = model.flops / max(model.steps, 1)
    extra = hook.steps_ * per_train_flops * (1 + (len(names) + 1) / 3)
    return model, hook, model.flops + extra


def _notes(every: int, steps: int, extra: str = "") -> str:
    return (f"TAG lookahead (Fifty et al. 2021) every {every} steps over {steps} training steps{extra}; SGD "
            "lookahead on shared (trunk) parameters; diagonal = a task's lookahead on itself")


class TAG:
    """TAG lookahead affinities from one multitask training of all tasks, outside a run folder
    (see :class:`TAGAffinity` for ``--estimator tag``).

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
    hook_ : LookaheadTracker
    cost_ : dict
        ``trainings`` (1), ``seconds``, ``flops`` (see :func:`lookahead_training`).
    """

    name = "tag"

    def __init__(self, every: int = 5, lr: float | None = None):
        if int(every) < 1:
            raise InvalidInputError(f"TAG lookahead interval every={every} must be >= 1.")
        self.every = int(every)
        self.lr = lr

    def fit(self, taskset: Any, spec: Any, seed: int = 0, tasks: Sequence[str] | None = None) -> "TAG":
        import time

        from core.estimation.models.backends import get_backend
        from core.estimation.models.training import prepare_taskset

        names = taskset.check_names(tasks) if tasks is not None else taskset.names
        prepared = prepare_taskset(get_backend(spec.backend, **spec.options), taskset)
        start = time.perf_counter()
        model, hook, flops = lookahead_training(prepared, names, spec, seed, every=self.every, lr=self.lr)
        n = len(names)
        self.hook_ = hook
        self.cost_ = {"trainings": 1, "seconds": time.perf_counter() - start, "flops": flops,
                      "lookahead_steps": hook.steps_}
        self.matrix_ = AffinityMatrix(
            names=names, values=hook.affinity_, metric="lookahead loss reduction 1 - L_j(after)/L_j(before)",
            estimator="tag", cost=self.cost_, seed=seed, uncertainty=hook.uncertainty_,
            counts=np.full((n, n), hook.steps_, dtype=float), notes=_notes(self.every, model.steps))
        return self


# ---------------------------------------------------------------------------------------------
# Estimation-engine estimator (run folder, store, CLI): ``python -m core estimate --estimator tag``
# ---------------------------------------------------------------------------------------------


TAG_KIND = "tag"


def _nan_to_none(a: np.ndarray) -> list:
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(a, dtype=float)]


def tag_job(every: int, lr: float | None, payload: Any, job: Job) -> JobResult:
    """One ``tag`` job: train ``job.subset`` together once with the lookahead hook.

    Scores: every task's score on ``job.split`` after the training (the all-tasks multitask score).
    Artifacts: ``affinity`` (n x n, ``job.subset`` order), ``uncertainty`` (standard error over
    lookahead steps; null where undefined) and ``lookahead_steps``. Picklable via ``functools.partial``.
    """
    import time

    from core.estimation.models.training import _evaluate, perf

    start = time.perf_counter()
    model, hook, flops = lookahead_training(payload.taskset, job.subset, payload.spec, job.seed, every=every, lr=lr)
    scores = {}
    for name in job.subset:
        s, f = _evaluate(model, name, job.split)
        flops += f
        scores[name] = Score(metric=float(s.metric), loss=float(s.loss), perf=perf(payload.taskset[name], s), n=int(s.n))
    return JobResult(job=job, scores=scores, seconds=time.perf_counter() - start, flops=flops, steps=int(model.steps),
                     artifacts={"tasks": list(job.subset), "affinity": _nan_to_none(hook.affinity_),
                                "uncertainty": _nan_to_none(hook.uncertainty_), "lookahead_steps": hook.steps_,
                                "training_steps": int(model.steps)})


class TAGAffinity(Estimator):
    """TAG lookahead affinity as an estimator of the engine: ``--estimator tag``.

    One job of kind ``tag`` per seed: a single multitask training of all tasks during which the
    lookahead hook records ``Z[i, j] = 1 - L_j(after a step on i) / L_j(before)`` every ``every``
    steps. ``fit`` averages the stored matrices over seeds (uncertainty: standard error across
    seeds, or over lookahead steps with one seed).

    Options: ``every`` (lookahead interval, default 5), ``lr`` (lookahead SGD rate; default the
    trainer's). Results: ``matrices_`` (``tag``), ``cost_`` (one training per seed, lookahead
    FLOPs included).
    """

    name = "tag"
    defaults: ClassVar[dict[str, Any]] = {"every": 5, "lr": None}

    def validate(self, ctx: EstimationContext) -> None:
        e, lr = self.options["every"], self.options["lr"]
        if isinstance(e, bool) or not isinstance(e, int) or e < 1:
            raise InvalidInputError(f"every={e!r} must be an integer >= 1 (lookahead interval in training steps).")
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
            raise InvalidInputError(f"lr={lr!r} must be a number > 0 (or left out: the trainer's rate).")
        if len(ctx.names) < 2:
            raise InvalidInputError(f"TAG lookahead needs at least 2 tasks, got {len(ctx.names)}.")

    def jobs(self, ctx: EstimationContext, outcomes: Any) -> list[Job]:
        return [Job(ctx.names, seed, ctx.split, kind=TAG_KIND) for seed in ctx.seeds]

    def runner(self):
        import functools

        lr = self.options["lr"]
        return functools.partial(tag_job, int(self.options["every"]), None if lr is None else float(lr))

    def fit(self, ctx: EstimationContext, outcomes: Any) -> "TAGAffinity":
        jobs = self.jobs(ctx, outcomes)
        rows = select(outcomes, ctx, jobs)
        require_outcomes(rows, jobs, "tag")
        per_seed = rows.drop_duplicates(["seed"]).sort_values("seed")
        arts = list(per_seed["artifacts"])
        for a in arts:
            if list(a.get("tasks", [])) != list(ctx.names):
                raise InvalidInputError(f"tag: a stored lookahead matrix is over tasks {a.get('tasks')}, not the "
                                        f"run's {list(ctx.names)}.")
        mats = np.array([np.array(a["affinity"], dtype=float) for a in arts])
        values = mats.mean(axis=0)
        if len(arts) > 1:
            unc = mats.std(axis=0, ddof=1) / np.sqrt(len(arts))
            how = f"mean over seeds {list(ctx.seeds)}; uncertainty = standard error across seeds"
        else:
            unc = np.array(arts[0]["uncertainty"], dtype=float)  # JSON null -> NaN
            how = f"seed {ctx.seeds[0]}; uncertainty = standard error over lookahead steps"
        steps = sum(int(a["lookahead_steps"]) for a in arts)
        self.cost_ = {**cost_of(rows), "lookahead_steps": steps}
        n = len(ctx.names)
        main = AffinityMatrix(
            names=ctx.names, values=values, metric="lookahead loss reduction 1 - L_j(after)/L_j(before)",
            estimator=self.name, cost=self.cost_, seed=ctx.seeds[0], uncertainty=unc,
            counts=np.full((n, n), float(steps)),
            notes=_notes(int(self.options["every"]), int(arts[0]["training_steps"]), f"; {how}"))
        self.matrices_ = {self.name: main}
        return self
