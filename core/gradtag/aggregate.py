"""The higher-order aggregation Grad-TAG estimates go through, shared by the pipeline and the registry adapter.

It lives here rather than in the registry adapter so that
:class:`~core.gradtag.pipeline.GradTAG` can use it without importing the adapter
(the adapter imports the pipeline; the reverse would be an import loop).
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from core.estimation.estimators.base import EstimationContext
from core.estimation.estimators.subsets import HigherOrderAffinity
from core.estimation.runs.store import Job


class GradTAGAggregation(HigherOrderAffinity):
    """``HigherOrderAffinity`` over Grad-TAG estimates: same sampling and aggregation, Grad-TAG's cost record.

    Options: those of ``higher-order`` (subsets, subset_size, min_pair_coverage, sample_seed, baseline).
    """

    name = "gradtag"

    def subsets_to_estimate(self, ctx: EstimationContext) -> list[tuple[str, ...]]:
        """The sampled subsets, preceded by every single task when ``baseline="single"``."""
        singles = [(v,) for v in ctx.names] if self.options["baseline"] == "single" else []
        return singles + [s for s in self.subset_list(ctx) if s not in set(singles)]

    def jobs(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> list[Job]:
        """One job of kind ``"gradtag"`` per (seed, subset to estimate): the outcomes ``fit`` expects."""
        return [Job(s, seed, ctx.split, kind="gradtag") for seed in ctx.seeds for s in self.subsets_to_estimate(ctx)]

    def fit(self, ctx: EstimationContext, outcomes: pd.DataFrame) -> "GradTAGAggregation":
        """Aggregate the estimated outcomes exactly as real subset trainings, then fix the cost record."""
        super().fit(ctx, outcomes)
        # cost_of counts jobs as "trainings"; Grad-TAG trains one base model per seed
        self.cost_ = {**self.cost_, "trainings": len(ctx.seeds), "estimates": self.cost_["trainings"]}
        self.matrices_ = {k: dataclasses.replace(m, cost=self.cost_) if k == self.name else m
                          for k, m in self.matrices_.items()}
        return self
