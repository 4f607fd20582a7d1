"""Adaptive sampling: places every task, respects its budget, logs its comparisons."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, homogeneity_score

from core.errors import InvalidInputError
from core.estimation.estimators.adaptive import AdaptiveSampler, sample_with_targets


def additive_tasks(sizes=(4, 4, 4), effect=0.05, noise=0.01, seed=1):
    """Scores from a planted additive model: same-group co-members help, others hurt."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    n = groups.size
    names = [f"t{i}" for i in range(n)]
    A = np.where(groups[:, None] == groups[None, :], effect, -effect)
    base = rng.uniform(0.6, 0.8, n)
    calls = []

    def evaluate(subset):
        calls.append(tuple(subset))
        idx = [names.index(t) for t in subset]
        return {names[j]: base[j] + sum(A[i, j] for i in idx if i != j) + rng.normal(0, noise) for j in idx}

    return names, groups, evaluate, calls


def test_places_every_task_and_recovers_planted_groups():
    names, groups, evaluate, calls = additive_tasks()
    ad = AdaptiveSampler(batch_size=2, seed=0).fit(names, evaluate)
    assert ad.unplaced_ == ()
    assert (ad.labels_ >= 0).all()
    assert sorted(t for c in ad.clusters_ for t in c) == sorted(names)
    assert adjusted_rand_score(groups, ad.labels_) > 0.8
    assert ad.trainings_ == len(calls) == len(ad.subsets_)
    assert np.isfinite(ad.matrix_).all() and ad.matrix_.shape == (12, 12)
    # every batch after the seed set says which cluster it was compared with
    for entry in ad.log_[1:]:
        assert "compared_with" in entry and entry["batch"]
    n_seed = ad.log_[0]["trainings"]
    seed_set = set(ad.log_[0]["batch"])
    # every training after the seed phase (probes and block subsets) holds a new task
    assert all(set(subset) - seed_set for subset, _ in ad.subsets_[n_seed:])


@pytest.mark.parametrize("budget", [8, 20, 35])
def test_respects_budget(budget):
    names, groups, evaluate, calls = additive_tasks()
    ad = AdaptiveSampler(batch_size=2, budget=budget, seed=3).fit(names, evaluate)
    assert ad.trainings_ == len(calls) <= budget
    placed = {t for c in ad.clusters_ for t in c}
    assert placed.isdisjoint(ad.unplaced_) and placed | set(ad.unplaced_) == set(names)
    assert ((ad.labels_ == -1) == np.isin(names, ad.unplaced_)).all()


def test_sample_with_targets_always_holds_a_target():
    rng = np.random.default_rng(0)
    subsets = sample_with_targets(rng, ["a", "b"], ["c", "d", "e"], 3, 20)
    assert len(subsets) == 20
    assert all(len(s) == 3 and {"a", "b"} & set(s) for s in subsets)
    # fewer fillers than slots: targets fill in
    assert all(len(s) == 3 for s in sample_with_targets(rng, ["a", "b", "x"], ["c"], 3, 3))


def test_bad_parameters_are_clear_errors():
    names, _, evaluate, _ = additive_tasks()
    with pytest.raises(InvalidInputError, match="budget"):
        AdaptiveSampler(budget=1).fit(names, evaluate)
    with pytest.raises(InvalidInputError, match="subset_size"):
        AdaptiveSampler(subset_size=1).fit(names, evaluate)
    with pytest.raises(InvalidInputError, match="order"):
        AdaptiveSampler().fit(names, evaluate, order=names[:-1])


def test_adaptive_runs_through_the_engine_within_budget(tmp_path):
    import types

    import torch

    from core.estimation.estimators.adaptive import AdaptiveAffinity
    from core.estimation.data.builtin.planted import planted_tasks
    from core.estimation.runs.orchestrator import run_estimation
    from core.estimation.models.training import TrainSpec

    torch.set_num_threads(1)
    ts = planted_tasks(n_groups=2, tasks_per_group=3, seed=0)
    spec = TrainSpec(backend="mlp", steps=30, batch_size=32, lr=1e-2, eval_every=0, device="cpu",
                     options={"hidden": 0})
    cfg = types.SimpleNamespace(name="t", taskset=ts, spec=spec, estimator={}, raw={}, path=None)
    run = run_estimation(cfg, out=tmp_path / "run", estimator=AdaptiveAffinity(budget=20, seed_size=3))
    assert run.status == "complete"
    assert run.manifest["cost"]["trainings"] <= 20
    assert run.main.estimator == "adaptive" and "vs" in run.main.notes


def test_thirty_tasks_split_blocks_larger_than_exhaustive_search_by_the_sdp():
    # 30 tasks in 3 planted groups; a seed set of 18 tasks is bisected by the SDP branch of
    # _best_bipartition (more than max_exhaustive = 12 tasks), which once imported a missing name.
    names, groups, evaluate, calls = additive_tasks(sizes=(10, 10, 10), effect=0.05, noise=0.01, seed=2)
    ad = AdaptiveSampler(seed_size=18, batch_size=3, subset_size=4, seed_subsets=60, seed=0).fit(names, evaluate)
    assert len(ad.log_[0]["batch"]) == 18 > ad.max_exhaustive
    assert len(ad.log_[0]["clusters"]) >= 2  # the seed set was split, not left whole
    assert ad.unplaced_ == () and (ad.labels_ >= 0).all()
    assert sorted(t for c in ad.clusters_ for t in c) == sorted(names)
    # Clusters are nearly pure (homogeneity 0.92) but the sampler splits the 3 planted groups into
    # about 7 clusters (ARI 0.41): it over-splits at this size, which this test records, not hides.
    assert homogeneity_score(groups, ad.labels_) > 0.85
    assert ad.trainings_ == len(calls)


def test_best_bipartition_on_more_tasks_than_exhaustive_search_uses_the_sdp():
    from core.estimation.estimators.adaptive import _best_bipartition

    rng = np.random.default_rng(0)
    halves = np.repeat([0, 1], [14, 16])
    S = np.where(halves[:, None] == halves[None, :], 1.0, -1.0) + rng.normal(0, 0.2, (30, 30))
    labels = _best_bipartition((S + S.T) / 2, 12)
    assert adjusted_rand_score(halves, labels) == 1.0
