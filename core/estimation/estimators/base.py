"""Affinity estimators and their registry.

The estimator interface (what a new estimator implements to plug into the run folder, the
result store, the executors and ``python -m core estimate``)::

    class MyEstimator(Estimator):
        name = "my-estimator"                 # registry name, also the main matrix's name
        defaults = {"alpha": 1.0}             # every option and its default; unknown options are refused

        def validate(self, ctx): ...          # optional: check self.options against the tasks; raise
                                              # InvalidInputError naming the option
        def jobs(self, ctx, outcomes):        # -> list[Job]: the jobs needed given what is stored
            ...
        def fit(self, ctx, outcomes):         # -> self, with self.matrices_ = {name: AffinityMatrix}
            ...                               # (first = the run's main matrix) and self.cost_
        def runner(self):                     # optional: picklable fn(payload, job) -> JobResult;
            return train_job                  # default: one multitask training of job.subset

    ESTIMATORS.register("my-estimator", MyEstimator)   # or ESTIMATORS.register("my-estimator", "pkg.module:MyEstimator")

* ``ctx`` is an :class:`EstimationContext`: task ``names`` (task-set order), ``seeds``, ``split``.
* ``outcomes`` is :meth:`core.estimation.runs.store.ResultStore.outcomes`: one row per stored
  (kind, subset, task, seed, split) with ``perf`` (higher is better), ``metric``, ``loss``,
  ``seconds``, ``flops`` and the job's ``artifacts`` (dict); an empty frame at the start.
* Rounds: the orchestrator calls ``jobs`` and runs those not yet stored, then calls ``jobs``
  again with the new outcomes, until every job ``jobs`` returns is stored. A static estimator
  returns the same list every time; an adaptive one returns more jobs as outcomes arrive. Since
  ``jobs`` depends only on stored outcomes, a resumed run replays the same rounds.
* Everything random (subset sampling) is seeded by options, so ``jobs`` is deterministic;
  ``fit`` must be order-independent (``outcomes`` arrives sorted).
* A job of another ``kind`` than ``"train"`` runs the estimator's own ``runner``; its
  :class:`~core.estimation.runs.store.JobResult` may carry JSON ``artifacts`` stored with it, which
  ``fit`` reads back from the ``artifacts`` column of ``outcomes`` (e.g. TAG's lookahead matrix,
  PVI's per-example values). A job needs at least one score to appear in ``outcomes``.

Built-in estimators: ``single`` (single-task baselines), ``pairwise`` (exhaustive pairs),
``higher-order`` (sampled subsets), ``true`` (full retraining on chosen subsets, the reference);
loaded on first use: ``adaptive`` (adaptive cluster building), ``pvi`` (PVI-profile similarity),
``tag`` (TAG lookahead during one training), ``gradtag`` (Grad-TAG linearised estimates).
Affinity orientation: ``values[u, v]`` = effect of source ``u`` on target ``v`` (higher is better).
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import pandas as pd

from core.errors import InvalidInputError, UnknownNameError
from core.estimation.runs.job import train_job
from core.estimation.runs.store import Job, subset_key
from core.matrix.affinity import AffinityMatrix
from core.registry import Registry


@dataclass(frozen=True)
class EstimationContext:
    """What every estimator sees: task names (task-set order), training seeds, the scored split."""

    names: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    split: str = "val"

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))


class Estimator(ABC):
    """Base class of affinity estimators (see the module docstring for the interface)."""

    name: ClassVar[str] = "estimator"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise InvalidInputError(
                f"estimator {self.name!r}: unknown option {unknown[0]!r}; its options are: {known}.")
        self.options = {**self.defaults, **{k: v for k, v in options.items() if v is not None}}

    def params(self) -> dict[str, Any]:
        """The options, JSON-ready (recorded in the manifest; a resumed run must match them)."""
        return {k: _plain(v) for k, v in sorted(self.options.items())}

    def validate(self, ctx: EstimationContext) -> None:
        """Check the options against the tasks; raise :class:`InvalidInputError` naming the option."""

    def runner(self) -> Callable[[Any, Job], Any]:
        """The picklable function executors call as ``fn(payload, job) -> JobResult``."""
        return train_job

    @abstractmethod
    def jobs(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> list[Job]:
        """The jobs needed now, finished ones included (see module docstring)."""

    @abstractmethod
    def fit(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> "Estimator":
        """Turn stored outcomes into ``self.matrices_`` (main first) and ``self.cost_``."""

    @property
    def main_(self) -> AffinityMatrix:
        return next(iter(self.matrices_.values()))

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({opts})"


# ----------------------------------------------------------------------------------------------- registry

def _is_estimator(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, Estimator)


# The built-in estimators; each module also registers its own class when imported.
ESTIMATORS: Registry[type[Estimator]] = Registry("estimator", {
    "single": "core.estimation.estimators.subsets:SingleTaskAffinity",
    "pairwise": "core.estimation.estimators.subsets:PairwiseAffinity",
    "higher-order": "core.estimation.estimators.subsets:HigherOrderAffinity",
    "true": "core.estimation.estimators.subsets:TrueAffinity",
    "adaptive": "core.estimation.estimators.adaptive:AdaptiveAffinity",
    "pvi": "core.estimation.estimators.pvi:PVIAffinity",
    "tag": "core.estimation.estimators.tag:TAGAffinity",
    "gradtag": "core.estimation.estimators.gradtag:GradTAGAffinity",
}, check=_is_estimator)


def estimator_class(name: str) -> type[Estimator]:
    """The class registered as ``name``; ``"module:Class"`` loads an estimator from any importable module."""
    if name in ESTIMATORS or not (isinstance(name, str) and ":" in name):
        return ESTIMATORS.get(name)
    module, _, attr = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownNameError(f"estimator {name!r}: cannot load {name} ({exc}).") from None
    if not _is_estimator(cls):
        raise InvalidInputError(f"estimator {name!r}: {name} is not an Estimator subclass.")
    return cls


def get_estimator(name: str, **options: Any) -> Estimator:
    """An estimator instance by registry name, options validated."""
    return estimator_class(name)(**options)


# ----------------------------------------------------------------------------------------------- helpers

def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def select(outcomes: pd.DataFrame, ctx: EstimationContext, jobs: Sequence[Job]) -> pd.DataFrame:
    """The rows of ``outcomes`` that belong to ``jobs`` (by job key)."""
    if outcomes.empty:
        return outcomes
    keys = {j.key for j in jobs}
    rows = [(k, subset_key(s), int(seed), sp) in keys for k, s, seed, sp in
            zip(outcomes["kind"], outcomes["subset"], outcomes["seed"], outcomes["split"])]
    return outcomes[np.array(rows, dtype=bool)]


def cost_of(rows: pd.DataFrame) -> dict[str, float]:
    """Trainings, summed training seconds and FLOPs of the jobs behind ``rows``."""
    if rows.empty:
        return {"trainings": 0, "seconds": 0.0, "flops": 0.0}
    per_job = rows.drop_duplicates(["kind", "subset", "seed", "split"])
    flops = per_job["flops"].astype(float)
    return {"trainings": int(len(per_job)), "seconds": float(per_job["seconds"].sum()),
            "flops": float(flops.sum()) if flops.notna().any() else float("nan")}


def require_outcomes(rows: pd.DataFrame, jobs: Sequence[Job], who: str) -> None:
    have = {(k, subset_key(s), int(seed), sp) for k, s, seed, sp in
            zip(rows["kind"], rows["subset"], rows["seed"], rows["split"])} if not rows.empty else set()
    missing = [j for j in jobs if j.key not in have]
    if missing:
        raise InvalidInputError(f"{who}: {len(missing)} of {len(jobs)} jobs have no stored outcome "
                                f"(first: {missing[0].describe()}); run them before fitting.")


def mean_se(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples, dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    se = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return float(arr.mean()), se
