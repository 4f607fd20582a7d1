"""PVI and TAG lookahead with real training on small feature tasks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import InvalidInputError
from core.estimation.estimators.pvi import PVI, profile_from_models
from core.estimation.estimators.tag import TAG
from core.estimation.data.tasks import Split, Task, TaskSet
from core.estimation.models.training import TrainSpec, train_multitask

torch.set_num_threads(1)
SPEC = TrainSpec(backend="mlp", steps=150, batch_size=32, lr=1e-2, eval_every=50, patience=0, device="cpu",
                 options={"hidden": 16})


def feature_task(name, labels_from_x, n=(300, 100, 200), seed=0, label_names=("no", "yes")):
    rng = np.random.default_rng(seed)
    splits = []
    for m in n:
        x = rng.normal(size=(m, 5)).astype(np.float32)
        y = labels_from_x(x, rng).astype(np.int64)
        splits.append(Split(x, y))
    return Task(name, *splits, kind="classification", metric="accuracy", n_classes=2, label_names=label_names)


informative = lambda x, rng: (x[:, 0] + 0.3 * x[:, 1] > 0)
noise = lambda x, rng: rng.random(len(x)) < 0.5


def test_pvi_positive_for_informative_inputs_and_near_zero_for_noise():
    ts = TaskSet([feature_task("signal", informative, seed=1), feature_task("noise", noise, seed=2)])
    est = PVI(split="test").fit(ts, SPEC, seed=0)
    sig, noi = est.profiles_["signal"].mean, est.profiles_["noise"].mean
    assert sig > 0.5, sig
    assert abs(noi) < 0.15, noi
    m = est.matrix_
    assert m.names == ("signal", "noise") and np.allclose(np.diag(m.values), 1)
    assert est.cost_["trainings"] == 4


def test_pvi_guards_mismatched_labels_and_tiny_splits():
    a = feature_task("t", informative, seed=1)
    b = feature_task("t", informative, seed=1, label_names=("yes", "no"))
    ma = train_multitask(TaskSet([a]), ["t"], SPEC, 0)
    mb = train_multitask(TaskSet([b]), ["t"], SPEC, 0)
    with pytest.raises(InvalidInputError, match="label names"):
        profile_from_models(ma, mb, "t")
    tiny = TaskSet([feature_task("tiny", informative, n=(40, 10, 8)), feature_task("other", informative)])
    with pytest.raises(InvalidInputError, match="only 8 held-out examples"):
        PVI().fit(tiny, SPEC)


def test_pvi_flags_constant_predictions():
    # a task whose inputs are all identical: the "real" model cannot use x, so it is flagged
    rng = np.random.default_rng(0)
    splits = [Split(np.ones((m, 5), np.float32), (rng.random(m) < 0.5).astype(np.int64)) for m in (200, 60, 60)]
    flat = Task("flat", *splits, kind="classification", metric="accuracy", n_classes=2)
    ts = TaskSet([flat, feature_task("signal", informative)])
    est = PVI().fit(ts, SPEC)
    assert any("constant predictions" in w for w in est.profiles_["flat"].warnings)
    assert "WARNINGS" in est.matrix_.notes


def test_tag_affinity_with_an_exact_copy_is_positive():
    a = feature_task("a", informative, seed=1)
    copy = Task("a_copy", a.train, a.val, a.test, kind="classification", metric="accuracy", n_classes=2)
    other = feature_task("other", lambda x, rng: x[:, 3] - x[:, 4] > 0, seed=3)
    ts = TaskSet([a, copy, other])
    est = TAG(every=5).fit(ts, TrainSpec(backend="mlp", steps=100, batch_size=32, lr=1e-2, eval_every=0,
                                                  device="cpu", options={"hidden": 16}), seed=0)
    T = est.matrix_.values
    i, j = est.matrix_.index("a"), est.matrix_.index("a_copy")
    assert T[i, j] > 0 and T[j, i] > 0
    assert est.hook_.steps_ == 20
    assert est.cost_["trainings"] == 1
