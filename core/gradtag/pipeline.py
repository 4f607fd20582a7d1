"""Grad-TAG (Li et al., KDD'24): estimate f_i(S) for many task subsets S from one base model.

The orchestrator reads top to bottom, one stage per class:

1. **base** -- train one multitask model on all tasks (``train_multitask``, the same
   budget as any subset training): the "meta-initialisation" ``W0``.
2. **gradients** -- :class:`~core.gradtag.gradients.GradientComputer`: per-sample
   gradients of the margin ``log(p_y/(1-p_y))`` (classification) or the prediction
   (regression) at ``W0``, over all parameters or a chosen subset.
3. **projection** -- :class:`~core.gradtag.projector.Projector`: a seeded ``p x d``
   JL sketch applied block-wise, written batch by batch to a resumable
   :class:`~core.gradtag.store.GradientStore` (so many subsets never recompute gradients).
4. **scoring** -- :class:`~core.gradtag.scorer.SubsetScorer`: for each subset, the
   regularised logistic (or least-squares) fit of the linearised model
   ``f0 + phi . theta`` on the subset's training rows, all subsets batched.
5. **lifting** -- :class:`~core.gradtag.lift.LiftedEvaluator`: the real network with
   weights ``W0 + P theta_S`` is evaluated on each task of ``S``: its metric is ``f_i(S)``.
6. **affinity** -- the rows go through the higher-order estimator's own aggregation
   (``core.estimation.estimators.base.HigherOrderAffinity.fit``), so ``T_hat`` is built exactly as
   ``T`` is from real trainings.

Cost accounting: the backend's own FLOPs rule, the one real trainings are charged with
(dense nets: forward = 2 x parameters on the example's path, backward = 4 x the same, so a
per-sample gradient costs 6 x params; transformers: per token, backward through trained
layers only), for the gradients and for the lifted evaluations;
projection = 2 x p x d (dense) or 2 x p (CountSketch); a Newton iteration on a subset = 4 n d per
Hessian-vector product of its conjugate-gradient solve + 2 n d per line-search trial; a lifted evaluation = 2 x p x d + its forward FLOPs
(and the same for each extra penalty tried on the validation split).
Base training FLOPs are those ``train_multitask`` records (the same backend rule).
"Full retraining" = training every estimated subset from scratch; without measured
trainings it is estimated as the base run's FLOPs per task-step x ``spec.steps`` x |S|
(subsets trained for the whole budget; early stopping would make it smaller).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from core.errors import InvalidInputError
from core.estimation.data.tasks import TaskSet
from core.estimation.estimators.base import EstimationContext
from core.estimation.models.training import TrainedModel, TrainSpec, perf, train_multitask
from core.gradtag.aggregate import GradTAGAggregation
from core.gradtag.collect import collect_gradients
from core.gradtag.gradients import GradientComputer, PerSampleGradients
from core.gradtag.lift import LiftedEvaluator
from core.gradtag.projector import Projector, check_dim, make_projector
from core.gradtag.scorer import LogisticLinearScorer, SubsetScorer
from core.gradtag.store import GradientStore, MemmapGradientStore

OUTCOME_KIND = "gradtag"
DEFAULT_REG = 0.03


def _check_subsets(taskset: TaskSet, subsets: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    if subsets is None or len(subsets) == 0:
        raise InvalidInputError("no subsets to estimate; give at least one non-empty subset of task names.")
    out = []
    for s in subsets:
        if isinstance(s, str):
            raise InvalidInputError(f"subset {s!r} is a string; give a list of task names.")
        if len(s) == 0:
            raise InvalidInputError("empty subset of tasks; every subset needs at least one task.")
        out.append(taskset.check_names(s))
    return list(dict.fromkeys(out))


class GradTAG:
    """Grad-TAG estimates of subset performance ``f_i(S)`` and the affinity matrix built from them.

    Parameters
    ----------
    spec : TrainSpec, optional
        Training of the base model (default ``TrainSpec()``); the same spec as real subset trainings.
    dim : int
        Projection dimension d (authors: 200).
    projection : {"rademacher", "gaussian", "countsketch"}
    projection_seed : int
    projection_cache_mb : float
        Keep the generated projection matrix in memory when it is at most this size (MiB);
        larger ones are regenerated block by block at every use (each gradient batch, each lift).
    params : sequence of str, optional
        Parameter-name prefixes to differentiate (e.g. ``["trunk.2"]``, last layers, adapters);
        None = all trainable parameters.
    reg : float or sequence of float
        L2 penalty on theta (``reg * ||theta||^2`` added to the mean loss). A sequence is a grid:
        each subset keeps the penalty whose lifted network has the lowest mean validation loss
        on the subset's tasks (like early stopping on validation loss in real training).
    offset : bool
        Keep the base output f0 in the linearised model (authors' newest code).
    grad_batch_size : int
        Samples per gradient batch (one store write per batch).
    gradient_method : {"auto", "vmap", "loop"}
    store_dir : path, optional
        Folder for the base weights (``base.pt``) and the gradient store (``gradients/``), kept
        and reused on a rerun (an interrupted gradient computation resumes); default a
        temporary folder removed once the gradients are loaded.
    seed : int
        Seed of the base training.
    split : {"val", "test", "train"}
        Split on which f_i(S) is scored.
    subsets, subset_size, min_pair_coverage, sample_seed, baseline
        The higher-order sampling / aggregation options (see ``HigherOrderAffinity``); ``fit`` estimates
        these sampled subsets (plus singletons when ``baseline="single"``) unless given a list.
    base : TrainedModel, optional
        A base model already trained on all tasks (its FLOPs are still counted; its time is not).
    gradients : GradientComputer, optional
        Stage "gradients"; default ``PerSampleGradients(params, method=gradient_method)``.
    projector : Projector or callable, optional
        Stage "projection": a projector for the differentiated parameter count, or a function
        ``n_params -> Projector``; default ``make_projector(projection, n_params, dim, ...)``.
    store : GradientStore, optional
        Stage "store" (base checkpoint and gradients); default ``MemmapGradientStore(store_dir)``.
    scorer : SubsetScorer or sequence of SubsetScorer, optional
        Stage "scoring"; several are a penalty grid chosen per subset on validation loss.
        Default one ``LogisticLinearScorer(reg=r, offset=offset)`` per penalty in ``reg``.

    Attributes
    ----------
    base_ : TrainedModel
    computer_ : GradientComputer
    projector_ : Projector
    store_ : GradientStore
    subsets_ : list of tuple
    thetas_ : torch.Tensor (len(subsets_), dim)
    reg_chosen_ : ndarray (len(subsets_),)
        The penalty kept for each subset.
    outcomes_ : DataFrame
        One row per (subset, task) in the result store's schema (kind "gradtag").
    affinity_ : AffinityMatrix
    matrices_ : dict of AffinityMatrix
    stage_costs_ : dict
        ``{stage: {"seconds", "flops"}}`` for base, gradients, scoring, lifting.
    cost_ : dict
        Totals, the full-retraining estimate, and the ratios.
    """

    def __init__(self, spec: Any = None, dim: int = 200, projection: str = "rademacher", projection_seed: int = 0,
                 projection_cache_mb: float = 256,
                 params: Sequence[str] | None = None, reg: Any = DEFAULT_REG, offset: bool = True,
                 grad_batch_size: int = 64, gradient_method: str = "auto", store_dir: str | Path | None = None,
                 seed: int = 0, split: str = "val", subsets: Any = None, subset_size: int = 3,
                 min_pair_coverage: int = 1, sample_seed: int = 0, baseline: str = "single", base: Any = None,
                 gradients: GradientComputer | None = None, projector: Projector | Callable[[int], Projector] | None = None,
                 store: GradientStore | None = None, scorer: SubsetScorer | Sequence[SubsetScorer] | None = None):
        self.spec = spec
        self.dim = dim
        self.projection = projection
        self.projection_seed = projection_seed
        self.projection_cache_mb = projection_cache_mb
        self.params = params
        self.reg = reg
        self.offset = offset
        self.grad_batch_size = grad_batch_size
        self.gradient_method = gradient_method
        self.store_dir = store_dir
        self.seed = seed
        self.split = split
        self.subsets = subsets
        self.subset_size = subset_size
        self.min_pair_coverage = min_pair_coverage
        self.sample_seed = sample_seed
        self.baseline = baseline
        self.base = base
        self.gradients = gradients
        self.projector = projector
        self.store = store
        self.scorer = scorer

    # ------------------------------------------------------------------------------------ the recipe
    def fit(self, taskset: TaskSet) -> "GradTAG":
        """Base model, gradients, then estimates for the sampled subsets and the affinity matrix."""
        aggregator, ctx = self._aggregator(taskset)
        subsets = aggregator.subset_list(ctx)
        if self.baseline == "single":
            subsets = [(x,) for x in taskset.names] + subsets
        self.prepare(taskset)
        self.estimate(subsets)
        aggregator.fit(ctx, self.outcomes_)
        self.matrices_ = {"gradtag" if k == aggregator.name else k: m for k, m in aggregator.matrices_.items()}
        self.affinity_ = next(iter(self.matrices_.values()))
        return self

    def prepare(self, taskset: TaskSet) -> "GradTAG":
        """Stages 1-3: base model, per-sample gradients, projection into the store."""
        self._validate(taskset)
        self.stage_costs_ = {}
        self._train_base(taskset)
        self._collect_gradients()
        return self

    def estimate(self, subsets: Sequence[Sequence[str]]) -> pd.DataFrame:
        """Stages 4-5 for ``subsets`` (after :meth:`prepare`): ``outcomes_`` rows, one per (subset, task)."""
        if not hasattr(self, "store_"):
            raise InvalidInputError("GradTAG.estimate needs a prepared model; call fit or prepare first.")
        self.fit_subsets(subsets)
        self._evaluate_lifted()
        self._account()
        return self.outcomes_

    # ------------------------------------------------------------------------------------ stages
    def _train_base(self, taskset: TaskSet) -> None:
        """Train W0, or load it from ``store_dir/base.pt`` when made for the same data, spec and seed."""
        t0 = time.perf_counter()
        if self.base is not None:  # a base model trained elsewhere (e.g. shared by several projections)
            if not isinstance(self.base, TrainedModel) or set(self.base.net.tasks) != set(taskset.names):
                raise InvalidInputError("base must be a TrainedModel trained on exactly the task set's tasks.")
            self.base_ = self.base
            self.names_ = tuple(self.base_.net.tasks)
            self.stage_costs_["base"] = {"seconds": 0.0, "flops": float(self.base_.flops), "given": True}
            return
        spec = self.spec_
        key = hashlib.sha256(json.dumps({"data": taskset.fingerprints(), "spec": spec.to_dict(), "seed": self.seed},
                                        sort_keys=True, default=str).encode()).hexdigest()[:16]
        saved = self.store_.load_base(key)
        if saved is not None:
            trained = train_multitask(taskset, taskset.names, dataclasses.replace(spec, steps=1, eval_every=0),
                                      self.seed)  # builds the same network; its weights are then replaced
            trained.net.load_state_dict(saved["state"])
            self.base_ = TrainedModel(backend=trained.backend, net=trained.net.eval(), taskset=trained.taskset,
                                      device=trained.device, steps=int(saved["steps"]), flops=float(saved["flops"]),
                                      seed=self.seed)
            self.stage_costs_["base"] = {"seconds": time.perf_counter() - t0, "flops": 0.0,
                                         "loaded": str(getattr(self.store_, "base_path", "store")),
                                         "trained_flops": float(saved["flops"])}
        else:
            self.base_ = train_multitask(taskset, taskset.names, spec, self.seed)
            self.store_.save_base(key, self.base_.net.state_dict(), self.base_.steps, self.base_.flops)
            self.stage_costs_["base"] = {"seconds": time.perf_counter() - t0, "flops": float(self.base_.flops)}
        self.names_ = tuple(self.base_.net.tasks)

    def _collect_gradients(self) -> None:
        base = self.base_
        self.computer_ = self._gradients.bind(base.net)
        self.projector_ = self._projector(self.computer_.n_params_)
        t0 = time.perf_counter()
        self.store_, info = collect_gradients(
            base.net, base.taskset, self.names_, lambda task, split: base.backend.batch(task, split, base.device),
            self.computer_, self.projector_, self.store_, batch_size=self.grad_batch_size,
            extra_meta={"seed": self.seed})
        n_train = sum(len(base.taskset[t].train) for t in self.names_)
        self.stage_costs_["gradients"] = {
            "seconds": time.perf_counter() - t0, "samples": n_train, "method": self.computer_.method_used_,
            "flops": self._gradient_flops(),
            "resumed_batches": len(self.store_.batches) - info["batches_computed"]}
        self._rows = self.store_.load()
        self.store_.release()

    def _gradient_flops(self) -> float:
        """Per-sample gradients cost what one training pass over the train split costs (the
        backend's own rule, so per token for transformers, with the backward only through
        trained layers), plus the projection of every gradient."""
        base, total = self.base_, 0.0
        for t in self.names_:
            task = base.taskset[t]
            inputs, targets = base.backend.batch(task, task.train, base.device)
            n = len(targets)
            total += base.backend.train_flops(base.net, t, inputs, n) + n * self.projector_.flops_per_vector()
        return float(total)

    def fit_subsets(self, subsets: Sequence[Sequence[str]]) -> torch.Tensor:
        """Stage 4 alone: ``thetas_`` of ``subsets`` (batched), without evaluating them."""
        self.subsets_ = _check_subsets(self.base_.taskset, subsets)
        self._fit_subsets()
        return self.thetas_

    def _fit_subsets(self) -> None:
        data, pos = self._rows, {t: i for i, t in enumerate(self.names_)}
        masks = np.zeros((len(self.subsets_), len(data["task"])), dtype=bool)
        for b, s in enumerate(self.subsets_):
            masks[b] = np.isin(data["task"], [pos[t] for t in s])
        regression = np.array([self.base_.taskset[t].kind == "regression" for t in self.names_])[data["task"]]
        t0, flops, fits = time.perf_counter(), 0.0, []
        for scorer in self.scorers_:
            fits.append(scorer.fit(data["features"], data["outputs"], data["targets"], masks, regression=regression,
                                   groups=data["task"], device=self.base_.device))
            flops += scorer.flops_
        self.stage_costs_["scoring"] = {"seconds": time.perf_counter() - t0, "flops": flops}
        if len(fits) == 1:
            self.thetas_, self.reg_chosen_ = fits[0], np.full(len(self.subsets_), self.regs_[0])
            return
        # several penalties: keep, per subset, the one whose lifted network has the lowest mean
        # validation loss over the subset's tasks (the analogue of early stopping on validation loss)
        t0 = time.perf_counter()
        lifted = LiftedEvaluator(self.base_, self.computer_, self.projector_)
        val = np.array([[np.mean([sc.loss for sc in lifted.scores(fit[b], s, "val").values()])
                         for b, s in enumerate(self.subsets_)] for fit in fits])
        best = np.nanargmin(np.where(np.isfinite(val), val, np.nan), axis=0)
        self.thetas_ = torch.stack([fits[k][b] for b, k in enumerate(best)])
        self.reg_chosen_ = np.array([self.regs_[k] for k in best])
        self.stage_costs_["selection"] = {"seconds": time.perf_counter() - t0, "flops": float(lifted.flops_)}

    def _evaluate_lifted(self) -> None:
        rows, t0 = [], time.perf_counter()
        self.lifted_ = LiftedEvaluator(self.base_, self.computer_, self.projector_)
        for b in range(len(self.subsets_)):
            rows += self.score_subset(b)
        self.outcomes_ = pd.DataFrame(rows)
        self.stage_costs_["lifting"] = {"seconds": time.perf_counter() - t0, "flops": float(self.lifted_.flops_)}

    def score_subset(self, index: int) -> list[dict[str, Any]]:
        """Outcome rows of ``subsets_[index]``: the real network at ``W0 + P theta`` on each of its tasks."""
        if not hasattr(self, "lifted_"):
            self.lifted_ = LiftedEvaluator(self.base_, self.computer_, self.projector_)
        s, theta = self.subsets_[index], self.thetas_[index]
        ts = time.perf_counter()
        scores = self.lifted_.scores(theta, s, self.split)
        sec = time.perf_counter() - ts
        return [{"kind": OUTCOME_KIND, "subset": s, "task": task, "seed": int(self.seed), "split": self.split,
                 "metric": float(sc.metric), "loss": float(sc.loss), "perf": perf(self.base_.taskset[task], sc),
                 "n": int(sc.n), "seconds": sec, "flops": float("nan"), "steps": 0} for task, sc in scores.items()]

    def _account(self) -> None:
        stages = self.stage_costs_
        total_flops = sum(v["flops"] for v in stages.values())
        total_seconds = sum(v["seconds"] for v in stages.values())
        base_flops = stages["base"].get("trained_flops", stages["base"]["flops"])
        per_task_step = base_flops / max(1, self.base_.steps * len(self.names_))
        retrain = float(sum(per_task_step * self.spec_.steps * len(s) for s in self.subsets_))
        self.cost_ = {
            "flops": total_flops, "seconds": total_seconds,
            "flops_without_base": total_flops - stages["base"]["flops"],
            "seconds_without_base": total_seconds - stages["base"]["seconds"],
            "retrain_flops_estimate": retrain, "subsets": len(self.subsets_),
            "flops_fraction_estimate": total_flops / retrain if retrain else float("nan"),
            "gradient_method": stages["gradients"].get("method"),
            "trainings": 1,
        }

    # ------------------------------------------------------------------------------------ helpers
    @property
    def spec_(self):
        return self.spec if self.spec is not None else TrainSpec()

    def _validate(self, taskset: TaskSet) -> None:
        if not isinstance(taskset, TaskSet):
            raise InvalidInputError(f"GradTAG.fit needs a TaskSet, got {type(taskset).__name__}.")
        if self.spec is not None and not isinstance(self.spec, TrainSpec):
            raise InvalidInputError(f"spec must be a TrainSpec, got {type(self.spec).__name__}.")
        self.dim_ = check_dim(self.dim) if not isinstance(self.projector, Projector) else self.projector.dim
        if self.split not in ("train", "val", "test"):
            raise InvalidInputError(f"split {self.split!r} must be train, val or test.")
        if isinstance(self.grad_batch_size, bool) or not isinstance(self.grad_batch_size, int) \
                or self.grad_batch_size < 1:
            raise InvalidInputError(f"grad_batch_size={self.grad_batch_size!r} must be a positive integer.")
        self._build_stages()

    def _build_stages(self) -> None:
        """Stage objects from the string options, for each stage not given as an object (validates them)."""
        if self.gradients is None:
            self._gradients = PerSampleGradients(self.params, method=self.gradient_method)
        elif isinstance(self.gradients, GradientComputer):
            self._gradients = self.gradients
        else:
            raise InvalidInputError(f"gradients must be a GradientComputer, got {type(self.gradients).__name__}.")
        if self.projector is None:
            self._projector = lambda n_params: make_projector(
                self.projection, n_params, self.dim_, seed=self.projection_seed,
                cache_bytes=int(float(self.projection_cache_mb) * (1 << 20)))
        elif isinstance(self.projector, Projector):
            self._projector = lambda n_params: self.projector  # collect_gradients checks n_params
        elif callable(self.projector):
            self._projector = self.projector
        else:
            raise InvalidInputError(f"projector must be a Projector or a function of n_params, "
                                    f"got {type(self.projector).__name__}.")
        if self.store is None:
            self.store_ = MemmapGradientStore(self.store_dir)
        elif isinstance(self.store, GradientStore):
            self.store_ = self.store
        else:
            raise InvalidInputError(f"store must be a GradientStore, got {type(self.store).__name__}.")
        if self.scorer is None:
            regs = list(self.reg) if isinstance(self.reg, (list, tuple, np.ndarray)) else [self.reg]
            if not regs:
                raise InvalidInputError("reg: empty list of penalties; give a number or a non-empty list.")
            self.scorers_ = [LogisticLinearScorer(reg=r, offset=self.offset) for r in regs]  # validates each
        else:
            self.scorers_ = [self.scorer] if isinstance(self.scorer, SubsetScorer) else list(self.scorer)
            if not self.scorers_ or not all(isinstance(sc, SubsetScorer) for sc in self.scorers_):
                raise InvalidInputError("scorer must be a SubsetScorer or a non-empty list of them.")
        self.regs_ = [float(sc.reg) for sc in self.scorers_]

    def _aggregator(self, taskset: TaskSet):
        self._validate(taskset)
        agg = GradTAGAggregation(subsets=self.subsets, subset_size=self.subset_size,
                                  min_pair_coverage=self.min_pair_coverage, sample_seed=self.sample_seed,
                                  baseline=self.baseline)
        ctx = EstimationContext(names=taskset.names, seeds=(self.seed,), split=self.split)
        agg.validate(ctx)
        return agg, ctx
