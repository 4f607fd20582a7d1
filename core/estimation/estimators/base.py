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

    register("my-estimator", MyEstimator)    # or register_lazy("my-estimator", "pkg.module:MyEstimator")

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
from itertools import combinations
from math import ceil, comb
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import pandas as pd

from core.matrix.affinity import AffinityMatrix
from core.errors import InvalidInputError, UnknownNameError
from core.estimation.estimators.sampling import check_subset_params, sample_subsets
from core.estimation.runs.store import Job, subset_key
from core.matrix.transfer import negative_transfers


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
        from core.estimation.runs.job import train_job

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

_REGISTRY: dict[str, type[Estimator]] = {}
_LAZY: dict[str, str] = {}


def register(name: str, cls: type[Estimator]) -> type[Estimator]:
    """Register ``cls`` under ``name`` (usable as a decorator-free call at import time)."""
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise InvalidInputError(f"register({name!r}, ...): {cls!r} is not an Estimator subclass.")
    _REGISTRY[name] = cls
    return cls


def register_lazy(name: str, target: str) -> None:
    """Register ``"package.module:ClassName"``, imported the first time ``name`` is asked for."""
    _LAZY[name] = target


def available() -> list[str]:
    """Names of registered estimators."""
    return sorted(set(_REGISTRY) | set(_LAZY))


def get_estimator_class(name: str) -> type[Estimator]:
    """The class registered as ``name``; ``"module:Class"`` loads an estimator from any importable module."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    target = _LAZY.get(name, name if ":" in name else None)
    if target is None:
        raise UnknownNameError(f"unknown estimator {name!r}; choose one of: {', '.join(available())} "
                               "(or give module:Class).")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownNameError(f"estimator {name!r}: cannot load {target} ({exc}).") from None
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise InvalidInputError(f"estimator {name!r}: {target} is not an Estimator subclass.")
    return cls


def get_estimator(name: str, **options: Any) -> Estimator:
    """An estimator instance by registry name, options validated."""
    return get_estimator_class(name)(**options)


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


def _require(rows: pd.DataFrame, jobs: Sequence[Job], who: str) -> None:
    have = {(k, subset_key(s), int(seed), sp) for k, s, seed, sp in
            zip(rows["kind"], rows["subset"], rows["seed"], rows["split"])} if not rows.empty else set()
    missing = [j for j in jobs if j.key not in have]
    if missing:
        raise InvalidInputError(f"{who}: {len(missing)} of {len(jobs)} jobs have no stored outcome "
                                f"(first: {missing[0].describe()}); run them before fitting.")


def _mean_se(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples, dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    se = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return float(arr.mean()), se


def single_jobs(ctx: EstimationContext) -> list[Job]:
    return [Job((v,), seed, ctx.split) for seed in ctx.seeds for v in ctx.names]


def baselines(ctx: EstimationContext, rows: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """perf_v({v}) per task: mean and standard error across seeds."""
    single = rows[rows["subset"].map(len) == 1]
    mean, se = {}, {}
    for v in ctx.names:
        mean[v], se[v] = _mean_se(single.loc[(single["task"] == v) & single["subset"].map(lambda s: s == (v,)),
                                             "perf"].tolist())
    return mean, se


def _seed_note(ctx: EstimationContext) -> str:
    return f"seeds {list(ctx.seeds)}, scored on the {ctx.split} split"


# ----------------------------------------------------------------------------------------------- single

class SingleTask(Estimator):
    """Single-task baselines perf_v({v}), one training per task and seed.

    Its matrix ``single`` holds perf_v({v}) in every row of column v: the no-transfer model
    (grouping on it is indifferent, since every partition gets the same density).
    ``baselines_`` and ``baseline_se_`` hold the per-task values.
    """

    name = "single"
    defaults: ClassVar[dict[str, Any]] = {}

    def jobs(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> list[Job]:
        return single_jobs(ctx)

    def fit(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> "SingleTask":
        jobs = self.jobs(ctx, outcomes)
        rows = select(outcomes, ctx, jobs)
        _require(rows, jobs, "single-task baselines")
        self.baselines_, self.baseline_se_ = baselines(ctx, rows)
        self.cost_ = cost_of(rows)
        self.matrices_ = {"single": single_matrix(ctx, self.baselines_, self.baseline_se_, self.cost_)}
        return self


def single_matrix(ctx: EstimationContext, base: dict[str, float], se: dict[str, float],
                  cost: dict[str, float]) -> AffinityMatrix:
    n = len(ctx.names)
    col = np.array([base[v] for v in ctx.names])
    unc = np.array([se[v] for v in ctx.names])
    return AffinityMatrix(names=ctx.names, values=np.tile(col, (n, 1)), metric=f"perf of target alone ({ctx.split})",
                          estimator="single", cost=cost, seed=ctx.seeds[0],
                          notes=f"single-task baselines perf_v({{v}}) in every row of column v; {_seed_note(ctx)}",
                          uncertainty=np.tile(unc, (n, 1)), counts=np.full((n, n), float(len(ctx.seeds))))


# ----------------------------------------------------------------------------------------------- pairwise

class Pairwise(Estimator):
    """Exhaustive pairwise transfer: ``T[u, v] = perf_v({u, v}) - perf_v({v})``, averaged over seeds.

    Trains every single task and every pair once per seed (n + n(n-1)/2 trainings per seed).
    The diagonal is 0. ``uncertainty`` is the standard error across seeds (NaN with one seed),
    ``counts`` the number of seeds. Attributes after ``fit``: ``matrices_`` (``pairwise``, ``single``),
    ``baselines_``, ``negative_transfers_`` (pairs with T < 0, worst first, with their z-scores), ``cost_``.
    """

    name = "pairwise"
    defaults: ClassVar[dict[str, Any]] = {}

    def validate(self, ctx: EstimationContext) -> None:
        if len(ctx.names) < 2:
            raise InvalidInputError("pairwise affinity needs at least 2 tasks.")

    def jobs(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> list[Job]:
        pairs = [Job(p, seed, ctx.split) for seed in ctx.seeds for p in combinations(ctx.names, 2)]
        return single_jobs(ctx) + pairs

    def fit(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> "Pairwise":
        jobs = self.jobs(ctx, outcomes)
        rows = select(outcomes, ctx, jobs)
        _require(rows, jobs, "pairwise")
        perf = {(s, t, int(seed)): p for s, t, seed, p in zip(rows["subset"], rows["task"], rows["seed"], rows["perf"])}
        names, n = ctx.names, len(ctx.names)
        values, unc = np.zeros((n, n)), np.full((n, n), np.nan)
        for (iu, u), (iv, v) in combinations(enumerate(names), 2):
            for src, tgt, isrc, itgt in ((u, v, iu, iv), (v, u, iv, iu)):
                gains = [perf[((u, v), tgt, s)] - perf[((tgt,), tgt, s)] for s in ctx.seeds]
                values[isrc, itgt], unc[isrc, itgt] = _mean_se(gains)
        self.baselines_, self.baseline_se_ = baselines(ctx, rows)
        self.cost_ = cost_of(rows)
        main = AffinityMatrix(
            names=names, values=values, metric=f"perf gain of target over training alone ({ctx.split})",
            estimator="pairwise", cost=self.cost_, seed=ctx.seeds[0],
            notes=f"T[u,v] = perf_v({{u,v}}) - perf_v({{v}}); mean over {_seed_note(ctx)}; "
                  "uncertainty = standard error across seeds",
            uncertainty=unc, counts=np.full((n, n), float(len(ctx.seeds))))
        single_rows = rows[rows["subset"].map(len) == 1]
        self.matrices_ = {"pairwise": main,
                          "single": single_matrix(ctx, self.baselines_, self.baseline_se_, cost_of(single_rows))}
        self.negative_transfers_ = negative_transfers(main)
        return self


# ----------------------------------------------------------------------------------------------- higher-order

class HigherOrder(Estimator):
    """Higher-order affinity from sampled subsets (Li et al.'s averaging, with coverage).

    For target i, ``f_i(S)`` is i's perf after one multitask training on S. The entry for source j,
    target i is the mean of ``f_i(S)`` over the sampled S holding both (every seed an observation),
    minus the baseline of i (``baseline``: ``"single"`` = perf_i({i}), n extra trainings per seed,
    so the sign reads as in pairwise; ``"none"`` = the raw mean as in the paper). The diagonal is
    the mean over every S holding i, minus the baseline. Subtracting a per-target constant never
    changes a grouping (every partition's density shifts by the same amount).

    Options
    -------
    subsets : int, optional
        Number of uniform random subsets; default ``ceil(3 n (n-1) / (s (s-1)))``, i.e. three
        expected co-occurrences per pair (capped at the number of distinct subsets).
    subset_size : int
        Tasks per subset s (default 3, at most n).
    min_pair_coverage : int
        Covering subsets are added after the random draw until every pair is held by this many
        subsets (default 1). With 0, a pair never sampled together is filled with its target's
        mean over all subsets holding the target (no evidence = average effect), with count 0
        and NaN uncertainty; the notes say how many were filled.
    sample_seed : int
        Seed of the subset sampler (default 0).
    baseline : {"single", "none"}
    """

    name = "higher-order"
    defaults: ClassVar[dict[str, Any]] = {"subsets": None, "subset_size": 3, "min_pair_coverage": 1,
                                          "sample_seed": 0, "baseline": "single"}

    def validate(self, ctx: EstimationContext) -> None:
        n = len(ctx.names)
        size = self.options["subset_size"]
        if isinstance(size, bool) or not isinstance(size, int):
            raise InvalidInputError(f"subset_size must be an integer, got {size!r}.")
        if not 2 <= size <= n:
            raise InvalidInputError(f"subset_size {size} must be between 2 and the number of tasks ({n}).")
        check_subset_params(n, self.n_subsets(n), size, self.options["min_pair_coverage"])
        if self.options["baseline"] not in ("single", "none"):
            raise InvalidInputError(f"baseline {self.options['baseline']!r} must be 'single' or 'none'.")
        if isinstance(self.options["sample_seed"], bool) or not isinstance(self.options["sample_seed"], int):
            raise InvalidInputError(f"sample_seed must be an integer, got {self.options['sample_seed']!r}.")

    def n_subsets(self, n: int) -> Any:
        m, s = self.options["subsets"], self.options["subset_size"]
        if m is None and isinstance(s, int) and 2 <= s <= n:
            return min(comb(n, s), ceil(3 * n * (n - 1) / (s * (s - 1))))
        return m

    def sample(self, ctx: EstimationContext):
        """The :class:`~core.estimation.estimators.sampling.SubsetSample` of this estimator (deterministic)."""
        o = self.options
        return sample_subsets(ctx.names, self.n_subsets(len(ctx.names)), o["subset_size"], seed=o["sample_seed"],
                              min_pair_coverage=o["min_pair_coverage"])

    def subset_list(self, ctx: EstimationContext) -> list[tuple[str, ...]]:
        return list(self.sample(ctx).subsets)

    def _describe(self, sample) -> str:
        return (f"{sample.n_random} random subsets of size {self.options['subset_size']} (sampler seed "
                f"{self.options['sample_seed']})")

    def jobs(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> list[Job]:
        sub = [Job(s, seed, ctx.split) for seed in ctx.seeds for s in self.subset_list(ctx)]
        return (single_jobs(ctx) if self.options["baseline"] == "single" else []) + sub

    def fit(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> "HigherOrder":
        jobs = self.jobs(ctx, outcomes)
        rows = select(outcomes, ctx, jobs)
        _require(rows, jobs, self.name)
        names, n = ctx.names, len(ctx.names)
        pos = {x: i for i, x in enumerate(names)}
        subset_set = set(self.subset_list(ctx))
        multi = rows[rows["subset"].map(lambda s: s in subset_set)]
        self.subset_scores_ = multi[["subset", "task", "seed", "perf"]].reset_index(drop=True)
        # samples[j][i]: f_i(S) for every observation (S, seed) with i, j in S
        total, sq, cnt = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
        for subset, task, p in zip(multi["subset"], multi["task"], multi["perf"]):
            i = pos[task]
            idx = [pos[x] for x in subset]
            total[idx, i] += p
            sq[idx, i] += p * p
            cnt[idx, i] += 1
        if (np.diag(cnt) == 0).any():
            lost = names[int(np.argmin(np.diag(cnt)))]
            raise InvalidInputError(f"{self.name}: task {lost!r} is in no sampled subset; raise subsets or "
                                    "min_pair_coverage.")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / cnt
            var = np.maximum(sq / cnt - mean ** 2, 0.0) * cnt / np.maximum(cnt - 1, 1)
            unc = np.where(cnt > 1, np.sqrt(var / cnt), np.nan)
        holes = ~np.isfinite(mean)
        if holes.any():
            mean = np.where(holes, np.diag(mean)[None, :], mean)  # target's mean over all its subsets
        if self.options["baseline"] == "single":
            self.baselines_, self.baseline_se_ = baselines(ctx, rows)
            base = np.array([self.baselines_[v] for v in names])
        else:
            base = np.zeros(n)
        values = mean - base[None, :]
        sample = self.sample(ctx)
        cover = self._describe(sample)
        if sample.n_added:
            cover += f" + {sample.n_added} covering subsets added so every pair is sampled together at least " \
                     f"{self.options['min_pair_coverage']} time(s)"
        if holes.any():
            cover += (f"; {int(holes.sum())} (source, target) entries never sampled together were filled with the "
                      "target's mean over all its subsets (count 0, uncertainty NaN)")
        what = "minus perf_i({i})" if self.options["baseline"] == "single" else "(raw, no baseline)"
        self.cost_ = cost_of(rows)
        main = AffinityMatrix(
            names=names, values=values, metric=f"mean perf of target over subsets with the source {what} ({ctx.split})",
            estimator=self.name, cost=self.cost_, seed=ctx.seeds[0],
            notes=f"T[j,i] = mean f_i(S) over sampled S holding i and j {what}; {cover}; {_seed_note(ctx)}; "
                  "uncertainty = standard error over the subsets (and seeds) holding both",
            uncertainty=unc, counts=cnt)
        self.matrices_ = {self.name: main}
        if self.options["baseline"] == "single":
            singles = rows[rows["subset"].map(len) == 1]
            self.matrices_["single"] = single_matrix(ctx, self.baselines_, self.baseline_se_, cost_of(singles))
        self.coverage_ = sample.coverage
        return self


class TrueAffinity(HigherOrder):
    """"True" higher-order affinity: full retraining on chosen subsets, the reference for cheaper estimators.

    The same averaging as :class:`HigherOrder`, but the subsets can be listed explicitly
    (``subsets: [[a, b, c], ...]``) and the per-subset reference values ``f_i(S)`` are kept in
    ``subset_scores_`` (subset, task, seed, perf) so an estimator that predicts ``f_i(S)``
    without training (e.g. Grad-TAG) can be measured against them. With an integer ``subsets``
    it samples exactly like ``higher-order``.
    """

    name = "true"

    def validate(self, ctx: EstimationContext) -> None:
        m = self.options["subsets"]
        if isinstance(m, (list, tuple)):
            if not m:
                raise InvalidInputError("subsets: the list of subsets is empty; list at least one subset.")
            known = set(ctx.names)
            for s in m:
                if isinstance(s, str) or not isinstance(s, (list, tuple)) or len(s) < 2:
                    raise InvalidInputError(f"subsets: entry {s!r} must be a list of at least 2 task names.")
                bad = [x for x in s if x not in known]
                if bad:
                    raise InvalidInputError(f"subsets: unknown task {bad[0]!r} in {list(s)}.")
                if len(set(s)) != len(s):
                    raise InvalidInputError(f"subsets: {list(s)} names a task twice.")
            if self.options["baseline"] not in ("single", "none"):
                raise InvalidInputError(f"baseline {self.options['baseline']!r} must be 'single' or 'none'.")
            return
        super().validate(ctx)

    def sample(self, ctx: EstimationContext):
        m = self.options["subsets"]
        if not isinstance(m, (list, tuple)):
            return super().sample(ctx)
        from core.estimation.estimators.sampling import SubsetSample, pair_coverage

        order = {x: i for i, x in enumerate(ctx.names)}
        subsets = tuple(dict.fromkeys(tuple(sorted(s, key=order.__getitem__)) for s in m))
        return SubsetSample(subsets=subsets, n_random=len(subsets), n_added=0,
                            coverage=pair_coverage(ctx.names, subsets))

    def _describe(self, sample) -> str:
        if isinstance(self.options["subsets"], (list, tuple)):
            return f"{len(sample.subsets)} listed subsets, each fully retrained"
        return super()._describe(sample)

    def fit(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> "TrueAffinity":
        if isinstance(self.options["subsets"], (list, tuple)):
            cov = self.sample(ctx).coverage
            if (np.diag(cov) == 0).any():
                lost = ctx.names[int(np.argmin(np.diag(cov)))]
                raise InvalidInputError(f"subsets: task {lost!r} is in none of the listed subsets.")
        super().fit(ctx, outcomes)
        return self


register("single", SingleTask)
register("pairwise", Pairwise)
register("higher-order", HigherOrder)
register("true", TrueAffinity)
register_lazy("adaptive", "core.estimation.estimators.adaptive:AdaptiveEstimator")
register_lazy("pvi", "core.estimation.estimators.pvi:PVIAffinity")
register_lazy("tag", "core.estimation.estimators.tag:TAGAffinity")
register_lazy("gradtag", "core.estimation.estimators.gradtag:GradTAGAffinity")
