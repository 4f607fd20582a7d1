"""Multi-task training: equal budgets, determinism, early stopping, hooks, and real transfer on planted tasks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import InvalidInputError, UnknownNameError
from core.estimation.models.backends import get_backend
from core.estimation.data.builtin import builtin_taskset
from core.estimation.models.training import (TrainSpec, evaluate, per_sample_loss, perf, train_and_evaluate,
                                      train_multitask)

torch.set_num_threads(1)

NARROW = dict(hidden=[1], activation="linear")  # rank-one shared representation, as in planted.yaml


@pytest.fixture(scope="module")
def planted():
    return builtin_taskset("planted", n_groups=3, tasks_per_group=3, seed=0)


def test_same_seed_gives_identical_numbers_and_other_seed_differs(planted):
    spec = TrainSpec(steps=60, lr=1e-2, eval_every=20, options=NARROW)
    a = train_and_evaluate(planted, ["g0_t0", "g1_t0"], spec, seed=3)
    b = train_and_evaluate(planted, ["g1_t0", "g0_t0"], spec, seed=3)
    c = train_and_evaluate(planted, ["g0_t0", "g1_t0"], spec, seed=4)
    assert a.subset == b.subset == ("g0_t0", "g1_t0")
    assert a.scores == b.scores and a.steps == b.steps and a.flops == b.flops
    assert a.scores != c.scores


def test_planted_groups_show_positive_transfer_within_and_negative_across(planted):
    spec = TrainSpec(steps=300, lr=1e-2, eval_every=25, patience=4, options=NARROW)
    v = "g0_t0"

    def score(subset):
        return np.mean([perf(planted[v], train_and_evaluate(planted, subset, spec, s).scores[v]) for s in range(2)])

    alone = score([v])
    within = score(["g0_t1", v])
    across = [score([u, v]) for u in ("g1_t0", "g2_t0")]
    assert within > alone + 0.03, (within, alone)
    assert max(across) < alone - 0.2, (across, alone)


def test_between_knob_turns_cross_group_transfer_positive():
    ts = builtin_taskset("planted", n_groups=2, tasks_per_group=1, between=1.0, within=0.0, seed=1)
    spec = TrainSpec(steps=300, lr=1e-2, eval_every=25, patience=0, options=NARROW)  # a rank-one trunk starts at a saddle
    alone = perf(ts["g0_t0"], train_and_evaluate(ts, ["g0_t0"], spec, 0).scores["g0_t0"])
    pair = perf(ts["g0_t0"], train_and_evaluate(ts, ["g0_t0", "g1_t0"], spec, 0).scores["g0_t0"])
    assert pair > alone


def test_hidden_zero_is_a_plain_linear_or_logistic_model_per_task():
    ts = builtin_taskset("planted", n_groups=2, tasks_per_group=1, kind="classification", n_train=400, seed=2)
    net = get_backend("mlp", hidden=0).build(ts, ts.names, seed=0)
    assert isinstance(net.trunk, torch.nn.Identity) and net.shared_parameters() == []
    assert [tuple(p.shape) for p in net.head("g0_t0").parameters()] == [(2, 20), (2,)]
    model = train_multitask(ts, ts.names, TrainSpec(steps=200, lr=5e-2, options=dict(hidden=0)), seed=0)
    assert evaluate(model, "g0_t0").metric > 0.75


def test_early_stopping_restores_best_and_hooks_see_every_step(planted):
    seen, evals = [], []

    class Hooks:
        def on_step(self, step, net, optimizer, batches):
            assert set(batches) == {"g0_t0", "g0_t1"}
            x, y = batches["g0_t0"]
            assert x.shape == (32, 20) and y.shape == (32,)
            seen.append(step)

        def on_eval(self, step, net, val_loss):
            evals.append((step, val_loss))

    spec = TrainSpec(steps=2000, lr=5e-2, eval_every=10, patience=2, options=NARROW)
    model = train_multitask(planted, ["g0_t1", "g0_t0"], spec, seed=0, hooks=Hooks())
    assert model.steps < 2000 and seen == list(range(model.steps))
    assert [e[0] for e in evals] == [h[0] for h in model.history]
    best = min(h[1] for h in model.history)
    val = np.mean([per_sample_loss(model, t, "val").mean() for t in model.net.tasks])
    assert val == pytest.approx(best, rel=1e-5)
    score = evaluate(model, "g0_t0", "test")
    assert score.n == 500 and score.loss == pytest.approx(per_sample_loss(model, "g0_t0", "test").mean())
    assert score.metric == pytest.approx(score.loss, rel=1e-4)  # mse metric == mean squared-error loss


def test_flops_follow_the_documented_rule(planted):
    spec = TrainSpec(steps=10, batch_size=8, eval_every=0, options=dict(hidden=[4]))
    model = train_multitask(planted, ["g0_t0", "g1_t0"], spec, seed=0)
    per_task = (20 * 4 + 4) + (4 + 1)
    assert model.flops == 6 * per_task * 8 * 2 * 10


def test_init_copies_trunk_and_shared_heads(planted):
    spec = TrainSpec(steps=30, eval_every=0, options=NARROW)
    first = train_multitask(planted, ["g0_t0", "g1_t0"], spec, seed=0)
    second = train_multitask(planted, ["g0_t0"], TrainSpec(steps=1, lr=1e-12, eval_every=0, options=NARROW), seed=5,
                             init=first.net)
    np.testing.assert_allclose(per_sample_loss(second, "g0_t0", "val"), per_sample_loss(first, "g0_t0", "val"), rtol=1e-5)


def test_bad_specs_and_names_fail_with_messages_naming_them(planted):
    with pytest.raises(InvalidInputError, match="steps"):
        TrainSpec(steps=0)
    with pytest.raises(InvalidInputError, match="backend='nope'"):
        TrainSpec(backend="nope")
    with pytest.raises(InvalidInputError, match="stepz"):
        TrainSpec.from_dict({"stepz": 3})
    with pytest.raises(InvalidInputError, match="hiddn"):
        train_multitask(planted, ["g0_t0"], TrainSpec(steps=1, options={"hiddn": 3}), seed=0)
    with pytest.raises(UnknownNameError, match="g9_t9"):
        train_and_evaluate(planted, ["g9_t9"], TrainSpec(steps=1), seed=0)
    with pytest.raises(InvalidInputError, match="between"):
        builtin_taskset("planted", n_groups=3, between=-0.9)
    with pytest.raises(InvalidInputError, match="colour"):
        builtin_taskset("planted", colour=1)
