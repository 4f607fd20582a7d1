"""The estimators that train task subsets and average what they measure.

``single`` (single-task baselines), ``pairwise`` (exhaustive pairs), ``higher-order`` (sampled
subsets of a fixed size) and ``true`` (given subsets): each turns the stored outcomes of its
trainings into an affinity matrix with the same arithmetic, differing only in which subsets
it asks for.
"""
from __future__ import annotations

from itertools import combinations
from math import ceil, comb
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from core.errors import InvalidInputError
from core.estimation.estimators.base import (
    ESTIMATORS,
    EstimationContext,
    Estimator,
    cost_of,
    mean_se,
    require_outcomes,
    select,
)
from core.estimation.estimators.sampling import SubsetSample, check_subset_params, pair_coverage, sample_subsets
from core.estimation.runs.store import Job
from core.matrix.affinity import AffinityMatrix
from core.matrix.transfer import negative_transfers


def single_jobs(ctx: EstimationContext) -> list[Job]:
    return [Job((v,), seed, ctx.split) for seed in ctx.seeds for v in ctx.names]


def baselines(ctx: EstimationContext, rows: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """perf_v({v}) per task: mean and standard error across seeds."""
    single = rows[rows["subset"].map(len) == 1]
    mean, se = {}, {}
    for v in ctx.names:
        mean[v], se[v] = mean_se(single.loc[(single["task"] == v) & single["subset"].map(lambda s: s == (v,)),
                                             "perf"].tolist())
    return mean, se


def _seed_note(ctx: EstimationContext) -> str:
    return f"seeds {list(ctx.seeds)}, scored on the {ctx.split} split"


# ----------------------------------------------------------------------------------------------- single

class SingleTaskAffinity(Estimator):
    """Single-task baselines perf_v({v}), one training per task and seed.

    Its matrix ``single`` holds perf_v({v}) in every row of column v: the no-transfer model
    (grouping on it is indifferent, since every partition gets the same density).
    ``baselines_`` and ``baseline_se_`` hold the per-task values.
    """

    name = "single"
    defaults: ClassVar[dict[str, Any]] = {}

    def jobs(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> list[Job]:
        return single_jobs(ctx)

    def fit(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> "SingleTaskAffinity":
        jobs = self.jobs(ctx, outcomes)
        rows = select(outcomes, ctx, jobs)
        require_outcomes(rows, jobs, "single-task baselines")
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

class PairwiseAffinity(Estimator):
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

    def fit(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> "PairwiseAffinity":
        jobs = self.jobs(ctx, outcomes)
        rows = select(outcomes, ctx, jobs)
        require_outcomes(rows, jobs, "pairwise")
        perf = {(s, t, int(seed)): p for s, t, seed, p in zip(rows["subset"], rows["task"], rows["seed"], rows["perf"])}
        names, n = ctx.names, len(ctx.names)
        values, unc = np.zeros((n, n)), np.full((n, n), np.nan)
        for (iu, u), (iv, v) in combinations(enumerate(names), 2):
            for src, tgt, isrc, itgt in ((u, v, iu, iv), (v, u, iv, iu)):
                gains = [perf[((u, v), tgt, s)] - perf[((tgt,), tgt, s)] for s in ctx.seeds]
                values[isrc, itgt], unc[isrc, itgt] = mean_se(gains)
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

class HigherOrderAffinity(Estimator):
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

    def fit(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> "HigherOrderAffinity":
        jobs = self.jobs(ctx, outcomes)
        rows = select(outcomes, ctx, jobs)
        require_outcomes(rows, jobs, self.name)
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


class TrueAffinity(HigherOrderAffinity):
    """"True" higher-order affinity: full retraining on chosen subsets, the reference for cheaper estimators.

    The same averaging as :class:`HigherOrderAffinity`, but the subsets can be listed explicitly
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


ESTIMATORS.register("single", SingleTaskAffinity)
ESTIMATORS.register("pairwise", PairwiseAffinity)
ESTIMATORS.register("higher-order", HigherOrderAffinity)
ESTIMATORS.register("true", TrueAffinity)
