"""PVI arithmetic, degenerate-model guards and the similarity rule."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInputError
from core.estimation.estimators.pvi import PVIProfile, pvi_from_logprobs, pvi_similarity


def _logp(p):
    return np.log(np.asarray(p, dtype=float))


def test_pvi_is_log2_ratio_of_gold_probabilities():
    y = np.array([0, 1] * 15)
    model = np.where(y[:, None] == np.arange(2)[None, :], 0.8, 0.2)
    model[:, :] = model + np.linspace(0, 0.01, 30)[:, None] * [1, -1]  # not constant
    null = np.full((30, 2), 0.5)
    prof = pvi_from_logprobs(_logp(model), _logp(null), y, task="t")
    gold = model[np.arange(30), y]
    np.testing.assert_allclose(prof.values, np.log2(gold) - np.log2(0.5))
    assert prof.warnings == ()


def test_label_names_must_match():
    y = np.zeros(30, dtype=int)
    lp = _logp(np.full((30, 2), 0.5))
    with pytest.raises(InvalidInputError, match="label names"):
        pvi_from_logprobs(lp, lp, y, label_names_model=("neg", "pos"), label_names_null=("pos", "neg"))
    with pytest.raises(InvalidInputError, match="classes"):
        pvi_from_logprobs(lp, _logp(np.full((30, 3), 1 / 3)), y)


def test_too_few_examples_is_an_error():
    lp = _logp(np.full((5, 2), 0.5))
    with pytest.raises(InvalidInputError, match="only 5 held-out examples"):
        pvi_from_logprobs(lp, lp, np.zeros(5, dtype=int), task="tiny")


def test_constant_predictions_are_flagged():
    y = np.array([0, 1] * 15)
    const = _logp(np.tile([0.7, 0.3], (30, 1)))
    prof = pvi_from_logprobs(const, const, y, task="flat")
    assert any("constant predictions" in w for w in prof.warnings)
    varying_null = _logp(np.c_[np.linspace(0.2, 0.8, 30), 1 - np.linspace(0.2, 0.8, 30)])
    prof = pvi_from_logprobs(varying_null, varying_null, y, task="leaky")
    assert any("null model's predictions vary" in w for w in prof.warnings)


def test_wasserstein_similarity_orders_profiles():
    rng = np.random.default_rng(0)
    mk = lambda name, mu: PVIProfile(name, rng.normal(mu, 0.1, 200), np.zeros(200))
    profs = [mk("a", 0.0), mk("a2", 0.02), mk("b", 1.0)]
    S, info = pvi_similarity(profs)
    assert np.allclose(np.diag(S), 1) and np.allclose(S, S.T)
    assert S[0, 1] > S[0, 2] and S[0, 1] > S[1, 2]
    S2, info2 = pvi_similarity(profs, rule="ks")
    assert info2["different"][0, 2] and not info2["different"][0, 1]
    with pytest.raises(InvalidInputError, match="rule"):
        pvi_similarity(profs, rule="cosine")
