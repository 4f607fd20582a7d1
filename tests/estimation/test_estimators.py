"""Estimator math on synthetic outcomes with a known transfer matrix, and the estimator registry."""
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from core.errors import InvalidInputError, UnknownNameError
from core.estimation.estimators.base import ESTIMATORS, EstimationContext, Estimator, get_estimator
from core.estimation.estimators.subsets import HigherOrderAffinity
from core.estimation.runs.store import Job, JobResult, ResultStore, Score

NAMES = tuple(f"t{i}" for i in range(6))
RNG = np.random.default_rng(0)
A = RNG.normal(0, 0.05, size=(6, 6))  # A[j, i]: additive effect of source j on target i
np.fill_diagonal(A, 0)
A[0, 1] = A[1, 0] = -0.3  # planted negative transfers
BASE = np.linspace(0.6, 0.8, 6)


def synthetic(job, noise=0.0, names=NAMES):
    idx = [names.index(t) for t in job.subset]
    rng = np.random.default_rng(hash((job.subset, job.seed)) % 2**32)
    scores = {}
    for i in idx:
        p = BASE[i] + sum(A[j, i] for j in idx if j != i) + noise * rng.normal()
        scores[names[i]] = Score(metric=p, loss=1 - p, perf=p, n=50)
    return JobResult(job=job, scores=scores, seconds=0.01, flops=100.0, steps=1)


def fit_with_store(tmp_path, est, ctx, noise=0.0):
    with ResultStore.open(tmp_path / "r.sqlite") as store:
        for job in est.jobs(ctx, store.outcomes()):
            store.record(synthetic(job, noise))
        return est.fit(ctx, store.outcomes())


def test_pairwise_recovers_planted_transfer_and_negative_pairs(tmp_path):
    ctx = EstimationContext(NAMES, seeds=(0, 1, 2))
    est = fit_with_store(tmp_path, get_estimator("pairwise"), ctx, noise=0.01)
    m = est.matrices_["pairwise"]
    assert list(est.matrices_) == ["pairwise", "single"]
    np.testing.assert_allclose(m.values, A, atol=0.03)
    assert np.all(np.diag(m.values) == 0)
    assert m.cost["trainings"] == 3 * (6 + 15) and m.cost["flops"] == pytest.approx(100.0 * 63)
    assert np.isfinite(m.uncertainty[0, 1]) and m.uncertainty[0, 1] > 0 and (m.counts[~np.eye(6, dtype=bool)] == 3).all()
    worst = est.negative_transfers_.head(2)
    assert set(zip(worst.source, worst.target)) == {("t0", "t1"), ("t1", "t0")}
    assert (worst.z < -5).all()  # confident across seeds
    np.testing.assert_allclose(est.matrices_["single"].values[3], BASE, atol=0.03)


def test_higher_order_tracks_planted_transfer_with_coverage(tmp_path):
    ctx = EstimationContext(NAMES, seeds=(0,))
    est = fit_with_store(tmp_path, HigherOrderAffinity(subsets=12, subset_size=3), ctx)
    m = est.main_
    off = ~np.eye(6, dtype=bool)
    assert (m.counts[off] >= 1).all()
    rho = spearmanr(m.values[off], A[off]).statistic
    assert rho > 0.6
    assert m.values[0, 1] < 0 and m.values[1, 0] < 0
    # Exact: an additive model gives mean f_i over S holding i, j = base_i + A[j,i] + mean of the other members.
    subs = est.sample(ctx).subsets
    held = [s for s in subs if "t2" in s and "t4" in s]
    expect = np.mean([sum(A[NAMES.index(k), 4] for k in s if k != "t4") for s in held])
    assert m.values[2, 4] == pytest.approx(expect)
    assert "covering subsets" in m.notes or est.sample(ctx).n_added == 0


def test_higher_order_fill_rule_without_coverage(tmp_path):
    ctx = EstimationContext(NAMES, seeds=(0,))
    est = fit_with_store(tmp_path, HigherOrderAffinity(subsets=4, subset_size=3, min_pair_coverage=0, baseline="none",
                                               sample_seed=1), ctx)
    m = est.main_
    holes = m.counts == 0
    assert holes.any() and "never sampled together were filled" in m.notes
    i, j = np.argwhere(holes)[0]
    assert m.values[i, j] == pytest.approx(m.values[j, j])  # target's mean over all its subsets
    assert np.isnan(m.uncertainty[i, j])


def test_true_affinity_with_explicit_subsets(tmp_path):
    ctx = EstimationContext(NAMES, seeds=(0,))
    subsets = [list(c) for c in combinations(NAMES, 4)][:10]
    est = fit_with_store(tmp_path, get_estimator("true", subsets=subsets), ctx)
    assert set(est.matrices_) == {"true", "single"}
    assert len(est.subset_scores_) == 10 * 4
    with pytest.raises(InvalidInputError, match="unknown task 'zz'"):
        get_estimator("true", subsets=[["t0", "zz"]]).validate(ctx)


@pytest.mark.parametrize("name, options, fragment", [
    ("nope", {}, "unknown estimator 'nope'"),
    ("pairwise", {"subsets": 3}, "unknown option 'subsets'"),
    ("higher-order", {"subset_size": 9}, "subset_size 9"),
    ("higher-order", {"subset_size": 1}, "subset_size 1"),
    ("higher-order", {"subset_size": "3"}, "subset_size must be an integer"),
    ("higher-order", {"subsets": 0}, "subsets must be >= 1"),
    ("higher-order", {"subsets": 10**6}, "subsets 1000000 exceeds"),
    ("higher-order", {"min_pair_coverage": -1}, "min_pair_coverage"),
    ("higher-order", {"baseline": "zscore"}, "baseline 'zscore'"),
    ("higher-order", {"sample_seed": 1.5}, "sample_seed"),
    ("true", {"subsets": []}, "subsets: the list of subsets is empty"),
    ("true", {"subsets": [["t0"]]}, "at least 2 task names"),
    ("no.such.module:Thing", {}, "cannot load"),
])
def test_bad_estimator_options_name_the_option(name, options, fragment):
    ctx = EstimationContext(NAMES)
    with pytest.raises(InvalidInputError, match=fragment):
        get_estimator(name, **options).validate(ctx)


def test_registry_accepts_plugins_and_refuses_non_estimators():
    class Dummy(Estimator):
        name = "dummy"

        def jobs(self, ctx, outcomes):
            return []

        def fit(self, ctx, outcomes):
            return self

    ESTIMATORS.register("dummy", Dummy)
    assert "dummy" in ESTIMATORS.names() and isinstance(get_estimator("dummy"), Dummy)
    assert isinstance(get_estimator("core.estimation.estimators.subsets:PairwiseAffinity"), Estimator)
    with pytest.raises(InvalidInputError):
        ESTIMATORS.register("bad", dict)
    with pytest.raises(UnknownNameError):
        get_estimator("core.estimation.estimators.base:Nope")


def _synthetic_runner(payload, job):
    return synthetic(job, names=payload.taskset.names)


class TwoRounds(Estimator):
    """Round 1: every single task; round 2: the pair of the two best single tasks (an adaptive shape)."""

    name = "two-rounds"

    def runner(self):
        return _synthetic_runner

    def jobs(self, ctx, outcomes):
        singles = [Job((v,), 0, ctx.split) for v in ctx.names]
        done = outcomes[outcomes["subset"].map(len) == 1] if not outcomes.empty else outcomes
        if len(done) < len(ctx.names):
            return singles
        best = done.sort_values("perf", ascending=False)["task"].head(2).tolist()
        return singles + [Job(tuple(x for x in ctx.names if x in best), 0, ctx.split)]

    def fit(self, ctx, outcomes):
        from core.matrix.affinity import AffinityMatrix

        self.cost_ = {"trainings": len(outcomes.drop_duplicates(["subset"]))}
        self.matrices_ = {"two-rounds": AffinityMatrix(ctx.names, np.zeros((len(ctx.names),) * 2),
                                                       estimator=self.name, cost=self.cost_)}
        return self


def test_orchestrator_runs_rounds_until_no_new_jobs_and_reports_progress(tmp_path):
    import types

    from core.estimation.data.builtin import builtin_taskset
    from core.estimation.runs.orchestrator import run_estimation
    from core.estimation.models.training import TrainSpec

    ts = builtin_taskset("planted", n_groups=2, tasks_per_group=[2, 1], seed=0)
    cfg = types.SimpleNamespace(name="r", taskset=ts, spec=TrainSpec(steps=1), estimator={}, raw={}, path=None)
    calls = []
    run = run_estimation(cfg, out=tmp_path / "run", estimator=TwoRounds(), progress=lambda *a: calls.append(a))
    assert run.status == "complete" and run.manifest["cost"]["trainings"] == 4
    assert calls[-1][:2] == (4, 4) and any(t == 3 for _, t, _ in calls)  # the total grew with round 2
    assert (tmp_path / "run" / "matrices" / "two-rounds.json").is_file()
